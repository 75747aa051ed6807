// RESP encoding and parsing on top of hiredis' reader (its connection APIs are not used).
#include "net/redis/protocol.h"

#include <hiredis/hiredis.h>

#include <boost/container/small_vector.hpp>
#include <new>
#include <string>

namespace redpacket::net::redis {

void AppendCommand(std::span<const std::string_view> argv, std::string* out) {
  boost::container::small_vector<const char*, 16> pointers;
  boost::container::small_vector<std::size_t, 16> lengths;
  pointers.reserve(argv.size());
  lengths.reserve(argv.size());
  for (const std::string_view arg : argv) {
    pointers.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  char* encoded = nullptr;
  const int length = redisFormatCommandArgv(&encoded, static_cast<int>(argv.size()),
                                            pointers.data(), lengths.data());
  if (length < 0) throw std::bad_alloc();  // hiredis fails only when malloc does
  out->append(encoded, static_cast<std::size_t>(length));
  redisFreeCommand(encoded);
}

void AppendCommand(std::initializer_list<std::string_view> argv, std::string* out) {
  AppendCommand(std::span<const std::string_view>(argv.begin(), argv.size()), out);
}

std::string EncodeCommand(std::span<const std::string_view> argv) {
  std::string out;
  AppendCommand(argv, &out);
  return out;
}

std::string EncodeCommand(std::initializer_list<std::string_view> argv) {
  return EncodeCommand(std::span<const std::string_view>(argv.begin(), argv.size()));
}

std::optional<std::string> RewriteEvalShaAsEval(std::string_view evalsha, std::string_view source) {
  // Layout: "*<argc>\r\n" "$7\r\nEVALSHA\r\n" "$40\r\n<sha1>\r\n" <numkeys, keys, args>.
  const auto header_end = evalsha.find("\r\n");
  if (evalsha.empty() || evalsha.front() != '*' || header_end == std::string_view::npos) {
    return std::nullopt;
  }
  const std::string_view header = evalsha.substr(0, header_end + 2);
  std::string_view rest = evalsha.substr(header.size());
  constexpr std::string_view kEvalSha = "$7\r\nEVALSHA\r\n";
  constexpr std::string_view kShaLength = "$40\r\n";
  constexpr std::size_t kShaArgumentSize = kShaLength.size() + 40 + 2;
  if (!rest.starts_with(kEvalSha)) return std::nullopt;
  rest.remove_prefix(kEvalSha.size());
  if (!rest.starts_with(kShaLength) || rest.size() < kShaArgumentSize) return std::nullopt;
  rest.remove_prefix(kShaArgumentSize);

  std::string eval;
  eval.reserve(evalsha.size() + source.size());
  eval.append(header);
  eval.append("$4\r\nEVAL\r\n$");
  eval.append(std::to_string(source.size()));
  eval.append("\r\n");
  eval.append(source);
  eval.append("\r\n");
  eval.append(rest);
  return eval;
}

namespace {

// hiredis 0.14 allocates an array's element pointers as soon as it reads "*<count>\r\n": the 14
// bytes "*2147483647\r\n" asked for 16 GiB (found by fuzz/redis_reply_fuzz). A count above this
// bound is refused as a protocol error. The largest reply the client reads is snapshot.lua's
// HGETALL of a packet's grabs, two elements a share: 6M for a packet of 3M shares.
constexpr int kMaxArrayElements = 1 << 24;

void* (*hiredis_create_array)(const redisReadTask*, int) = nullptr;

void* CreateBoundedArray(const redisReadTask* task, int elements) {
  if (elements > kMaxArrayElements) {
    *static_cast<int*>(task->privdata) = elements;
    return nullptr;  // the reader stops with an error
  }
  return hiredis_create_array(task, elements);
}

// hiredis' own reply functions, with createArray bounded.
redisReplyObjectFunctions* BoundedFunctions(const redisReplyObjectFunctions* defaults) {
  static redisReplyObjectFunctions functions = [defaults] {
    redisReplyObjectFunctions bounded = *defaults;
    hiredis_create_array = bounded.createArray;
    bounded.createArray = CreateBoundedArray;
    return bounded;
  }();
  return &functions;
}

redisReader* CreateReader(int* refused_elements) {
  redisReader* reader = redisReaderCreate();
  if (reader == nullptr) throw std::bad_alloc();
  reader->fn = BoundedFunctions(reader->fn);
  reader->privdata = refused_elements;
  return reader;
}

}  // namespace

ReplyReader::ReplyReader() : reader_(CreateReader(&refused_elements_)) {}

ReplyReader::~ReplyReader() { redisReaderFree(reader_); }

void ReplyReader::Feed(std::string_view bytes) {
  // Fails only on a reader already in error (reported by Next) or out of memory.
  if (redisReaderFeed(reader_, bytes.data(), bytes.size()) != REDIS_OK && reader_->err == 0) {
    throw std::bad_alloc();
  }
}

ReplyReader::Status ReplyReader::Next(Reply* reply) {
  void* raw = nullptr;
  if (redisReaderGetReply(reader_, &raw) != REDIS_OK) return Status::kProtocolError;
  if (raw == nullptr) return Status::kIncomplete;
  *reply = Reply::FromHiredis(*static_cast<redisReply*>(raw));
  freeReplyObject(raw);
  return Status::kReply;
}

std::string ReplyReader::error() const {
  if (refused_elements_ != 0) {
    return "an array of " + std::to_string(refused_elements_) + " elements, over the limit of " +
           std::to_string(kMaxArrayElements);
  }
  return reader_->err != 0 ? reader_->errstr : "";
}

void ReplyReader::Reset() {
  redisReader* fresh = CreateReader(&refused_elements_);
  redisReaderFree(reader_);
  reader_ = fresh;
  refused_elements_ = 0;
}

}  // namespace redpacket::net::redis

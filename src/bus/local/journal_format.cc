// Encoding, decoding and scanning of journal segments.
#include "bus/local/journal_format.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/crc.hpp>
#include <cerrno>
#include <system_error>

namespace redpacket::bus::journal_internal {
namespace {

using domain::Error;
using domain::ErrorCode;
using domain::LedgerEvent;
using domain::MakeError;
using domain::Result;

constexpr std::string_view kPrefix = "journal-";
constexpr std::string_view kSuffix = ".log";
constexpr std::size_t kPositionDigits = 20;
constexpr std::uint8_t kBatchStartFlag = 0x80;

void PutU32(std::byte* out, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<std::byte>(value >> (8 * i));
}
void PutU64(std::byte* out, std::uint64_t value) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::byte>(value >> (8 * i));
}
std::uint32_t GetU32(const std::byte* in) {
  std::uint32_t value = 0;
  for (int i = 0; i < 4; ++i)
    value |= std::uint32_t{std::to_integer<std::uint8_t>(in[i])} << (8 * i);
  return value;
}
std::uint64_t GetU64(const std::byte* in) {
  std::uint64_t value = 0;
  for (int i = 0; i < 8; ++i)
    value |= std::uint64_t{std::to_integer<std::uint8_t>(in[i])} << (8 * i);
  return value;
}

// Thread-safe, unlike strerror.
std::string ErrnoMessage(int error) {
  return std::error_code(error, std::generic_category()).message();
}

std::uint32_t Crc32(const std::byte* data, std::size_t size) {
  boost::crc_32_type crc;
  crc.process_bytes(data, size);
  return crc.checksum();
}

Result<std::vector<std::byte>> ReadWholeFile(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return MakeError(ErrorCode::kInternal,
                     fmt::format("cannot open {}: {}", path.string(), ErrnoMessage(errno)));
  }
  std::vector<std::byte> bytes;
  struct stat info {};
  if (::fstat(fd, &info) == 0) bytes.reserve(static_cast<std::size_t>(info.st_size));
  std::byte chunk[1 << 16];
  while (true) {
    const ssize_t got = ::read(fd, chunk, sizeof(chunk));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int saved = errno;
      ::close(fd);
      return MakeError(ErrorCode::kInternal,
                       fmt::format("cannot read {}: {}", path.string(), ErrnoMessage(saved)));
    }
    if (got == 0) break;
    bytes.insert(bytes.end(), chunk, chunk + got);
  }
  ::close(fd);
  return bytes;
}

Error Corrupt(const std::filesystem::path& path, std::size_t offset, std::string_view what) {
  return MakeError(ErrorCode::kInternal, fmt::format("journal segment {} is corrupt at byte {}: {}",
                                                     path.string(), offset, what));
}

}  // namespace

Result<SegmentInfo> ScanSegmentBytes(SegmentInfo segment, std::span<const std::byte> data,
                                     bool is_last, std::uint64_t after_position,
                                     std::vector<PositionedEvent>& events) {
  segment.file_bytes = data.size();
  std::uint64_t expected = segment.first_position;
  std::size_t offset = 0;
  for (; offset < data.size(); offset += kRecordBytes) {
    const std::optional<DecodedRecord> record = DecodeRecord(data.subspan(offset));
    if (record && record->event.position == expected) {
      if (expected > after_position) events.push_back(record->event);
      ++expected;
      continue;
    }
    if (record) {  // intact but out of sequence: no torn write produces that
      return Corrupt(
          segment.path, offset,
          fmt::format("position {} where {} was expected", record->event.position, expected));
    }
    // The writer keeps zeroed space ahead of its records: an all-zero rest is the normal end of
    // the last segment. In a closed segment it is a rotation stopped before its trim (an older
    // binary created the next segment first). Still unambiguous: ScanJournal checks that the next
    // segment starts exactly at this one's next position, so zeros over acknowledged records
    // would show as a gap there.
    if (std::all_of(data.begin() + static_cast<std::ptrdiff_t>(offset), data.end(),
                    [](std::byte b) { return b == std::byte{0}; })) {
      segment.zero_tail = true;
      break;
    }
    // Rotation happens only after a batch's fdatasync returned: a closed segment has no torn tail.
    if (!is_last) return Corrupt(segment.path, offset, "damaged record in a closed segment");
    // The writer starts a batch only after the previous one was fdatasync'ed, and a batch never
    // spans segments. So an intact batch start after the bad record proves the bad record was in
    // an earlier batch, one that was acknowledged: damage, not a torn write. Without one, every
    // bad byte belongs to the last batch, whose fdatasync never returned: nobody was told it was
    // durable, and cutting it loses nothing that was promised.
    for (std::size_t later = offset + kRecordBytes; later + kRecordBytes <= data.size();
         later += kRecordBytes) {
      const std::optional<DecodedRecord> after = DecodeRecord(data.subspan(later));
      if (after && after->batch_start) {
        return Corrupt(segment.path, offset,
                       fmt::format("damaged record followed by a later batch at byte {}", later));
      }
    }
    break;
  }
  segment.valid_bytes = std::min(offset, data.size());
  segment.next_position = expected;
  return segment;
}

namespace {

// Scans one segment file, appending its events > after_position to `events`.
Result<SegmentInfo> ScanSegment(SegmentInfo segment, bool is_last, std::uint64_t after_position,
                                std::vector<PositionedEvent>& events) {
  auto bytes = ReadWholeFile(segment.path);
  if (!bytes.ok()) return bytes.error();
  return ScanSegmentBytes(std::move(segment), *bytes, is_last, after_position, events);
}

}  // namespace

std::string SegmentFileName(std::uint64_t first_position) {
  return fmt::format("{}{:0{}}{}", kPrefix, first_position, kPositionDigits, kSuffix);
}

std::optional<std::uint64_t> ParseSegmentFileName(const std::string& name) {
  if (name.size() != kPrefix.size() + kPositionDigits + kSuffix.size() ||
      !name.starts_with(kPrefix) || !name.ends_with(kSuffix)) {
    return std::nullopt;
  }
  std::uint64_t position = 0;
  for (std::size_t i = kPrefix.size(); i < kPrefix.size() + kPositionDigits; ++i) {
    const char digit = name[i];
    if (digit < '0' || digit > '9') return std::nullopt;
    const std::uint64_t value = static_cast<std::uint64_t>(digit - '0');
    if (position > (UINT64_MAX - value) / 10) return std::nullopt;
    position = position * 10 + value;
  }
  return position;
}

void EncodeRecord(const PositionedEvent& event, bool batch_start, std::byte* out) {
  std::byte* payload = out + kHeaderBytes;
  PutU64(payload, event.position);
  payload[8] = static_cast<std::byte>(static_cast<std::uint8_t>(event.event.type) |
                                      (batch_start ? kBatchStartFlag : 0));
  PutU64(payload + 9, static_cast<std::uint64_t>(event.event.packet_id));
  PutU64(payload + 17, static_cast<std::uint64_t>(event.event.user_id));
  PutU64(payload + 25, static_cast<std::uint64_t>(event.event.amount_cents));
  PutU64(payload + 33, static_cast<std::uint64_t>(event.event.seq));
  PutU64(payload + 41, static_cast<std::uint64_t>(event.event.at_millis));
  PutU32(out, static_cast<std::uint32_t>(kPayloadBytes));
  PutU32(out + 4, Crc32(payload, kPayloadBytes));
}

std::optional<DecodedRecord> DecodeRecord(std::span<const std::byte> bytes) {
  if (bytes.size() < kRecordBytes || GetU32(bytes.data()) != kPayloadBytes) return std::nullopt;
  const std::byte* payload = bytes.data() + kHeaderBytes;
  if (GetU32(bytes.data() + 4) != Crc32(payload, kPayloadBytes)) return std::nullopt;
  const auto type_byte = std::to_integer<std::uint8_t>(payload[8]);
  const auto type = static_cast<std::uint8_t>(type_byte & ~kBatchStartFlag);
  if (type != static_cast<std::uint8_t>(LedgerEvent::Type::kGrab) &&
      type != static_cast<std::uint8_t>(LedgerEvent::Type::kRefund)) {
    return std::nullopt;
  }
  DecodedRecord record;
  record.batch_start = (type_byte & kBatchStartFlag) != 0;
  record.event.position = GetU64(payload);
  record.event.event.type = static_cast<LedgerEvent::Type>(type);
  record.event.event.packet_id = static_cast<std::int64_t>(GetU64(payload + 9));
  record.event.event.user_id = static_cast<std::int64_t>(GetU64(payload + 17));
  record.event.event.amount_cents = static_cast<std::int64_t>(GetU64(payload + 25));
  record.event.event.seq = static_cast<std::int64_t>(GetU64(payload + 33));
  record.event.event.at_millis = static_cast<std::int64_t>(GetU64(payload + 41));
  return record;
}

Result<JournalScan> ScanJournal(const std::filesystem::path& directory,
                                std::uint64_t after_position) {
  std::error_code error;
  std::vector<SegmentInfo> found;
  for (std::filesystem::directory_iterator it(directory, error), end; !error && it != end;
       it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (auto first = ParseSegmentFileName(name)) {
      found.push_back(SegmentInfo{.first_position = *first, .path = it->path()});
    }
  }
  if (error) {
    return MakeError(ErrorCode::kInternal, fmt::format("cannot list the journal directory {}: {}",
                                                       directory.string(), error.message()));
  }
  std::sort(found.begin(), found.end(), [](const SegmentInfo& a, const SegmentInfo& b) {
    return a.first_position < b.first_position;
  });
  JournalScan scan;
  for (std::size_t i = 0; i < found.size(); ++i) {
    // Segments are only ever released from the front, so a gap between two of them means a
    // segment went missing: events that were acknowledged are gone.
    if (i > 0 && found[i].first_position != scan.segments.back().next_position) {
      return MakeError(ErrorCode::kInternal,
                       fmt::format("journal segment {} starts at position {} but the previous "
                                   "segment ends before {}",
                                   found[i].path.string(), found[i].first_position,
                                   scan.segments.back().next_position));
    }
    auto segment =
        ScanSegment(std::move(found[i]), i + 1 == found.size(), after_position, scan.events);
    if (!segment.ok()) return segment.error();
    scan.segments.push_back(std::move(*segment));
  }
  return scan;
}

}  // namespace redpacket::bus::journal_internal

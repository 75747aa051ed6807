// libFuzzer target: arbitrary bytes as a journal segment (bus/local/journal_format.h).
// Byte 0 holds options: bit 0 set, the harness rewrites each record's length and CRC to match its
// payload, so the fuzzer reaches the sequence and batch rules past the checksum (a CRC-correct
// corruption, as a bug of the writer would make); bits 1-2, the segment's first position (1, 2,
// 1000 or 2^64 - 3); bits 4-7 all set, the segment is also written to a directory and read back by
// ScanJournal (after a closed segment when bit 3 is set), which must agree with the scan of the
// bytes (files make an input ~50x slower, so only one in sixteen takes that path).
// Properties: DecodeRecord at every record: an accepted record re-encodes to the same bytes.
// ScanSegmentBytes: the intact prefix is whole records whose positions run on from the first
// without a gap; a cut tail is all zero or holds no later batch start; reading from a later
// position skips exactly the events up to it; a closed segment is whole or refused, never cut.
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <boost/crc.hpp>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "bus/local/journal_format.h"
#include "fuzz_check.h"

namespace {

using namespace redpacket::bus;
using namespace redpacket::bus::journal_internal;

const std::filesystem::path& Directory() {
  static const std::filesystem::path directory = [] {
    const char* base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string pattern = std::string(base) + "/journal_fuzz.XXXXXX";
    FUZZ_CHECK(::mkdtemp(pattern.data()) != nullptr);
    static std::string created = pattern;
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(created, ignored);
    });
    return std::filesystem::path(pattern);
  }();
  return directory;
}

void Write(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  FUZZ_CHECK(out.good());
}

void CheckDecode(std::span<const std::byte> bytes) {
  const auto record = DecodeRecord(bytes);
  if (!record) return;
  FUZZ_CHECK(bytes.size() >= kRecordBytes);
  std::array<std::byte, kRecordBytes> encoded{};
  EncodeRecord(record->event, record->batch_start, encoded.data());
  FUZZ_CHECK(std::equal(encoded.begin(), encoded.end(), bytes.begin()));
}

void FixChecksums(std::vector<std::byte>& bytes) {
  for (std::size_t offset = 0; offset + kRecordBytes <= bytes.size(); offset += kRecordBytes) {
    const std::uint32_t length = kPayloadBytes;
    boost::crc_32_type crc;
    crc.process_bytes(bytes.data() + offset + kHeaderBytes, kPayloadBytes);
    const std::uint32_t sum = crc.checksum();
    for (int i = 0; i < 4; ++i) {
      bytes[offset + i] = static_cast<std::byte>(length >> (8 * i));
      bytes[offset + 4 + i] = static_cast<std::byte>(sum >> (8 * i));
    }
  }
}

// The properties of one scan of `segment` as the last segment, from position `first`.
void CheckLastSegment(const SegmentInfo& last, std::span<const std::byte> segment, std::uint64_t first,
                      const std::vector<PositionedEvent>& events) {
  FUZZ_CHECK(last.first_position == first && last.file_bytes == segment.size());
  FUZZ_CHECK(last.valid_bytes <= last.file_bytes && last.valid_bytes % kRecordBytes == 0);
  FUZZ_CHECK(last.next_position - first == last.valid_bytes / kRecordBytes);
  FUZZ_CHECK(events.size() == last.valid_bytes / kRecordBytes);
  std::uint64_t expected = first;
  for (const PositionedEvent& event : events) FUZZ_CHECK(event.position == expected++);
  const std::span<const std::byte> tail = segment.subspan(last.valid_bytes);
  if (last.zero_tail) {
    FUZZ_CHECK(std::all_of(tail.begin(), tail.end(), [](std::byte b) { return b == std::byte{0}; }));
  } else {
    for (std::size_t later = kRecordBytes; later + kRecordBytes <= tail.size(); later += kRecordBytes) {
      const auto record = DecodeRecord(tail.subspan(later));
      FUZZ_CHECK(!record || !record->batch_start);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t options = data[0];
  std::vector<std::byte> bytes(reinterpret_cast<const std::byte*>(data) + 1,
                               reinterpret_cast<const std::byte*>(data) + size);
  for (std::size_t offset = 0; offset < bytes.size(); offset += kRecordBytes) {
    CheckDecode(std::span<const std::byte>(bytes).subspan(offset));
  }
  if (options & 1) FixChecksums(bytes);
  const std::span<const std::byte> segment(bytes);

  static constexpr std::array<std::uint64_t, 4> kFirst{1, 2, 1000, UINT64_MAX - 2};
  const std::uint64_t first = kFirst[(options >> 1) & 3];
  SegmentInfo info{.first_position = first, .path = "fuzz-segment"};

  // As the last segment, from the start and from a later position.
  std::vector<PositionedEvent> events;
  auto last = ScanSegmentBytes(info, segment, true, 0, events);
  if (last) CheckLastSegment(*last, segment, first, events);
  std::vector<PositionedEvent> later_events;
  auto later = ScanSegmentBytes(info, segment, true, first, later_events);
  FUZZ_CHECK(later.ok() == last.ok());
  if (later) {
    FUZZ_CHECK(later->valid_bytes == last->valid_bytes && later->next_position == last->next_position);
    FUZZ_CHECK(later_events.size() == events.size() - (events.empty() ? 0 : 1));
  }
  // As a closed segment: all of it intact, or intact records then only zeros (a rotation stopped
  // before its trim, decisions §19), or refused; never cut inside a record.
  std::vector<PositionedEvent> closed_events;
  auto closed = ScanSegmentBytes(info, segment, false, 0, closed_events);
  if (closed) {
    FUZZ_CHECK(last.ok() && closed->valid_bytes == last->valid_bytes);
    if (closed->valid_bytes != segment.size()) {
      FUZZ_CHECK(closed->zero_tail && closed->valid_bytes < segment.size());
      for (std::size_t i = closed->valid_bytes; i < segment.size(); ++i) FUZZ_CHECK(segment[i] == std::byte{0});
    }
    FUZZ_CHECK(closed_events.size() == events.size());
  }

  // One input in sixteen also goes through the files: ScanJournal over a directory holding the
  // segment, after a closed segment when bit 3 is set, must agree with the scan of the bytes.
  if ((options & 0xf0) != 0xf0) return 0;
  const bool closed_before = (options & 8) != 0 && first > 1;
  const std::filesystem::path& directory = Directory();
  std::filesystem::remove_all(directory);
  std::filesystem::create_directory(directory);
  if (closed_before) {  // one intact record at position first - 1, in its own closed segment
    std::array<std::byte, kRecordBytes> record{};
    PositionedEvent event;
    event.position = first - 1;
    event.event.packet_id = 7;
    event.event.user_id = 9;
    event.event.amount_cents = 100;
    event.event.seq = 1;
    EncodeRecord(event, true, record.data());
    Write(directory / SegmentFileName(first - 1), record);
  }
  Write(directory / SegmentFileName(first), segment);
  auto scan = ScanJournal(directory, 0);
  FUZZ_CHECK(scan.ok() == last.ok());
  if (!scan) return 0;
  FUZZ_CHECK(scan->segments.size() == (closed_before ? 2u : 1u));
  const SegmentInfo& file_last = scan->segments.back();
  FUZZ_CHECK(file_last.valid_bytes == last->valid_bytes && file_last.next_position == last->next_position &&
             file_last.zero_tail == last->zero_tail && file_last.file_bytes == last->file_bytes);
  FUZZ_CHECK(scan->events.size() == events.size() + (closed_before ? 1 : 0));
  return 0;
}

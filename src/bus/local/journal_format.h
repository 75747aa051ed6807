// The on-disk format of the local journal: fixed-size CRC'd records in segment files, and the
// read-only scan of a journal directory shared by Journal::Recover and Journal::ReadAll.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bus/local/journal.h"
#include "domain/status.h"

namespace redpacket::bus::journal_internal {

// A record: [u32 payload length][u32 crc32 of the payload][payload], little-endian, where the
// payload is u64 position, u8 type, i64 packet_id, i64 user_id, i64 amount, i64 seq,
// i64 at_millis. The high bit of the type byte marks the first record of a write batch (see
// ScanJournal: it is what tells a torn tail from a damaged acknowledged record).
inline constexpr std::size_t kHeaderBytes = 8;
inline constexpr std::size_t kPayloadBytes = 8 + 1 + 5 * 8;
inline constexpr std::size_t kRecordBytes = kHeaderBytes + kPayloadBytes;

// "journal-<20-digit first position>.log": names sort in position order.
std::string SegmentFileName(std::uint64_t first_position);
std::optional<std::uint64_t> ParseSegmentFileName(const std::string& name);

// Writes kRecordBytes at `out`.
void EncodeRecord(const PositionedEvent& event, bool batch_start, std::byte* out);

struct DecodedRecord {
  PositionedEvent event;
  bool batch_start = false;
};
// nullopt when `bytes` does not start with a whole, intact record (short, wrong length field,
// CRC mismatch, unknown type).
std::optional<DecodedRecord> DecodeRecord(std::span<const std::byte> bytes);

struct SegmentInfo {
  std::uint64_t first_position = 0;  // from the file name
  std::filesystem::path path;
  std::size_t file_bytes = 0;
  std::size_t valid_bytes = 0;      // the intact prefix; less than file_bytes: a torn tail
  bool zero_tail = false;           // everything past valid_bytes is zero (preallocated space)
  std::uint64_t next_position = 0;  // the position after the segment's last intact record
};

struct JournalScan {
  std::vector<SegmentInfo> segments;    // in position order
  std::vector<PositionedEvent> events;  // position > after_position, in order
};

// The checks of ScanJournal on one segment's bytes (`segment` holds its first position and path,
// for messages): appends its events > after_position to `events`, and returns `segment` with
// file_bytes, valid_bytes, zero_tail and next_position filled in. `is_last`: a bad record may be
// a torn tail rather than damage. No I/O.
domain::Result<SegmentInfo> ScanSegmentBytes(SegmentInfo segment, std::span<const std::byte> data,
                                             bool is_last, std::uint64_t after_position,
                                             std::vector<PositionedEvent>& events);

// Reads every segment of `directory` in order without changing anything. Checks each record's
// CRC and that positions run on without a gap within and across segments. A bad record in the
// last segment is a torn tail (reported through valid_bytes) when no later record starts a write
// batch; an all-zero rest of any segment is its end (zero_tail; in a closed segment, a rotation
// stopped before its trim, legal because the next segment must continue its positions); anything
// else is an error: it would be a damaged record that was acknowledged.
domain::Result<JournalScan> ScanJournal(const std::filesystem::path& directory,
                                        std::uint64_t after_position);

}  // namespace redpacket::bus::journal_internal

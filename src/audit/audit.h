// `redpacket audit`: checks money conservation and every packet's accounts from what is durable
// (the ledger plus the journal's not-yet-applied events). Blocking; reads only.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace redpacket::audit {

struct AuditReport {
  std::vector<std::string> checked;     // what was checked, one line each
  std::vector<std::string> violations;  // empty when everything holds
  bool ok() const { return violations.empty(); }
};

// Throws std::runtime_error when the data directory cannot be read.
AuditReport RunAudit(const std::filesystem::path& data_dir);

}  // namespace redpacket::audit

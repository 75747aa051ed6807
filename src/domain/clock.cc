// The process's system time source.
#include "domain/clock.h"

namespace redpacket::domain {

const TimeSource& SystemTime() {
  static const SystemTimeSource system;
  return system;
}

}  // namespace redpacket::domain

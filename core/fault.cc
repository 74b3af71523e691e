#include "core/fault.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace gfn {

namespace {

struct FaultPlan {
  bool armed = false;
  std::string point;
  long remaining = 0;  // passes left before the kill
};

FaultPlan& plan() {
  static FaultPlan p = [] {
    FaultPlan f;
    const char* spec = std::getenv("GFN_FAULT_KILL");
    if (spec == nullptr) return f;
    const char* colon = std::strrchr(spec, ':');
    if (colon == nullptr) return f;
    f.point.assign(spec, colon);
    f.remaining = std::strtol(colon + 1, nullptr, 10);
    f.armed = !f.point.empty() && f.remaining >= 1;
    return f;
  }();
  return p;
}

}  // namespace

void fault_point(const char* point) {
  FaultPlan& p = plan();
  if (!p.armed || p.point != point) return;
  if (--p.remaining == 0) ::kill(::getpid(), SIGKILL);
}

}  // namespace gfn

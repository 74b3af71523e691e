// The libFuzzer entry of one fuzzer: GFN_FUZZ_ENTRY names its target in fuzz/targets.h (set per
// executable by fuzz/CMakeLists.txt). Every rule of what counts as a finding lives in the target.
#include <cstddef>
#include <cstdint>

#include "fuzz/targets.h"

#ifndef GFN_FUZZ_ENTRY
#error "GFN_FUZZ_ENTRY must name a target of fuzz/targets.h (fuzz/CMakeLists.txt sets it)"
#endif

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  gfn::fuzz::initialise();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return gfn::fuzz::GFN_FUZZ_ENTRY(data, size);
}

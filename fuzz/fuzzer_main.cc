// The libFuzzer entry of one fuzzer: GFN_FUZZ_ENTRY names its target in fuzz/targets.h (set per
// executable by fuzz/CMakeLists.txt). Every rule of what counts as a finding lives in the target.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

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

// A failed allocation throws std::bad_alloc, as in a release build. ASan's own operator new
// reports a failed allocation and ends the process even with allocator_may_return_null=1, so
// an input that makes a reader ask for more memory than the machine has (LibTorch's unpickler
// allocates the sizes a checkpoint's archive declares: 27 GB asked by a 36 KB file) would read
// as a crash where gfn rejects it. These forms go through malloc, which ASan still instruments
// (scripts/fuzz.sh sets allocator_may_return_null=1 and a 256 MB cap on one allocation); they
// drop only ASan's new/delete mismatch check, which scripts/sanitize.sh's test run keeps.
namespace {

void* allocate(std::size_t size, std::size_t alignment = 0) {
  if (size == 0) size = 1;
  void* p = nullptr;
  if (alignment > alignof(std::max_align_t)) {
    if (posix_memalign(&p, alignment, size) != 0) p = nullptr;
  } else {
    p = std::malloc(size);
  }
  return p;
}

void* allocate_or_throw(std::size_t size, std::size_t alignment = 0) {
  void* p = allocate(size, alignment);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace

void* operator new(std::size_t n) { return allocate_or_throw(n); }
void* operator new[](std::size_t n) { return allocate_or_throw(n); }
void* operator new(std::size_t n, std::align_val_t a) { return allocate_or_throw(n, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return allocate_or_throw(n, static_cast<std::size_t>(a)); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return allocate(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return allocate(n); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

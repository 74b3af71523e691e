// The process settings of core/threads.h.
#include "core/threads.h"

#include <sys/resource.h>

#include <cstdlib>
#include <cstring>

#include <gtest/gtest.h>

namespace gfn {
namespace {

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// Page faults of allocating, filling and freeing a 48 MiB block `rounds` times, after the first.
long faults_of_reallocating(int rounds) {
  constexpr size_t kBytes = size_t{48} << 20;
  auto once = [] {
    auto* p = static_cast<char*>(std::malloc(kBytes));
    std::memset(p, 1, kBytes);
    asm volatile("" : : "r"(p) : "memory");  // the compiler may not drop the block
    const char c = p[kBytes / 2];
    std::free(p);
    return c;
  };
  once();
  const long before = minor_faults();
  for (int i = 0; i < rounds; ++i) EXPECT_EQ(once(), 1);
  return minor_faults() - before;
}

TEST(TuneAllocatorTest, AFreedBlockIsReusedWithoutFaultingItsPagesInAgain) {
#if !defined(__GLIBC__)
  GTEST_SKIP() << "the allocator settings are glibc's";
#endif
  for (const char* v : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"})
    if (std::getenv(v) != nullptr) GTEST_SKIP() << v << " is set: tune_allocator leaves glibc's settings alone";
  // glibc's default maps a block over its 32 MiB ceiling anew each time: 12,288 pages per round
  const long untuned = faults_of_reallocating(5);
  EXPECT_GT(untuned, 5 * 12000);
  tune_allocator();
  const long tuned = faults_of_reallocating(5);
  EXPECT_LT(tuned, 200) << "untuned: " << untuned;
}

}  // namespace
}  // namespace gfn

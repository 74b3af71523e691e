#include "core/internal/shared_reduce.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>
#include <tuple>

#include <fmt/format.h>

namespace gfn::internal {

namespace {

constexpr uint64_t kMagic = 0x67666e2d73686d31ull;  // "gfn-shm1"
constexpr size_t kLine = 64;

size_t round_up(size_t n) { return (n + kLine - 1) / kLine * kLine; }

// One rank's arrival counter and process, a cache line of its own.
struct alignas(kLine) RankSlot {
  uint64_t arrived;  // the last call whose slot this rank has written
  int64_t pid;       // its process, for finding a rank that exited
};

// The PID namespace of this process (device, inode), or {0, 0} when /proc does not say.
std::pair<uint64_t, uint64_t> pid_namespace() {
  struct stat st {};
  if (::stat("/proc/self/ns/pid", &st) != 0) return {0, 0};
  return {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
}

// Whether process `pid` still runs (a zombie has exited; its parent has not yet reaped it).
bool process_runs(int64_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat;
  if (!std::getline(in, stat)) return false;
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return true;  // unreadable: assume it runs
  const char state = stat[paren + 2];
  return state != 'Z' && state != 'X' && state != 'x';
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

std::string errno_text() { return std::strerror(errno); }

}  // namespace

struct SharedReduceSegment::Header {
  uint64_t magic;
  int64_t world;
  int64_t capacity;
  uint64_t pidns_dev, pidns_ino;
};

namespace {

size_t slots_offset() { return kLine; }  // after the header
size_t data_offset(int64_t world) { return slots_offset() + static_cast<size_t>(world) * sizeof(RankSlot); }
size_t segment_bytes(int64_t world, int64_t capacity) {
  return data_offset(world) + 2 * static_cast<size_t>(world) * static_cast<size_t>(capacity);
}

}  // namespace

SharedReduceSegment::SharedReduceSegment(void* base, size_t bytes, int64_t rank, int64_t world, int64_t capacity)
    : base_(base), bytes_(bytes), rank_(rank), world_(world), capacity_(capacity) {
  auto* slot = reinterpret_cast<RankSlot*>(static_cast<char*>(base_) + slots_offset()) + rank_;
  __atomic_store_n(&slot->pid, static_cast<int64_t>(::getpid()), __ATOMIC_RELEASE);
}

SharedReduceSegment::~SharedReduceSegment() { ::munmap(base_, bytes_); }

SharedReduceSegment::Header* SharedReduceSegment::header() const { return static_cast<Header*>(base_); }

std::unique_ptr<SharedReduceSegment> SharedReduceSegment::create(const std::string& name, int64_t world,
                                                                 int64_t capacity, std::string* why) {
  static_assert(sizeof(Header) <= kLine, "the header fits before the slots");
  capacity = static_cast<int64_t>(round_up(static_cast<size_t>(capacity)));
  const size_t bytes = segment_bytes(world, capacity);
  const int fd = ::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) {
    *why = fmt::format("shm_open({}): {}", name, errno_text());
    return nullptr;
  }
  // the pages reserved now: a full /dev/shm is a reason to use Gloo, not a SIGBUS at the first write
  void* base = MAP_FAILED;
  const int err = ::posix_fallocate(fd, 0, static_cast<off_t>(bytes));
  if (err == 0) base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (err != 0)
    *why = fmt::format("reserving {} bytes for {}: {}", bytes, name, std::strerror(err));
  else if (base == MAP_FAILED)
    *why = fmt::format("mmap({}): {}", name, errno_text());
  ::close(fd);
  if (base == MAP_FAILED) {
    ::shm_unlink(name.c_str());
    return nullptr;
  }
  auto* h = static_cast<Header*>(base);  // the rest is zero: no rank has arrived
  h->world = world;
  h->capacity = capacity;
  std::tie(h->pidns_dev, h->pidns_ino) = pid_namespace();
  __atomic_store_n(&h->magic, kMagic, __ATOMIC_RELEASE);
  return std::unique_ptr<SharedReduceSegment>(new SharedReduceSegment(base, bytes, 0, world, capacity));
}

std::unique_ptr<SharedReduceSegment> SharedReduceSegment::open(const std::string& name, int64_t rank, int64_t world,
                                                               int64_t capacity, std::string* why) {
  capacity = static_cast<int64_t>(round_up(static_cast<size_t>(capacity)));
  const size_t bytes = segment_bytes(world, capacity);
  const int fd = ::shm_open(name.c_str(), O_RDWR, 0600);
  if (fd < 0) {
    *why = fmt::format("shm_open({}): {}", name, errno_text());
    return nullptr;
  }
  struct stat st {};
  void* base = MAP_FAILED;
  if (::fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) != bytes)
    *why = fmt::format("{} holds {} bytes, expected {}", name, static_cast<long long>(st.st_size), bytes);
  else
    base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (base == MAP_FAILED) {
    if (why->empty()) *why = fmt::format("mmap({}): {}", name, errno_text());
    return nullptr;
  }
  const auto* h = static_cast<const Header*>(base);
  const auto ns = pid_namespace();
  if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != kMagic || h->world != world || h->capacity != capacity) {
    *why = fmt::format("{} has another layout", name);
  } else if (ns.second == 0 || ns != std::make_pair(h->pidns_dev, h->pidns_ino)) {
    *why = "rank 0 runs in another PID namespace";
  } else {
    return std::unique_ptr<SharedReduceSegment>(new SharedReduceSegment(base, bytes, rank, world, capacity));
  }
  ::munmap(base, bytes);
  return nullptr;
}

void SharedReduceSegment::unlink(const std::string& name) { ::shm_unlink(name.c_str()); }

void* SharedReduceSegment::slot(uint64_t call, int64_t rank) const {
  const size_t index = static_cast<size_t>(call % 2) * static_cast<size_t>(world_) + static_cast<size_t>(rank);
  return static_cast<char*>(base_) + data_offset(world_) + index * static_cast<size_t>(capacity_);
}

void SharedReduceSegment::arrive(uint64_t call) {
  auto* slot = reinterpret_cast<RankSlot*>(static_cast<char*>(base_) + slots_offset()) + rank_;
  __atomic_store_n(&slot->arrived, call, __ATOMIC_RELEASE);
}

double SharedReduceSegment::wait_all(uint64_t call, double timeout_s) const {
  auto* slots = reinterpret_cast<RankSlot*>(static_cast<char*>(base_) + slots_offset());
  int64_t missing = 0;  // ranks below it have arrived
  auto advance = [&] {
    while (missing < world_ && __atomic_load_n(&slots[missing].arrived, __ATOMIC_ACQUIRE) >= call) ++missing;
    return missing == world_;
  };
  if (advance()) return 0.0;
  const auto t0 = std::chrono::steady_clock::now();
  double next_check = 0.1;
  for (uint64_t spins = 0; !advance(); ++spins) {
    if (spins < 4096) {  // a peer a few microseconds behind
      cpu_relax();
      continue;
    }
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (waited < 0.005)
      sched_yield();
    else  // a peer still sampling, or rank 0 evaluating
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    if (waited >= next_check) {
      next_check += 0.1;
      const int64_t pid = __atomic_load_n(&slots[missing].pid, __ATOMIC_ACQUIRE);
      if (pid != 0 && !process_runs(pid))
        throw std::runtime_error(fmt::format("rank {} of {}: the process group failed: rank {} (pid {}) exited", rank_,
                                             world_, missing, pid));
    }
    if (waited > timeout_s)
      throw std::runtime_error(fmt::format("rank {} of {}: the process group failed: rank {} did not reach the "
                                           "all-reduce within {} s (distributed.timeout)",
                                           rank_, world_, missing, timeout_s));
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace gfn::internal

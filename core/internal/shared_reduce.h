// The exchange behind the gradient all-reduce of ranks that share one machine (core/distributed.h):
// one POSIX shared-memory segment with a slot per rank, two sets of slots used in turn, and an
// arrival counter per rank. A call k copies the rank's buffer into its slot of set k % 2,
// publishes k, waits until every rank has published k, and sums the slots in rank order, so
// every rank gets the same bits. A rank overwrites set k % 2 again only at call k + 2, after
// every rank has published k + 1, which each does only after it finished reading call k: one
// synchronisation a call, no helper thread, no system call while the ranks arrive together.
//
// Why not Gloo alone: on the 2-core VM one ProcessGroupGloo all-reduce over loopback takes
// 1.2-1.8 ms whatever its size (TCP messages, a worker thread and an event-loop thread per
// process; TCP's own round trip is 30 us there), which is a third of a small network's
// iteration (bench/RESULTS.md). Ranks on other machines still go through Gloo.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

namespace gfn::internal {

class SharedReduceSegment {
 public:
  // Rank 0: creates segment `name` ("/gfn-..."), sized for `world` slots of `capacity` bytes in
  // each of the two sets (rounded up to cache lines) and its pages reserved, so that a /dev/shm
  // too small for it is a reason here rather than a SIGBUS at a later write; records its PID
  // namespace. Null with `why` set when it cannot.
  static std::unique_ptr<SharedReduceSegment> create(const std::string& name, int64_t world, int64_t capacity,
                                                     std::string* why);
  // Rank `rank` > 0: maps the segment rank 0 created. Null with `why` set when there is none of
  // that name here (another machine or another /dev/shm), its layout differs, or it was created
  // in another PID namespace (a peer's PID, by which a lost rank is found, would mean nothing).
  static std::unique_ptr<SharedReduceSegment> open(const std::string& name, int64_t rank, int64_t world,
                                                   int64_t capacity, std::string* why);
  // Removes the name (the ranks' mappings stay): rank 0, once every rank has opened it.
  static void unlink(const std::string& name);

  ~SharedReduceSegment();
  SharedReduceSegment(const SharedReduceSegment&) = delete;
  SharedReduceSegment& operator=(const SharedReduceSegment&) = delete;

  int64_t capacity() const { return capacity_; }
  // Rank `rank`'s slot in the set of call `call`.
  void* slot(uint64_t call, int64_t rank) const;
  // Publishes that this rank's slot of call `call` is written (release).
  void arrive(uint64_t call);
  // Waits until every rank has arrived at `call` (acquire): spins, then yields, then sleeps in
  // steps of 100 us. Returns the seconds waited. std::runtime_error naming the first rank
  // missing when its process has exited (checked every 100 ms through /proc) or after
  // `timeout_s`, beginning "rank <this rank> of <world>".
  double wait_all(uint64_t call, double timeout_s) const;

 private:
  struct Header;
  SharedReduceSegment(void* base, size_t bytes, int64_t rank, int64_t world, int64_t capacity);
  Header* header() const;
  void* base_;
  size_t bytes_;
  int64_t rank_, world_, capacity_;
};

}  // namespace gfn::internal

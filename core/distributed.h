// Data-parallel training over LibTorch's c10d (DESIGN.md 9): the torchrun variables, a process
// group joined by a TCPStore rendezvous (Gloo on the CPU), and the two collectives a training
// loop needs: the average of every gradient across ranks before each optimiser step, and an
// agreed stop flag after each iteration. The c10d headers stay in distributed.cc.
//
// How the gradients travel: ranks that all share one machine (one /dev/shm, one PID namespace)
// exchange them through a shared-memory segment (core/internal/shared_reduce.h), the others
// through Gloo's all-reduce; distributed.transport = "gloo" asks for Gloo always.
//
// What a rank does (apps/run.cc): every rank builds the same model from the same seed, samples
// train.batch_size / WORLD_SIZE trajectories per iteration from its own sampling stream (rank 0's
// is a single process's), and averages its gradients with the others', so the parameters stay
// identical; rank 0 evaluates, logs and checkpoints, the others write nothing. Replay buffers
// and local search are per rank (no samples are exchanged).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "core/options.h"

namespace gfn {

// How the gradient all-reduce travels (distributed.transport).
enum class Transport {
  kAuto,  // "auto": shared memory when every rank is on this machine, else Gloo
  kGloo,  // "gloo": Gloo's all-reduce over TCP, whatever the ranks' machines
};
template <>
const EnumNames<Transport>& enum_names<Transport>();  // "auto", "gloo"

// The torchrun variables of one process.
struct DistributedOptions {
  int64_t rank = 0;        // RANK, in [0, WORLD_SIZE)
  int64_t world_size = 1;  // WORLD_SIZE, >= 1
  int64_t local_rank = 0;  // LOCAL_RANK (default RANK): the process's index on its machine
  std::string master_addr = "127.0.0.1";  // MASTER_ADDR: the host of rank 0's TCPStore
  int64_t master_port = 29500;            // MASTER_PORT
  double timeout_s = 300.0;               // rendezvous and every collective (distributed.timeout)
  Transport transport = Transport::kAuto;  // distributed.transport
};

// The variables of this process's environment; none when WORLD_SIZE is unset. ConfigError
// naming the variable, its value and what was expected (WORLD_SIZE 0, RANK >= WORLD_SIZE, a port
// outside 1..65535, RANK or MASTER_ADDR missing with WORLD_SIZE > 1).
std::optional<DistributedOptions> distributed_from_environment();

// Whether this build has c10d's Gloo process group (CMake found libgloo-dev).
bool distributed_available();

// One rank's membership of the process group.
class Collective {
 public:
  // Joins the group: rank 0 serves the TCPStore at MASTER_ADDR:MASTER_PORT, every rank connects
  // to it and to each other. ConfigError when this build has no Gloo, or when the master cannot be
  // reached or the group does not assemble within the timeout (nothing has been written then).
  explicit Collective(const DistributedOptions& options);
  ~Collective();
  Collective(const Collective&) = delete;
  Collective& operator=(const Collective&) = delete;

  int64_t rank() const { return options_.rank; }
  int64_t world_size() const { return options_.world_size; }

  // Returns once every rank has called it (Gloo's barrier): before the first iteration, so that
  // neither a rank's training clock nor the first all-reduce holds the others' start-up.
  // std::runtime_error naming this rank when a peer exited or did not answer.
  void barrier();

  // Replaces the gradient of every parameter with its mean over the ranks: one all-reduce of a
  // flat buffer in the gradients' dtype (float32 for float32 parameters; every rank receives the
  // same sums), which also carries each rank's stop request (request_stop). A parameter without
  // a gradient counts as zero, and gets the mean where any rank had one. std::runtime_error
  // naming this rank when a peer exited or stopped answering. The first call decides the
  // transport with the other ranks (collectives over the process group).
  void average_gradients(std::vector<torch::Tensor>& params);
  // A stop request of this rank, sent with its next all-reduce; stop_agreed() says whether any
  // rank's had arrived by the last one (the same answer on every rank after the same number of
  // all-reduces: a run stops one iteration after a signal, on every rank at once).
  void request_stop(bool stop) { stop_requested_ = stop_requested_ || stop; }
  bool stop_agreed() const { return stop_agreed_; }

  // Seconds spent in all-reduces so far, and how many.
  double reduce_seconds() const { return reduce_s_; }
  int64_t reductions() const { return reductions_; }
  // Of reduce_seconds(), those spent waiting for the last rank to arrive: measured through
  // shared memory only (none over Gloo, whose wait cannot be told from its exchange).
  std::optional<double> wait_seconds() const;
  // "shared memory", or "Gloo" with the reason when "auto" could not use shared memory
  // ("" before the first all-reduce).
  const std::string& transport() const { return transport_; }

 private:
  struct Impl;
  DistributedOptions options_;
  std::unique_ptr<Impl> impl_;
  double reduce_s_ = 0.0, wait_s_ = 0.0;
  int64_t reductions_ = 0;
  std::string transport_;
  bool stop_requested_ = false, stop_agreed_ = false;
};

// The sampling seed of `rank`: rank 0 keeps `seed` (a single process's stream), the others get
// distinct streams.
uint64_t rank_seed(uint64_t seed, int64_t rank);

}  // namespace gfn

// The random streams of a run. Each stream has its own generator, seeded from the run's `seed`
// and the stream, so that no stream shifts another's draws: initialising the networks, sampling
// training batches, evaluating and drawing the final samples. Code and tests derive seeds only
// through stream_seed.
#pragma once

#include <cstdint>

namespace gfn {

enum class SeedStream : uint64_t {
  kSampling = 0,        // the trainer's generator: rollouts, exploration, dropout draws
  kInitialisation = 1,  // the policy's and every component's parameters
  kEvaluation = 5,      // importance sampling, grids and the env's sample metrics at evaluations
  kFinalSamples = 7,    // the terminal samples written to /samples at the end
};

// The seed of `stream` in a run seeded with `seed`: 2 seed + stream. (Streams of different runs
// may share a seed, e.g. seed 0's evaluation stream and seed 2's initialisation; within one run
// they never do.)
inline uint64_t stream_seed(uint64_t seed, SeedStream stream) { return 2 * seed + static_cast<uint64_t>(stream); }

}  // namespace gfn

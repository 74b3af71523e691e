// `gfn launch -n N CONFIG ...`: N local processes of `gfn train` with the torchrun variables set
// (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR = 127.0.0.1, MASTER_PORT a free port), for users
// without torchrun. Internal to the library: not installed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gfn {

// A TCP port free on the loopback interface now (the kernel's choice for port 0).
int free_loopback_port();

// Starts `processes` copies of `executable` with `train_args` (the arguments after the program
// name: "train", CONFIG, ...), each with its rank's variables, and waits for them. SIGINT and
// SIGTERM are passed on to every rank. When a rank fails (a nonzero exit or a signal) the others
// are given `grace_s` seconds to stop on their own (they notice the lost peer), then terminated.
// Returns 0 when every rank succeeded; rank 0's code when the run was stopped by a signal; else
// the first failed rank's (128 + the signal for a killed one). Each failure is reported on stderr
// with the rank and its pid. ConfigError for processes < 1.
int launch(int64_t processes, const std::string& executable, const std::vector<std::string>& train_args,
           double grace_s = 30.0);

}  // namespace gfn

// The `gfn` command line, over any registry: `gfn` itself is
//
//     int main(int argc, char** argv) { return gfn::cli_main(argc, argv, gfn::Registry::builtin()); }
//
// and a program that adds its own environments, objectives or components to the registry gets
// every command for them (train, train --resume, eval, sample, analyse, check-env, keys) with the
// same line after registering them (examples/custom_env/main.cc).
//
//   gfn train CONFIG [--set key=value ...] [--out DIR]   train, writing DIR/{config.toml,model.pt,checkpoint.pt,log.h5}
//   gfn train --resume DIR [--set train.iterations=N]    continue a stopped, killed or finished run
//   gfn eval DIR [--json]                                exact metrics of the policy saved in DIR
//   gfn sample DIR -n N [--out FILE.h5] [--seed S]       terminal samples of the policy saved in DIR
//   gfn keys [--markdown]                                every config key with its default and rule
//   gfn analyse LOG.h5|DIR ... [--json] [--csv DIR] [--plot DIR]
//                                                        summary, CSV tables and PNG plots of run logs
//   gfn check-env NAME [--set env.key=value ...] [--seed N] [--samples N]
//                                                        run the environment checker (core/checker.h)
//
// Exit codes: 0 success, 2 usage or config error or a bad input file (message on stderr,
// nothing written), 1 failure while running (for check-env: a check failed), 130 / 143 when
// SIGINT / SIGTERM stopped training (after the current iteration, with a flushed log and a
// checkpoint; a second signal ends the process at once).
#pragma once

#include "apps/registry.h"

namespace gfn {

// Runs the command line `argv` with the kinds of `registry`; returns the process's exit code.
// Messages name the program as argv[0]'s file name.
int cli_main(int argc, char** argv, const Registry& registry);

}  // namespace gfn

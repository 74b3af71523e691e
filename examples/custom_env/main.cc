// `custom_env`: the gfn command line with the Ring environment (ring_env.h) registered beside the
// built-in ones, so that every command works for ring runs as `gfn` works for its own:
//
//     custom_env check-env ring                     the environment checker
//     custom_env train ring.toml --out runs/ring    train from a config whose env.kind = "ring"
//     custom_env train --resume runs/ring           continue it
//     custom_env eval runs/ring                     evaluate, sample, analyse, list the keys, ...
#include "apps/cli.h"
#include "ring_env.h"

int main(int argc, char** argv) {
  gfn::Registry registry = gfn::Registry::builtin();
  registry.add_env(gfn::env_entry<example::RingEnv, example::RingOptions>(
      "ring", "2-D annulus entered by a polar chart, then rotations"));
  return gfn::cli_main(argc, argv, registry);
}

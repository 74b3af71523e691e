// `custom_env`: the gfn command line with the Ring environment (ring_env.h) registered beside the
// built-in ones, so that every command works for ring runs as `gfn` works for its own:
//
//     custom_env check-env ring                     the environment checker
//     custom_env train ring.toml --out runs/ring    train from a config whose env.kind = "ring"
//     custom_env train --resume runs/ring           continue it
//     custom_env eval runs/ring                     evaluate, sample, analyse, list the keys, ...
//
// and a diffusion sampler of a density of its own (ring_target.h), "ring_diffusion", whose keys
// are the diffusion env's (env.target names a built-in target and is ignored here):
//
//     custom_env train ring_diffusion.toml --out runs/ring_diffusion
#include <memory>

#include "apps/cli.h"
#include "envs/diffusion.h"
#include "ring_env.h"
#include "ring_target.h"

int main(int argc, char** argv) {
  gfn::Registry registry = gfn::Registry::builtin();
  registry.add_env(gfn::env_entry<example::RingEnv, example::RingOptions>(
      "ring", "2-D annulus entered by a polar chart, then rotations"));
  registry.add_env({"ring_diffusion", "a diffusion sampler of a ring-shaped density in the plane",
                    gfn::DiffusionOptions::keys().specs(), [](const gfn::Params& p) {
                      return std::make_unique<gfn::DiffusionEnv>(gfn::DiffusionOptions::keys().read(p),
                                                                 std::make_shared<example::RingTarget>());
                    }});
  return gfn::cli_main(argc, argv, registry);
}

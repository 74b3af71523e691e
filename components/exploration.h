// Exploration by extra forward noise (Lahlou et al. 2023; Sendera et al. 2024): the behaviour
// policy draws each Gaussian step with its standard deviation widened to sqrt(s^2 + e_i^2), where
// the extra noise e_i decays linearly from explore.noise at iteration 0 to 0 at iteration
// explore.decay (and stays 0 after; decay 0: constant). The trainer scores every such batch under
// the training policy (SamplerOptions::on_policy is false while e_i > 0), so the loss sees
// off-policy data scored correctly; only which trajectories are trained on changes.
//
// Units: for a time-indexed env (diffusion, Env::time_indexing) explore.noise is the papers'
// exploration factor, in the units of the drift's noise sigma (x units per sqrt(dt)), converted to
// chart units as e / sigma; for other envs it is in chart units of their Gaussian pieces.
#pragma once

#include <string>

#include "core/component.h"
#include "core/options.h"

namespace gfn {

struct ExplorationOptions : KeyedOptions<ExplorationOptions> {
  double noise = 0.0;  // extra standard deviation at iteration 0 (0: off)
  int64_t decay = 0;   // iterations over which it decays linearly to 0 (0: constant)

  // The config keys (explore.noise, explore.decay).
  static const OptionTable<ExplorationOptions>& keys();
};

class ExplorationComponent final : public TrainingComponent {
 public:
  // ConfigError when the env's forward kernel has no Gaussian piece to widen.
  ExplorationComponent(const ComponentSetup& setup, const ExplorationOptions& options);
  std::string name() const override { return "explore"; }
  void adjust_sampling(SamplerOptions& options, int64_t iteration) override;
  // The extra noise of iteration `iteration`, in explore.noise's units.
  double noise_at(int64_t iteration) const;

 private:
  ExplorationOptions options_;
  double to_chart_ = 1.0;  // chart units per unit of explore.noise
};

}  // namespace gfn

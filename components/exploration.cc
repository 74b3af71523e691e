#include "components/exploration.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/env.h"
#include "core/params.h"

namespace gfn {

const OptionTable<ExplorationOptions>& ExplorationOptions::keys() {
  using O = ExplorationOptions;
  static const auto table =
      OptionTable<O>()
          .add("explore.noise", &O::noise,
               "exploration: extra standard deviation of the Gaussian forward steps at iteration 0 (diffusion: in "
               "units of sigma, the papers' exploration factor; 0: off)",
               in(0, 1e6))
          .add("explore.decay", &O::decay,
               "iterations over which explore.noise decays linearly to 0 (0: constant)", at_least(0));
  return table;
}

ExplorationComponent::ExplorationComponent(const ComponentSetup& setup, const ExplorationOptions& options)
    : options_(options) {
  options_.validate();
  bool gaussian = false;
  for (const auto& c : setup.env.action_spec().forward.components)
    gaussian = gaussian || (c.kind == ComponentKind::kPiece && c.domain == Domain::kReal);
  if (options_.noise > 0 && !gaussian)
    throw ConfigError(fmt::format("explore.noise = {}: env '{}' has no Gaussian forward piece to widen (use "
                                  "train.temperature or train.epsilon)",
                                  options_.noise, setup.env.name()));
  if (auto time = setup.env.time_indexing())  // e / sigma = e * (sqrt(dt) / sigma) / sqrt(dt)
    to_chart_ = time->drift_to_chart * std::sqrt(static_cast<double>(time->steps));
}

double ExplorationComponent::noise_at(int64_t iteration) const {
  if (options_.decay == 0) return options_.noise;
  const double left = 1.0 - static_cast<double>(iteration) / static_cast<double>(options_.decay);
  return options_.noise * std::max(0.0, left);
}

void ExplorationComponent::adjust_sampling(SamplerOptions& options, int64_t iteration) {
  options.noise = noise_at(iteration) * to_chart_;
}

}  // namespace gfn

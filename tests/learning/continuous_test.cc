// Learning tests on continuous and hybrid environments, through the library entry point a
// config drives (gfn::train): the shipped configs with shorter budgets, judged by the metrics the
// run itself reports at its final evaluation (DESIGN.md §6) against the env's exact log Z:
//   - the importance-sampled terminating density against R/Z on the env's grid (JSD), for the
//     Box 2-D, the Line and the Torus, which have grids;
//   - |log Z_IS - log Z| (Z_IS the importance-sampled estimate of the trained sampler) and the
//     learned log Z, for the Box 5-D, the Line and the labelled (hybrid) box.
// Every bound below was measured over seeds 0-2 with these exact settings (numbers beside each)
// and set with margin.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <tuple>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "apps/run.h"
#include "io/config.h"
#include "io/hdf5_log.h"

namespace gfn {
namespace {

namespace fs = std::filesystem;

// Trains `config_file` with `sets` into a fresh temporary directory; returns the summary, and
// in `evals` (when given) every /eval column of its log.
RunSummary train_config(const std::string& config_file, std::vector<std::string> sets, uint64_t seed,
                        std::map<std::string, std::vector<double>>* evals = nullptr) {
  const auto registry = Registry::builtin();
  sets.push_back(fmt::format("seed={}", seed));
  if (evals == nullptr) sets.push_back("eval.every=0");  // one evaluation, at the end
  auto config = load_config_file(config_file, sets, run_schema(registry));
  const fs::path dir = fs::temp_directory_path() /
                       fmt::format("gfn-learning-{}-{}-{}", fs::path(config_file).stem().string(), seed, ::getpid());
  fs::remove_all(dir);
  TrainOptions options;
  options.out_dir = dir.string();
  options.progress = ProgressStyle::kNone;
  RunSummary summary = train(config, options, registry);
  if (evals != nullptr) {
    Hdf5LogReader log((dir / "log.h5").string());
    for (const auto& name : log.list("eval")) (*evals)[name] = log.read_double("eval/" + name);
  }
  fs::remove_all(dir);
  return summary;
}

double log_z_is_error(const RunSummary& s, double log_z) { return std::fabs(s.importance->log_z - log_z); }

class ContinuousLearning : public ::testing::TestWithParam<uint64_t> {};

// Box 2-D (polar, delta = 0.25), configs/box.toml for 3,000 iterations, decay every 1,000:
// measured over seeds 0-2 grid JSD 0.0555, 0.0590, 0.0578 (the shipped 10,000 reach 0.042),
// grid mass 1.003, 0.997, 1.001, |log Z_IS - log Z| 0.013, 0.005, 0.009 on an Intel Xeon; on the
// 2-core AMD EPYC of 2026-12-03 (OpenBLAS picks other kernels, so the runs differ) over seeds
// 0-5 grid JSD 0.053-0.059, mass 0.995-1.003, |log Z_IS - log Z| 0.022, 0.072, 0.045, 0.012,
// 0.001, 0.010 (ESS 993-1,656 of 4,096): the bound on the last is set from the EPYC's worst.
// With float64 chart coordinates (2026-12-03, EPYC) seeds 0-2 read grid JSD 0.0553, 0.0576,
// 0.0571, mass 0.998, 0.995, 0.996, |log Z_IS - log Z| 0.034, 0.003, 0.008
TEST_P(ContinuousLearning, Box2dGridJsd) {
  auto s = train_config("configs/box.toml",
                        {"train.iterations=3000", "train.lr_decay_every=1000", "eval.density_samples=8"}, GetParam());
  ASSERT_TRUE(s.grid.has_value());
  ASSERT_TRUE(s.importance.has_value());
  const double log_z = std::log(0.1 + 0.5 * 0.25 + 2.0 * 0.04);
  EXPECT_LT(s.grid->jsd, 0.075);
  EXPECT_NEAR(s.grid->mass, 1.0, 0.05);
  EXPECT_LT(log_z_is_error(s, log_z), 0.1);
}

// The Box 2-D with P_B learned through the loss and with TLM, at the paper's concentration floor
// 0.1 (README "Numerics"), 1,500 iterations, evaluated every 500: the importance-sampled mass of
// the grid stays near 1 at every evaluation, and TLM's ELBO stays below log Z. With float32
// coordinates the mass read 0.96-14.9 and TLM's ELBO +29. Measured over seeds 0-2 on the AMD
// EPYC: grid mass 0.990-0.997 (learned) and 0.987-0.999 (TLM) over the nine evaluations, ELBO
// -1.74 ... -1.44 (log Z = -1.187), log Z_IS -1.255 ... -1.173; the mass bound is the issue's
// [0.98, 1.02]. About 35 s (learned) and 50 s (TLM) each.
class BoxBackwardLearning : public ::testing::TestWithParam<std::tuple<std::string, uint64_t>> {};

TEST_P(BoxBackwardLearning, GridMassNearOneAtEveryEvaluation) {
  const auto& [backward, seed] = GetParam();
  std::map<std::string, std::vector<double>> evals;
  train_config("configs/box.toml",
               {"policy.backward=\"" + backward + "\"", "policy.backward_min_concentration=0.1", "train.iterations=1500",
                "train.lr_decay_every=1000", "eval.every=500", "eval.density_samples=8"},
               seed, &evals);
  const double log_z = std::log(0.1 + 0.5 * 0.25 + 2.0 * 0.04);
  ASSERT_EQ(evals["grid_mass"].size(), 3u);
  for (size_t i = 0; i < evals["grid_mass"].size(); ++i) {
    std::printf("%s seed %llu evaluation %zu: grid mass %.4f, ELBO %.4f, log Z_IS %.4f, grid JSD %.4f\n", backward.c_str(),
                static_cast<unsigned long long>(seed), i, evals["grid_mass"][i], evals["elbo"][i], evals["log_z_is"][i],
                evals["grid_jsd"][i]);
    EXPECT_NEAR(evals["grid_mass"][i], 1.0, 0.02) << backward << " evaluation " << i;
    EXPECT_LT(evals["elbo"][i], log_z) << backward << " evaluation " << i;
    EXPECT_NEAR(evals["log_z_is"][i], log_z, 0.1) << backward << " evaluation " << i;
  }
  // the final grid JSD: measured 0.0587, 0.0603, 0.0617 (learned), 0.0531, 0.0523, 0.0556 (TLM)
  EXPECT_LT(evals["grid_jsd"].back(), 0.075) << backward;
}

INSTANTIATE_TEST_SUITE_P(Seeds, BoxBackwardLearning,
                         ::testing::Combine(::testing::Values("learned", "tlm"), ::testing::Values(0, 1, 2)));

// Box 5-D, cartesian form (configs/box_cartesian.toml, learned P_B) for 2,000 iterations, decay
// every 1,000: measured |log Z_IS - log Z| 0.024, 0.006, 0.019 (log Z = log(0.1 + 0.5/32 +
// 2/3125) = -2.1519). The learned log Z, moved by Adam at lr 1e-3 from 0, is still near -1.18
// then: TB's log Z is rate-limited there, so only the importance-sampled estimate is asserted.
TEST_P(ContinuousLearning, Box5dLogZ) {
  auto s = train_config("configs/box_cartesian.toml",
                        {"env.dim=5", "train.iterations=2000", "train.lr_decay_every=1000", "eval.grid=0"}, GetParam());
  ASSERT_TRUE(s.importance.has_value());
  const double log_z = std::log(0.1 + 0.5 / 32 + 2.0 / 3125);
  EXPECT_LT(log_z_is_error(s, log_z), 0.08);
}

// Labelled box (3 labels, ratio 2, polar Box 2-D), configs/labelled_box.toml for 3,000
// iterations, decay every 1,000: measured |log Z_IS - log Z| 0.012, 0.008, 0.047 over seeds 0-2 (log Z = log 7 +
// log 0.305 = 0.7585)
TEST_P(ContinuousLearning, LabelledBoxLogZ) {
  auto s = train_config("configs/labelled_box.toml",
                        {"train.iterations=3000", "train.lr_decay_every=1000", "eval.grid=0"}, GetParam());
  ASSERT_TRUE(s.importance.has_value());
  const double log_z = std::log(7.0) + std::log(0.1 + 0.5 * 0.25 + 2.0 * 0.04);
  EXPECT_LT(log_z_is_error(s, log_z), 0.1);
}

// Line (two modes, 5 steps), configs/line.toml (4,000 iterations): measured grid JSD 0.0206,
// 0.0187, 0.0127, |log Z_IS| 0.017, 0.003, 0.017, learned log Z -0.207, -0.275, -0.241 (TB's
// log Z under tempered sampling settles below log Z while the policy is imperfect)
TEST_P(ContinuousLearning, LineLogZAndGridJsd) {
  auto s = train_config("configs/line.toml", {}, GetParam());
  ASSERT_TRUE(s.grid.has_value());
  EXPECT_LT(s.grid->jsd, 0.04);
  EXPECT_LT(log_z_is_error(s, 0.0), 0.05);
  EXPECT_LT(std::fabs(s.log_z), 0.5);
}

// The 2-torus with two modes (configs/torus.toml, uniform P_B) for 1,200 iterations, decay every
// 600: under the uniform P_B the intermediate state is uniform, so each second rotation must reach
// both modes. With mixtures of 2 von Mises per piece (the config), measured over seeds 0-2 on the
// 2-core AMD EPYC (2026-12-03) grid JSD 0.0376, 0.0326, 0.0250, mass 1.0015, 1.0089, 0.9926,
// |log Z_IS - log Z| 0.031, 0.020, 0.035. A single von Mises per piece (mixture_components = 1)
// cannot put mass on two arcs: grid JSD 0.320, 0.211, 0.210 over the same seeds (TV 0.48-0.68).
TEST_P(ContinuousLearning, TorusTwoModesNeedAVonMisesMixture) {
  const std::vector<std::string> budget = {"train.iterations=1200", "train.lr_decay_every=600"};
  auto s = train_config("configs/torus.toml", budget, GetParam());
  ASSERT_TRUE(s.grid.has_value());
  EXPECT_LT(s.grid->jsd, 0.06);
  EXPECT_NEAR(s.grid->mass, 1.0, 0.03);
  EXPECT_LT(log_z_is_error(s, 0.0), 0.1);
  if (GetParam() != 0) return;  // the single von Mises once (the suite's time)
  auto with = budget;
  with.push_back("policy.mixture_components=1");
  auto single = train_config("configs/torus.toml", with, GetParam());
  ASSERT_TRUE(single.grid.has_value());
  EXPECT_GT(single.grid->jsd, 0.15);
}

// The diffusion sampler on 25GMM (configs/diffusion_25gmm.toml: sigma^2 = 5, the fixed
// Brownian bridge, the time architecture 64 wide) with the Langevin parametrisation, at the
// suite's budget: T = 25 steps, batch 200, 500 iterations (the paper: T = 100, batch 300, 10,000
// iterations). Measured over seeds 0-2 on the 2-core AMD EPYC (2026-12-03): Delta log Z^RW =
// |log Z_IS - log Z| 0.057, 0.128, 0.236 from K = 2,000 trajectories, Delta log Z = |ELBO - log Z|
// 1.349, 1.311, 1.285, W2^2 against 500 exact samples 21.1, 15.8, 17.8, EUBO 1.89, 1.54, 1.67;
// the untrained sampler (the reference process) reads 0.92, 6.2, 45-48 and 8.0-8.4. Without the
// Langevin term TB at this budget drops modes (seed 2 at 1,000 iterations with exploration:
// Delta log Z^RW 2.29, EUBO 28).
TEST_P(ContinuousLearning, Diffusion25GmmLangevin) {
  auto s = train_config("configs/diffusion_25gmm.toml",
                        {"env.steps=25", "train.batch_size=200", "train.iterations=500", "policy.langevin=true",
                         "eval.grid=0", "eval.exact_samples=500"},
                        GetParam());
  ASSERT_TRUE(s.importance && s.eubo && s.w2);
  EXPECT_LT(log_z_is_error(s, 0.0), 0.4);
  EXPECT_LT(std::fabs(s.importance->elbo), 1.8);
  EXPECT_LT(*s.w2, 30.0);
  EXPECT_LT(*s.eubo, 3.0);
  EXPECT_GT(*s.eubo, s.importance->elbo);  // EUBO >= log Z >= ELBO in expectation
}

// Bayesian networks with their weights (configs/bayesnet_d3.toml: d = 3, n = 100, VarGrad,
// temperature 2) for 1,000 iterations against the exact posterior over the 25 DAGs: measured over
// seeds 0-2 |log Z_IS - log Z| 0.0003, 0.0019, 0.0003, graph JSD (10,000 samples) 0.0004, 0.0008,
// 0.0003, mean edge-marginal error 0.0044, 0.0084, 0.0035, weight-mean error on the top graphs
// 0.0031, 0.0021, 0.0012, weight-variance error 0.0004, 0.0003, 0.0003.
TEST_P(ContinuousLearning, BayesNetD3MatchesTheExactPosterior) {
  std::map<std::string, std::vector<double>> evals;
  auto s = train_config("configs/bayesnet_d3.toml", {"train.iterations=1000", "eval.every=1000"}, GetParam(), &evals);
  ASSERT_TRUE(s.importance.has_value());
  ASSERT_EQ(evals.count("graph_jsd"), 1u);
  EXPECT_LT(evals["log_z_is_error"].back(), 0.02);
  EXPECT_LT(evals["graph_jsd"].back(), 0.005);
  EXPECT_LT(evals["edge_marginal_error"].back(), 0.02);
  EXPECT_LT(evals["weight_mean_error"].back(), 0.01);
  EXPECT_LT(evals["weight_variance_error"].back(), 0.002);
}

INSTANTIATE_TEST_SUITE_P(Seeds, ContinuousLearning, ::testing::Values(0, 1, 2));

// Detailed balance (flow head) on the Box 2-D and the labelled box, same budgets as above, one
// seed each (the suite's time): measured over seeds 0-2 on the Box grid JSD 0.073, 0.079, 0.080
// and |log Z_IS - log Z| 0.034, 0.044, 0.050 (its log F(s0), at lr 1e-3, still near -1.55 to
// -1.62 then); on the labelled box |log Z_IS - log Z| 0.026, 0.125 (ESS 164 of 4,096), 0.028.
TEST(ContinuousLearningDb, Box2dGridJsd) {
  auto s = train_config("configs/box.toml",
                        {"objective.kind=db", "train.iterations=3000", "train.lr_decay_every=1000",
                         "eval.density_samples=8"},
                        0);
  ASSERT_TRUE(s.grid.has_value());
  ASSERT_TRUE(s.importance.has_value());
  EXPECT_LT(s.grid->jsd, 0.11);
  EXPECT_NEAR(s.grid->mass, 1.0, 0.05);
  EXPECT_LT(log_z_is_error(s, std::log(0.1 + 0.5 * 0.25 + 2.0 * 0.04)), 0.1);
}

TEST(ContinuousLearningDb, LabelledBoxLogZ) {
  auto s = train_config("configs/labelled_box.toml",
                        {"objective.kind=db", "train.iterations=3000", "train.lr_decay_every=1000", "eval.grid=0"}, 0);
  ASSERT_TRUE(s.importance.has_value());
  EXPECT_LT(log_z_is_error(s, std::log(7.0) + std::log(0.1 + 0.5 * 0.25 + 2.0 * 0.04)), 0.2);
}

// SubTB(0.9) (flow head) on the Box 2-D and the labelled box, same budgets, one seed each:
// measured over seeds 0-2 on the Box grid JSD 0.0678, 0.0697, 0.0701 and |log Z_IS - log Z|
// 0.078, 0.041, 0.013 (with the earlier pairwise form of the same loss, whose float32 rounding
// took other training paths: 0.063-0.065 and 0.008-0.014); on the labelled box |log Z_IS - log Z| 0.249 (ESS 22 of 4,096: the
// estimate, not only the sampler, is off), 0.014, 0.002, and log Z - ELBO 0.36, 0.41, 0.38.
TEST(ContinuousLearningSubTb, Box2dGridJsd) {
  auto s = train_config("configs/box.toml",
                        {"objective.kind=subtb", "train.iterations=3000", "train.lr_decay_every=1000",
                         "eval.density_samples=8"},
                        0);
  ASSERT_TRUE(s.grid.has_value());
  ASSERT_TRUE(s.importance.has_value());
  EXPECT_LT(s.grid->jsd, 0.09);
  EXPECT_NEAR(s.grid->mass, 1.0, 0.05);
  EXPECT_LT(log_z_is_error(s, std::log(0.1 + 0.5 * 0.25 + 2.0 * 0.04)), 0.15);
}

TEST(ContinuousLearningSubTb, LabelledBoxLogZ) {
  auto s = train_config("configs/labelled_box.toml",
                        {"objective.kind=subtb", "train.iterations=3000", "train.lr_decay_every=1000", "eval.grid=0"},
                        0);
  ASSERT_TRUE(s.importance.has_value());
  const double log_z = std::log(7.0) + std::log(0.1 + 0.5 * 0.25 + 2.0 * 0.04);
  EXPECT_LT(log_z_is_error(s, log_z), 0.4);
  // the ELBO is a lower bound, and a trained sampler's is not far below
  EXPECT_LT(s.importance->elbo, log_z);
  EXPECT_GT(s.importance->elbo, log_z - 0.6);
}

}  // namespace
}  // namespace gfn

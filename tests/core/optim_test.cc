// FusedAdam: the same trajectory of parameters as LibTorch's Adam, fused loop and tensor path.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <utility>

#include <torch/serialize/archive.h>
#include <torch/torch.h>

#include "core/optim.h"

namespace gfn {
namespace {

// What 25 updates of FusedAdam and of LibTorch's Adam on the same loss leave.
struct AdamComparison {
  int64_t steps = 0;    // FusedAdam's step counter
  double error = 0.0;   // max over parameters of |fused - torch| / (1 + |torch|): allclose's rule
                        // with rtol = atol = e holds iff error <= e
  double moved = 0.0;   // max |w - w0|: the parameters did move
};

// runs 25 updates of both optimisers on the same loss and compares their parameters
AdamComparison compare_with_torch(bool non_contiguous, torch::Dtype dtype) {
  torch::manual_seed(0);
  auto opts = torch::TensorOptions().dtype(dtype);
  auto w0 = torch::randn({7, 5}, opts), b0 = torch::randn({5}, opts), z0 = torch::randn({}, opts);
  auto make = [&](const torch::Tensor& t) {
    // a transposed copy gives a non-contiguous leaf, which takes the tensor path
    auto p = non_contiguous && t.dim() == 2 ? t.t().contiguous().t().clone() : t.clone();
    return p.set_requires_grad(true);
  };
  auto w1 = make(w0), b1 = make(b0), z1 = make(z0);
  auto w2 = w0.clone().set_requires_grad(true), b2 = b0.clone().set_requires_grad(true),
       z2 = z0.clone().set_requires_grad(true);
  FusedAdam fused({{{w1, b1}, 1e-2}, {{z1}, 0.1}});
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{w2, b2}, std::make_unique<torch::optim::AdamOptions>(1e-2));
  groups.emplace_back(std::vector<torch::Tensor>{z2}, std::make_unique<torch::optim::AdamOptions>(0.1));
  torch::optim::Adam reference(std::move(groups), torch::optim::AdamOptions(1e-2));
  auto x = torch::randn({11, 7}, opts);
  auto loss = [&](const torch::Tensor& w, const torch::Tensor& b, const torch::Tensor& z) {
    return (torch::tanh(x.mm(w) + b) - z).square().sum() + z.square();
  };
  for (int i = 0; i < 25; ++i) {
    fused.zero_grad();
    loss(w1, b1, z1).backward();
    fused.step();
    reference.zero_grad();
    loss(w2, b2, z2).backward();
    reference.step();
  }
  AdamComparison c;
  c.steps = fused.steps();
  for (const auto& [a, b] : {std::pair{w1, w2}, std::pair{b1, b2}, std::pair{z1, z2}})
    c.error = std::max(c.error, ((a - b).abs() / (1.0 + b.abs())).max().item<double>());
  c.moved = (w1 - w0).abs().max().item<double>();
  return c;
}

// the fused CPU loop matches LibTorch's Adam to rounding, in float64 and float32
TEST(FusedAdamTest, FusedLoopMatchesTorchAdam) {
  const AdamComparison f64 = compare_with_torch(false, torch::kFloat64);
  EXPECT_EQ(f64.steps, 25);
  EXPECT_LE(f64.error, 1e-12);
  EXPECT_GT(f64.moved, 1e-2);
  const AdamComparison f32 = compare_with_torch(false, torch::kFloat32);
  EXPECT_EQ(f32.steps, 25);
  EXPECT_LE(f32.error, 1e-5);
  EXPECT_GT(f32.moved, 1e-2);
}

// the tensor path (non-contiguous parameters, other devices) matches as well
TEST(FusedAdamTest, TensorPathMatchesTorchAdam) {
  const AdamComparison c = compare_with_torch(true, torch::kFloat64);
  EXPECT_EQ(c.steps, 25);
  EXPECT_LE(c.error, 1e-12);
  EXPECT_GT(c.moved, 1e-2);
}

// Device state (what a CUDA graph captures): the step counter and learning rates in tensors
// give the host-state updates to rounding, through learning-rate changes, a save/load round
// trip into a device-state optimiser and a switch back.
TEST(FusedAdamTest, DeviceStateMatchesHostState) {
  auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  torch::manual_seed(3);
  auto w0 = torch::randn({6, 4}, opts), x = torch::randn({9, 6}, opts);
  auto w1 = w0.clone().set_requires_grad(true), w2 = w0.clone().set_requires_grad(true);
  FusedAdam host({{{w1}, 1e-2}}), device({{{w2}, 1e-2}});
  device.set_device_state(true);
  EXPECT_TRUE(device.device_state());
  auto loss = [&](const torch::Tensor& w) { return torch::tanh(x.mm(w)).sum(); };
  auto run = [&](int n) {
    for (int i = 0; i < n; ++i) {
      host.zero_grad();
      loss(w1).backward();
      host.step();
      device.zero_grad();
      loss(w2).backward();
      device.step();
    }
  };
  run(10);
  host.groups()[0].lr = 3e-3;
  device.groups()[0].lr = 3e-3;
  run(5);  // without sync_learning_rates the device optimiser still uses 1e-2
  EXPECT_GT((w1 - w2).abs().max().item<double>(), 1e-5);
  w2.detach().copy_(w1.detach());
  device.sync_learning_rates();
  EXPECT_EQ(device.steps(), 15);

  torch::serialize::OutputArchive out;
  host.save(out, "adam.");
  std::ostringstream bytes;
  out.save_to(bytes);
  torch::serialize::InputArchive in;
  std::istringstream read(bytes.str());
  in.load_from(read);
  device.load(in, "adam.");  // the moments, the counter and lr of the host optimiser
  EXPECT_EQ(device.steps(), 15);
  run(20);
  EXPECT_EQ(device.steps(), 35);
  EXPECT_TRUE(torch::allclose(w1, w2, 1e-12, 1e-12)) << (w1 - w2).abs().max();
  device.set_device_state(false);
  EXPECT_FALSE(device.device_state());
  EXPECT_EQ(device.steps(), 35);
  run(5);
  EXPECT_TRUE(torch::allclose(w1, w2, 1e-12, 1e-12)) << (w1 - w2).abs().max();
}

// parameters without a gradient are left alone; bad input is rejected
TEST(FusedAdamTest, SkipsMissingGradientsAndRejectsBadInput) {
  auto p = torch::ones({3}, torch::kFloat64).set_requires_grad(true);
  FusedAdam adam({{{p}, 0.1}});
  adam.step();
  EXPECT_TRUE(torch::equal(p, torch::ones({3}, torch::kFloat64)));
  EXPECT_THROW(FusedAdam({{{torch::ones({2})}, 0.1}}), std::invalid_argument);
  EXPECT_THROW(FusedAdam({{{p}, 0.0}}), std::invalid_argument);
}

}  // namespace
}  // namespace gfn

// all_finite: every finite value of both widths (the extremes, subnormals, -0) passes; one NaN
// or infinity anywhere fails, including in the vectorised loop's tail and in a strided view
TEST(AllFiniteTest, FindsOneNonFiniteValueAnywhere) {
  for (const auto dtype : {torch::kFloat32, torch::kFloat64}) {
    const auto info = [&](double f32, double f64) { return dtype == torch::kFloat32 ? f32 : f64; };
    const double max = info(std::numeric_limits<float>::max(), std::numeric_limits<double>::max());
    const double sub = info(std::numeric_limits<float>::denorm_min(), std::numeric_limits<double>::denorm_min());
    for (const int64_t n : {1, 7, 64, 1001}) {
      auto t = torch::randn({n}, torch::dtype(dtype)) * 1e3;
      t[0] = max;
      t[n - 1] = -max;
      if (n > 2) t[1] = sub, t[2] = -0.0;
      EXPECT_TRUE(gfn::all_finite(t)) << dtype << " n=" << n;
      for (const double bad : {std::nan(""), double{INFINITY}, -double{INFINITY}})
        for (const int64_t at : {int64_t{0}, n / 2, n - 1}) {
          auto u = t.clone();
          u[at] = bad;
          EXPECT_FALSE(gfn::all_finite(u)) << dtype << " n=" << n << " " << bad << " at " << at;
        }
    }
    auto m = torch::randn({40, 30}, torch::dtype(dtype));
    m[39][0] = std::nan("");
    EXPECT_FALSE(gfn::all_finite(m.t())) << "a transposed (non-contiguous) view";
    EXPECT_TRUE(gfn::all_finite(m.narrow(0, 0, 39).t()));
  }
  EXPECT_TRUE(gfn::all_finite(torch::arange(10)));  // integers are always finite
}

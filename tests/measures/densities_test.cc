// Densities on standard domains: log-densities against Boost.Math (interior and boundary points),
// exactly -inf out of support, normalisation by quadrature, sampling (moments, KS, support,
// reproducibility) and autograd gradients against central differences.
#include "measures/densities.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include <boost/math/distributions/beta.hpp>
#include <boost/math/distributions/normal.hpp>
#include <boost/math/quadrature/gauss_kronrod.hpp>
#include <boost/math/quadrature/tanh_sinh.hpp>
#include <boost/math/special_functions/bessel.hpp>
#include <boost/math/special_functions/beta.hpp>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

namespace gfn {
namespace {

using torch::indexing::None;
using torch::indexing::Slice;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

torch::Generator seeded(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

torch::Tensor t64(const std::vector<double>& v) { return torch::tensor(v, torch::kFloat64); }

std::vector<double> to_vector(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kFloat64).contiguous().view({-1});
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

bool is_neg_inf(double v) { return std::isinf(v) && v < 0; }

// |got - want| <= tol * max(1, |want|), elementwise, with the index in the message
void expect_close(const std::vector<double>& got, const std::vector<double>& want, double tol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], tol * std::max(1.0, std::abs(want[i]))) << what << " at " << i;
}

// ---------------------------------------------------------------------------------------------
// references

double beta_log_pdf(double a, double b, double x) {
  return std::log(boost::math::pdf(boost::math::beta_distribution<double>(a, b), x));
}

// log pdf of Kumaraswamy(a, b) in long double, with 1 - x exact (x in double)
long double kumaraswamy_log_pdf(long double a, long double b, double x) {
  const long double y = 1.0L - static_cast<long double>(x);
  const long double log_x = std::log1p(-y);
  return std::log(a) + std::log(b) + (a - 1) * log_x + (b - 1) * std::log(-std::expm1(a * log_x));
}

// log(Phi(beta) - Phi(alpha)) through Boost in long double (Phi(-40) underflows a double), on the
// complement side when alpha > 0
double normal_log_mass(double alpha, double beta) {
  boost::math::normal_distribution<long double> n;
  if (alpha > 0)
    return static_cast<double>(
        std::log(boost::math::cdf(boost::math::complement(n, alpha)) -
                 (std::isinf(beta) ? 0.0L : boost::math::cdf(boost::math::complement(n, beta)))));
  return static_cast<double>(std::log((std::isinf(beta) ? 1.0L : boost::math::cdf(n, beta)) -
                                      (std::isinf(alpha) ? 0.0L : boost::math::cdf(n, alpha))));
}

double tn_log_pdf(double loc, double scale, double lo, double hi, double x) {
  boost::math::normal_distribution<double> n;
  return std::log(boost::math::pdf(n, (x - loc) / scale)) - std::log(scale) -
         normal_log_mass((lo - loc) / scale, (hi - loc) / scale);
}

// ---------------------------------------------------------------------------------------------
// checks shared by the sampling tests

double ks_statistic(std::vector<double> xs, const std::function<double(double)>& cdf) {
  std::sort(xs.begin(), xs.end());
  const double n = static_cast<double>(xs.size());
  double d = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double f = cdf(xs[i]);
    d = std::max({d, (i + 1) / n - f, f - i / n});
  }
  return d;
}

// sample mean within 5 standard errors, sample variance within 5 (estimated) standard errors,
// and the KS statistic below the 0.001-level critical value
void expect_matches(const std::vector<double>& xs, double mean, double var, const std::function<double(double)>& cdf,
                    const std::string& what) {
  const double n = static_cast<double>(xs.size());
  double m = 0;
  for (double x : xs) m += x;
  m /= n;
  double m2 = 0, m4 = 0;
  for (double x : xs) {
    const double d2 = (x - m) * (x - m);
    m2 += d2;
    m4 += d2 * d2;
  }
  const double v = m2 / (n - 1);
  m4 /= n;
  EXPECT_NEAR(m, mean, 5 * std::sqrt(var / n)) << what << ": mean";
  EXPECT_NEAR(v, var, 5 * std::sqrt((m4 - v * v) / n)) << what << ": variance";
  EXPECT_LT(ks_statistic(xs, cdf), 1.95 / std::sqrt(n)) << what << ": KS";
}

// rows j, j + stride, j + 2 stride, ... of column d of `samples` ([N, D] or [N])
std::vector<double> rows(const torch::Tensor& samples, int64_t j, int64_t stride, int64_t d = 0) {
  auto s = samples.dim() == 1 ? samples.unsqueeze(1) : samples;
  return to_vector(s.index({Slice(j, None, stride), d}));
}

// autograd gradient of the scalar f() w.r.t. every entry of `params` against central differences
void expect_grad_matches_fd(const std::function<torch::Tensor()>& f, std::vector<torch::Tensor> params,
                            const std::string& what) {
  for (auto& p : params) p.requires_grad_(true);
  auto y = f();
  ASSERT_TRUE(std::isfinite(y.item<double>())) << what;
  y.backward();
  for (size_t k = 0; k < params.size(); ++k) {
    auto g = to_vector(params[k].grad());
    torch::NoGradGuard no_grad;
    auto flat = params[k].view({-1});
    for (int64_t i = 0; i < flat.numel(); ++i) {
      const double orig = flat[i].item<double>();
      const double h = 1e-5 * std::max(1.0, std::abs(orig));
      flat[i] = orig + h;
      const double fp = f().item<double>();
      flat[i] = orig - h;
      const double fm = f().item<double>();
      flat[i] = orig;
      const double fd = (fp - fm) / (2 * h);
      EXPECT_NEAR(g[i], fd, 1e-6 * std::max(1.0, std::abs(fd))) << what << ": parameter " << k << " entry " << i;
    }
  }
}

// log_prob over a batch containing out-of-support rows: the loss over the finite rows
// backpropagates finite gradients, and exactly zero into the out-of-support rows' parameters
void expect_finite_grads(const torch::Tensor& lp, const std::vector<torch::Tensor>& params, const std::string& what) {
  torch::where(torch::isfinite(lp), lp, torch::zeros_like(lp)).sum().backward();
  for (const auto& p : params) {
    ASSERT_TRUE(p.grad().defined()) << what;
    EXPECT_TRUE(torch::isfinite(p.grad()).all().item<bool>()) << what;
  }
}

// ---------------------------------------------------------------------------------------------
// BetaMixture

const std::vector<double> kConcentrations = {0.1, 0.5, 1.0, 2.7, 5.1};

// one Beta per row (K = D = 1) for every (alpha, beta, x) with x at the boundaries and inside
TEST(BetaMixtureTest, LogProbMatchesBoostInsideAndNearBoundaries) {
  const std::vector<double> xs = {1e-8, 0.003, 0.3, 0.77, 1 - 1e-8};
  std::vector<double> a, b, x, want;
  for (double ai : kConcentrations)
    for (double bi : kConcentrations)
      for (double xi : xs) {
        a.push_back(ai), b.push_back(bi), x.push_back(xi);
        want.push_back(beta_log_pdf(ai, bi, xi));
      }
  const int64_t N = static_cast<int64_t>(a.size());
  BetaMixture m{torch::zeros({N, 1}, torch::kFloat64), t64(a).view({N, 1, 1}), t64(b).view({N, 1, 1})};
  auto lp = m.log_prob(t64(x).view({N, 1}));
  ASSERT_EQ(lp.sizes(), torch::IntArrayRef({N}));
  EXPECT_TRUE(torch::isfinite(lp).all().item<bool>());
  expect_close(to_vector(lp), want, 1e-12, "beta log pdf");
}

// K = 2 components over D = 2: logsumexp of weighted products, against Boost
TEST(BetaMixtureTest, MixtureLogProbMatchesBoost) {
  auto logits = t64({0.3, -1.1}).view({1, 2});
  auto alpha = t64({0.1, 2.0, 4.5, 0.7}).view({1, 2, 2});
  auto beta = t64({3.0, 5.1, 0.5, 1.0}).view({1, 2, 2});
  const double w0 = 1 / (1 + std::exp(-1.4)), w1 = 1 - w0;
  for (auto pt : std::vector<std::vector<double>>{{1e-8, 0.4}, {0.6, 1 - 1e-8}, {0.25, 0.75}}) {
    BetaMixture m{logits, alpha, beta};
    const double lp = m.log_prob(t64(pt).view({1, 2})).item<double>();
    const double p0 = std::exp(beta_log_pdf(0.1, 3.0, pt[0]) + beta_log_pdf(2.0, 5.1, pt[1]));
    const double p1 = std::exp(beta_log_pdf(4.5, 0.5, pt[0]) + beta_log_pdf(0.7, 1.0, pt[1]));
    EXPECT_NEAR(lp, std::log(w0 * p0 + w1 * p1), 1e-12 * std::max(1.0, std::abs(lp)));
  }
}

// the support is the open cube: -inf (exactly) at and beyond the faces, also where the density
// would be +inf (alpha < 1 at 0), NaN nowhere, and finite gradients
TEST(BetaMixtureTest, OutOfSupportIsExactlyMinusInf) {
  const std::vector<double> bad = {-0.1, 1.1, 0.0, 1.0, kNaN, -kInf, kInf};
  const int64_t N = static_cast<int64_t>(bad.size()) + 1;
  auto logits = torch::zeros({N, 2}, torch::kFloat64);
  auto alpha = torch::full({N, 2, 2}, 0.1, torch::kFloat64);
  auto beta = torch::full({N, 2, 2}, 0.3, torch::kFloat64);
  auto x = torch::full({N, 2}, 0.5, torch::kFloat64);
  for (size_t i = 0; i < bad.size(); ++i) x[i][i % 2] = bad[i];  // one bad coordinate per row
  logits.requires_grad_(true), alpha.requires_grad_(true), beta.requires_grad_(true);
  auto lp = BetaMixture{logits, alpha, beta}.log_prob(x);
  auto v = to_vector(lp);
  for (size_t i = 0; i < bad.size(); ++i) EXPECT_TRUE(is_neg_inf(v[i])) << "x = " << bad[i];
  EXPECT_TRUE(std::isfinite(v.back()));
  expect_finite_grads(lp, {logits, alpha, beta}, "beta mixture");
  EXPECT_EQ(alpha.grad()[0].abs().sum().item<double>(), 0.0);
}

// exp(log_prob) integrates to 1 (tanh-sinh on (0, 1)); beta >= 0.5 so that the mass within one
// ulp of 1, where no double exists, is below 1e-7
TEST(BetaMixtureTest, NormalisesIn1D) {
  boost::math::quadrature::tanh_sinh<double> ts;
  struct Case {
    std::vector<double> logits, alpha, beta;
  };
  for (const auto& c : std::vector<Case>{{{0.0}, {0.1}, {2.0}},
                                         {{0.0}, {0.5}, {0.5}},
                                         {{0.0}, {5.1}, {0.5}},
                                         {{0.0}, {2.7}, {5.1}},
                                         {{0.0}, {1.0}, {1.0}},
                                         {{0.4, -0.9}, {0.1, 4.0}, {3.0, 0.6}}}) {
    const int64_t K = static_cast<int64_t>(c.logits.size());
    BetaMixture m{t64(c.logits).view({1, K}), t64(c.alpha).view({1, K, 1}), t64(c.beta).view({1, K, 1})};
    const double z = ts.integrate(
        [&](double x) {
          return std::exp(m.log_prob(t64({x}).view({1, 1})).item<double>());
        },
        0.0, 1.0);
    EXPECT_NEAR(z, 1.0, 1e-6) << "alpha " << c.alpha[0] << " beta " << c.beta[0];
  }
}

// a 2-D mixture with singular faces at 0 (alpha < 1): a tensor-product Gauss-Kronrod rule on panels
// graded geometrically towards both faces, evaluated in a few batched calls
TEST(BetaMixtureTest, NormalisesIn2D) {
  const auto& gx = boost::math::quadrature::gauss_kronrod<double, 15>::abscissa();
  const auto& gw = boost::math::quadrature::gauss_kronrod<double, 15>::weights();
  std::vector<double> nodes, weights;
  auto panel = [&](double a, double b) {
    const double c = (a + b) / 2, h = (b - a) / 2;
    for (size_t i = 0; i < gx.size(); ++i) {
      nodes.push_back(c + h * gx[i]), weights.push_back(h * gw[i]);
      if (gx[i] != 0) nodes.push_back(c - h * gx[i]), weights.push_back(h * gw[i]);
    }
  };
  for (int j = 34; j >= 0; --j) panel(0.25 * std::pow(4.0, -j - 1), 0.25 * std::pow(4.0, -j));
  for (int j = 0; j < 4; ++j) panel(0.25 + 0.125 * j, 0.25 + 0.125 * (j + 1));
  for (int j = 0; j < 25; ++j) panel(1 - 0.25 * std::pow(4.0, -j), 1 - 0.25 * std::pow(4.0, -j - 1));
  const int64_t M = static_cast<int64_t>(nodes.size());
  auto u = t64(nodes), w = t64(weights);

  auto logits = t64({0.3, -0.4}).view({1, 2});
  auto alpha = t64({0.5, 2.0, 4.0, 0.7}).view({1, 2, 2});
  auto beta = t64({3.0, 1.5, 1.2, 5.1}).view({1, 2, 2});
  double total = 0;
  const int64_t chunk = 64;
  for (int64_t i0 = 0; i0 < M; i0 += chunk) {
    const int64_t n = std::min(chunk, M - i0);
    auto x1 = u.narrow(0, i0, n).view({n, 1}).expand({n, M});
    auto x2 = u.view({1, M}).expand({n, M});
    auto x = torch::stack({x1.reshape({-1}), x2.reshape({-1})}, 1);  // [n M, 2]
    BetaMixture m{logits.expand({n * M, 2}), alpha.expand({n * M, 2, 2}), beta.expand({n * M, 2, 2})};
    auto p = m.log_prob(x).exp().view({n, M});
    total += (w.narrow(0, i0, n).view({n, 1}) * w.view({1, M}) * p).sum().item<double>();
  }
  EXPECT_NEAR(total, 1.0, 1e-6);
}

// draws match Boost's moments and CDF, rows keep their own parameters (two sets interleaved),
// draws lie in the open interval (including the ~11% below 1e-10 for alpha = 0.1)
TEST(BetaMixtureTest, SamplesMatchBoost) {
  const int64_t n = 20000;
  const double pa[2] = {0.1, 5.1}, pb[2] = {2.0, 0.5};
  auto alpha = t64({pa[0], pa[1]}).repeat({n}).view({2 * n, 1, 1});
  auto beta = t64({pb[0], pb[1]}).repeat({n}).view({2 * n, 1, 1});
  BetaMixture m{torch::zeros({2 * n, 1}, torch::kFloat64), alpha, beta};
  auto gen = seeded(11);
  auto s = m.sample(gen);
  ASSERT_EQ(s.sizes(), torch::IntArrayRef({2 * n, 1}));
  EXPECT_TRUE(((s > 0) & (s < 1)).all().item<bool>());
  EXPECT_GT((s < 1e-10).sum().item<int64_t>(), n / 20);
  for (int j = 0; j < 2; ++j) {
    boost::math::beta_distribution<double> d(pa[j], pb[j]);
    expect_matches(
        rows(s, j, 2), boost::math::mean(d), boost::math::variance(d), [&](double x) { return boost::math::cdf(d, x); },
        "beta " + std::to_string(j));
  }
}

// a 2-component mixture over D = 2: each coordinate's marginal is the weighted mixture of Betas
TEST(BetaMixtureTest, MixtureSamplesMatchMarginals) {
  const int64_t n = 20000;
  const double a[2][2] = {{0.5, 3.0}, {4.0, 1.2}}, b[2][2] = {{2.0, 0.8}, {1.5, 5.1}};  // [k][d]
  const double w0 = 1 / (1 + std::exp(-0.7));                                           // logits (0.2, -0.5)
  auto logits = t64({0.2, -0.5}).view({1, 2}).expand({n, 2});
  auto alpha = t64({a[0][0], a[0][1], a[1][0], a[1][1]}).view({1, 2, 2}).expand({n, 2, 2});
  auto beta = t64({b[0][0], b[0][1], b[1][0], b[1][1]}).view({1, 2, 2}).expand({n, 2, 2});
  auto gen = seeded(12);
  auto s = BetaMixture{logits, alpha, beta}.sample(gen);
  ASSERT_EQ(s.sizes(), torch::IntArrayRef({n, 2}));
  EXPECT_TRUE(((s > 0) & (s < 1)).all().item<bool>());
  for (int d = 0; d < 2; ++d) {
    boost::math::beta_distribution<double> c0(a[0][d], b[0][d]), c1(a[1][d], b[1][d]);
    const double m0 = boost::math::mean(c0), m1 = boost::math::mean(c1);
    const double mean = w0 * m0 + (1 - w0) * m1;
    const double second = w0 * (boost::math::variance(c0) + m0 * m0) + (1 - w0) * (boost::math::variance(c1) + m1 * m1);
    expect_matches(
        rows(s, 0, 1, d), mean, second - mean * mean,
        [&](double x) { return w0 * boost::math::cdf(c0, x) + (1 - w0) * boost::math::cdf(c1, x); },
        "mixture coordinate " + std::to_string(d));
  }
}

TEST(BetaMixtureTest, FromRawMapsToBoundedConcentrations) {
  const int64_t N = 4, K = 3, D = 2;
  EXPECT_EQ(BetaMixture::raw_size(K, D), 15);
  auto raw = torch::linspace(-800, 800, N * BetaMixture::raw_size(K, D), torch::kFloat64).view({N, -1});
  auto m = BetaMixture::from_raw(raw, K, D, 0.1, 5.1);
  EXPECT_EQ(m.logits.sizes(), torch::IntArrayRef({N, K}));
  EXPECT_EQ(m.alpha.sizes(), torch::IntArrayRef({N, K, D}));
  EXPECT_EQ(m.beta.sizes(), torch::IntArrayRef({N, K, D}));
  EXPECT_TRUE(torch::equal(m.logits, raw.narrow(1, 0, K)));
  for (const auto& c : {m.alpha, m.beta}) {
    EXPECT_GE(c.min().item<double>(), 0.1);
    EXPECT_LE(c.max().item<double>(), 5.1);
  }
  // layout: [logits | alpha k-major | beta k-major]
  auto r = torch::zeros({1, 15}, torch::kFloat64);
  r[0][3 + 1 * D + 0] = 2.0;           // alpha[k=1][d=0]
  r[0][3 + K * D + 2 * D + 1] = -1.0;  // beta[k=2][d=1]
  auto m1 = BetaMixture::from_raw(r, K, D, 0.1, 5.1);
  EXPECT_NEAR(m1.alpha[0][1][0].item<double>(), 0.1 + 5.0 / (1 + std::exp(-2.0)), 1e-15);
  EXPECT_NEAR(m1.beta[0][2][1].item<double>(), 0.1 + 5.0 / (1 + std::exp(1.0)), 1e-15);
  EXPECT_NEAR(m1.alpha[0][0][0].item<double>(), 2.6, 1e-15);
  EXPECT_THROW(BetaMixture::from_raw(torch::zeros({1, 14}), K, D, 0.1, 5.1), c10::Error);
}

// ---------------------------------------------------------------------------------------------
// Kumaraswamy

TEST(KumaraswamyTest, LogProbMatchesLongDoubleFormula) {
  const std::vector<double> xs = {1e-8, 0.003, 0.3, 0.77, 1 - 1e-8};
  std::vector<double> a, b, x, want;
  for (double ai : kConcentrations)
    for (double bi : kConcentrations)
      for (double xi : xs) {
        a.push_back(ai), b.push_back(bi), x.push_back(xi);
        want.push_back(static_cast<double>(kumaraswamy_log_pdf(ai, bi, xi)));
      }
  const int64_t N = static_cast<int64_t>(a.size());
  auto lp = Kumaraswamy{t64(a).view({N, 1}), t64(b).view({N, 1})}.log_prob(t64(x).view({N, 1}));
  EXPECT_TRUE(torch::isfinite(lp).all().item<bool>());
  expect_close(to_vector(lp), want, 1e-12, "kumaraswamy log pdf");
  // D = 2: the sum over coordinates
  auto lp2 =
      Kumaraswamy{t64({0.5, 3.0}).view({1, 2}), t64({2.0, 0.2}).view({1, 2})}.log_prob(t64({0.1, 0.9}).view({1, 2}));
  EXPECT_NEAR(lp2.item<double>(),
              static_cast<double>(kumaraswamy_log_pdf(0.5, 2.0, 0.1) + kumaraswamy_log_pdf(3.0, 0.2, 0.9)), 1e-13);
}

TEST(KumaraswamyTest, OutOfSupportIsExactlyMinusInf) {
  const std::vector<double> bad = {-0.1, 1.1, 0.0, 1.0, kNaN, kInf};
  const int64_t N = static_cast<int64_t>(bad.size()) + 1;
  auto a = torch::full({N, 2}, 0.2, torch::kFloat64).requires_grad_(true);
  auto b = torch::full({N, 2}, 0.4, torch::kFloat64).requires_grad_(true);
  auto x = torch::full({N, 2}, 0.5, torch::kFloat64);
  for (size_t i = 0; i < bad.size(); ++i) x[i][i % 2] = bad[i];
  auto lp = Kumaraswamy{a, b}.log_prob(x);
  auto v = to_vector(lp);
  for (size_t i = 0; i < bad.size(); ++i) EXPECT_TRUE(is_neg_inf(v[i])) << "x = " << bad[i];
  EXPECT_TRUE(std::isfinite(v.back()));
  expect_finite_grads(lp, {a, b}, "kumaraswamy");
  EXPECT_EQ(a.grad()[0].abs().sum().item<double>(), 0.0);
}

TEST(KumaraswamyTest, Normalises) {
  boost::math::quadrature::tanh_sinh<double> ts;
  for (auto [a, b] : std::vector<std::pair<double, double>>{{0.1, 2.0}, {0.5, 0.5}, {5.1, 0.7}, {2.0, 5.1}}) {
    Kumaraswamy k{t64({a}).view({1, 1}), t64({b}).view({1, 1})};
    const double z = ts.integrate(
        [&](double x) {
          return std::exp(k.log_prob(t64({x}).view({1, 1})).item<double>());
        },
        0.0, 1.0);
    EXPECT_NEAR(z, 1.0, 1e-6) << "a " << a << " b " << b;
  }
}

// moments E X^m = b B(1 + m/a, b), CDF 1 - (1 - x^a)^b
TEST(KumaraswamyTest, SamplesMatchMomentsAndCdf) {
  const int64_t n = 20000;
  const double pa[2] = {0.3, 5.1}, pb[2] = {2.0, 0.7};
  auto a = t64({pa[0], pa[1]}).repeat({n}).view({2 * n, 1});
  auto b = t64({pb[0], pb[1]}).repeat({n}).view({2 * n, 1});
  auto gen = seeded(21);
  auto s = Kumaraswamy{a, b}.sample(gen);
  EXPECT_TRUE(((s > 0) & (s < 1)).all().item<bool>());
  for (int j = 0; j < 2; ++j) {
    const double A = pa[j], B = pb[j];
    const double m1 = B * boost::math::beta(1 + 1 / A, B), m2 = B * boost::math::beta(1 + 2 / A, B);
    expect_matches(
        rows(s, j, 2), m1, m2 - m1 * m1, [&](double x) { return 1 - std::pow(1 - std::pow(x, A), B); },
        "kumaraswamy " + std::to_string(j));
  }
}

// ---------------------------------------------------------------------------------------------
// TruncatedNormal

struct TnCase {
  double loc, scale, lo, hi;
  std::vector<double> xs;
};

const std::vector<TnCase> kTnCases = {
    {0.3, 0.7, -1.0, 2.0, {-1.0, -0.999999, 0.3, 1.7, 2.0}},
    {0.0, 1.0, 8.0, 9.0, {8.0, 8.0000001, 8.5, 9.0}},  // deep upper tail
    {0.0, 1.0, -9.0, -8.0, {-9.0, -8.5, -8.0}},        // deep lower tail
    {0.0, 1.0, 40.0, 41.0, {40.0, 40.5, 41.0}},        // beyond double's Phi(-x) (1e-350)
    {1.0, 2.0, -kInf, -60.0, {-70.0, -60.0}},          // one-sided, 30.5 sd out
    {-1.0, 0.5, 14.0, kInf, {14.0, 15.0, 20.0}},       // one-sided, 30 sd out
    {0.5, 3.0, -kInf, kInf, {-4.0, 0.5, 10.0}},        // untruncated
};

TEST(TruncatedNormalTest, LogProbMatchesBoostIncludingDeepTails) {
  for (const auto& c : kTnCases) {
    const int64_t N = static_cast<int64_t>(c.xs.size());
    TruncatedNormal tn(torch::full({N, 1}, c.loc, torch::kFloat64), torch::full({N, 1}, c.scale, torch::kFloat64), c.lo,
                       c.hi);
    auto lp = tn.log_prob(t64(c.xs).view({N, 1}));
    EXPECT_TRUE(torch::isfinite(lp).all().item<bool>());
    std::vector<double> want;
    for (double x : c.xs) want.push_back(tn_log_pdf(c.loc, c.scale, c.lo, c.hi, x));
    expect_close(to_vector(lp), want, 1e-10,
                 "truncated normal [" + std::to_string(c.lo) + ", " + std::to_string(c.hi) + "]");
  }
  // per-row tensor bounds, D = 2 summed
  TruncatedNormal tn(t64({0.0, 0.3}).view({1, 2}), t64({1.0, 0.7}).view({1, 2}), t64({8.0, -1.0}).view({1, 2}),
                     t64({9.0, 2.0}).view({1, 2}));
  EXPECT_NEAR(tn.log_prob(t64({8.5, 0.0}).view({1, 2})).item<double>(),
              tn_log_pdf(0, 1, 8, 9, 8.5) + tn_log_pdf(0.3, 0.7, -1, 2, 0.0), 1e-10 * 40);
}

TEST(TruncatedNormalTest, OutOfSupportIsExactlyMinusInf) {
  const std::vector<double> bad = {7.9999999, 9.0000001, -1e300, kInf, -kInf, kNaN};
  const int64_t N = static_cast<int64_t>(bad.size()) + 2;
  auto loc = torch::zeros({N, 1}, torch::kFloat64).requires_grad_(true);
  auto scale = torch::ones({N, 1}, torch::kFloat64).requires_grad_(true);
  auto x = torch::full({N, 1}, 8.5, torch::kFloat64);
  for (size_t i = 0; i < bad.size(); ++i) x[i][0] = bad[i];
  x[N - 1][0] = 9.0;  // the closed end is in the support
  auto lp = TruncatedNormal(loc, scale, 8.0, 9.0).log_prob(x);
  auto v = to_vector(lp);
  for (size_t i = 0; i < bad.size(); ++i) EXPECT_TRUE(is_neg_inf(v[i])) << "x = " << bad[i];
  EXPECT_TRUE(std::isfinite(v[N - 2]) && std::isfinite(v[N - 1]));
  expect_finite_grads(lp, {loc, scale}, "truncated normal");
  // infinite bounds: finite gradients too
  auto loc2 = t64({0.2, -1.0}).view({2, 1}).requires_grad_(true);
  auto scale2 = t64({1.5, 0.5}).view({2, 1}).requires_grad_(true);
  auto lp2 = TruncatedNormal(loc2, scale2, t64({-kInf, 14.0}).view({2, 1}), t64({1.0, kInf}).view({2, 1}))
                 .log_prob(t64({0.0, 15.0}).view({2, 1}));
  expect_finite_grads(lp2, {loc2, scale2}, "truncated normal, infinite bounds");
}

TEST(TruncatedNormalTest, Normalises) {
  boost::math::quadrature::tanh_sinh<double> ts;
  for (const auto& c : kTnCases) {
    TruncatedNormal tn(torch::full({1, 1}, c.loc, torch::kFloat64), torch::full({1, 1}, c.scale, torch::kFloat64), c.lo,
                       c.hi);
    auto f = [&](double x) { return std::exp(tn.log_prob(t64({x}).view({1, 1})).item<double>()); };
    // integrate where the mass is: at most 40 sd around the interval's nearer end
    const double a = std::max(c.lo, std::min(c.hi, c.loc) - 40 * c.scale);
    const double b = std::min(c.hi, std::max(c.lo, c.loc) + 40 * c.scale);
    EXPECT_NEAR(ts.integrate(f, a, b), 1.0, 1e-6) << "[" << c.lo << ", " << c.hi << "]";
  }
}

// the truncated normal's mean and variance in standardised form, its CDF on the accurate side
// (long double: phi and Phi(-x) underflow a double beyond 38 sd)
struct TnReference {
  double loc, scale, lo, hi;
  double mean() const { return static_cast<double>(loc + scale * ratio()); }
  double variance() const {
    const long double r = ratio();
    return static_cast<double>(scale * scale * (1 + (xphi(alpha()) - xphi(beta())) / mass() - r * r));
  }
  double cdf(double x) const {
    boost::math::normal_distribution<long double> n;
    const long double z = (x - loc) / scale;
    if (alpha() > 0)
      return static_cast<double>(
          (boost::math::cdf(boost::math::complement(n, alpha())) - boost::math::cdf(boost::math::complement(n, z))) /
          mass());
    return static_cast<double>((boost::math::cdf(n, z) - (std::isinf(alpha()) ? 0.0L : boost::math::cdf(n, alpha()))) /
                               mass());
  }

 private:
  long double alpha() const { return (lo - loc) / scale; }
  long double beta() const { return (hi - loc) / scale; }
  long double mass() const { return std::exp(static_cast<long double>(normal_log_mass(alpha(), beta()))); }
  static long double phi(long double z) {
    return std::isinf(z) ? 0.0L : boost::math::pdf(boost::math::normal_distribution<long double>(), z);
  }
  static long double xphi(long double z) { return std::isinf(z) ? 0.0L : z * phi(z); }
  long double ratio() const { return (phi(alpha()) - phi(beta())) / mass(); }
};

TEST(TruncatedNormalTest, SamplesMatchBoost) {
  const int64_t n = 20000;
  const std::vector<TnReference> refs = {{0.3, 0.7, -1.0, 2.0},
                                         {0.0, 1.0, 8.0, 9.0},
                                         {0.0, 2.0, -kInf, -5.0},
                                         {-1.0, 0.5, 14.0, kInf},
                                         {0.0, 1.0, -41.0, -40.0}};
  const int64_t P = static_cast<int64_t>(refs.size());
  std::vector<double> loc, scale, lo, hi;
  for (const auto& r : refs) loc.push_back(r.loc), scale.push_back(r.scale), lo.push_back(r.lo), hi.push_back(r.hi);
  auto rep = [&](const std::vector<double>& v) { return t64(v).repeat({n}).view({n * P, 1}); };
  TruncatedNormal tn(rep(loc), rep(scale), rep(lo), rep(hi));
  auto gen = seeded(31);
  auto s = tn.sample(gen);
  ASSERT_EQ(s.sizes(), torch::IntArrayRef({n * P, 1}));
  EXPECT_TRUE(((s >= tn.lo) & (s <= tn.hi) & torch::isfinite(s)).all().item<bool>());
  for (int64_t j = 0; j < P; ++j) {
    const auto& r = refs[j];
    expect_matches(
        rows(s, j, P), r.mean(), r.variance(), [&](double x) { return r.cdf(x); },
        "truncated normal " + std::to_string(j));
  }
}

// ---------------------------------------------------------------------------------------------
// VonMises

TEST(VonMisesTest, LogProbMatchesBoostBessel) {
  const std::vector<double> kappas = {0.0, 5e-4, 1e-3, 0.5, 2.0, 10.0, 100.0, 700.0};
  const std::vector<double> xs = {-M_PI, -1.0, 0.0, 2.0, 3.1415};
  const double mu = 0.4;
  std::vector<double> k, x, want;
  for (double ki : kappas)
    for (double xi : xs) {
      k.push_back(ki), x.push_back(xi);
      want.push_back(ki * std::cos(xi - mu) - std::log(2 * M_PI) - std::log(boost::math::cyl_bessel_i(0, ki)));
    }
  const int64_t N = static_cast<int64_t>(k.size());
  VonMises vm{torch::full({N}, mu, torch::kFloat64), t64(k)};
  auto lp = vm.log_prob(t64(x));
  ASSERT_EQ(lp.sizes(), torch::IntArrayRef({N}));
  expect_close(to_vector(lp), want, 1e-12, "von Mises log pdf");
  // [N, 1] is accepted as well
  VonMises vm1{torch::full({N, 1}, mu, torch::kFloat64), t64(k).view({N, 1})};
  expect_close(to_vector(vm1.log_prob(t64(x).view({N, 1}))), want, 1e-12, "von Mises log pdf [N, 1]");
}

TEST(VonMisesTest, OutOfSupportIsExactlyMinusInf) {
  const std::vector<double> bad = {M_PI, 3.2, -3.1416, 7.0, kNaN, kInf};
  const int64_t N = static_cast<int64_t>(bad.size()) + 1;
  auto loc = torch::zeros({N}, torch::kFloat64).requires_grad_(true);
  auto kappa = torch::full({N}, 3.0, torch::kFloat64).requires_grad_(true);
  auto x = t64(bad);
  x = torch::cat({x, t64({-M_PI})});  // the closed end
  auto lp = VonMises{loc, kappa}.log_prob(x);
  auto v = to_vector(lp);
  for (size_t i = 0; i < bad.size(); ++i) EXPECT_TRUE(is_neg_inf(v[i])) << "x = " << bad[i];
  EXPECT_TRUE(std::isfinite(v.back()));
  expect_finite_grads(lp, {loc, kappa}, "von Mises");
}

TEST(VonMisesTest, Normalises) {
  for (double kappa : {0.0, 0.01, 2.0, 50.0, 700.0}) {
    VonMises vm{t64({2.9}), t64({kappa})};
    auto f = [&](double x) { return std::exp(vm.log_prob(t64({x})).item<double>()); };
    const double z = boost::math::quadrature::gauss_kronrod<double, 61>::integrate(f, -M_PI, M_PI, 15, 1e-12);
    EXPECT_NEAR(z, 1.0, 1e-6) << "kappa " << kappa;
  }
}

// circular moments E cos(x - mu) = I1/I0, E sin(x - mu) = 0, and the CDF from the Fourier series
// F(x) = (x + pi) / 2pi + sum_j (I_j / I_0) (sin j(x - mu) - sin j(-pi - mu)) / (pi j)
TEST(VonMisesTest, SamplesMatchBessel) {
  const int64_t n = 20000;
  const std::vector<std::pair<double, double>> params = {{2.5, 0.7}, {-3.0, 20.0}, {0.0, 0.0}, {1.0, 1e-7}};
  const int64_t P = static_cast<int64_t>(params.size());
  std::vector<double> mu, kappa;
  for (auto [m, k] : params) mu.push_back(m), kappa.push_back(k);
  VonMises vm{t64(mu).repeat({n}), t64(kappa).repeat({n})};
  auto gen = seeded(41);
  auto s = vm.sample(gen);
  ASSERT_EQ(s.sizes(), torch::IntArrayRef({n * P}));
  EXPECT_TRUE(((s >= -M_PI) & (s < M_PI)).all().item<bool>());
  for (int64_t j = 0; j < P; ++j) {
    const auto [m, k] = params[j];
    std::vector<double> rho(80);
    for (int i = 1; i < 80; ++i)
      rho[i] = k == 0 ? 0.0 : boost::math::cyl_bessel_i(i, k) / boost::math::cyl_bessel_i(0, k);
    auto x = rows(s, j, P);
    std::vector<double> c, sn;
    for (double xi : x) c.push_back(std::cos(xi - m)), sn.push_back(std::sin(xi - m));
    auto cdf = [&, m = m](double t) {
      double f = (t + M_PI) / (2 * M_PI);
      for (int i = 1; i < 80; ++i) f += rho[i] * (std::sin(i * (t - m)) - std::sin(i * (-M_PI - m))) / (M_PI * i);
      return f;
    };
    const std::string what = "von Mises " + std::to_string(j);
    EXPECT_LT(ks_statistic(x, cdf), 1.95 / std::sqrt(double(n))) << what << ": KS";
    const double mc = std::accumulate(c.begin(), c.end(), 0.0) / n, ms = std::accumulate(sn.begin(), sn.end(), 0.0) / n;
    const double var_c = (1 + rho[2]) / 2 - rho[1] * rho[1], var_s = (1 - rho[2]) / 2;
    EXPECT_NEAR(mc, rho[1], 5 * std::sqrt(var_c / n)) << what << ": E cos";
    EXPECT_NEAR(ms, 0.0, 5 * std::sqrt(var_s / n)) << what << ": E sin";
  }
}

// ---------------------------------------------------------------------------------------------
// VonMisesMixture

// log of sum_k w_k prod_d exp(kappa_kd cos(x_d - mu_kd)) / (2 pi I0(kappa_kd)), the Bessel
// function from Boost, in long double (I0(700) is near double's limit)
double vm_mixture_log_pdf(const std::vector<double>& w, const std::vector<double>& mu,
                          const std::vector<double>& kappa, const std::vector<double>& x) {
  const size_t K = w.size(), D = x.size();
  long double total = 0;
  for (size_t k = 0; k < K; ++k) {
    long double term = w[k];
    for (size_t d = 0; d < D; ++d) {
      const double kk = kappa[k * D + d];
      term *= std::exp(static_cast<long double>(kk) * std::cos(x[d] - mu[k * D + d])) /
              (2 * M_PI * static_cast<long double>(boost::math::cyl_bessel_i(0, kk)));
    }
    total += term;
  }
  return static_cast<double>(std::log(total));
}

// three components on the 2-torus, concentrations from 0 to 700, at points across the torus
// (the closed end -pi included)
TEST(VonMisesMixtureTest, LogProbMatchesBoostBessel) {
  const std::vector<double> logits = {0.2, -1.0, 1.5};
  const std::vector<double> mu = {0.4, -2.0, 3.0, 1.0, -3.1, 0.0};
  const std::vector<std::vector<double>> kappas = {{0.0, 5e-4, 2.0, 10.0, 100.0, 0.5},
                                                  {700.0, 1.0, 3.0, 3.0, 0.0, 20.0}};
  const std::vector<std::vector<double>> xs = {{-M_PI, 0.0}, {0.4, -2.0}, {3.0, 1.0}, {-3.1, 3.14}, {2.0, -1.0}};
  double lse = 0;
  for (double l : logits) lse += std::exp(l);
  std::vector<double> w;
  for (double l : logits) w.push_back(std::exp(l) / lse);
  for (const auto& kappa : kappas) {
    const int64_t N = static_cast<int64_t>(xs.size());
    std::vector<double> flat_x, want;
    for (const auto& x : xs) {
      flat_x.insert(flat_x.end(), x.begin(), x.end());
      want.push_back(vm_mixture_log_pdf(w, mu, kappa, x));
    }
    VonMisesMixture q{t64(logits).view({1, 3}).expand({N, 3}), t64(mu).view({1, 3, 2}).expand({N, 3, 2}),
                      t64(kappa).view({1, 3, 2}).expand({N, 3, 2})};
    auto lp = q.log_prob(t64(flat_x).view({N, 2}));
    ASSERT_EQ(lp.sizes(), torch::IntArrayRef({N}));
    EXPECT_TRUE(torch::isfinite(lp).all().item<bool>());
    expect_close(to_vector(lp), want, 1e-12, "von Mises mixture log pdf");
  }
}

// one component is the product of VonMises; from_raw lays out [logits | locations | concentrations]
TEST(VonMisesMixtureTest, OneComponentIsVonMisesAndFromRawLayout) {
  auto raw = torch::linspace(-2, 2, 4 * VonMisesMixture::raw_size(1, 3), torch::kFloat64).view({4, -1});
  auto q = VonMisesMixture::from_raw(raw, 1, 3);
  ASSERT_EQ(q.loc.sizes(), torch::IntArrayRef({4, 1, 3}));
  auto x = torch::rand({4, 3}, seeded(3), torch::kFloat64) * 6.0 - 3.0;
  VonMises single{M_PI * raw.narrow(1, 1, 3).tanh(), torch::softplus(raw.narrow(1, 4, 3))};
  EXPECT_TRUE(torch::allclose(q.log_prob(x), single.log_prob(x), 1e-14, 1e-14));
  EXPECT_THROW(VonMisesMixture::from_raw(raw, 2, 3), c10::Error);  // 7 columns, 14 expected
}

TEST(VonMisesMixtureTest, OutOfSupportIsExactlyMinusInf) {
  const std::vector<std::vector<double>> bad = {{M_PI, 0.0}, {0.0, 3.2}, {-3.1416, 1.0}, {kNaN, 0.0}, {0.0, kInf}};
  const int64_t N = static_cast<int64_t>(bad.size()) + 1;
  std::vector<double> flat;
  for (const auto& b : bad) flat.insert(flat.end(), b.begin(), b.end());
  flat.push_back(-M_PI), flat.push_back(-M_PI);  // the closed corner
  auto logits = torch::zeros({N, 2}, torch::kFloat64).requires_grad_(true);
  auto loc = torch::zeros({N, 2, 2}, torch::kFloat64).requires_grad_(true);
  auto kappa = torch::full({N, 2, 2}, 3.0, torch::kFloat64).requires_grad_(true);
  auto lp = VonMisesMixture{logits, loc, kappa}.log_prob(t64(flat).view({N, 2}));
  auto v = to_vector(lp);
  for (size_t i = 0; i < bad.size(); ++i) EXPECT_TRUE(is_neg_inf(v[i])) << "row " << i;
  EXPECT_TRUE(std::isfinite(v.back()));
  expect_finite_grads(lp, {logits, loc, kappa}, "von Mises mixture");
}

// the integral over the 2-torus by the trapezoid rule, exact to rounding for periodic analytic
// integrands at 400 x 400 nodes (error ~ exp(-400 / 2) at these concentrations)
TEST(VonMisesMixtureTest, NormalisesOnTheTorus) {
  const int64_t m = 400;
  auto t = torch::arange(m, torch::kFloat64) * (2 * M_PI / m) - M_PI;
  auto x = torch::stack({t.repeat_interleave(m), t.repeat({m})}, 1);  // [m^2, 2]
  const int64_t N = x.size(0);
  for (double kappa : {0.0, 2.0, 30.0}) {
    VonMisesMixture q{t64({0.0, 1.0}).view({1, 2}).expand({N, 2}),
                      t64({-2.0, 2.0, 1.0, -3.0}).view({1, 2, 2}).expand({N, 2, 2}),
                      t64({kappa, 0.5 * kappa, 1.0, kappa}).view({1, 2, 2}).expand({N, 2, 2})};
    const double z = q.log_prob(x).exp().sum().item<double>() * std::pow(2 * M_PI / m, 2);
    EXPECT_NEAR(z, 1.0, 1e-10) << "kappa " << kappa;
  }
}

// two modes on the circle (the case a single von Mises cannot fit): the KS distance to the
// mixture's CDF (Fourier series as in VonMises.SamplesMatchBessel) and the share of draws near
// each mode; on the 2-torus the two angles come from the same component (they move together)
TEST(VonMisesMixtureTest, SamplesMatchTheMixture) {
  const int64_t n = 20000;
  const double w0 = 0.3;
  const std::vector<double> mu = {-2.0, 2.0}, kappa = {5.0, 12.0};
  VonMisesMixture q{t64({std::log(w0), std::log(1 - w0)}).view({1, 2}).expand({n, 2}),
                    t64(mu).view({1, 2, 1}).expand({n, 2, 1}), t64(kappa).view({1, 2, 1}).expand({n, 2, 1})};
  auto gen = seeded(43);
  auto s = q.sample(gen);
  ASSERT_EQ(s.sizes(), torch::IntArrayRef({n, 1}));
  EXPECT_TRUE(((s >= -M_PI) & (s < M_PI)).all().item<bool>());
  std::vector<std::vector<double>> rho(2, std::vector<double>(80));  // I_i / I_0 of each component
  for (int c = 0; c < 2; ++c)
    for (int i = 1; i < 80; ++i)
      rho[c][i] = boost::math::cyl_bessel_i(i, kappa[c]) / boost::math::cyl_bessel_i(0, kappa[c]);
  auto vm_cdf = [&](int c, double x) {
    double f = (x + M_PI) / (2 * M_PI);
    for (int i = 1; i < 80; ++i)
      f += rho[c][i] * (std::sin(i * (x - mu[c])) - std::sin(i * (-M_PI - mu[c]))) / (M_PI * i);
    return f;
  };
  auto cdf = [&](double x) { return w0 * vm_cdf(0, x) + (1 - w0) * vm_cdf(1, x); };
  auto x = to_vector(s);
  EXPECT_LT(ks_statistic(x, cdf), 1.95 / std::sqrt(double(n))) << "KS";
  const double left = static_cast<double>(std::count_if(x.begin(), x.end(), [](double v) { return v < 0; })) / n;
  EXPECT_NEAR(left, w0, 5 * std::sqrt(w0 * (1 - w0) / n));
  // the 2-torus: modes at (-2, -2) and (2, 2), concentrated enough that both angles share a sign
  VonMisesMixture q2{torch::zeros({n, 2}, torch::kFloat64),
                     t64({-2.0, -2.0, 2.0, 2.0}).view({1, 2, 2}).expand({n, 2, 2}),
                     torch::full({n, 2, 2}, 50.0, torch::kFloat64)};
  auto s2 = q2.sample(gen);
  auto same_side = (s2.select(1, 0) > 0).eq(s2.select(1, 1) > 0).to(torch::kFloat64).mean().item<double>();
  EXPECT_EQ(same_side, 1.0);
  EXPECT_NEAR((s2.select(1, 0) > 0).to(torch::kFloat64).mean().item<double>(), 0.5, 5 * std::sqrt(0.25 / n));
  // fixed rounds draw the same law
  VonMisesMixture qf{q.logits, q.loc, q.concentration, /*fixed_rounds=*/true};
  EXPECT_LT(ks_statistic(to_vector(qf.sample(gen)), cdf), 1.95 / std::sqrt(double(n))) << "KS, fixed rounds";
}

// ---------------------------------------------------------------------------------------------
// DiagonalGaussian

TEST(DiagonalGaussianTest, LogProbMatchesBoost) {
  auto loc = t64({0.3, -2.0, 1e3}).view({1, 3});
  auto log_scale = t64({0.1, -1.5, 4.0}).view({1, 3});
  const std::vector<double> x = {-5.0, -2.1, 1.2e3};
  double want = 0;
  for (int d = 0; d < 3; ++d)
    want += std::log(boost::math::pdf(
        boost::math::normal_distribution<double>(loc[0][d].item<double>(), std::exp(log_scale[0][d].item<double>())),
        x[d]));
  const double got = DiagonalGaussian{loc, log_scale}.log_prob(t64(x).view({1, 3})).item<double>();
  EXPECT_NEAR(got, want, 1e-12 * std::abs(want));
  // far out: finite, no underflow to -inf
  EXPECT_TRUE(
      std::isfinite(DiagonalGaussian{loc, log_scale}.log_prob(t64({1e6, 1e6, 1e6}).view({1, 3})).item<double>()));
}

TEST(DiagonalGaussianTest, Normalises) {
  boost::math::quadrature::tanh_sinh<double> ts;
  DiagonalGaussian g{t64({0.3}).view({1, 1}), t64({-1.5}).view({1, 1})};
  auto f = [&](double x) { return std::exp(g.log_prob(t64({x}).view({1, 1})).item<double>()); };
  EXPECT_NEAR(ts.integrate(f, -20.0, 20.0), 1.0, 1e-6);
}

TEST(DiagonalGaussianTest, SamplesMatchBoostAndAreReparameterised) {
  const int64_t n = 20000;
  auto loc = t64({0.3, -2.0}).view({1, 2}).expand({n, 2}).clone().requires_grad_(true);
  auto log_scale = t64({0.1, -1.5}).view({1, 2}).expand({n, 2}).clone().requires_grad_(true);
  auto gen = seeded(51);
  auto s = DiagonalGaussian{loc, log_scale}.sample(gen);
  for (int d = 0; d < 2; ++d) {
    boost::math::normal_distribution<double> nd(d == 0 ? 0.3 : -2.0, std::exp(d == 0 ? 0.1 : -1.5));
    expect_matches(
        rows(s.detach(), 0, 1, d), boost::math::mean(nd), boost::math::variance(nd),
        [&](double x) { return boost::math::cdf(nd, x); }, "gaussian " + std::to_string(d));
  }
  // d sample / d loc = 1, d sample / d log_scale = sample - loc
  s.sum().backward();
  EXPECT_TRUE(torch::allclose(loc.grad(), torch::ones_like(loc)));
  EXPECT_TRUE(torch::allclose(log_scale.grad(), (s - loc).detach(), 1e-12, 1e-12));
}

// ---------------------------------------------------------------------------------------------
// all densities: reproducibility, gradients, float32

TEST(DensitiesTest, SameSeedSameSamples) {
  const int64_t N = 500;
  auto u = torch::rand({N, 2, 2}, seeded(1), torch::kFloat64);
  BetaMixture bm{torch::zeros({N, 2}, torch::kFloat64), 0.1 + 5 * u, 5.1 - 5 * u};
  Kumaraswamy ku{0.1 + 5 * u.select(1, 0), 0.1 + 5 * u.select(1, 1)};
  TruncatedNormal tn(u.select(1, 0), 0.5 + u.select(1, 1), -1.0, 4.0);
  VonMises vm{u.select(1, 0).select(1, 0), 30 * u.select(1, 1).select(1, 0)};
  DiagonalGaussian dg{u.select(1, 0), u.select(1, 1)};
  std::vector<std::function<torch::Tensor(torch::Generator&)>> samplers = {
      [&](torch::Generator& g) { return bm.sample(g); }, [&](torch::Generator& g) { return ku.sample(g); },
      [&](torch::Generator& g) { return tn.sample(g); }, [&](torch::Generator& g) { return vm.sample(g); },
      [&](torch::Generator& g) { return dg.sample(g); }};
  for (size_t i = 0; i < samplers.size(); ++i) {
    auto g1 = seeded(7), g2 = seeded(7), g3 = seeded(8);
    auto a = samplers[i](g1), b = samplers[i](g2), c = samplers[i](g3);
    EXPECT_TRUE(torch::equal(a, b)) << "sampler " << i;
    EXPECT_FALSE(torch::equal(a, c)) << "sampler " << i;
  }
}

TEST(DensitiesTest, GradientsMatchFiniteDifferences) {
  {
    auto logits = t64({0.3, -1.0, 2.0, 0.0, -0.5, 0.1}).view({3, 2});
    auto alpha = t64({0.1, 2.0, 4.5, 0.7, 1.0, 5.1, 0.3, 2.2, 3.3, 0.5, 1.5, 0.9}).view({3, 2, 2});
    auto beta = t64({3.0, 5.1, 0.5, 1.0, 0.1, 2.0, 4.0, 0.6, 1.1, 2.5, 0.2, 5.0}).view({3, 2, 2});
    auto x = t64({1e-6, 0.4, 0.6, 1 - 1e-6, 0.25, 0.75}).view({3, 2});
    expect_grad_matches_fd(
        [&] {
          return BetaMixture{logits, alpha, beta}.log_prob(x).sum();
        },
        {logits, alpha, beta}, "beta mixture");
    auto raw = torch::linspace(-3, 3, 2 * BetaMixture::raw_size(2, 2), torch::kFloat64).view({2, -1});
    auto x2 = t64({0.1, 0.9, 0.5, 0.02}).view({2, 2});
    expect_grad_matches_fd([&] { return BetaMixture::from_raw(raw, 2, 2, 0.1, 5.1).log_prob(x2).sum(); }, {raw},
                           "beta mixture from raw");
  }
  {
    auto a = t64({0.1, 5.1, 1.0, 0.5}).view({2, 2}), b = t64({2.0, 0.3, 5.1, 0.1}).view({2, 2});
    auto x = t64({1e-6, 1 - 1e-6, 0.3, 0.7}).view({2, 2});
    expect_grad_matches_fd([&] { return Kumaraswamy{a, b}.log_prob(x).sum(); }, {a, b}, "kumaraswamy");
  }
  {
    auto loc = t64({0.3, 0.0, -0.2, 1.0, -1.0}).view({5, 1}), scale = t64({0.7, 1.0, 1.3, 2.0, 0.5}).view({5, 1});
    auto lo = t64({-1.0, 8.0, -9.0, -kInf, 14.0}).view({5, 1}), hi = t64({2.0, 9.0, -8.0, -60.0, kInf}).view({5, 1});
    auto x = t64({1.9, 8.2, -8.9, -61.0, 15.0}).view({5, 1});
    expect_grad_matches_fd([&] { return TruncatedNormal(loc, scale, lo, hi).log_prob(x).sum(); }, {loc, scale},
                           "truncated normal");
  }
  {
    auto loc = t64({0.4, 0.1, -3.0, 2.0, 1.0}), kappa = t64({5e-4, 1e-3, 0.5, 30.0, 700.0});
    auto x = t64({-2.0, 1.5, 3.1, 2.2, 1.01});
    expect_grad_matches_fd([&] { return VonMises{loc, kappa}.log_prob(x).sum(); }, {loc, kappa}, "von Mises");
    // at kappa = 0 (the boundary) d/dkappa = cos(x - mu) - I1/I0 = cos(x - mu)
    auto k0 = torch::zeros({1}, torch::kFloat64).requires_grad_(true);
    VonMises{t64({0.4}), k0}.log_prob(t64({-2.0})).sum().backward();
    EXPECT_NEAR(k0.grad().item<double>(), std::cos(-2.4), 1e-15);
  }
  {
    // the mixture through from_raw, K = 2 on the 2-torus, concentrations from 0.05 to 20
    auto raw = torch::linspace(-3, 3, 3 * VonMisesMixture::raw_size(2, 2), torch::kFloat64).view({3, -1});
    auto x = t64({-3.0, 0.1, 2.5, -1.0, 0.0, 3.1}).view({3, 2});
    expect_grad_matches_fd([&] { return VonMisesMixture::from_raw(raw, 2, 2).log_prob(x).sum(); }, {raw},
                           "von Mises mixture from raw");
  }
  {
    auto loc = t64({0.3, -2.0, 5.0, 0.0}).view({2, 2}), log_scale = t64({0.1, -1.5, 2.0, -3.0}).view({2, 2});
    auto x = t64({1.0, -2.2, -4.0, 0.01}).view({2, 2});
    expect_grad_matches_fd(
        [&] {
          return DiagonalGaussian{loc, log_scale}.log_prob(x).sum();
        },
        {loc, log_scale}, "diagonal gaussian");
  }
}

// float32: finite next to the boundaries, close to float64, samples inside the open support
TEST(DensitiesTest, Float32NearBoundaries) {
  auto f32 = [](const torch::Tensor& t) { return t.to(torch::kFloat32); };
  auto expect_close32 = [](const torch::Tensor& lp32, const torch::Tensor& lp64, const std::string& what) {
    EXPECT_EQ(lp32.scalar_type(), torch::kFloat32) << what;
    EXPECT_TRUE(torch::isfinite(lp32).all().item<bool>()) << what;
    expect_close(to_vector(lp32), to_vector(lp64), 1e-4, what);
  };
  // inputs exactly representable in float32, so that both precisions see the same point
  auto x = f32(t64({1e-6, 1 - 1e-6, 0.5, 1e-6})).to(torch::kFloat64).view({4, 1});
  auto ab = t64({0.1, 0.1, 5.1, 5.1}).view({4, 1}), bb = t64({5.1, 0.1, 5.1, 0.1}).view({4, 1});
  BetaMixture bm{torch::zeros({4, 1}, torch::kFloat64), ab.view({4, 1, 1}), bb.view({4, 1, 1})};
  BetaMixture bm32{f32(bm.logits), f32(bm.alpha), f32(bm.beta)};
  expect_close32(bm32.log_prob(f32(x)), bm.log_prob(x), "beta float32");
  expect_close32(Kumaraswamy{f32(ab), f32(bb)}.log_prob(f32(x)), Kumaraswamy{ab, bb}.log_prob(x),
                 "kumaraswamy float32");
  auto tx = t64({8.0, 8.5, 9.0}).view({3, 1});
  TruncatedNormal tn(torch::zeros({3, 1}, torch::kFloat64), torch::ones({3, 1}, torch::kFloat64), 8.0, 9.0);
  TruncatedNormal tn32(torch::zeros({3, 1}), torch::ones({3, 1}), 8.0, 9.0);
  expect_close32(tn32.log_prob(f32(tx)), tn.log_prob(tx), "truncated normal float32");
  auto vx = f32(t64({-M_PI, 0.0, 3.14159})).to(torch::kFloat64);
  auto vk = t64({0.01, 50.0, 700.0});
  expect_close32(VonMises{torch::zeros({3}), f32(vk)}.log_prob(f32(vx)),
                 VonMises{torch::zeros({3}, torch::kFloat64), vk}.log_prob(vx), "von Mises float32");
  EXPECT_TRUE(
      is_neg_inf(VonMises{torch::zeros({1}), torch::ones({1})}.log_prob(torch::full({1}, M_PI)).item<double>()));

  // draws: inside the open support after rounding to float32, even for alpha = beta = 0.1
  const int64_t n = 20000;
  auto gen = seeded(61);
  BetaMixture small{torch::zeros({n, 1}), torch::full({n, 1, 1}, 0.1f), torch::full({n, 1, 1}, 0.1f)};
  auto s = small.sample(gen);
  EXPECT_EQ(s.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(((s > 0) & (s < 1)).all().item<bool>());
  EXPECT_TRUE(torch::isfinite(small.log_prob(s)).all().item<bool>());
  auto ks = Kumaraswamy{torch::full({n, 1}, 0.1f), torch::full({n, 1}, 0.1f)}.sample(gen);
  EXPECT_TRUE(((ks > 0) & (ks < 1)).all().item<bool>());
  auto ts = TruncatedNormal(torch::zeros({n, 1}), torch::ones({n, 1}), 8.0, 9.0).sample(gen);
  EXPECT_TRUE(((ts >= 8) & (ts <= 9)).all().item<bool>());
  const TnReference tail{0, 1, 8, 9};
  EXPECT_NEAR(ts.to(torch::kFloat64).mean().item<double>(), tail.mean(), 5 * std::sqrt(tail.variance() / n));
  // tiny concentrations: Gamma variates formed in log space, not underflowing to 0 (0/0 or 1/2)
  const double c = 0.02;
  auto tiny =
      BetaMixture{torch::zeros({n, 1}), torch::full({n, 1, 1}, float(c)), torch::full({n, 1, 1}, float(c))}.sample(gen);
  boost::math::beta_distribution<double> bc(c, c);
  const double mid = boost::math::cdf(bc, 0.75) - boost::math::cdf(bc, 0.25);
  const double got = ((tiny > 0.25) & (tiny < 0.75)).to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(got, mid, 5 * std::sqrt(mid * (1 - mid) / n));
  auto vs = VonMises{torch::full({n}, 3.1f), torch::full({n}, 50.0f)}.sample(gen);
  EXPECT_TRUE(((vs >= -M_PI) & (vs < M_PI)).all().item<bool>());
}

}  // namespace
}  // namespace gfn

#include "envs/bitseq.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/torch.h>

namespace gfn {

template <>
const EnumNames<BitSeqForm>& enum_names<BitSeqForm>() {
  static const EnumNames<BitSeqForm> names{{BitSeqForm::kAppend, "append"}, {BitSeqForm::kPlace, "place"}};
  return names;
}

template <>
const EnumNames<BitSeqReward>& enum_names<BitSeqReward>() {
  static const EnumNames<BitSeqReward> names{{BitSeqReward::kEdit, "edit"}, {BitSeqReward::kHamming, "hamming"}};
  return names;
}

const OptionTable<BitSeqOptions>& BitSeqOptions::keys() {
  using O = BitSeqOptions;
  static const auto table =
      OptionTable<O>("BitSeqOptions")
          .add("length", &O::length, "n: bits of a sequence (a multiple of 8 and of env.word)", in(8, 1024))
          .add("word", &O::word, "k: bits added per action (2^k words)", in(1, 10))
          .add("form", &O::form,
               "append: each word after the last (autoregressive, a tree); place: each word into any empty slot "
               "(a DAG)")
          .add("modes", &O::modes, "|M|: modes, each n/8 blocks drawn from five 8-bit blocks", in(1, 100000))
          .add("mode_seed", &O::mode_seed, "seed of the modes (and, plus one, of the test set)", at_least(0))
          .add("reward", &O::reward,
               "edit: R = exp(1 - d_edit(x, M) / n) (the TB paper); hamming: log R = -beta d_Hamming(x, M)")
          .add("beta", &O::beta, "hamming reward: log R = -beta d", above(0).at_most(1000))
          .add("mode_radius", &O::mode_radius, "a sample finds a mode within this distance (the reward's)",
               at_least(0))
          .add("test_per_mode", &O::test_per_mode,
               "test set: copies of each mode with 0, n/(2c), 2n/(2c), ... bits flipped (0: no test set)", in(0, 1000))
          .rule([](const O& o) {
            if (o.length % 8 != 0)
              return fmt::format("env.length = {}: expected a multiple of 8 (the modes are 8-bit blocks)", o.length);
            if (o.length % o.word != 0)
              return fmt::format("env.length = {}: expected a multiple of env.word = {}", o.length, o.word);
            if (o.mode_radius > o.length)
              return fmt::format("env.mode_radius = {}: expected at most env.length = {}", o.mode_radius, o.length);
            return std::string();
          });
  return table;
}

// ---------------------------------------------------------------------------------------------
// distances

namespace {

using u128 = unsigned __int128;

// Myers' bit-parallel Levenshtein distance (Hyyro's formulation), the pattern in one 128-bit word:
// the vertical deltas of the dynamic programme's current column as bit vectors (Pv: +1, Mv: -1),
// D[i][0] = i (Pv all ones at the start) and D[0][j] = j (a +1 shifted in at row 0).
int64_t myers(const std::vector<uint8_t>& pattern, const std::vector<uint8_t>& text) {
  const size_t m = pattern.size();
  if (m == 0) return static_cast<int64_t>(text.size());
  const u128 all = m == 128 ? ~u128{0} : ((u128{1} << m) - 1);
  const u128 high = u128{1} << (m - 1);
  u128 peq[2] = {0, 0};
  for (size_t i = 0; i < m; ++i) peq[pattern[i] & 1] |= u128{1} << i;
  u128 pv = all, mv = 0;
  int64_t score = static_cast<int64_t>(m);
  for (uint8_t c : text) {
    const u128 eq = peq[c & 1];
    const u128 xv = eq | mv;
    const u128 xh = ((((eq & pv) + pv) & all) ^ pv) | eq;
    u128 ph = (mv | ~(xh | pv)) & all;
    u128 mh = pv & xh;
    if (ph & high) ++score;
    else if (mh & high) --score;
    ph = ((ph << 1) | 1) & all;
    mh = (mh << 1) & all;
    pv = (mh | ~(xv | ph)) & all;
    mv = ph & xv;
  }
  return score;
}

int64_t levenshtein_dp(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  std::vector<int64_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = static_cast<int64_t>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = static_cast<int64_t>(i);
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1] ? 1 : 0)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

int64_t edit_distance(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  return a.size() <= 128 ? myers(a, b) : levenshtein_dp(a, b);
}

// ---------------------------------------------------------------------------------------------
// the env

BitSeqEnv::BitSeqEnv(const BitSeqOptions& options) : options_(options) {
  options_.validate();
  const int64_t n = options_.length, k = options_.word;
  slots_ = n / k;
  words_ = int64_t{1} << k;
  auto word_bits = [k](int64_t v) {
    std::string s;
    for (int64_t b = k - 1; b >= 0; --b) s += ((v >> b) & 1) ? '1' : '0';
    return s;
  };
  if (options_.form == BitSeqForm::kAppend) {
    for (int64_t v = 0; v < words_; ++v)
      spec_.forward.components.push_back({"w" + word_bits(v), ComponentKind::kAtom, 0, Domain::kNone});
    spec_.backward.components.push_back({"pop", ComponentKind::kAtom, 0, Domain::kNone});
  } else {
    for (int64_t s = 0; s < slots_; ++s) {
      for (int64_t v = 0; v < words_; ++v)
        spec_.forward.components.push_back({fmt::format("{}:{}", s, word_bits(v)), ComponentKind::kAtom, 0,
                                            Domain::kNone});
      spec_.backward.components.push_back({fmt::format("-{}", s), ComponentKind::kAtom, 0, Domain::kNone});
    }
  }
  spec_.forward.exit = static_cast<int64_t>(spec_.forward.components.size());
  spec_.forward.components.push_back({"exit", ComponentKind::kAtom, 0, Domain::kNone});

  // the modes: n/8 blocks each, drawn from the five
  static const uint8_t kBlocks[5] = {0x00, 0xFF, 0xF0, 0x0F, 0x3C};
  auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(options_.mode_seed));
  auto draws = torch::randint(5, {options_.modes, n / 8}, gen, torch::kInt64);
  auto d = draws.accessor<int64_t, 2>();
  modes_.assign(options_.modes, std::vector<uint8_t>(n));
  for (int64_t m = 0; m < options_.modes; ++m)
    for (int64_t b = 0; b < n / 8; ++b)
      for (int64_t i = 0; i < 8; ++i) modes_[m][b * 8 + i] = (kBlocks[d[m][b]] >> (7 - i)) & 1;

  // enumeration of small instances: codes sum_s (v_s + 1) V^(L-1-s), V = 2^k + 1, ascending (a
  // move turns a 0 digit positive: children after parents)
  const int64_t V = words_ + 1;
  double total = std::pow(static_cast<double>(V), static_cast<double>(slots_));
  if (total <= static_cast<double>(int64_t{1} << 22)) {
    const int64_t T = static_cast<int64_t>(total);
    std::vector<int64_t> place(slots_), codes, rank(T, -1);
    for (int64_t s = slots_ - 1, p = 1; s >= 0; --s, p *= V) place[s] = p;
    for (int64_t c = 0; c < T; ++c) {
      bool ok = true, seen_empty = false;
      if (options_.form == BitSeqForm::kAppend)
        for (int64_t s = 0; s < slots_ && ok; ++s) {
          const bool empty = (c / place[s]) % V == 0;
          ok = !(seen_empty && !empty);
          seen_empty = seen_empty || empty;
        }
      if (ok) rank[c] = static_cast<int64_t>(codes.size()), codes.push_back(c);
    }
    if (static_cast<int64_t>(codes.size()) <= kMaxEnumerable) {
      enumerable_ = true;
      codes_ = torch::tensor(codes, torch::kInt64);
      rank_ = torch::tensor(rank, torch::kInt64);
      place_ = torch::tensor(place, torch::kInt64);
      // log Z over the full states
      auto all = enumerate_states(torch::kCPU);
      auto full = all.discrete.ge(0).all(1);
      auto lr = log_reward(all).to(torch::kFloat64).masked_select(full);
      log_z_ = torch::logsumexp(lr, 0).item<double>();
    }
  }
}

States BitSeqEnv::initial_states(int64_t batch, const torch::Device& device) const {
  auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  auto b = torch::TensorOptions().dtype(torch::kBool).device(device);
  return {torch::full({batch, slots_}, -1, i64), torch::zeros({batch, 0}, i64.dtype(torch::kFloat64)),
          torch::ones({batch}, b), torch::zeros({batch}, b)};
}

torch::Tensor BitSeqEnv::features(const States& states) const {
  const auto& x = states.discrete;  // [B, L], -1 empty
  return torch::one_hot(x + 1, words_ + 1).to(torch::kFloat32).view({x.size(0), slots_ * (words_ + 1)});
}

torch::Tensor BitSeqEnv::forward_mask(const States& states) const {
  const auto& x = states.discrete;
  auto full = x.ge(0).all(1, /*keepdim=*/true);  // [B, 1]
  torch::Tensor moves;
  if (options_.form == BitSeqForm::kAppend) moves = full.logical_not().expand({x.size(0), words_});
  else moves = x.lt(0).repeat_interleave(words_, 1);
  return torch::cat({moves, full}, 1);
}

torch::Tensor BitSeqEnv::backward_mask(const States& states) const {
  const auto& x = states.discrete;
  if (options_.form == BitSeqForm::kAppend) return x.ge(0).any(1, /*keepdim=*/true);
  return x.ge(0);
}

StepResult BitSeqEnv::step(const States& states, const Actions& actions) const {
  const auto& x = states.discrete;
  const auto& c = actions.component;
  torch::Tensor slot, word, move;
  if (options_.form == BitSeqForm::kAppend) {
    slot = x.ge(0).sum(1).clamp_max(slots_ - 1);
    word = c;
    move = c.lt(words_);
  } else {
    move = c.lt(slots_ * words_);
    slot = c.div(words_, "floor").clamp_max(slots_ - 1);
    word = c.remainder(words_);
  }
  auto next = torch::where(move.unsqueeze(1), x.scatter(1, slot.unsqueeze(1), word.unsqueeze(1)), x);
  return {States{next, states.continuous, torch::zeros_like(states.is_initial), states.is_sink},
          torch::zeros({x.size(0)}, x.options().dtype(torch::kFloat32))};
}

StepResult BitSeqEnv::backward_step(const States& states, const Actions& actions) const {
  const auto& x = states.discrete;
  auto slot = options_.form == BitSeqForm::kAppend ? (x.ge(0).sum(1) - 1).clamp_min(0)
                                                   : actions.component.clamp(0, slots_ - 1);
  auto prev = x.scatter(1, slot.unsqueeze(1), -1);
  return {States{prev, states.continuous, prev.lt(0).all(1), torch::zeros_like(states.is_sink)},
          torch::zeros({x.size(0)}, x.options().dtype(torch::kFloat32))};
}

Actions BitSeqEnv::backward_action(const States& /*parent*/, const States& /*child*/, const Actions& forward,
                                   torch::Tensor* log_jacobian) const {
  Actions out = forward;
  out.component = options_.form == BitSeqForm::kAppend ? torch::zeros_like(forward.component)
                                                       : forward.component.div(words_, "floor").clamp_max(slots_ - 1);
  return same_index_action(out, log_jacobian);
}

Actions BitSeqEnv::forward_action(const States& child, const States& /*parent*/, const Actions& backward,
                                  torch::Tensor* log_jacobian) const {
  const auto& x = child.discrete;
  Actions out = backward;
  if (options_.form == BitSeqForm::kAppend) {
    auto last = (x.ge(0).sum(1) - 1).clamp_min(0);
    out.component = x.gather(1, last.unsqueeze(1)).squeeze(1).clamp_min(0);
  } else {
    auto slot = backward.component.clamp(0, slots_ - 1);
    out.component = slot * words_ + x.gather(1, slot.unsqueeze(1)).squeeze(1).clamp_min(0);
  }
  return same_index_action(out, log_jacobian);
}

std::vector<std::vector<uint8_t>> BitSeqEnv::bits(const States& states) const {
  auto x = states.discrete.to(torch::kCPU).contiguous();
  auto a = x.accessor<int64_t, 2>();
  const int64_t B = x.size(0), k = options_.word;
  std::vector<std::vector<uint8_t>> out(B, std::vector<uint8_t>(options_.length, 0));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < slots_; ++s) {
      const int64_t v = std::max<int64_t>(a[b][s], 0);
      for (int64_t i = 0; i < k; ++i) out[b][s * k + i] = (v >> (k - 1 - i)) & 1;
    }
  return out;
}

std::pair<std::vector<int64_t>, std::vector<int64_t>> BitSeqEnv::nearest_mode(
    const std::vector<std::vector<uint8_t>>& strings) const {
  std::vector<int64_t> dist(strings.size()), mode(strings.size());
  for (size_t b = 0; b < strings.size(); ++b) {
    int64_t best = std::numeric_limits<int64_t>::max(), arg = -1;
    for (size_t m = 0; m < modes_.size(); ++m) {
      int64_t d = 0;
      if (options_.reward == BitSeqReward::kHamming) {
        for (int64_t i = 0; i < options_.length; ++i) d += strings[b][i] != modes_[m][i];
      } else {
        d = edit_distance(modes_[m], strings[b]);
      }
      if (d < best) best = d, arg = static_cast<int64_t>(m);
    }
    dist[b] = best;
    mode[b] = arg;
  }
  return {dist, mode};
}

torch::Tensor BitSeqEnv::log_reward(const States& states) const {
  auto [dist, mode] = nearest_mode(bits(states));
  auto d = torch::tensor(dist, torch::kFloat64);
  auto lr = options_.reward == BitSeqReward::kEdit ? 1.0 - d / static_cast<double>(options_.length)
                                                   : -options_.beta * d;
  return lr.to(states.discrete.device(), torch::kFloat32);
}

torch::Tensor BitSeqEnv::mode_index(const States& terminal) const {
  auto [dist, mode] = nearest_mode(bits(terminal));
  for (size_t b = 0; b < dist.size(); ++b)
    if (dist[b] > options_.mode_radius) mode[b] = -1;
  return torch::tensor(mode, torch::kInt64).to(terminal.discrete.device());
}

std::optional<States> BitSeqEnv::test_set(const torch::Device& device) const {
  const int64_t per = options_.test_per_mode, n = options_.length, k = options_.word;
  if (per == 0) return std::nullopt;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(options_.mode_seed + 1));
  const int64_t N = options_.modes * per;
  auto x = torch::empty({N, slots_}, torch::kInt64);
  auto a = x.accessor<int64_t, 2>();
  for (int64_t m = 0; m < options_.modes; ++m)
    for (int64_t c = 0; c < per; ++c) {
      std::vector<uint8_t> s = modes_[m];
      const int64_t flips = c * n / (2 * per);
      auto where = torch::randperm(n, gen, torch::kInt64);
      for (int64_t f = 0; f < flips; ++f) s[where[f].item<int64_t>()] ^= 1;
      for (int64_t slot = 0; slot < slots_; ++slot) {
        int64_t v = 0;
        for (int64_t i = 0; i < k; ++i) v = (v << 1) | s[slot * k + i];
        a[m * per + c][slot] = v;
      }
    }
  auto b = torch::TensorOptions().dtype(torch::kBool).device(device);
  return States{x.to(device), torch::zeros({N, 0}, torch::TensorOptions().dtype(torch::kFloat64).device(device)),
                torch::zeros({N}, b), torch::zeros({N}, b)};
}

int64_t BitSeqEnv::num_states() const {
  if (!enumerable_) return Env::num_states();
  return codes_.size(0);
}

States BitSeqEnv::enumerate_states(const torch::Device& device) const {
  if (!enumerable_) return Env::enumerate_states(device);
  auto codes = codes_.to(device);
  auto x = codes.unsqueeze(1).div(place_.on(device).unsqueeze(0), "floor").remainder(words_ + 1) - 1;
  auto b = torch::TensorOptions().dtype(torch::kBool).device(device);
  return {x, torch::zeros({x.size(0), 0}, torch::TensorOptions().dtype(torch::kFloat64).device(device)),
          x.lt(0).all(1), torch::zeros({x.size(0)}, b)};
}

torch::Tensor BitSeqEnv::state_index(const States& states) const {
  const auto& x = states.discrete;
  return rank_.on(x.device()).index_select(0, ((x + 1) * place_.on(x.device()).unsqueeze(0)).sum(1));
}

std::optional<double> BitSeqEnv::log_partition() const {
  if (!enumerable_) return std::nullopt;
  return log_z_;
}

}  // namespace gfn

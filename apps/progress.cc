#include "apps/progress.h"

#include <algorithm>
#include <cmath>
#include <ostream>

#include <fmt/format.h>

namespace gfn {

bool Progress::due(bool force) {
  if (style_ != ProgressStyle::kBar) return false;
  auto now = std::chrono::steady_clock::now();
  if (!force && now - last_ < std::chrono::milliseconds(100)) return false;
  last_ = now;
  return true;
}

void Progress::update(int64_t it, double loss, double log_z, double tv, double ms_per_it) {
  constexpr int kWidth = 30;
  int filled = static_cast<int>(kWidth * it / std::max<int64_t>(total_, 1));
  out_ << fmt::format("\r{:>8}/{} [{}{}] loss {:.4g}  log Z {:+.4f}{}  {:.2f} ms/it ", it, total_,
                      std::string(filled, '#'), std::string(kWidth - filled, '.'), loss, log_z,
                      std::isnan(tv) ? "" : fmt::format("  TV {:.2e}", tv), ms_per_it)
       << std::flush;
}

void Progress::line(const std::string& text) {
  if (style_ == ProgressStyle::kNone) return;
  if (style_ == ProgressStyle::kBar) out_ << "\r\033[K";
  out_ << text << "\n" << std::flush;
}

void Progress::finish() {
  if (style_ == ProgressStyle::kBar) out_ << "\n" << std::flush;
}

}  // namespace gfn

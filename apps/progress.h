// A run's progress on its terminal: a bar rewritten in place, or plain lines (a log file, a pipe).
// Internal to the library: not installed.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

#include "apps/run.h"

namespace gfn {

class Progress {
 public:
  Progress(ProgressStyle style, std::ostream& out, int64_t total) : style_(style), out_(out), total_(total) {}

  // Whether the bar is due for a redraw (at most every 100 ms, always when forced); callers read
  // the values to draw (host syncs) only then.
  bool due(bool force);
  void update(int64_t iteration, double loss, double log_z, double tv, double ms_per_iteration);
  // A line of text (above the bar).
  void line(const std::string& text);
  // Ends the bar's line.
  void finish();

 private:
  ProgressStyle style_;
  std::ostream& out_;
  int64_t total_;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace gfn

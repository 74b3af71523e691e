// Comparing two run directories: every tensor of their final checkpoints and every dataset of
// their logs (but the wall clock), for tests of resume and signals.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <torch/serialize/archive.h>
#include <torch/torch.h>

#include "io/checkpoint.h"
#include "io/hdf5_log.h"

namespace gfn::testing {

// Every tensor of a LibTorch archive file, by its dotted key (nested archives flattened).
inline void flatten(torch::serialize::InputArchive& archive, const std::string& prefix,
             std::map<std::string, torch::Tensor>& out) {
  for (const auto& key : archive.keys()) {
    torch::Tensor t;
    if (archive.try_read(key, t, false) || archive.try_read(key, t, true)) {
      out[prefix + key] = t;
      continue;
    }
    torch::serialize::InputArchive sub;
    if (archive.try_read(key, sub)) flatten(sub, prefix + key + ".", out);
  }
}

// Every tensor of a model file or a checkpoint (read through CheckpointReader, which verifies
// and strips the checksum trailer).
inline std::map<std::string, torch::Tensor> tensors_of(const std::filesystem::path& path) {
  if (path.filename() == "checkpoint.pt") {
    CheckpointReader checkpoint(path.string());
    std::map<std::string, torch::Tensor> out;
    flatten(checkpoint.archive(), "", out);
    return out;
  }
  torch::serialize::InputArchive archive;
  archive.load_from(path.string());
  std::map<std::string, torch::Tensor> out;
  flatten(archive, "", out);
  return out;
}

// Every dataset of a log, by path, read as doubles.
inline std::map<std::string, std::vector<double>> datasets_of(const std::filesystem::path& path) {
  Hdf5LogReader log(path.string());
  std::map<std::string, std::vector<double>> out;
  for (const char* group : {"train", "eval", "trajectories", "samples", "grid"})
    for (const auto& name : log.list(group)) out[std::string(group) + "/" + name] = log.read_double(std::string(group) + "/" + name);
  return out;
}

// Runs `a` and `b` ended in the same state: every tensor of DIR/checkpoint.pt but the wall
// clock, and every logged value but the wall-clock columns, bit for bit.
inline void expect_same_run(const std::filesystem::path& a, const std::filesystem::path& b) {
  const auto ta = tensors_of(a / "checkpoint.pt"), tb = tensors_of(b / "checkpoint.pt");
  ASSERT_EQ(ta.size(), tb.size());
  ASSERT_GT(ta.size(), 10u);
  for (const auto& [key, t] : ta) {
    if (key == "run.wall_s") continue;
    ASSERT_TRUE(tb.count(key)) << key;
    EXPECT_TRUE(torch::equal(t, tb.at(key))) << key;
  }
  const auto da = datasets_of(a / "log.h5"), db = datasets_of(b / "log.h5");
  ASSERT_EQ(da.size(), db.size());
  for (const auto& [name, values] : da) {
    if (name.find("wall_s") != std::string::npos) continue;
    ASSERT_TRUE(db.count(name)) << name;
    const auto& other = db.at(name);
    ASSERT_EQ(values.size(), other.size()) << name;
    for (size_t i = 0; i < values.size(); ++i)
      if (!(std::isnan(values[i]) && std::isnan(other[i]))) {
        ASSERT_EQ(values[i], other[i]) << name << "[" << i << "]";
      }
  }
}

}  // namespace gfn::testing

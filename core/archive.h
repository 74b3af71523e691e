// Forward declarations of LibTorch's archives, for headers that only name them (checkpoints,
// saved models): <torch/serialize/archive.h> costs seconds per translation unit.
#pragma once

namespace torch::serialize {
class OutputArchive;
class InputArchive;
}  // namespace torch::serialize

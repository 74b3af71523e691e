// Precompiled header shared by the library, the command line, the benchmarks and the tests:
// LibTorch's umbrella header costs ~15 s per translation unit otherwise.
#pragma once
#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

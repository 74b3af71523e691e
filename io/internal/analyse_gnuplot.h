// `gfn analyse --plot`, running gnuplot (io/analyse.h): finding the program and drawing scripts
// a few at a time, without a shell. Internal to the library: not installed.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace gfn::analysis {

// The absolute path of the program `name` (a path when it holds '/', else looked up on PATH);
// nothing when not found or not executable.
std::optional<std::string> find_program(const std::string& name);

// Runs `gnuplot script` for each script (a few at a time, no shell), with stderr captured; each
// must write the PNG beside it (same stem). Throws std::runtime_error naming the script when
// gnuplot fails or writes no PNG; no child is left running.
void run_gnuplot(const std::string& gnuplot, const std::vector<std::filesystem::path>& scripts);

}  // namespace gfn::analysis

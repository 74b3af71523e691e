// `gfn analyse`, text outputs (io/analyse.h): the summary table, the JSON object (through
// nlohmann-json), the CSV tables, and the file helpers the plots share. Internal to the library:
// not installed.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "io/analyse.h"
#include "io/internal/analyse_read.h"

namespace gfn::analysis {

// Prints the summary table of `report` (a block per run, then per group).
void print_table(const AnalyseReport& report, std::ostream& out);

// The report as one JSON object (README "Analysing runs"), with `notes` and `files`; non-finite
// numbers are null, integral ones are written without a fraction ("2").
std::string json_report(const AnalyseReport& report, const std::vector<std::string>& notes,
                        const std::vector<std::string>& files);

// Writes summary.csv and <label>_train.csv, <label>_eval.csv per run into `dir`; returns the
// paths written. Throws std::runtime_error when a file cannot be written.
std::vector<std::string> write_csv(const std::filesystem::path& dir, const std::vector<RunData>& runs,
                                   const AnalyseReport& report);

// Creates `dir` (and its parents) and returns it absolute; throws ConfigError naming `option`
// when it cannot.
std::filesystem::path make_dir(const std::string& dir, const char* option);

// Writes `text` to `path`, replacing it; throws std::runtime_error naming the file on failure.
void write_file(const std::filesystem::path& path, std::string_view text);

// The runs' labels as file names: [A-Za-z0-9._-] kept, everything else '_', no leading '.';
// unique.
std::vector<std::string> file_stems(const std::vector<RunData>& runs);

// Appends `v` as the shortest exact text ("nan", "inf", "-inf" for non-finite), as a CSV cell
// or a gnuplot data column.
void append_number(fmt::memory_buffer& b, double v);

}  // namespace gfn::analysis

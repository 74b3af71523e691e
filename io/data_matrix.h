// Reading a numeric data matrix (n rows x d columns of float64) from a text or HDF5 file, e.g.
// the observations an environment learns a Bayesian network from (env.data).
//
// Text files (.csv, .tsv, .txt; the extension is matched case-insensitively):
//   - one row per line; fields separated by ',' (.csv), a tab (.tsv), or for .txt by ',' when
//     the first non-comment line holds one, else by runs of spaces and tabs;
//   - spaces and tabs around a field are ignored, and so are CRLF line endings and a UTF-8 BOM;
//   - lines that are blank or whose first non-blank character is '#' are skipped;
//   - the first remaining line is a header of column names when any of its fields is not a
//     number (names may be wrapped in double quotes, which are removed; they must be non-empty
//     and distinct); otherwise it is the first data row;
//   - every field of a data row is a finite number parsed by std::strtod in full ("1", "-2.5e3";
//     "nan", "inf" and overflowing values such as "1e999" are rejected).
// HDF5 files (.h5, .hdf5): the 2-D dataset `dataset` ("data", "/g/x" or "g/x"; paths are from the
// file's root) of any float or integer type, converted to float64; rows are its first axis.
// Light header: no LibTorch, no hdf5.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gfn {

// A dense matrix of data, row-major.
struct DataMatrix {
  int64_t rows = 0;                // n, number of data rows (observations)
  int64_t cols = 0;                // d, number of columns (variables)
  std::vector<double> values;      // [rows * cols] float64, row-major: values[r * cols + c]
  std::vector<std::string> names;  // [cols] column names when a text file had a header, else empty
};

// Reads the data matrix in `path` (see the file comment for the formats). `key` is the config key
// that named the file ("env.data"); `dataset` is the dataset of an HDF5 file (ignored for text
// files); `expected_cols`, when > 0, is the number of columns required.
// Throws ConfigError (core/params.h), one line starting `KEY = "PATH": `, when the extension is
// unknown; the file is missing or unreadable (with the system's reason); a text file is empty,
// has no data rows, has a row with another number of fields than the first (line numbers are
// 1-based and count every line), a field that is not a number or not finite (line and 1-based
// field number), or an empty or repeated column name; an HDF5 file is not one, lacks the
// dataset (the message lists what its group holds), or the dataset is not 2-D, not of a numeric
// type, empty, unreadable or holds a non-finite value (0-based row and column); the number of
// columns is not `expected_cols`. Not thread-safe for HDF5 files (the HDF5 library is not).
DataMatrix read_data_matrix(const std::string& path, const std::string& key, const std::string& dataset = "data",
                            int64_t expected_cols = 0);

}  // namespace gfn

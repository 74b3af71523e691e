#include "io/data_matrix.h"

#include <fmt/format.h>
#include <hdf5.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>
#include <string_view>

#include "core/params.h"
#include "io/hdf5_log.h"
#include "io/internal/hdf5_util.h"

namespace gfn {
namespace {

// The context every error starts with: `KEY = "PATH": `.
struct Source {
  const std::string& path;
  const std::string& key;
};

[[noreturn]] void fail(const Source& src, const std::string& problem) {
  throw ConfigError(fmt::format("{} = \"{}\": {}", src.key, src.path, problem));
}

// `text` in double quotes, cut to 40 characters.
std::string in_quotes(std::string_view text) {
  constexpr size_t kMax = 40;
  if (text.size() <= kMax) return fmt::format("\"{}\"", text);
  return fmt::format("\"{}...\"", text.substr(0, kMax));
}

std::string_view trim(std::string_view s) {
  const char* blank = " \t\r\v\f";
  const size_t begin = s.find_first_not_of(blank);
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(blank) - begin + 1);
}

// Parses the whole of `field` as a number (std::strtod); false if any of it is left.
bool parse_number(std::string_view field, double* out) {
  if (field.empty()) return false;
  const std::string text(field);
  char* end = nullptr;
  *out = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size();
}

// Throws "cannot read the file: <reason>" unless `path` can be opened for reading; else returns
// its bytes when `read` is set.
std::string read_bytes(const Source& src, bool read) {
  std::error_code ec;
  if (std::filesystem::is_directory(src.path, ec)) fail(src, "cannot read the file: it is a directory");
  std::FILE* file = std::fopen(src.path.c_str(), "rb");
  if (file == nullptr) fail(src, fmt::format("cannot open the file: {}", std::strerror(errno)));
  std::string bytes;
  char buffer[1 << 16];
  size_t n = 0;
  while (read && (n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) bytes.append(buffer, n);
  const bool error = std::ferror(file) != 0;
  const int saved_errno = errno;
  std::fclose(file);
  if (error) fail(src, fmt::format("cannot read the file: {}", std::strerror(saved_errno)));
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// text files

enum class Separator { kComma, kTab, kWhitespace };

// The fields of `line` (without its line ending), each trimmed.
std::vector<std::string_view> split(std::string_view line, Separator sep) {
  std::vector<std::string_view> fields;
  if (sep == Separator::kWhitespace) {
    size_t pos = 0;
    while ((pos = line.find_first_not_of(" \t\v\f", pos)) != std::string_view::npos) {
      const size_t end = std::min(line.find_first_of(" \t\v\f", pos), line.size());
      fields.push_back(line.substr(pos, end - pos));
      pos = end;
    }
    return fields;
  }
  const char delim = sep == Separator::kComma ? ',' : '\t';
  size_t pos = 0;
  while (true) {
    const size_t end = line.find(delim, pos);
    fields.push_back(trim(line.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos)));
    if (end == std::string_view::npos) return fields;
    pos = end + 1;
  }
}

// Column names from a header line: double quotes around a name removed; each must be non-empty and
// distinct.
std::vector<std::string> header_names(const Source& src, int64_t line_no, const std::vector<std::string_view>& fields) {
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (size_t i = 0; i < fields.size(); ++i) {
    std::string_view name = fields[i];
    if (name.size() >= 2 && name.front() == '"' && name.back() == '"') name = trim(name.substr(1, name.size() - 2));
    if (name.empty()) fail(src, fmt::format("line {}: column name {} of the header is empty", line_no, i + 1));
    if (!seen.insert(std::string(name)).second) {
      fail(src, fmt::format("line {}: column name {} {} of the header is repeated", line_no, i + 1, in_quotes(name)));
    }
    names.emplace_back(name);
  }
  return names;
}

void check_cols(const Source& src, const std::string& where, int64_t cols, int64_t expected_cols) {
  if (expected_cols > 0 && cols != expected_cols) {
    fail(src, fmt::format("{} has {} columns, expected {}", where, cols, expected_cols));
  }
}

DataMatrix read_text(const Source& src, const std::string& ext, int64_t expected_cols) {
  std::string text = read_bytes(src, true);
  if (trim(text).empty()) fail(src, "the file is empty");
  // a UTF-8 byte order mark, as spreadsheet programs write
  size_t pos = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;

  DataMatrix out;
  bool separator_known = ext != ".txt";
  Separator sep = ext == ".tsv" ? Separator::kTab : Separator::kComma;
  int64_t first_line = 0;  // the line that fixed the number of columns
  int64_t line_no = 0;
  while (pos < text.size()) {
    // the next line, without its line ending
    const size_t end = std::min(text.find('\n', pos), text.size());
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::string_view content = trim(line);
    if (content.empty() || content.front() == '#') continue;

    // the first content line fixes the separator, the columns and whether there is a header
    if (!separator_known) {
      sep = content.find(',') != std::string_view::npos ? Separator::kComma : Separator::kWhitespace;
      separator_known = true;
    }
    const auto fields = split(sep == Separator::kWhitespace ? content : line, sep);
    const auto n_fields = static_cast<int64_t>(fields.size());
    if (first_line == 0) {
      first_line = line_no;
      out.cols = n_fields;
      check_cols(src, fmt::format("line {}", line_no), out.cols, expected_cols);
      double unused = 0;
      const bool header =
          std::any_of(fields.begin(), fields.end(), [&](std::string_view f) { return !parse_number(f, &unused); });
      if (header) {
        out.names = header_names(src, line_no, fields);
        continue;
      }
    } else if (n_fields != out.cols) {
      fail(src, fmt::format("line {} has {} field{}, expected {} as on line {}", line_no, n_fields,
                            n_fields == 1 ? "" : "s", out.cols, first_line));
    }

    // a data row
    for (size_t i = 0; i < fields.size(); ++i) {
      double value = 0;
      if (!parse_number(fields[i], &value)) {
        fail(src, fmt::format("line {}: field {} {} is not a number", line_no, i + 1, in_quotes(fields[i])));
      }
      if (!std::isfinite(value)) {
        fail(src, fmt::format("line {}: field {} {} is not finite", line_no, i + 1, in_quotes(fields[i])));
      }
      out.values.push_back(value);
    }
    ++out.rows;
  }
  if (out.rows == 0) {
    fail(src, first_line == 0 ? "no data rows (only blank and comment lines)"
                              : fmt::format("no data rows (only the header on line {})", first_line));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// HDF5 files

const char* type_class_name(H5T_class_t type_class) {
  switch (type_class) {
    case H5T_STRING: return "a string type";
    case H5T_COMPOUND: return "a compound type";
    case H5T_ENUM: return "an enum type (h5py's bool is one)";
    case H5T_BITFIELD: return "a bitfield type";
    case H5T_OPAQUE: return "an opaque type";
    case H5T_REFERENCE: return "a reference type";
    case H5T_VLEN: return "a variable-length type";
    case H5T_ARRAY: return "an array type";
    default: return "a non-numeric type";
  }
}

// What the group above `dataset` holds (the file's root when that group is missing), for the
// message of a missing dataset; empty if it cannot be listed.
std::string listing(hid_t file, const std::string& dataset) {
  std::string parent = dataset;
  while (!parent.empty() && parent.back() == '/') parent.pop_back();
  const size_t slash = parent.rfind('/');
  parent = slash == std::string::npos ? "" : parent.substr(0, slash);
  if (parent.empty() || !hdf5::link_exists(file, parent) || hdf5::object_type(file, parent) != H5I_GROUP) parent = "/";
  hdf5::Handle group(H5Gopen2(file, parent.c_str(), H5P_DEFAULT), H5Gclose);
  if (!group.valid()) return "";
  std::vector<std::string> names;
  try {
    names = hdf5::link_names(group.get(), "");
  } catch (const LogError&) {
    return "";
  }
  const std::string where = parent == "/" ? "the file's root" : fmt::format("the group \"{}\"", parent);
  if (names.empty()) return fmt::format(" ({} is empty)", where);
  constexpr size_t kMaxNames = 20;
  std::string list;
  for (size_t i = 0; i < std::min(names.size(), kMaxNames); ++i) {
    list += fmt::format("{}\"{}\"", i > 0 ? ", " : "", names[i]);
  }
  if (names.size() > kMaxNames) list += fmt::format(", ... ({} more)", names.size() - kMaxNames);
  return fmt::format(" ({} holds: {})", where, list);
}

DataMatrix read_hdf5(const Source& src, const std::string& dataset, int64_t expected_cols) {
  // the file: present, readable, HDF5
  read_bytes(src, false);
  hdf5::silence_hdf5_errors();
  if (H5Fis_hdf5(src.path.c_str()) <= 0) fail(src, "not an HDF5 file");
  hdf5::Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  if (fapl.valid()) H5Pset_file_locking(fapl.get(), false, true);  // as the run log's reader does
  hdf5::Handle file(H5Fopen(src.path.c_str(), H5F_ACC_RDONLY, fapl.valid() ? fapl.get() : H5P_DEFAULT), H5Fclose);
  if (!file.valid()) fail(src, fmt::format("cannot open the HDF5 file: {}", hdf5::hdf5_error_detail()));

  // the dataset: present, 2-D, numeric, not empty
  const std::string name = fmt::format("dataset \"{}\"", dataset);
  if (dataset.empty()) fail(src, "the dataset name is empty");
  if (!hdf5::link_exists(file.get(), dataset)) fail(src, fmt::format("no {}{}", name, listing(file.get(), dataset)));
  if (hdf5::object_type(file.get(), dataset) != H5I_DATASET) fail(src, fmt::format("\"{}\" is not a dataset", dataset));
  hdf5::Handle dset(H5Dopen2(file.get(), dataset.c_str(), H5P_DEFAULT), H5Dclose);
  hdf5::Handle space(dset.valid() ? H5Dget_space(dset.get()) : H5I_INVALID_HID, H5Sclose);
  hdf5::Handle type(dset.valid() ? H5Dget_type(dset.get()) : H5I_INVALID_HID, H5Tclose);
  if (!space.valid() || !type.valid()) fail(src, fmt::format("cannot open {}: {}", name, hdf5::hdf5_error_detail()));
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
  if (rank > 0) H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  std::vector<int64_t> shape(dims.begin(), dims.end());
  if (rank != 2) {
    fail(src, fmt::format("{} has shape {} ({}-D), expected a 2-D dataset (rows x columns)", name,
                          hdf5::shape_string(shape), std::max(rank, 0)));
  }
  const H5T_class_t type_class = H5Tget_class(type.get());
  if (type_class != H5T_FLOAT && type_class != H5T_INTEGER) {
    fail(src, fmt::format("{} has {}, expected a float or integer type", name, type_class_name(type_class)));
  }
  if (dims[0] == 0) fail(src, fmt::format("{} has no rows (shape {})", name, hdf5::shape_string(shape)));
  if (dims[1] == 0) fail(src, fmt::format("{} has no columns (shape {})", name, hdf5::shape_string(shape)));
  check_cols(src, name, shape[1], expected_cols);
  if (dims[0] > std::numeric_limits<size_t>::max() / sizeof(double) / dims[1]) {
    fail(src, fmt::format("{} is too large (shape {})", name, hdf5::shape_string(shape)));
  }

  // the values, converted to float64 by HDF5
  DataMatrix out;
  out.rows = shape[0];
  out.cols = shape[1];
  out.values.resize(static_cast<size_t>(dims[0] * dims[1]));
  if (H5Dread(dset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.values.data()) < 0) {
    fail(src, fmt::format("cannot read {}: {}", name, hdf5::hdf5_error_detail()));
  }
  const auto bad = std::find_if(out.values.begin(), out.values.end(), [](double v) { return !std::isfinite(v); });
  if (bad != out.values.end()) {
    const int64_t at = bad - out.values.begin();
    fail(src, fmt::format("{}: row {}, column {} (0-based) is {}, expected a finite number", name, at / out.cols,
                          at % out.cols, *bad));
  }
  return out;
}

}  // namespace

DataMatrix read_data_matrix(const std::string& path, const std::string& key, const std::string& dataset,
                            int64_t expected_cols) {
  const Source src{path, key};
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == ".csv" || ext == ".tsv" || ext == ".txt") return read_text(src, ext, expected_cols);
  if (ext == ".h5" || ext == ".hdf5") return read_hdf5(src, dataset, expected_cols);
  fail(src, fmt::format("unknown file extension {}, expected .csv, .tsv or .txt (text) or .h5 or .hdf5 (HDF5)",
                        ext.empty() ? std::string("(none)") : in_quotes(ext)));
}

}  // namespace gfn

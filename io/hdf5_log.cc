// The run log's writer (io/hdf5_log.h): Hdf5Log buffers rows and writes them in flush(), in
// SWMR mode after its first flush. The reader is io/hdf5_log_reader.cc; the HDF5 helpers both
// use are io/internal/hdf5_util.h.
#include "io/hdf5_log.h"

#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <system_error>

#include <fmt/format.h>

#include "core/fault.h"

#include "io/internal/hdf5_util.h"

namespace gfn {

using namespace hdf5;  // the helpers shared with the reader / writer

namespace {

namespace fs = std::filesystem;

// "<file>: cannot write (<reason>)" from a LogError of a flush: the system's reason where HDF5's
// message carries its errno ("... errno = 28, error message = 'No space left on device' ..."),
// else HDF5's own words.
std::string write_error_message(const std::string& file, const LogError& e) {
  const std::string m = e.what();
  const size_t at = m.find("errno = ");
  if (at != std::string::npos) {
    const int err = std::atoi(m.c_str() + at + 8);
    if (err > 0) return fmt::format("{}: cannot write ({})", file, std::strerror(err));
  }
  std::string detail = m.rfind(file + ": ", 0) == 0 ? m.substr(file.size() + 2) : m;
  if (detail.size() > 160) detail = detail.substr(0, 160) + "...";
  return fmt::format("{}: cannot write ({})", file, detail);
}

// HDF5 closes what is still open at exit (H5_term_library); a file whose write failed (a full
// disk, a file-size limit) cannot be closed, and HDF5 1.10's close callback then dereferences
// its half-released state and crashes the process after gfn has reported the error. Every log
// and reader is closed by its destructor, so the exit-time cleanup has nothing else to do: it is
// turned off before the library is first used (H5dont_atexit does not initialise it).
const bool kNoExitCleanup = [] {
  H5dont_atexit();
  return true;
}();

// Columns of append_row stored as int64 rather than float64.
bool is_int_column(const std::string& name) { return name == "iteration" || name == "trajectories"; }

// Checks a group path ("train", "eval/extra"): non-empty components, no "." or "..".
void check_group(const std::string& file, const std::string& group) {
  size_t start = 0;
  while (true) {
    const size_t end = group.find('/', start);
    const std::string part = group.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (part.empty() || part == "." || part == "..")
      throw LogError(fmt::format("{}: invalid group name \"{}\"", file, group));
    if (end == std::string::npos) return;
    start = end + 1;
  }
}

// Checks a dataset name: non-empty, no '/', not "." or "..".
void check_name(const std::string& file, const std::string& group, const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
    throw LogError(fmt::format("{}: invalid dataset name \"{}\" in group {}", file, name, group));
}

}  // namespace

std::string utc_now_iso8601() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Hdf5Log

struct Hdf5Log::Impl {
  // One column of a scalar table: values of rows [file_rows, table rows) wait in `pending_*`.
  struct Column {
    bool is_int = false;
    int64_t file_rows = 0;
    std::vector<double> pending_f;
    std::vector<int64_t> pending_i;
    Handle dset;
    size_t pending() const { return is_int ? pending_i.size() : pending_f.size(); }
  };
  // The scalar table of one group (append_row).
  struct Table {
    int64_t rows = 0;  // rows in the file and buffered
    std::map<std::string, Column> columns;
  };
  // One N-D dataset (append): `pending_rows` rows of `row_shape` wait in `pending`.
  struct Array {
    LogDType dtype = LogDType::kFloat64;
    std::vector<int64_t> row_shape;
    int64_t file_rows = 0;
    int64_t pending_rows = 0;
    std::vector<unsigned char> pending;
    Handle dset;
  };
  // A fixed-shape dataset (write_fixed), written once.
  struct Fixed {
    LogDType dtype = LogDType::kFloat64;
    std::vector<int64_t> shape;
    std::vector<unsigned char> data;
    bool written = false;
  };

  std::string path_;
  Handle file_;  // declared first: closed after every dataset
  bool swmr_ = false;  // SWMR write mode is on
  std::string failed_;  // the WriteError message of a flush that failed (then no more writes)
  std::map<std::string, Table> tables_;  // by group
  std::map<std::string, Array> arrays_;  // by "group/name"
  std::map<std::string, Fixed> fixed_;   // by "group/name"

  // The table of `group`; on first use, the columns the file already holds (a resumed log).
  Table& table(const std::string& group) {
    auto it = tables_.find(group);
    if (it != tables_.end()) return it->second;
    Table& t = tables_[group];
    const hid_t file_id = file_.get();
    if (!link_exists(file_id, group) || object_type(file_id, group) != H5I_GROUP) return t;
    Handle g(ok(H5Gopen2(file_id, group.c_str(), H5P_DEFAULT), path_, "cannot open /" + group), H5Gclose);
    for (const auto& name : link_names(g.get(), path_)) {
      if (object_type(g.get(), name) != H5I_DATASET) continue;
      const std::string dset_path = group + "/" + name;
      Column c;
      c.is_int = is_int_column(name);
      c.dset = Handle(ok(H5Dopen2(file_id, dset_path.c_str(), H5P_DEFAULT), path_, "cannot open /" + dset_path),
                      H5Dclose);
      const auto dims = dataset_dims(c.dset.get(), path_, "cannot open /" + dset_path).first;
      if (dims.size() != 1) throw LogError(fmt::format("{}: /{} is not a column (rank {})", path_, dset_path, dims.size()));
      c.file_rows = static_cast<int64_t>(dims[0]);
      t.rows = std::max(t.rows, c.file_rows);
      t.columns.emplace(name, std::move(c));
    }
    for (auto& [name, c] : t.columns)
      if (c.file_rows != t.rows)
        throw LogError(fmt::format("{}: the columns of /{} have different lengths", path_, group));
    return t;
  }

  // Adds the column `name` to `t` if missing, back-filled for the earlier rows.
  static void add_column(Table& t, const std::string& name) {
    if (t.columns.count(name)) return;
    Column column;
    column.is_int = is_int_column(name);
    if (column.is_int) column.pending_i.assign(t.rows, 0);
    else column.pending_f.assign(t.rows, std::numeric_limits<double>::quiet_NaN());
    t.columns.emplace(name, std::move(column));
  }

  // The N-D dataset `key`, registered with `dtype` and `row_shape` on first use (taking over the
  // rows the file already holds); LogError when they differ from the registered ones.
  Array& array(const std::string& key, LogDType dtype, const std::vector<int64_t>& row_shape) {
    auto it = arrays_.find(key);
    if (it == arrays_.end()) {
      Array a;
      a.dtype = dtype;
      a.row_shape = row_shape;
      if (link_exists(file_.get(), key) && object_type(file_.get(), key) == H5I_DATASET) {  // a resumed log
        a.dset = Handle(ok(H5Dopen2(file_.get(), key.c_str(), H5P_DEFAULT), path_, "cannot open /" + key), H5Dclose);
        const auto dims = dataset_dims(a.dset.get(), path_, "cannot open /" + key).first;
        const auto file_dtype = log_dtype_of(a.dset.get());
        if (dims.empty() || !file_dtype)
          throw LogError(fmt::format("{}: /{} in the file is not an extendable dataset of gfn's types", path_, key));
        a.dtype = *file_dtype;
        a.row_shape.assign(dims.begin() + 1, dims.end());
        a.file_rows = static_cast<int64_t>(dims[0]);
      }
      it = arrays_.emplace(key, std::move(a)).first;
    }
    const Array& a = it->second;
    if (a.dtype != dtype)
      throw LogError(fmt::format("{}: /{}: dtype {} does not match earlier rows ({})", path_, key, dtype_name(dtype),
                                 dtype_name(a.dtype)));
    if (a.row_shape != row_shape)
      throw LogError(fmt::format("{}: /{}: row shape {} does not match earlier rows {}", path_, key,
                                 shape_string(row_shape), shape_string(a.row_shape)));
    return it->second;
  }

  // Whether the next flush must create a dataset (which SWMR mode cannot).
  bool creates_datasets() const {
    const hid_t file_id = file_.get();
    for (const auto& [group, t] : tables_)
      for (const auto& [name, c] : t.columns)
        if (!c.dset.valid() && !link_exists(file_id, group + "/" + name)) return true;
    for (const auto& [key, a] : arrays_)
      if (!a.dset.valid() && !link_exists(file_id, key)) return true;
    for (const auto& [key, f] : fixed_)
      if (!f.written && !link_exists(file_id, key)) return true;
    return false;
  }

  // Leaves SWMR mode: closes every dataset and the file, and reopens it read-write.
  void leave_swmr() {
    for (auto& [group, t] : tables_)
      for (auto& [name, c] : t.columns) c.dset.reset();
    for (auto& [key, a] : arrays_) a.dset.reset();
    file_.reset();
    swmr_ = false;
    Handle fapl = file_access(path_);
    file_ = Handle(ok(H5Fopen(path_.c_str(), H5F_ACC_RDWR, fapl.get()), path_, "cannot reopen"), H5Fclose);
  }

  // The dataset `dset_path` (no leading '/'): opened when the file has it, else created.
  Handle dataset(const std::string& dset_path, LogDType dtype, const std::vector<hsize_t>& row_dims,
                 const std::vector<hsize_t>& chunk) {
    if (link_exists(file_.get(), dset_path))
      return Handle(ok(H5Dopen2(file_.get(), dset_path.c_str(), H5P_DEFAULT), path_, "cannot open /" + dset_path),
                    H5Dclose);
    Handle file_type = hdf5_type(dtype, true, path_);
    return create_dataset(file_.get(), path_, "/" + dset_path, file_type.get(), row_dims, chunk);
  }
};

Hdf5Log::Hdf5Log(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

std::unique_ptr<Hdf5Log> Hdf5Log::create(const std::string& path, const LogAttributes& attrs) {
  silence_hdf5_errors();
  // never touch an existing file
  std::error_code ec;
  if (fs::exists(fs::symlink_status(path, ec)))
    throw LogError(fmt::format("{}: already exists (a log is never overwritten)", path));
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty() && !fs::is_directory(parent, ec))
    throw LogError(fmt::format("{}: cannot create: directory {} does not exist", path, parent.string()));

  // create exclusively: a file appearing meanwhile is not truncated either
  Handle fapl = file_access(path);
  const hid_t file_id = H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get());
  if (file_id < 0) {
    if (fs::exists(fs::symlink_status(path, ec)))
      throw LogError(fmt::format("{}: already exists (a log is never overwritten)", path));
    try {
      ok(file_id, path, "cannot create");
    } catch (const LogError& e) {
      fs::remove(path, ec);
      throw WriteError(write_error_message(path, e));
    }
  }
  auto impl = std::make_unique<Impl>();
  impl->path_ = path;
  impl->file_ = Handle(file_id, H5Fclose);

  // root attributes; a half-written file is removed
  try {
    const hid_t root = impl->file_.get();
    write_int_attr(root, path, "schema_version", kLogSchemaVersion);
    write_string_attr(root, path, "gfn_version", attrs.gfn_version);
    write_string_attr(root, path, "created_utc", attrs.created_utc);
    write_string_attr(root, path, "config", attrs.config_toml);
    write_string_attr(root, path, "env", attrs.env);
    write_string_attr(root, path, "objective", attrs.objective);
    write_string_attr(root, path, "device", attrs.device);
    write_int_attr(root, path, "seed", attrs.seed);
    ok(H5Fflush(root, H5F_SCOPE_LOCAL), path, "cannot flush");
  } catch (const LogError& e) {
    impl.reset();
    fs::remove(path, ec);
    throw WriteError(write_error_message(path, e));  // a full disk, a file-size limit
  } catch (...) {
    impl.reset();
    fs::remove(path, ec);
    throw;
  }
  return std::unique_ptr<Hdf5Log>(new Hdf5Log(std::move(impl)));
}

bool Hdf5Log::repair_cut_short(const std::string& path) {
  // superblock versions 2 and 3 (what SWMR files have): the signature (8 bytes), version, the
  // sizes of offsets and lengths, flags, then the base address, the extension's address and
  // the end-of-file address, each of the size of offsets (8)
  std::ifstream in(path, std::ios::binary);
  unsigned char sb[36] = {};
  if (!in.read(reinterpret_cast<char*>(sb), sizeof sb)) return false;
  static const unsigned char kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  if (std::memcmp(sb, kSignature, 8) != 0 || (sb[8] != 2 && sb[8] != 3) || sb[9] != 8) return false;
  uint64_t base = 0, eof = 0;
  for (int i = 7; i >= 0; --i) {
    base = (base << 8) | sb[12 + i];
    eof = (eof << 8) | sb[28 + i];
  }
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  if (ec || base != 0 || eof <= size || eof > size + (uint64_t{1} << 34)) return false;  // 16 GiB: not a cut log
  if (::truncate(path.c_str(), static_cast<off_t>(eof)) != 0)
    throw WriteError(fmt::format("{}: cannot repair the log cut short by a failed write ({})", path,
                                 std::strerror(errno)));
  return true;
}

std::unique_ptr<Hdf5Log> Hdf5Log::open_append(const std::string& path, int64_t last_iteration) {
  silence_hdf5_errors();
  std::error_code ec;
  if (!fs::exists(path, ec)) throw LogError(fmt::format("{}: cannot open: no such file", path));
  if (fs::is_directory(path, ec)) throw LogError(fmt::format("{}: cannot open: is a directory", path));
  Handle fapl = file_access(path, /*clear_flags=*/true);
  const hid_t file_id = H5Fopen(path.c_str(), H5F_ACC_RDWR, fapl.get());
  if (file_id < 0) throw LogError(fmt::format("{}: cannot open for appending: not an HDF5 file, truncated or read-only", path));
  auto impl = std::make_unique<Impl>();
  impl->path_ = path;
  impl->file_ = Handle(file_id, H5Fclose);
  if (H5Aexists(file_id, "schema_version") <= 0)
    throw LogError(fmt::format("{}: not a gfn log (no schema_version attribute)", path));
  const int64_t version =
      read_int_attr(file_id, path, "schema_version", "not a gfn log (schema_version is not an integer)");
  if (version != kLogSchemaVersion)
    throw LogError(fmt::format("{}: schema_version {}: only logs of schema_version {} can be appended to", path,
                               version, kLogSchemaVersion));

  // drop the rows after last_iteration
  for (const auto& group : link_names(file_id, path)) {
    if (object_type(file_id, group) != H5I_GROUP) continue;
    Handle g(ok(H5Gopen2(file_id, group.c_str(), H5P_DEFAULT), path, "cannot open /" + group), H5Gclose);
    int64_t keep = 0;
    if (link_exists(g.get(), "iteration") && object_type(g.get(), "iteration") == H5I_DATASET) {
      Handle d(ok(H5Dopen2(g.get(), "iteration", H5P_DEFAULT), path, "cannot open /" + group + "/iteration"), H5Dclose);
      const auto n = dataset_dims(d.get(), path, "cannot read /" + group + "/iteration").first;
      std::vector<int64_t> it(n.empty() ? 0 : n[0]);
      if (!it.empty())
        ok(H5Dread(d.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, it.data()), path,
           "cannot read /" + group + "/iteration");
      while (keep < static_cast<int64_t>(it.size()) && it[keep] <= last_iteration) ++keep;
    }
    for (const auto& name : link_names(g.get(), path)) {
      if (object_type(g.get(), name) != H5I_DATASET) continue;
      const std::string what = "cannot truncate /" + group + "/" + name;
      Handle d(ok(H5Dopen2(g.get(), name.c_str(), H5P_DEFAULT), path, what), H5Dclose);
      auto [dims, maxdims] = dataset_dims(d.get(), path, what);
      if (dims.empty() || maxdims[0] != H5S_UNLIMITED || dims[0] <= static_cast<hsize_t>(keep)) continue;
      dims[0] = static_cast<hsize_t>(keep);
      ok(H5Dset_extent(d.get(), dims.data()), path, what);
    }
  }
  ok(H5Fflush(file_id, H5F_SCOPE_LOCAL), path, "cannot flush");
  ok(H5Fstart_swmr_write(file_id), path, "cannot start SWMR writing");
  impl->swmr_ = true;
  return std::unique_ptr<Hdf5Log>(new Hdf5Log(std::move(impl)));
}

Hdf5Log::~Hdf5Log() {
  if (!impl_ || !impl_->failed_.empty()) return;  // after a failed write, closing is all that is left
  try {
    flush();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gfn: warning: run log not fully written: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "gfn: warning: run log not fully written: %s\n", impl_->path_.c_str());
  }
}

const std::string& Hdf5Log::path() const { return impl_->path_; }

void Hdf5Log::append_row(const std::string& group, const std::vector<std::pair<std::string, double>>& row) {
  Impl& im = *impl_;
  check_group(im.path_, group);
  // validate the whole row before buffering any of it
  std::map<std::string, double> values;
  for (const auto& [name, value] : row) {
    check_name(im.path_, group, name);
    if (!values.emplace(name, value).second)
      throw LogError(fmt::format("{}: column {} given twice in one row of /{}", im.path_, name, group));
    if (im.arrays_.count(group + "/" + name) || im.fixed_.count(group + "/" + name))
      throw LogError(fmt::format("{}: /{}/{} is an N-D dataset, not a column", im.path_, group, name));
    if (is_int_column(name) && !(std::fabs(value) < 9.2e18))
      throw LogError(fmt::format("{}: /{}/{}: value {} is not an integer", im.path_, group, name, value));
  }

  // new columns, back-filled for the earlier rows
  Impl::Table& table = im.table(group);
  for (const auto& [name, value] : values) Impl::add_column(table, name);

  // one value per column; missing ones get NaN (0 for int columns)
  for (auto& [name, column] : table.columns) {
    const auto it = values.find(name);
    if (column.is_int) column.pending_i.push_back(it == values.end() ? 0 : static_cast<int64_t>(std::llround(it->second)));
    else column.pending_f.push_back(it == values.end() ? std::numeric_limits<double>::quiet_NaN() : it->second);
  }
  ++table.rows;
}

void Hdf5Log::declare_columns(const std::string& group, const std::vector<std::string>& names) {
  Impl& im = *impl_;
  check_group(im.path_, group);
  for (const auto& name : names) {
    check_name(im.path_, group, name);
    if (im.arrays_.count(group + "/" + name) || im.fixed_.count(group + "/" + name))
      throw LogError(fmt::format("{}: /{}/{} is an N-D dataset, not a column", im.path_, group, name));
  }
  Impl::Table& table = im.table(group);
  for (const auto& name : names) Impl::add_column(table, name);
}

namespace {

// Elements of one row of `row_shape`; LogError for a dim <= 0 or an overflow.
int64_t row_elements(const std::string& file, const std::string& key, const std::vector<int64_t>& row_shape) {
  int64_t row_elems = 1;
  for (int64_t d : row_shape) {
    if (d <= 0) throw LogError(fmt::format("{}: /{}: row shape {} has a dim <= 0", file, key, shape_string(row_shape)));
    if (row_elems > std::numeric_limits<int64_t>::max() / d)
      throw LogError(fmt::format("{}: /{}: row shape {} is too large", file, key, shape_string(row_shape)));
    row_elems *= d;
  }
  return row_elems;
}

}  // namespace

void Hdf5Log::append(const std::string& group, const std::string& name, LogDType dtype,
                     const std::vector<int64_t>& row_shape, const void* data, int64_t rows) {
  Impl& im = *impl_;
  const std::string key = group + "/" + name;
  // validate everything before buffering
  check_group(im.path_, group);
  check_name(im.path_, group, name);
  if (rows < 0) throw LogError(fmt::format("{}: /{}: negative row count {}", im.path_, key, rows));
  if (rows == 0) return;
  if (data == nullptr) throw LogError(fmt::format("{}: /{}: null data for {} rows", im.path_, key, rows));
  const int64_t row_elems = row_elements(im.path_, key, row_shape);
  const auto table = im.tables_.find(group);
  if ((table != im.tables_.end() && table->second.columns.count(name)) || im.fixed_.count(key))
    throw LogError(fmt::format("{}: /{} is a column of append_row, not an N-D dataset", im.path_, key));
  Impl::Array& a = im.array(key, dtype, row_shape);

  // copy the rows (bools normalized to 0/1, valid values of the enum)
  const size_t bytes = static_cast<size_t>(rows) * static_cast<size_t>(row_elems) * dtype_size(dtype);
  const auto* src = static_cast<const unsigned char*>(data);
  const size_t old_size = a.pending.size();
  a.pending.insert(a.pending.end(), src, src + bytes);
  if (dtype == LogDType::kBool)
    for (size_t i = old_size; i < a.pending.size(); ++i) a.pending[i] = a.pending[i] != 0 ? 1 : 0;
  a.pending_rows += rows;
}

void Hdf5Log::declare(const std::string& group, const std::string& name, LogDType dtype,
                      const std::vector<int64_t>& row_shape) {
  Impl& im = *impl_;
  const std::string key = group + "/" + name;
  check_group(im.path_, group);
  check_name(im.path_, group, name);
  row_elements(im.path_, key, row_shape);  // its checks of the shape
  const auto table = im.tables_.find(group);
  if ((table != im.tables_.end() && table->second.columns.count(name)) || im.fixed_.count(key))
    throw LogError(fmt::format("{}: /{} is a column of append_row, not an N-D dataset", im.path_, key));
  im.array(key, dtype, row_shape);
}

void Hdf5Log::write_fixed(const std::string& group, const std::string& name, LogDType dtype,
                          const std::vector<int64_t>& shape, const void* data) {
  Impl& im = *impl_;
  const std::string key = group + "/" + name;
  check_group(im.path_, group);
  check_name(im.path_, group, name);
  const int64_t elems = row_elements(im.path_, key, shape);
  if (data == nullptr) throw LogError(fmt::format("{}: /{}: null data", im.path_, key));
  const auto table = im.tables_.find(group);
  if ((table != im.tables_.end() && table->second.columns.count(name)) || im.arrays_.count(key) ||
      im.fixed_.count(key))
    throw LogError(fmt::format("{}: /{} is already written", im.path_, key));
  Impl::Fixed f;
  f.dtype = dtype;
  f.shape = shape;
  const auto* src = static_cast<const unsigned char*>(data);
  f.data.assign(src, src + static_cast<size_t>(elems) * dtype_size(dtype));
  im.fixed_.emplace(key, std::move(f));
}


void Hdf5Log::flush() {
  Impl& im = *impl_;
  if (!im.failed_.empty()) throw WriteError(im.failed_);
  try {
    flush_buffers();
  } catch (const LogError& e) {
    // the file holds every row up to the last flush that completed (SWMR keeps it consistent);
    // nothing more is written to it
    im.failed_ = write_error_message(im.path_, e);
    try {
      repair_cut_short(im.path_);  // works where a hole needs no room (a full disk, not a size limit)
    } catch (const WriteError&) {
    }
    throw WriteError(im.failed_);
  }
}

void Hdf5Log::flush_buffers() {
  silence_hdf5_errors();
  Impl& im = *impl_;
  // SWMR cannot create datasets: leave it for this flush
  if (im.swmr_ && im.creates_datasets()) im.leave_swmr();

  // scalar tables
  for (auto& [group, table] : im.tables_) {
    for (auto& [name, column] : table.columns) {
      const std::string dset_path = group + "/" + name;
      const LogDType dtype = column.is_int ? LogDType::kInt64 : LogDType::kFloat64;
      if (!column.dset.valid()) column.dset = im.dataset(dset_path, dtype, {}, chunk_dims({}, 8));
      const int64_t rows = static_cast<int64_t>(column.pending());
      if (rows == 0) continue;
      Handle mem_type = hdf5_type(dtype, false, im.path_);
      const void* buf = column.is_int ? static_cast<const void*>(column.pending_i.data())
                                      : static_cast<const void*>(column.pending_f.data());
      write_rows(column.dset.get(), mem_type.get(), column.file_rows, rows, {}, buf, im.path_, "/" + dset_path);
      column.file_rows += rows;
      column.pending_i.clear();
      column.pending_f.clear();
    }
  }

  fault_point("log.flush");  // the crash tests' kill between the tables and the N-D datasets

  // N-D datasets
  for (auto& [key, a] : im.arrays_) {
    const std::vector<hsize_t> row_dims(a.row_shape.begin(), a.row_shape.end());
    if (!a.dset.valid()) a.dset = im.dataset(key, a.dtype, row_dims, chunk_dims(a.row_shape, dtype_size(a.dtype)));
    if (a.pending_rows == 0) continue;
    Handle mem_type = hdf5_type(a.dtype, false, im.path_);
    write_rows(a.dset.get(), mem_type.get(), a.file_rows, a.pending_rows, row_dims, a.pending.data(), im.path_,
               "/" + key);
    a.file_rows += a.pending_rows;
    a.pending_rows = 0;
    a.pending.clear();
  }

  // fixed-shape datasets, once (a resumed log has them already)
  for (auto& [key, f] : im.fixed_) {
    if (f.written) continue;
    if (!link_exists(im.file_.get(), key)) {
      const std::string what = "cannot write /" + key;
      const std::vector<hsize_t> dims(f.shape.begin(), f.shape.end());
      Handle space(ok(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), im.path_, what), H5Sclose);
      Handle lcpl(ok(H5Pcreate(H5P_LINK_CREATE), im.path_, what), H5Pclose);
      ok(H5Pset_create_intermediate_group(lcpl.get(), 1), im.path_, what);
      Handle file_type = hdf5_type(f.dtype, true, im.path_);
      Handle dset(ok(H5Dcreate2(im.file_.get(), key.c_str(), file_type.get(), space.get(), lcpl.get(), H5P_DEFAULT,
                                H5P_DEFAULT),
                     im.path_, what),
                  H5Dclose);
      Handle mem_type = hdf5_type(f.dtype, false, im.path_);
      ok(H5Dwrite(dset.get(), mem_type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, f.data.data()), im.path_, what);
    }
    f.written = true;
    f.data.clear();
    f.data.shrink_to_fit();
  }

  ok(H5Fflush(im.file_.get(), H5F_SCOPE_LOCAL), im.path_, "cannot flush");
  if (!im.swmr_) {
    ok(H5Fstart_swmr_write(im.file_.get()), im.path_, "cannot start SWMR writing");
    im.swmr_ = true;
  }
}

}  // namespace gfn

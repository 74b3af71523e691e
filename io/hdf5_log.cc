#include "io/hdf5_log.h"

#include <hdf5.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <system_error>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace gfn {

namespace {

namespace fs = std::filesystem;

// An owned HDF5 identifier, closed by its H5?close function on destruction (RAII for hid_t).
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  Handle(Handle&& other) noexcept : id_(other.id_), close_(other.close_) { other.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = other.id_;
      close_ = other.close_;
      other.id_ = H5I_INVALID_HID;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }

  void reset() {
    if (id_ >= 0 && close_ != nullptr) close_(id_);
    id_ = H5I_INVALID_HID;
  }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer close_ = nullptr;
};

// Stops HDF5 from printing its error stack: users see only our LogError messages.
void silence_hdf5_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

// The most specific message on HDF5's error stack (empty if none), on one line.
std::string hdf5_error_detail() {
  std::string detail;
  auto walk = [](unsigned n, const H5E_error2_t* err, void* out) -> herr_t {
    if (n == 0 && err != nullptr && err->desc != nullptr) *static_cast<std::string*>(out) = err->desc;
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk, &detail);
  std::replace(detail.begin(), detail.end(), '\n', ' ');
  return detail;
}

// Throws LogError "<file>: <what>[: <hdf5 detail>]" when an HDF5 call returned a negative value.
template <class T>
T ok(T result, const std::string& file, const std::string& what) {
  if (result < 0) {
    const std::string detail = hdf5_error_detail();
    throw LogError(detail.empty() ? fmt::format("{}: {}", file, what) : fmt::format("{}: {}: {}", file, what, detail));
  }
  return result;
}

// A variable-length UTF-8 string type (read by h5py as str).
Handle vlen_utf8_type(const std::string& file) {
  Handle type(ok(H5Tcopy(H5T_C_S1), file, "cannot create string type"), H5Tclose);
  ok(H5Tset_size(type.get(), H5T_VARIABLE), file, "cannot create string type");
  ok(H5Tset_cset(type.get(), H5T_CSET_UTF8), file, "cannot create string type");
  return type;
}

// h5py's boolean: an enum of int8 with FALSE = 0 and TRUE = 1 over `base`.
Handle bool_type(hid_t base, const std::string& file) {
  Handle type(ok(H5Tenum_create(base), file, "cannot create bool type"), H5Tclose);
  const int8_t f = 0, t = 1;
  ok(H5Tenum_insert(type.get(), "FALSE", &f), file, "cannot create bool type");
  ok(H5Tenum_insert(type.get(), "TRUE", &t), file, "cannot create bool type");
  return type;
}

// Bytes per element of `dtype` in memory.
size_t dtype_size(LogDType dtype) {
  switch (dtype) {
    case LogDType::kFloat64: return sizeof(double);
    case LogDType::kFloat32: return sizeof(float);
    case LogDType::kInt64: return sizeof(int64_t);
    case LogDType::kBool: return sizeof(uint8_t);
  }
  return 1;
}

const char* dtype_name(LogDType dtype) {
  switch (dtype) {
    case LogDType::kFloat64: return "float64";
    case LogDType::kFloat32: return "float32";
    case LogDType::kInt64: return "int64";
    case LogDType::kBool: return "bool";
  }
  return "?";
}

// The file (`in_file`) or memory type of `dtype`, as an owned copy.
Handle hdf5_type(LogDType dtype, bool in_file, const std::string& file) {
  switch (dtype) {
    case LogDType::kFloat64:
      return Handle(ok(H5Tcopy(in_file ? H5T_IEEE_F64LE : H5T_NATIVE_DOUBLE), file, "cannot copy type"), H5Tclose);
    case LogDType::kFloat32:
      return Handle(ok(H5Tcopy(in_file ? H5T_IEEE_F32LE : H5T_NATIVE_FLOAT), file, "cannot copy type"), H5Tclose);
    case LogDType::kInt64:
      return Handle(ok(H5Tcopy(in_file ? H5T_STD_I64LE : H5T_NATIVE_INT64), file, "cannot copy type"), H5Tclose);
    case LogDType::kBool: return bool_type(in_file ? H5T_STD_I8LE : H5T_NATIVE_INT8, file);
  }
  throw LogError(fmt::format("{}: unknown dtype", file));
}

// "[5, 2]"
std::string shape_string(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

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

// Chunk dims of a dataset whose rows have shape `row_shape`: 1024 rows for scalar rows, else
// about 64 KiB (trailing dims halved first when one row alone is bigger).
std::vector<hsize_t> chunk_dims(const std::vector<int64_t>& row_shape, size_t elem_size) {
  if (row_shape.empty()) return {1024};
  constexpr double kTargetBytes = 64.0 * 1024.0;
  std::vector<hsize_t> chunk{1};
  chunk.insert(chunk.end(), row_shape.begin(), row_shape.end());
  auto bytes = [&] {
    double b = static_cast<double>(elem_size);
    for (hsize_t d : chunk) b *= static_cast<double>(d);
    return b;
  };
  // shrink a row that alone exceeds the target
  while (bytes() > kTargetBytes) {
    auto largest = std::max_element(chunk.begin() + 1, chunk.end());
    if (*largest <= 1) break;
    *largest = (*largest + 1) / 2;
  }
  chunk[0] = std::max<hsize_t>(1, static_cast<hsize_t>(kTargetBytes / bytes()));
  return chunk;
}

// Creates the empty dataset `dset_path` (and its groups) of rows shaped `row_dims`,
// extendable along the first axis.
Handle create_dataset(hid_t file_id, const std::string& file, const std::string& dset_path, hid_t file_type,
                      const std::vector<hsize_t>& row_dims, const std::vector<hsize_t>& chunk) {
  const std::string what = "cannot create " + dset_path;
  std::vector<hsize_t> dims{0}, maxdims{H5S_UNLIMITED};
  dims.insert(dims.end(), row_dims.begin(), row_dims.end());
  maxdims.insert(maxdims.end(), row_dims.begin(), row_dims.end());
  const int rank = static_cast<int>(dims.size());
  Handle space(ok(H5Screate_simple(rank, dims.data(), maxdims.data()), file, what), H5Sclose);
  Handle dcpl(ok(H5Pcreate(H5P_DATASET_CREATE), file, what), H5Pclose);
  ok(H5Pset_chunk(dcpl.get(), rank, chunk.data()), file, what);
  // a checksum per chunk: a corrupted chunk is a read error, not silently wrong numbers
  ok(H5Pset_fletcher32(dcpl.get()), file, what);
  Handle lcpl(ok(H5Pcreate(H5P_LINK_CREATE), file, what), H5Pclose);
  ok(H5Pset_create_intermediate_group(lcpl.get(), 1), file, what);
  return Handle(ok(H5Dcreate2(file_id, dset_path.c_str(), file_type, space.get(), lcpl.get(), dcpl.get(), H5P_DEFAULT),
                   file, what),
                H5Dclose);
}

// Extends `dset` from `file_rows` to `file_rows + rows` rows and writes `buf` (of `mem_type`)
// into the new rows.
void write_rows(hid_t dset, hid_t mem_type, int64_t file_rows, int64_t rows, const std::vector<hsize_t>& row_dims,
                const void* buf, const std::string& file, const std::string& dset_path) {
  const std::string what = "cannot write " + dset_path;
  std::vector<hsize_t> dims{static_cast<hsize_t>(file_rows + rows)};
  std::vector<hsize_t> start{static_cast<hsize_t>(file_rows)};
  std::vector<hsize_t> count{static_cast<hsize_t>(rows)};
  dims.insert(dims.end(), row_dims.begin(), row_dims.end());
  count.insert(count.end(), row_dims.begin(), row_dims.end());
  start.resize(dims.size(), 0);
  const int rank = static_cast<int>(dims.size());
  ok(H5Dset_extent(dset, dims.data()), file, what);
  Handle file_space(ok(H5Dget_space(dset), file, what), H5Sclose);
  ok(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr), file, what);
  Handle mem_space(ok(H5Screate_simple(rank, count.data(), nullptr), file, what), H5Sclose);
  ok(H5Dwrite(dset, mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, buf), file, what);
}

// Writes the scalar root attribute `name` as a variable-length UTF-8 string.
void write_string_attr(hid_t obj, const std::string& file, const char* name, const std::string& value) {
  const std::string what = fmt::format("cannot write attribute {}", name);
  Handle type = vlen_utf8_type(file);
  Handle space(ok(H5Screate(H5S_SCALAR), file, what), H5Sclose);
  Handle attr(ok(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), file, what), H5Aclose);
  const char* text = value.c_str();
  ok(H5Awrite(attr.get(), type.get(), &text), file, what);
}

// Reads the scalar integer attribute `name` of `obj`; LogError "<file>: <not_int>" when it is
// not one.
int64_t read_int_attr(hid_t obj, const std::string& file, const std::string& name, const std::string& not_int) {
  const std::string what = "cannot read attribute " + name;
  Handle attr(ok(H5Aopen(obj, name.c_str(), H5P_DEFAULT), file, what), H5Aclose);
  Handle type(ok(H5Aget_type(attr.get()), file, what), H5Tclose);
  Handle space(ok(H5Aget_space(attr.get()), file, what), H5Sclose);
  if (H5Tget_class(type.get()) != H5T_INTEGER || H5Sget_simple_extent_npoints(space.get()) != 1)
    throw LogError(fmt::format("{}: {}", file, not_int));
  int64_t value = 0;
  ok(H5Aread(attr.get(), H5T_NATIVE_INT64, &value), file, what);
  return value;
}

// Writes the scalar root attribute `name` as int64.
void write_int_attr(hid_t obj, const std::string& file, const char* name, int64_t value) {
  const std::string what = fmt::format("cannot write attribute {}", name);
  Handle space(ok(H5Screate(H5S_SCALAR), file, what), H5Sclose);
  Handle attr(ok(H5Acreate2(obj, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), file, what), H5Aclose);
  ok(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value), file, what);
}

// File access properties shared by writer and reader. File locking is off so that readers in
// other processes can open the log while a run writes it (HDF5 requires the same setting for
// both opens of one file in one process). The format is 1.10's (superblock v3), which SWMR needs.
// With `clear_flags`, the "open for writing" flags a killed writer left are ignored (read-only
// opens) or cleared (read-write opens), as `h5clear -s` does.
Handle file_access(const std::string& file, bool clear_flags = false) {
  Handle fapl(ok(H5Pcreate(H5P_FILE_ACCESS), file, "cannot create file access properties"), H5Pclose);
  ok(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_V110), file, "cannot set format bounds");
  ok(H5Pset_file_locking(fapl.get(), false, true), file, "cannot disable file locking");
  if (clear_flags) {
    hbool_t clear = true;  // the property h5clear sets
    ok(H5Pset(fapl.get(), "clear_status_flags", &clear), file, "cannot set clear_status_flags");
  }
  return fapl;
}

// Whether the object `path` ("train/loss") exists, checking each component (H5Lexists fails on a
// missing intermediate group).
bool link_exists(hid_t loc, const std::string& path) {
  size_t end = 0;
  while (end != std::string::npos) {
    end = path.find('/', end + 1);
    if (H5Lexists(loc, path.substr(0, end).c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return true;
}

// The dims and maximum dims of a dataset.
std::pair<std::vector<hsize_t>, std::vector<hsize_t>> dataset_dims(hid_t dset, const std::string& file,
                                                                   const std::string& what) {
  Handle space(ok(H5Dget_space(dset), file, what), H5Sclose);
  const int rank = ok(H5Sget_simple_extent_ndims(space.get()), file, what);
  std::vector<hsize_t> dims(static_cast<size_t>(rank)), maxdims(static_cast<size_t>(rank));
  ok(H5Sget_simple_extent_dims(space.get(), dims.data(), maxdims.data()), file, what);
  return {dims, maxdims};
}

// The names of the links in group `loc`, in name order. Native iteration, sorted here: on some
// corrupted groups, the sorted link table HDF5 builds for by-index access or ordered
// iteration frees an invalid pointer and aborts the process.
std::vector<std::string> link_names(hid_t loc, const std::string& file) {
  std::vector<std::string> names;
  auto collect = [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
    static_cast<std::vector<std::string>*>(out)->emplace_back(name);
    return 0;
  };
  hsize_t index = 0;
  ok(H5Literate(loc, H5_INDEX_NAME, H5_ITER_NATIVE, &index, collect, &names), file, "cannot list a group");
  std::sort(names.begin(), names.end());
  return names;
}

// The type of an object in `loc` (H5I_BADID when it cannot be opened).
H5I_type_t object_type(hid_t loc, const std::string& name) {
  Handle obj(H5Oopen(loc, name.c_str(), H5P_DEFAULT), H5Oclose);
  return obj.valid() ? H5Iget_type(obj.get()) : H5I_BADID;
}

// The LogDType of a dataset's file type, if it is one Hdf5Log writes.
std::optional<LogDType> log_dtype_of(hid_t dset) {
  Handle type(H5Dget_type(dset), H5Tclose);
  if (!type.valid()) return std::nullopt;
  const size_t size = H5Tget_size(type.get());
  switch (H5Tget_class(type.get())) {
    case H5T_FLOAT: return size == 8 ? std::optional(LogDType::kFloat64) : size == 4 ? std::optional(LogDType::kFloat32) : std::nullopt;
    case H5T_INTEGER: return size == 8 ? std::optional(LogDType::kInt64) : std::nullopt;
    case H5T_ENUM: return size == 1 ? std::optional(LogDType::kBool) : std::nullopt;
    default: return std::nullopt;
  }
}

// Normalizes a dataset or group path given to the reader: no leading '/'.
std::string relative(const std::string& path) {
  size_t start = path.find_first_not_of('/');
  return start == std::string::npos ? std::string() : path.substr(start);
}

// Reads an enum (e.g. h5py bool) dataset as its integer values.
std::vector<int64_t> read_enum(hid_t dset, hid_t file_type, size_t n, const std::string& file,
                               const std::string& dset_path) {
  const std::string what = "cannot read " + dset_path;
  Handle mem_type(ok(H5Tget_native_type(file_type, H5T_DIR_ASCEND), file, what), H5Tclose);
  Handle base(ok(H5Tget_super(mem_type.get()), file, what), H5Tclose);
  const size_t size = H5Tget_size(base.get());
  const bool is_signed = H5Tget_sign(base.get()) == H5T_SGN_2;
  if (size != 1 && size != 2 && size != 4 && size != 8)
    throw LogError(fmt::format("{}: {} has an unsupported enum base size {}", file, dset_path, size));
  std::vector<unsigned char> raw(n * size);
  ok(H5Dread(dset, mem_type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()), file, what);
  // widen each element by its base's size and sign
  std::vector<int64_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    const unsigned char* p = raw.data() + i * size;
    switch (size) {
      case 1: {
        int8_t s; uint8_t u;
        std::memcpy(&s, p, 1), std::memcpy(&u, p, 1);
        out[i] = is_signed ? s : u;
        break;
      }
      case 2: {
        int16_t s; uint16_t u;
        std::memcpy(&s, p, 2), std::memcpy(&u, p, 2);
        out[i] = is_signed ? s : u;
        break;
      }
      case 4: {
        int32_t s; uint32_t u;
        std::memcpy(&s, p, 4), std::memcpy(&u, p, 4);
        out[i] = is_signed ? s : static_cast<int64_t>(u);
        break;
      }
      default: {
        int64_t s;
        std::memcpy(&s, p, 8);
        out[i] = s;
        break;
      }
    }
  }
  return out;
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
    ok(file_id, path, "cannot create");
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
  } catch (...) {
    impl.reset();
    fs::remove(path, ec);
    throw;
  }
  return std::unique_ptr<Hdf5Log>(new Hdf5Log(std::move(impl)));
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
  if (!impl_) return;
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

// ---------------------------------------------------------------------------------------------
// Hdf5LogReader

struct Hdf5LogReader::Impl {
  std::string path_;
  Handle file_;
  int64_t schema_version_ = 0;

  // Opens the dataset `dataset_path`; LogError if there is none.
  Handle open_dataset(const std::string& dataset_path) const {
    const std::string rel = relative(dataset_path);
    if (rel.empty() || H5Lexists(file_.get(), rel.c_str(), H5P_DEFAULT) <= 0)
      throw LogError(fmt::format("{}: no dataset {}", path_, dataset_path));
    Handle obj(H5Oopen(file_.get(), rel.c_str(), H5P_DEFAULT), H5Oclose);
    if (!obj.valid() || H5Iget_type(obj.get()) != H5I_DATASET)
      throw LogError(fmt::format("{}: {} is not a dataset", path_, dataset_path));
    return Handle(ok(H5Dopen2(file_.get(), rel.c_str(), H5P_DEFAULT), path_, "cannot open " + dataset_path),
                  H5Dclose);
  }

  // Opens the root attribute `name`; LogError if there is none.
  Handle open_attribute(const std::string& name) const {
    if (H5Aexists(file_.get(), name.c_str()) <= 0)
      throw LogError(fmt::format("{}: no root attribute {}", path_, name));
    return Handle(ok(H5Aopen(file_.get(), name.c_str(), H5P_DEFAULT), path_, "cannot open attribute " + name),
                  H5Aclose);
  }

  // Reads the integer root attribute `name`.
  int64_t read_int_attribute(const std::string& name, const std::string& not_int) const {
    open_attribute(name);  // its own message when missing
    return read_int_attr(file_.get(), path_, name, not_int);
  }
};

Hdf5LogReader::Hdf5LogReader(const std::string& path) : impl_(std::make_unique<Impl>()) {
  silence_hdf5_errors();
  impl_->path_ = path;
  // problems of the file system first, with the system's words
  std::error_code ec;
  if (!fs::exists(path, ec)) throw LogError(fmt::format("{}: cannot open: no such file", path));
  if (fs::is_directory(path, ec)) throw LogError(fmt::format("{}: cannot open: is a directory", path));
  if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
    std::fclose(f);
  } else {
    throw LogError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  }

  // then HDF5's
  // SWMR reading first (a live SWMR writer, or one killed); then plain (schema 1, or this
  // process writes the file too); then ignoring the flags a writer killed outside SWMR left
  // SWMR reading retries metadata whose checksum fails (it may be half-written): by default 100
  // times with doubling sleeps, which on a corrupted file never ends; 24 tries wait ~17 ms
  Handle fapl = file_access(path);
  ok(H5Pset_metadata_read_attempts(fapl.get(), 24), path, "cannot set metadata read attempts");
  impl_->file_ = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl.get()), H5Fclose);
  if (!impl_->file_.valid()) impl_->file_ = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()), H5Fclose);
  if (!impl_->file_.valid()) {
    Handle clearing = file_access(path, /*clear_flags=*/true);
    impl_->file_ = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, clearing.get()), H5Fclose);
  }
  if (!impl_->file_.valid()) throw LogError(fmt::format("{}: cannot open: not an HDF5 file or truncated", path));

  // then the schema
  if (H5Aexists(impl_->file_.get(), "schema_version") <= 0)
    throw LogError(fmt::format("{}: not a gfn log (no schema_version attribute)", path));
  impl_->schema_version_ =
      impl_->read_int_attribute("schema_version", "not a gfn log (schema_version is not an integer)");
  const int64_t v = impl_->schema_version_;
  if (v < kLogSchemaVersionMin || v > kLogSchemaVersion)
    throw LogError(fmt::format("{}: schema_version {} is {} than this gfn reads ({} to {}){}", path, v,
                               v > kLogSchemaVersion ? "newer" : "older", kLogSchemaVersionMin, kLogSchemaVersion,
                               v > kLogSchemaVersion ? ": use a newer gfn" : ""));
}

Hdf5LogReader::~Hdf5LogReader() = default;

int64_t Hdf5LogReader::schema_version() const { return impl_->schema_version_; }

std::string Hdf5LogReader::attribute_string(const std::string& name) const {
  silence_hdf5_errors();
  const std::string& file = impl_->path_;
  const std::string what = "cannot read attribute " + name;
  Handle attr = impl_->open_attribute(name);
  Handle type(ok(H5Aget_type(attr.get()), file, what), H5Tclose);
  Handle space(ok(H5Aget_space(attr.get()), file, what), H5Sclose);
  if (H5Tget_class(type.get()) != H5T_STRING || H5Sget_simple_extent_npoints(space.get()) != 1)
    throw LogError(fmt::format("{}: root attribute {} is not a string", file, name));

  // variable-length: HDF5 allocates the text
  if (H5Tis_variable_str(type.get()) > 0) {
    Handle mem_type = vlen_utf8_type(file);
    ok(H5Tset_cset(mem_type.get(), H5Tget_cset(type.get())), file, what);
    char* text = nullptr;
    ok(H5Aread(attr.get(), mem_type.get(), &text), file, what);
    std::string value = text != nullptr ? text : "";
    H5free_memory(text);
    return value;
  }

  // fixed-length: strip the padding
  const size_t size = H5Tget_size(type.get());
  std::string value(size, '\0');
  ok(H5Aread(attr.get(), type.get(), value.data()), file, what);
  if (H5Tget_strpad(type.get()) == H5T_STR_SPACEPAD) {
    value.erase(value.find_last_not_of(' ') + 1);
  } else {
    const size_t nul = value.find('\0');
    if (nul != std::string::npos) value.resize(nul);
  }
  return value;
}

int64_t Hdf5LogReader::attribute_int(const std::string& name) const {
  silence_hdf5_errors();
  return impl_->read_int_attribute(name, fmt::format("root attribute {} is not an integer", name));
}

bool Hdf5LogReader::has(const std::string& dataset_path) const {
  silence_hdf5_errors();
  const std::string rel = relative(dataset_path);
  // H5Lexists fails (negative) when an intermediate group is missing
  if (rel.empty() || H5Lexists(impl_->file_.get(), rel.c_str(), H5P_DEFAULT) <= 0) return false;
  Handle obj(H5Oopen(impl_->file_.get(), rel.c_str(), H5P_DEFAULT), H5Oclose);
  return obj.valid() && H5Iget_type(obj.get()) == H5I_DATASET;
}

std::vector<std::string> Hdf5LogReader::list(const std::string& group) const {
  silence_hdf5_errors();
  const hid_t file_id = impl_->file_.get();
  const std::string rel = relative(group);
  const std::string loc = rel.empty() ? "/" : rel;
  if (!rel.empty() && H5Lexists(file_id, rel.c_str(), H5P_DEFAULT) <= 0) return {};
  Handle obj(H5Oopen(file_id, loc.c_str(), H5P_DEFAULT), H5Oclose);
  if (!obj.valid() || H5Iget_type(obj.get()) != H5I_GROUP) return {};

  // every link of the group that is a dataset
  std::vector<std::string> names;
  for (auto& name : link_names(obj.get(), impl_->path_))
    if (object_type(obj.get(), name) == H5I_DATASET) names.push_back(std::move(name));
  return names;  // sorted, as link_names returns them
}

std::vector<int64_t> Hdf5LogReader::shape(const std::string& dataset_path) const {
  silence_hdf5_errors();
  Handle dset = impl_->open_dataset(dataset_path);
  const std::string what = "cannot read the shape of " + dataset_path;
  Handle space(ok(H5Dget_space(dset.get()), impl_->path_, what), H5Sclose);
  const int rank = ok(H5Sget_simple_extent_ndims(space.get()), impl_->path_, what);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  ok(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), impl_->path_, what);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

std::vector<double> Hdf5LogReader::read_double(const std::string& dataset_path) const {
  silence_hdf5_errors();
  const std::string& file = impl_->path_;
  const std::string what = "cannot read " + dataset_path;
  Handle dset = impl_->open_dataset(dataset_path);
  Handle type(ok(H5Dget_type(dset.get()), file, what), H5Tclose);
  Handle space(ok(H5Dget_space(dset.get()), file, what), H5Sclose);
  const H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_INTEGER && cls != H5T_FLOAT && cls != H5T_ENUM)
    throw LogError(fmt::format("{}: {} is not numeric", file, dataset_path));
  const size_t n = static_cast<size_t>(ok(H5Sget_simple_extent_npoints(space.get()), file, what));
  if (n == 0) return {};
  // enums (bool) by their integer values; HDF5 converts the rest
  if (cls == H5T_ENUM) {
    const std::vector<int64_t> ints = read_enum(dset.get(), type.get(), n, file, dataset_path);
    return std::vector<double>(ints.begin(), ints.end());
  }
  std::vector<double> out(n);
  ok(H5Dread(dset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), file, what);
  return out;
}

std::vector<int64_t> Hdf5LogReader::read_int64(const std::string& dataset_path) const {
  silence_hdf5_errors();
  const std::string& file = impl_->path_;
  const std::string what = "cannot read " + dataset_path;
  Handle dset = impl_->open_dataset(dataset_path);
  Handle type(ok(H5Dget_type(dset.get()), file, what), H5Tclose);
  Handle space(ok(H5Dget_space(dset.get()), file, what), H5Sclose);
  const H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_INTEGER && cls != H5T_ENUM)
    throw LogError(fmt::format("{}: {} is not an integer dataset", file, dataset_path));
  const size_t n = static_cast<size_t>(ok(H5Sget_simple_extent_npoints(space.get()), file, what));
  if (n == 0) return {};
  if (cls == H5T_ENUM) return read_enum(dset.get(), type.get(), n, file, dataset_path);
  std::vector<int64_t> out(n);
  ok(H5Dread(dset.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), file, what);
  return out;
}

}  // namespace gfn

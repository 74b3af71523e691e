#include "io/internal/hdf5_util.h"

#include <fcntl.h>
#include <string.h>  // memmem
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include <fmt/ranges.h>

#include "core/file_io.h"

namespace gfn::hdf5 {

namespace {

// h5py's boolean: an enum of int8 with FALSE = 0 and TRUE = 1 over `base`.
Handle bool_type(hid_t base, const std::string& file) {
  Handle type(ok(H5Tenum_create(base), file, "cannot create bool type"), H5Tclose);
  const int8_t f = 0, t = 1;
  ok(H5Tenum_insert(type.get(), "FALSE", &f), file, "cannot create bool type");
  ok(H5Tenum_insert(type.get(), "TRUE", &t), file, "cannot create bool type");
  return type;
}

}  // namespace

void silence_hdf5_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

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

Handle vlen_utf8_type(const std::string& file) {
  Handle type(ok(H5Tcopy(H5T_C_S1), file, "cannot create string type"), H5Tclose);
  ok(H5Tset_size(type.get(), H5T_VARIABLE), file, "cannot create string type");
  ok(H5Tset_cset(type.get(), H5T_CSET_UTF8), file, "cannot create string type");
  return type;
}

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

std::string shape_string(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

Handle file_access(const std::string& file, bool clear_flags) {
  Handle fapl(ok(H5Pcreate(H5P_FILE_ACCESS), file, "cannot create file access properties"), H5Pclose);
  ok(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_V110), file, "cannot set format bounds");
  ok(H5Pset_file_locking(fapl.get(), false, true), file, "cannot disable file locking");
  if (clear_flags) {
    hbool_t clear = true;  // the property h5clear sets
    ok(H5Pset(fapl.get(), "clear_status_flags", &clear), file, "cannot set clear_status_flags");
  }
  return fapl;
}

bool link_exists(hid_t loc, const std::string& path) {
  size_t end = 0;
  while (end != std::string::npos) {
    end = path.find('/', end + 1);
    if (H5Lexists(loc, path.substr(0, end).c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return true;
}

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

H5I_type_t object_type(hid_t loc, const std::string& name) {
  Handle obj(H5Oopen(loc, name.c_str(), H5P_DEFAULT), H5Oclose);
  return obj.valid() ? H5Iget_type(obj.get()) : H5I_BADID;
}

std::pair<std::vector<hsize_t>, std::vector<hsize_t>> dataset_dims(hid_t dset, const std::string& file,
                                                                   const std::string& what) {
  Handle space(ok(H5Dget_space(dset), file, what), H5Sclose);
  const int rank = ok(H5Sget_simple_extent_ndims(space.get()), file, what);
  std::vector<hsize_t> dims(static_cast<size_t>(rank)), maxdims(static_cast<size_t>(rank));
  ok(H5Sget_simple_extent_dims(space.get(), dims.data(), maxdims.data()), file, what);
  return {dims, maxdims};
}

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

std::optional<std::vector<StringChecksum>> parse_string_checksums(const std::string& text) {
  // "name:length:89abcdef;" repeated; the name is everything before the entry's last two ':'
  std::vector<StringChecksum> entries;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find(';', start);
    if (end == std::string::npos) return std::nullopt;
    const std::string entry = text.substr(start, end - start);
    start = end + 1;
    const size_t crc_at = entry.rfind(':');
    if (crc_at == std::string::npos || crc_at == 0 || entry.size() - crc_at - 1 != 8) return std::nullopt;
    const size_t length_at = entry.rfind(':', crc_at - 1);
    if (length_at == std::string::npos || length_at == 0 || crc_at - length_at - 1 < 1 || crc_at - length_at - 1 > 19)
      return std::nullopt;
    StringChecksum c;
    c.name = entry.substr(0, length_at);
    for (size_t i = length_at + 1; i < crc_at; ++i) {
      if (entry[i] < '0' || entry[i] > '9') return std::nullopt;
      c.length = c.length * 10 + static_cast<uint64_t>(entry[i] - '0');
    }
    for (size_t i = crc_at + 1; i < entry.size(); ++i) {
      const char h = entry[i];
      const int digit = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : -1;
      if (digit < 0) return std::nullopt;
      c.crc32 = c.crc32 << 4 | static_cast<uint32_t>(digit);
    }
    entries.push_back(std::move(c));
  }
  return entries;
}

namespace {

uint64_t little_endian(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

}  // namespace

std::string check_global_heaps(const std::string& file, uint64_t file_size, const std::vector<uint64_t>* lengths) {
  // the layout of HDF5's file format, version 2 and 3 superblocks (8-byte lengths)
  constexpr uint64_t kHeader = 16;     // "GCOL", version, 3 reserved, collection size
  constexpr uint64_t kObjHeader = 16;  // index (2), reference count (2), reserved (4), size (8)
  static const char kSignature[8] = {'G', 'C', 'O', 'L', '\1', '\0', '\0', '\0'};
  if (file_size < kHeader) return "";

  // the file mapped read-only (no copy: a log may be gigabytes)
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fmt::format("cannot be read ({})", std::strerror(errno));
  void* mapped = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (mapped == MAP_FAILED) return fmt::format("cannot be read ({})", std::strerror(errno));
  struct Unmap {
    void* at;
    size_t size;
    ~Unmap() { ::munmap(at, size); }
  } unmap{mapped, static_cast<size_t>(file_size)};
  const auto* bytes = static_cast<const unsigned char*>(mapped);
  std::multiset<uint64_t> sizes;  // of every object, for the lengths

  // one collection at `at`, parsed as HDF5 does
  auto check_collection = [&](uint64_t at) -> std::string {
    if (file_size - at < kHeader) return fmt::format("the global heap at byte {}: truncated", at);
    const uint64_t size = little_endian(bytes + at + 8, 8);
    if (size < kHeader + kObjHeader || size > file_size - at)
      return fmt::format("the global heap at byte {}: its size {} does not fit the file of {} bytes", at, size, file_size);
    const unsigned char* heap = bytes + at;
    std::set<uint64_t> indices;
    uint64_t p = kHeader;
    while (p < size) {
      if (size - p < kObjHeader) break;  // HDF5: space too small for a header is free space
      const uint64_t index = little_endian(heap + p, 2), object = little_endian(heap + p + 8, 8);
      if (index == 0) {  // free space: the rest of the collection, header included
        if (object != size - p)
          return fmt::format("the global heap at byte {}: its free space of {} bytes does not end the collection",
                             at, object);
        break;
      }
      if (!indices.insert(index).second) return fmt::format("the global heap at byte {}: object {} twice", at, index);
      if (object > size - p - kObjHeader || (object + 7) / 8 * 8 > size - p - kObjHeader)
        return fmt::format("the global heap at byte {}: object {} of {} bytes overruns the collection", at, index,
                           object);
      sizes.insert(object);
      p += kObjHeader + (object + 7) / 8 * 8;
    }
    return "";
  };

  // every collection, found by its signature
  for (const unsigned char* hit = bytes; hit != nullptr;) {
    const size_t left = static_cast<size_t>(file_size - static_cast<uint64_t>(hit - bytes));
    hit = static_cast<const unsigned char*>(memmem(hit, left, kSignature, sizeof kSignature));
    if (hit == nullptr) break;
    const std::string problem = check_collection(static_cast<uint64_t>(hit - bytes));
    if (!problem.empty()) return problem;
    ++hit;
  }

  // each string written is an object of its length
  if (lengths != nullptr)
    for (const uint64_t length : *lengths) {
      const auto it = sizes.find(length);
      if (it == sizes.end())
        return fmt::format("no object of the global heap has the length {} of a string attribute (its size is damaged)",
                           length);
      sizes.erase(it);
    }
  return "";
}

void write_string_attr(hid_t obj, const std::string& file, const char* name, const std::string& value) {
  const std::string what = fmt::format("cannot write attribute {}", name);
  Handle type = vlen_utf8_type(file);
  Handle space(ok(H5Screate(H5S_SCALAR), file, what), H5Sclose);
  {
    Handle attr(ok(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), file, what), H5Aclose);
    const char* text = value.c_str();
    ok(H5Awrite(attr.get(), type.get(), &text), file, what);
  }

  // its length and CRC-32 join the object's list (kStringChecksumAttr), which is rewritten
  std::vector<StringChecksum> entries;
  if (ok(H5Aexists(obj, kStringChecksumAttr), file, what) > 0) {
    const std::string old = read_string_attr(obj, file, kStringChecksumAttr, what, uint64_t{1} << 20);
    if (auto parsed = parse_string_checksums(old)) entries = std::move(*parsed);
    ok(H5Adelete(obj, kStringChecksumAttr), file, what);
  }
  entries.erase(std::remove_if(entries.begin(), entries.end(), [&](const auto& e) { return e.name == name; }),
                entries.end());
  const std::string stored(value.c_str());  // what HDF5 keeps of a C string: up to a NUL
  entries.push_back({name, stored.size(), crc32(stored)});
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  std::string list;
  for (const StringChecksum& e : entries) list += fmt::format("{}:{}:{:08x};", e.name, e.length, e.crc32);
  Handle fixed(ok(H5Tcopy(H5T_C_S1), file, what), H5Tclose);
  ok(H5Tset_size(fixed.get(), list.size() + 1), file, what);
  ok(H5Tset_strpad(fixed.get(), H5T_STR_NULLTERM), file, what);
  Handle attr(ok(H5Acreate2(obj, kStringChecksumAttr, fixed.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), file, what),
              H5Aclose);
  ok(H5Awrite(attr.get(), fixed.get(), list.c_str()), file, what);
}

void write_int_attr(hid_t obj, const std::string& file, const char* name, int64_t value) {
  const std::string what = fmt::format("cannot write attribute {}", name);
  Handle space(ok(H5Screate(H5S_SCALAR), file, what), H5Sclose);
  Handle attr(ok(H5Acreate2(obj, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), file, what), H5Aclose);
  ok(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value), file, what);
}

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

std::string read_string_attr(hid_t obj, const std::string& file, const std::string& name,
                             const std::string& not_string, uint64_t max_bytes) {
  const std::string what = "cannot read attribute " + name;
  Handle attr(ok(H5Aopen(obj, name.c_str(), H5P_DEFAULT), file, what), H5Aclose);
  Handle type(ok(H5Aget_type(attr.get()), file, what), H5Tclose);
  Handle space(ok(H5Aget_space(attr.get()), file, what), H5Sclose);
  if (H5Tget_class(type.get()) != H5T_STRING || H5Sget_simple_extent_npoints(space.get()) != 1)
    throw LogError(fmt::format("{}: {}", file, not_string));

  // variable-length: HDF5 allocates the text
  const htri_t variable = ok(H5Tis_variable_str(type.get()), file, what);
  if (variable > 0) {
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
  if (size == 0 || size > max_bytes)
    throw LogError(fmt::format("{}: {}: a fixed-length string of {} bytes in a file of {} (damaged)", file, what,
                               size, max_bytes));
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

}  // namespace gfn::hdf5

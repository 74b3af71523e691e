// The run log's reader (io/hdf5_log.h): Hdf5LogReader, read-only and tolerant of a live or
// killed SWMR writer. The writer is io/hdf5_log.cc; the HDF5 helpers both use are
// io/internal/hdf5_util.h.
#include "io/hdf5_log.h"

#include <hdf5.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "io/internal/hdf5_util.h"

namespace gfn {

using namespace hdf5;  // the helpers shared with the reader / writer

namespace {

namespace fs = std::filesystem;

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

  // All elements of the dataset `dataset_path` as T (read through `mem_type`), enums (bool) by
  // their integer values; LogError "<file>: <dataset> is not <kind>" unless it is an integer or
  // enum dataset (or a float one, when `floats`).
  template <class T>
  std::vector<T> read_all(const std::string& dataset_path, hid_t mem_type, bool floats, const char* kind) const {
    const std::string what = "cannot read " + dataset_path;
    Handle dset = open_dataset(dataset_path);
    Handle type(ok(H5Dget_type(dset.get()), path_, what), H5Tclose);
    Handle space(ok(H5Dget_space(dset.get()), path_, what), H5Sclose);
    const H5T_class_t cls = H5Tget_class(type.get());
    if (cls != H5T_INTEGER && cls != H5T_ENUM && !(floats && cls == H5T_FLOAT))
      throw LogError(fmt::format("{}: {} is not {}", path_, dataset_path, kind));
    const size_t n = static_cast<size_t>(ok(H5Sget_simple_extent_npoints(space.get()), path_, what));
    if (n == 0) return {};
    if (cls == H5T_ENUM) {
      const std::vector<int64_t> ints = read_enum(dset.get(), type.get(), n, path_, dataset_path);
      return std::vector<T>(ints.begin(), ints.end());
    }
    // HDF5 converts the rest
    std::vector<T> out(n);
    ok(H5Dread(dset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), path_, what);
    return out;
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
  const std::vector<hsize_t> dims =
      dataset_dims(dset.get(), impl_->path_, "cannot read the shape of " + dataset_path).first;
  return std::vector<int64_t>(dims.begin(), dims.end());
}

std::vector<double> Hdf5LogReader::read_double(const std::string& dataset_path) const {
  silence_hdf5_errors();
  return impl_->read_all<double>(dataset_path, H5T_NATIVE_DOUBLE, /*floats=*/true, "numeric");
}

std::vector<int64_t> Hdf5LogReader::read_int64(const std::string& dataset_path) const {
  silence_hdf5_errors();
  return impl_->read_all<int64_t>(dataset_path, H5T_NATIVE_INT64, /*floats=*/false, "an integer dataset");
}

}  // namespace gfn

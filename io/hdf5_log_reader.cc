// The run log's reader (io/hdf5_log.h): Hdf5LogReader, read-only and tolerant of a live or
// killed SWMR writer. The writer is io/hdf5_log.cc; the HDF5 helpers both use are
// io/internal/hdf5_util.h.
#include "io/hdf5_log.h"

#include <hdf5.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "core/file_io.h"
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
  uint64_t file_size_ = 0;  // bytes: every element a dataset stores takes at least one
  int64_t schema_version_ = 0;
  // the root attributes, read (and their text verified) when the file is opened
  std::map<std::string, std::string> strings_;
  std::map<std::string, int64_t> ints_;
  std::set<std::string> others_;  // neither scalar strings nor scalar integers
  std::set<std::string> unread_;  // variable-length strings strings_crc32 does not list (another writer's)

  // LogError "<file>: damaged: <what> (HDF5: <its innermost error>)": an HDF5 call failed on
  // metadata the file should hold (a checksum, a truncated structure, an impossible value).
  [[noreturn]] void damaged(const std::string& what) const {
    const std::string detail = hdf5_error_detail();
    throw LogError(detail.empty() ? fmt::format("{}: damaged: {}", path_, what)
                                  : fmt::format("{}: damaged: {} (HDF5: {})", path_, what, detail));
  }

  // LogError "<file>: damaged: <what>" for damage that gfn's own checks found.
  [[noreturn]] void damaged_here(const std::string& what) const {
    throw LogError(fmt::format("{}: damaged: {}", path_, what));
  }

  // Whether `rel` (relative, non-empty) names an object; "damaged" when HDF5 cannot tell.
  bool exists(const std::string& rel) const {
    size_t end = 0;
    while (end != std::string::npos) {
      end = rel.find('/', end + 1);
      const htri_t found = H5Lexists(file_.get(), rel.substr(0, end).c_str(), H5P_DEFAULT);
      if (found < 0) damaged("cannot look up " + rel.substr(0, end));
      if (found == 0) return false;
    }
    return true;
  }

  // Opens the object `rel` (existing); "damaged" when it cannot be.
  Handle open_object(const std::string& rel) const {
    Handle obj(H5Oopen(file_.get(), rel.empty() ? "/" : rel.c_str(), H5P_DEFAULT), H5Oclose);
    if (!obj.valid()) damaged("cannot open " + (rel.empty() ? std::string("/") : rel));
    return obj;
  }

  // Opens the dataset `dataset_path`; LogError if there is none.
  Handle open_dataset(const std::string& dataset_path) const {
    const std::string rel = relative(dataset_path);
    if (rel.empty() || !exists(rel)) throw LogError(fmt::format("{}: no dataset {}", path_, dataset_path));
    Handle obj = open_object(rel);
    if (H5Iget_type(obj.get()) != H5I_DATASET)
      throw LogError(fmt::format("{}: {} is not a dataset", path_, dataset_path));
    return obj;
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
    const hssize_t points = ok(H5Sget_simple_extent_npoints(space.get()), path_, what);
    // a damaged or forged dataspace cannot make us allocate more than the file could hold
    if (static_cast<uint64_t>(points) > file_size_)
      throw LogError(fmt::format("{}: {} claims {} elements, more than the file's {} bytes hold (damaged)", path_,
                                 dataset_path, points, file_size_));
    const size_t n = static_cast<size_t>(points);
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

  // Reads the root attributes into strings_, ints_, others_ and unread_. Variable-length
  // strings live in HDF5's global heap, which has no checksum and whose object sizes HDF5 1.10
  // trusts when it copies them (io/internal/hdf5_util.h: kStringChecksumAttr): the heap is
  // checked first (check_global_heaps), against the lengths strings_crc32 lists where the log
  // has it, and then only the strings it lists are read, each compared with its CRC-32. Logs
  // written before gfn kept the list get the heap's structural check alone.
  void read_root_attributes() {
    std::vector<std::string> names;
    auto collect = [](hid_t, const char* name, const H5A_info_t*, void* out) -> herr_t {
      static_cast<std::vector<std::string>*>(out)->emplace_back(name);
      return 0;
    };
    hsize_t index = 0;
    if (H5Aiterate2(file_.get(), H5_INDEX_NAME, H5_ITER_NATIVE, &index, collect, &names) < 0)
      damaged("cannot list the root attributes");

    // each attribute's kind; integers and fixed-length strings read now (they are stored in
    // the checksummed attribute storage itself)
    std::vector<std::string> variable;
    for (const std::string& name : names) {
      const std::string what = "cannot read root attribute " + name;
      Handle attr(H5Aopen(file_.get(), name.c_str(), H5P_DEFAULT), H5Aclose);
      if (!attr.valid()) damaged(what);
      Handle type(H5Aget_type(attr.get()), H5Tclose);
      if (!type.valid()) damaged(what);
      Handle space(H5Aget_space(attr.get()), H5Sclose);
      if (!space.valid()) damaged(what);
      const H5T_class_t cls = H5Tget_class(type.get());
      if (cls < 0) damaged(what);
      const hssize_t points = H5Sget_simple_extent_npoints(space.get());
      if (points < 0) damaged(what);
      try {
        if (cls == H5T_STRING && points == 1) {
          const htri_t is_variable = H5Tis_variable_str(type.get());
          if (is_variable < 0) damaged(what);
          if (is_variable > 0)
            variable.push_back(name);
          else
            strings_[name] = read_string_attr(file_.get(), path_, name, "", file_size_);
        } else if (cls == H5T_INTEGER && points == 1) {
          ints_[name] = read_int_attr(file_.get(), path_, name, "");
        } else {
          others_.insert(name);
        }
      } catch (const LogError&) {
        damaged(what);  // the failing call's error is still on HDF5's stack
      }
    }

    // the list of the strings' lengths and checksums, where the log has it
    std::optional<std::vector<StringChecksum>> listed;
    if (const auto it = strings_.find(kStringChecksumAttr); it != strings_.end()) {
      listed = parse_string_checksums(it->second);
      if (!listed) damaged_here(fmt::format("root attribute {} is malformed", kStringChecksumAttr));
    }

    // the global heap, before HDF5 reads anything from it
    std::vector<uint64_t> lengths;
    if (listed)
      for (const StringChecksum& c : *listed) lengths.push_back(c.length);
    const std::string heap = check_global_heaps(path_, file_size_, listed ? &lengths : nullptr);
    if (!heap.empty()) damaged_here(heap);

    // the variable-length strings: those listed (all, in a log without the list)
    for (const std::string& name : variable) {
      const bool read_now =
          !listed || std::any_of(listed->begin(), listed->end(), [&](const StringChecksum& c) { return c.name == name; });
      if (!read_now) {
        unread_.insert(name);  // another writer's: read when asked for
        continue;
      }
      try {
        strings_[name] = read_string_attr(file_.get(), path_, name, "", file_size_);
      } catch (const LogError&) {
        damaged("cannot read root attribute " + name);
      }
    }
    if (!listed) return;
    for (const StringChecksum& c : *listed) {
      const auto it = strings_.find(c.name);
      if (it == strings_.end() || std::find(variable.begin(), variable.end(), c.name) == variable.end())
        damaged_here(fmt::format("root attribute {}, listed in {}, is not a variable-length string", c.name,
                                 kStringChecksumAttr));
      if (it->second.size() != c.length || gfn::crc32(it->second) != c.crc32)
        damaged_here(fmt::format("the text of root attribute {} differs from its length and CRC-32 in {}", c.name,
                                 kStringChecksumAttr));
    }
  }

  // Reads the metadata of every object of the file once: each link of each group (hard links
  // only: a gfn log holds no other), each object's header with its attributes and index sizes
  // (H5Oget_info: B-trees and heaps of groups and attributes, chunk indexes), each dataset's
  // type, dataspace and creation properties and the number of its chunks (which walks the chunk
  // index). HDF5 verifies the checksum of every metadata block it reads, so any damage to them
  // is a LogError here, when the file is opened, rather than a dataset or an attribute that later
  // reads as missing or empty. Raw data (the rows) is checked when it is read (Fletcher-32 per
  // chunk). Objects reached twice (hard links to one object, or a cycle in a forged file) are
  // walked once.
  void verify_objects() const {
    std::set<haddr_t> seen;
    H5O_info_t root_info;
    if (H5Oget_info2(file_.get(), &root_info, H5O_INFO_ALL) < 0) damaged("cannot read the root group's header");
    seen.insert(root_info.addr);
    verify_group(file_.get(), "", seen);
  }

  void verify_group(hid_t group, const std::string& prefix, std::set<haddr_t>& seen) const {
    // the links, natively ordered (see link_names in io/internal/hdf5_util.h)
    struct Link {
      std::string name;
      H5L_type_t type;
    };
    std::vector<Link> links;
    auto collect = [](hid_t, const char* name, const H5L_info_t* info, void* out) -> herr_t {
      static_cast<std::vector<Link>*>(out)->push_back({name, info->type});
      return 0;
    };
    hsize_t index = 0;
    const std::string where = prefix.empty() ? "/" : prefix;
    if (H5Literate(group, H5_INDEX_NAME, H5_ITER_NATIVE, &index, collect, &links) < 0)
      damaged("cannot list " + where);
    for (const Link& link : links) {
      const std::string path = prefix.empty() ? link.name : prefix + "/" + link.name;
      if (link.type != H5L_TYPE_HARD)
        throw LogError(fmt::format("{}: not a gfn log ({} is a {} link; a gfn log holds only its own objects)", path_,
                                   path, link.type == H5L_TYPE_SOFT ? "soft" : "external"));
      H5O_info_t info;
      if (H5Oget_info_by_name2(group, link.name.c_str(), &info, H5O_INFO_ALL, H5P_DEFAULT) < 0)
        damaged("cannot read the header of " + path);
      if (!seen.insert(info.addr).second) continue;
      Handle obj(H5Oopen(group, link.name.c_str(), H5P_DEFAULT), H5Oclose);
      if (!obj.valid()) damaged("cannot open " + path);
      verify_attributes(obj.get(), path);
      if (info.type == H5O_TYPE_GROUP) {
        verify_group(obj.get(), path, seen);
      } else if (info.type == H5O_TYPE_DATASET) {
        verify_dataset(obj.get(), path);
      }
    }
  }

  // The attributes of a non-root object (Hdf5Log writes none; other writers may): each opened,
  // its type and dataspace read.
  void verify_attributes(hid_t obj, const std::string& path) const {
    std::vector<std::string> names;
    auto collect = [](hid_t, const char* name, const H5A_info_t*, void* out) -> herr_t {
      static_cast<std::vector<std::string>*>(out)->emplace_back(name);
      return 0;
    };
    hsize_t index = 0;
    if (H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_NATIVE, &index, collect, &names) < 0)
      damaged("cannot list the attributes of " + path);
    for (const std::string& name : names) {
      const std::string what = fmt::format("cannot read attribute {} of {}", name, path);
      Handle attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
      if (!attr.valid()) damaged(what);
      Handle type(H5Aget_type(attr.get()), H5Tclose);
      if (!type.valid()) damaged(what);
      Handle space(H5Aget_space(attr.get()), H5Sclose);
      if (!space.valid()) damaged(what);
    }
  }

  void verify_dataset(hid_t dset, const std::string& path) const {
    const std::string what = "cannot read the dataset header of " + path;
    Handle type(H5Dget_type(dset), H5Tclose);
    if (!type.valid()) damaged(what);
    Handle space(H5Dget_space(dset), H5Sclose);
    if (!space.valid() || H5Sget_simple_extent_ndims(space.get()) < 0) damaged(what);
    Handle dcpl(H5Dget_create_plist(dset), H5Pclose);
    if (!dcpl.valid()) damaged(what);
    const H5D_layout_t layout = H5Pget_layout(dcpl.get());
    if (layout < 0 || H5Pget_nfilters(dcpl.get()) < 0) damaged("cannot read the storage of " + path);
    hsize_t chunks = 0;
    // the dataset's own dataspace (selection: all); HDF5 1.10.8 refuses H5S_ALL here ("invalid
    // dataspace identifier", checked on Debian 12's libhdf5-103-1), though later versions take it
    if (layout == H5D_CHUNKED && H5Dget_num_chunks(dset, space.get(), &chunks) < 0)
      damaged("cannot read the chunk index of " + path);
  }
};

namespace {

// Where HDF5's signature lies in the file (offset 0, 512, 1024, ...: after a user block), or
// -1 when it is nowhere: the file is not HDF5 at all.
int64_t hdf5_signature_offset(const std::string& path, uint64_t size) {
  static const char kSignature[8] = {'\211', 'H', 'D', 'F', '\r', '\n', '\032', '\n'};
  std::ifstream in(path, std::ios::binary);
  for (uint64_t offset = 0; offset + 8 <= size; offset = offset == 0 ? 512 : offset * 2) {
    char head[8];
    in.seekg(static_cast<std::streamoff>(offset));
    if (!in.read(head, 8)) return -1;
    if (std::memcmp(head, kSignature, 8) == 0) return static_cast<int64_t>(offset);
  }
  return -1;
}

}  // namespace

Hdf5LogReader::Hdf5LogReader(const std::string& path) : impl_(std::make_unique<Impl>()) {
  silence_hdf5_errors();
  Impl& im = *impl_;
  im.path_ = path;
  // problems of the file system first, with the system's words
  std::error_code ec;
  if (!fs::exists(path, ec)) throw LogError(fmt::format("{}: cannot open: no such file", path));
  if (fs::is_directory(path, ec)) throw LogError(fmt::format("{}: cannot open: is a directory", path));
  if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
    std::fclose(f);
  } else {
    throw LogError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  }
  im.file_size_ = fs::file_size(path, ec);
  if (ec) throw LogError(fmt::format("{}: cannot open: {}", path, ec.message()));

  // then HDF5's
  // SWMR reading first (a live SWMR writer, or one killed); then plain (schema 1, or this
  // process writes the file too); then ignoring the flags a writer killed outside SWMR left
  // SWMR reading retries metadata whose checksum fails (it may be half-written): by default 100
  // times with doubling sleeps, which on a corrupted file never ends; 24 tries wait ~17 ms
  Handle fapl = file_access(path);
  ok(H5Pset_metadata_read_attempts(fapl.get(), 24), path, "cannot set metadata read attempts");
  im.file_ = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl.get()), H5Fclose);
  if (!im.file_.valid()) im.file_ = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()), H5Fclose);
  if (!im.file_.valid()) {
    Handle clearing = file_access(path, /*clear_flags=*/true);
    im.file_ = Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, clearing.get()), H5Fclose);
  }
  if (!im.file_.valid()) {
    if (hdf5_signature_offset(path, im.file_size_) < 0)
      throw LogError(fmt::format("{}: cannot open: not an HDF5 file or truncated", path));
    const std::string detail = hdf5_error_detail();
    throw LogError(fmt::format("{}: cannot open: truncated or damaged{}", path,
                               detail.empty() ? "" : " (HDF5: " + detail + ")"));
  }

  // then the root attributes and the schema
  im.read_root_attributes();
  if (im.ints_.count("schema_version") == 0) {
    if (im.strings_.count("schema_version") != 0 || im.others_.count("schema_version") != 0)
      throw LogError(fmt::format("{}: not a gfn log (schema_version is not an integer)", path));
    throw LogError(fmt::format("{}: not a gfn log (no schema_version attribute)", path));
  }
  im.schema_version_ = im.ints_.at("schema_version");
  const int64_t v = im.schema_version_;
  if (v < kLogSchemaVersionMin || v > kLogSchemaVersion)
    throw LogError(fmt::format("{}: schema_version {} is {} than this gfn reads ({} to {}){}", path, v,
                               v > kLogSchemaVersion ? "newer" : "older", kLogSchemaVersionMin, kLogSchemaVersion,
                               v > kLogSchemaVersion ? ": use a newer gfn" : ""));

  // then every object's metadata
  im.verify_objects();
}

Hdf5LogReader::~Hdf5LogReader() = default;

int64_t Hdf5LogReader::schema_version() const { return impl_->schema_version_; }

std::string Hdf5LogReader::attribute_string(const std::string& name) const {
  const Impl& im = *impl_;
  const auto it = im.strings_.find(name);
  if (it != im.strings_.end()) return it->second;
  if (im.unread_.count(name) != 0) {
    silence_hdf5_errors();
    return read_string_attr(im.file_.get(), im.path_, name, "root attribute " + name + " is not a string",
                            im.file_size_);
  }
  if (im.ints_.count(name) != 0 || im.others_.count(name) != 0)
    throw LogError(fmt::format("{}: root attribute {} is not a string", im.path_, name));
  throw LogError(fmt::format("{}: no root attribute {}", im.path_, name));
}

int64_t Hdf5LogReader::attribute_int(const std::string& name) const {
  const Impl& im = *impl_;
  const auto it = im.ints_.find(name);
  if (it != im.ints_.end()) return it->second;
  if (im.strings_.count(name) != 0 || im.others_.count(name) != 0)
    throw LogError(fmt::format("{}: root attribute {} is not an integer", im.path_, name));
  throw LogError(fmt::format("{}: no root attribute {}", im.path_, name));
}

bool Hdf5LogReader::has(const std::string& dataset_path) const {
  silence_hdf5_errors();
  const std::string rel = relative(dataset_path);
  if (rel.empty() || !impl_->exists(rel)) return false;
  return H5Iget_type(impl_->open_object(rel).get()) == H5I_DATASET;
}

std::vector<std::string> Hdf5LogReader::list(const std::string& group) const {
  silence_hdf5_errors();
  const std::string rel = relative(group);
  if (!rel.empty() && !impl_->exists(rel)) return {};
  Handle obj = impl_->open_object(rel);
  if (H5Iget_type(obj.get()) != H5I_GROUP) return {};

  // every link of the group that is a dataset
  std::vector<std::string> names;
  for (auto& name : link_names(obj.get(), impl_->path_)) {
    const H5I_type_t type = object_type(obj.get(), name);
    if (type == H5I_BADID) impl_->damaged("cannot open " + (rel.empty() ? name : rel + "/" + name));
    if (type == H5I_DATASET) names.push_back(std::move(name));
  }
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

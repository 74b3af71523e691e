// HDF5 helpers shared by the run log's writer (io/hdf5_log.cc) and reader
// (io/hdf5_log_reader.cc): owned identifiers, error checks that throw LogError, the types of
// LogDType, file access properties, and dataset, attribute and link utilities. Internal to the
// library: not installed.
#pragma once

#include <hdf5.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "io/hdf5_log.h"

namespace gfn::hdf5 {

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
void silence_hdf5_errors();

// The most specific message on HDF5's error stack (empty if none), on one line.
std::string hdf5_error_detail();

// Throws LogError "<file>: <what>[: <hdf5 detail>]" when an HDF5 call returned a negative value.
template <class T>
T ok(T result, const std::string& file, const std::string& what) {
  if (result < 0) {
    const std::string detail = hdf5_error_detail();
    throw LogError(detail.empty() ? fmt::format("{}: {}", file, what) : fmt::format("{}: {}: {}", file, what, detail));
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// types

// A variable-length UTF-8 string type (read by h5py as str).
Handle vlen_utf8_type(const std::string& file);
// Bytes per element of `dtype` in memory.
size_t dtype_size(LogDType dtype);
// "float64", "float32", "int64", "bool".
const char* dtype_name(LogDType dtype);
// The file (`in_file`) or memory type of `dtype`, as an owned copy (kBool: h5py's boolean, an
// enum of int8 with FALSE = 0 and TRUE = 1).
Handle hdf5_type(LogDType dtype, bool in_file, const std::string& file);
// The LogDType of a dataset's file type, if it is one Hdf5Log writes.
std::optional<LogDType> log_dtype_of(hid_t dset);
// "[5, 2]"
std::string shape_string(const std::vector<int64_t>& shape);

// ---------------------------------------------------------------------------------------------
// files, links, datasets and attributes

// File access properties shared by writer and reader. File locking is off so that readers in
// other processes can open the log while a run writes it (HDF5 requires the same setting for
// both opens of one file in one process). The format is 1.10's (superblock v3), which SWMR needs.
// With `clear_flags`, the "open for writing" flags a killed writer left are ignored (read-only
// opens) or cleared (read-write opens), as `h5clear -s` does.
Handle file_access(const std::string& file, bool clear_flags = false);

// Whether the object `path` ("train/loss") exists, checking each component (H5Lexists fails on a
// missing intermediate group).
bool link_exists(hid_t loc, const std::string& path);
// The names of the links in group `loc`, in name order. Native iteration, sorted here: on some
// corrupted groups, the sorted link table HDF5 builds for by-index access or ordered
// iteration frees an invalid pointer and aborts the process.
std::vector<std::string> link_names(hid_t loc, const std::string& file);
// The type of an object in `loc` (H5I_BADID when it cannot be opened).
H5I_type_t object_type(hid_t loc, const std::string& name);

// The dims and maximum dims of a dataset.
std::pair<std::vector<hsize_t>, std::vector<hsize_t>> dataset_dims(hid_t dset, const std::string& file,
                                                                   const std::string& what);
// Chunk dims of a dataset whose rows have shape `row_shape`: 1024 rows for scalar rows, else
// about 64 KiB (trailing dims halved first when one row alone is bigger).
std::vector<hsize_t> chunk_dims(const std::vector<int64_t>& row_shape, size_t elem_size);
// Creates the empty dataset `dset_path` (and its groups) of rows shaped `row_dims`,
// extendable along the first axis, with a checksum per chunk.
Handle create_dataset(hid_t file_id, const std::string& file, const std::string& dset_path, hid_t file_type,
                      const std::vector<hsize_t>& row_dims, const std::vector<hsize_t>& chunk);
// Extends `dset` from `file_rows` to `file_rows + rows` rows and writes `buf` (of `mem_type`)
// into the new rows.
void write_rows(hid_t dset, hid_t mem_type, int64_t file_rows, int64_t rows, const std::vector<hsize_t>& row_dims,
                const void* buf, const std::string& file, const std::string& dset_path);

// The attribute that makes the text of `obj`'s string attributes verifiable. HDF5 checksums
// every metadata structure of the format gfn writes (superblock, object headers, heaps and
// B-trees of links and attributes, chunk indexes) except the global heap, which holds the
// bytes of variable-length strings: a damaged config text would read back silently changed,
// and a damaged object size in it makes HDF5 1.10's H5HG_read copy past its buffers (it trusts
// the size). This attribute, a fixed-length ASCII string (stored with the object's attributes,
// in checksummed metadata), lists "name:length:crc32;" for each string attribute written by
// write_string_attr, in name order: the value's length in bytes (decimal) and its CRC-32
// (gfn::crc32 of core/file_io.h, zlib's) as 8 lowercase hex digits (Python:
// f"{name}:{len(v)}:{zlib.crc32(v):08x};" for the UTF-8 bytes v).
inline constexpr char kStringChecksumAttr[] = "strings_crc32";

// One entry of a kStringChecksumAttr list.
struct StringChecksum {
  std::string name;
  uint64_t length = 0;
  uint32_t crc32 = 0;
};
// The entries of a kStringChecksumAttr value (std::nullopt when malformed).
std::optional<std::vector<StringChecksum>> parse_string_checksums(const std::string& text);

// Checks the file's global heap collections (where HDF5 keeps variable-length data) as HDF5
// parses them (H5HG__cache_heap_deserialize), adding what HDF5 1.10 leaves to assertions: the
// objects tile the collection exactly, the free-space object (index 0) last; each object lies
// inside its collection; no index appears twice. With `lengths` (from a kStringChecksumAttr
// list), each listed length must be the size of some object: a damaged size can then not reach
// H5HG_read. Collections are found by their signature ("GCOL", version 1) anywhere in the file.
// Returns "" when they hold, else the problem ("the global heap at byte N: ...").
std::string check_global_heaps(const std::string& file, uint64_t file_size, const std::vector<uint64_t>* lengths);

// Writes the scalar attribute `name` of `obj` as a variable-length UTF-8 string, and its length
// and CRC-32 into kStringChecksumAttr (rewritten with the entry added or replaced).
void write_string_attr(hid_t obj, const std::string& file, const char* name, const std::string& value);
// Writes the scalar attribute `name` of `obj` as int64.
void write_int_attr(hid_t obj, const std::string& file, const char* name, int64_t value);
// Reads the scalar integer attribute `name` of `obj`; LogError "<file>: <not_int>" when it is
// not one.
int64_t read_int_attr(hid_t obj, const std::string& file, const std::string& name, const std::string& not_int);
// Reads the scalar string attribute `name` of `obj` (variable- or fixed-length, padding
// stripped); LogError "<file>: <not_string>" when it is not one, "<file>: cannot read
// attribute <name>: <HDF5's words>" when HDF5 fails. A fixed-length string longer than
// `max_bytes` (a bound from the file's size: a damaged header cannot make us allocate more) is
// an error too.
std::string read_string_attr(hid_t obj, const std::string& file, const std::string& name,
                             const std::string& not_string, uint64_t max_bytes);

}  // namespace gfn::hdf5

// The run log of a training run, `DIR/log.h5`: an HDF5 file readable by h5py and h5dump.
//
// Schema (version 2; version 1 differs only in the HDF5 file format, which lacked SWMR):
//   /                      attrs: schema_version (int64 = 2), gfn_version, created_utc (ISO 8601,
//                          "2026-11-22T13:00:00Z"), config (TOML text), env, objective, device
//                          (variable-length UTF-8 strings), seed (int64)
//   /train/<metric>        1-D extendable datasets, one row per logged iteration (float64, except
//                          the columns "iteration" and "trajectories": int64)
//   /eval/<metric>         same, one row per evaluation
//   /trajectories/<name>   N-D datasets extendable along the first axis (rows = trajectories)
//   /samples/<name>        same
//   /grid/{x,y,log_reward} fixed-shape datasets (write_fixed), e.g. a 2-D env's reward grid
//   /grid/{iteration,terminating}  extendable, one row per evaluation
//
// Hdf5Log buffers rows in memory and touches the file only in flush(). From the end of its first
// flush the file is in HDF5's single-writer/multiple-reader (SWMR) mode: the file on disk is
// always consistent, so a killed process (even SIGKILL in the middle of a flush) leaves a file
// that opens and holds every row up to its last completed flush, and other processes may read it
// live (h5py: h5py.File(path, "r", swmr=True); Hdf5LogReader does so by itself). SWMR cannot
// create datasets: datasets declared (declare_columns/declare) or written before the first flush
// are created in it; one first seen later makes that flush leave SWMR mode for a moment (close,
// reopen, create, restart SWMR). A log left by a killed writer keeps HDF5's "open for writing"
// flags: h5py then needs swmr=True (or `h5clear -s FILE` once). Light header: no LibTorch, no
// hdf5.h.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/file_io.h"

namespace gfn {

// Thrown for every run-log error. The message is one line: the file, then the problem, e.g.
// "runs/a/log.h5: not a gfn log (no schema_version attribute)".
class LogError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The schema version written by Hdf5Log; Hdf5LogReader reads kLogSchemaVersionMin..this.
inline constexpr int64_t kLogSchemaVersion = 2;
inline constexpr int64_t kLogSchemaVersionMin = 1;

// The root attributes of a log, written once by Hdf5Log::create.
struct LogAttributes {
  std::string gfn_version;  // version of the engine that wrote the log, e.g. "0.1.0"
  std::string created_utc;  // ISO 8601 UTC time, e.g. utc_now_iso8601()
  std::string config_toml;  // the run's full configuration as TOML text (stored as attr "config")
  std::string env;          // environment name
  std::string objective;    // training objective name
  std::string device;       // device the run used, e.g. "cpu" or "cuda:0"
  int64_t seed = 0;         // random seed of the run
};

// The current UTC time as "YYYY-MM-DDTHH:MM:SSZ".
std::string utc_now_iso8601();

// Element type of a dataset written with Hdf5Log::append. In memory: double, float, int64_t and
// uint8_t (0 = false, anything else = true) respectively. kBool is stored as h5py's boolean
// (an HDF5 enum of int8 with FALSE = 0, TRUE = 1), which h5py reads as numpy bool.
enum class LogDType { kFloat64, kFloat32, kInt64, kBool };

// Writer of a run log. Not thread-safe: use one instance from one thread.
class Hdf5Log {
 public:
  // Creates the file `path` (its directory must exist) and writes the root attributes
  // (schema_version = kLogSchemaVersion and `attrs`), then flushes.
  // Throws LogError if `path` already exists (an existing file is never truncated or touched)
  // or cannot be created.
  static std::unique_ptr<Hdf5Log> create(const std::string& path, const LogAttributes& attrs);
  // Reopens the log `path` of an interrupted run to append to it (gfn train --resume), clearing
  // the flags a killed writer left. Rows after `last_iteration` are dropped: in every group with
  // an "iteration" dataset, its extendable datasets keep the rows whose iteration is
  // <= last_iteration; extendable datasets of groups without one (/samples) are emptied;
  // fixed-shape datasets stay. Then SWMR mode starts. Throws LogError naming the file when it is
  // missing, not HDF5, truncated, not a gfn log, or of another schema version than
  // kLogSchemaVersion.
  static std::unique_ptr<Hdf5Log> open_append(const std::string& path, int64_t last_iteration);
  // A log cut short by a failed write (a full disk, a file-size limit: the superblock records an
  // end of file beyond the file's size, which HDF5 refuses to open) is padded with zeros to the
  // size it records. The metadata of every completed flush is then intact, so the file opens
  // with every row up to the last completed flush; what the failed flush wrote is unreadable,
  // and a resume drops it with every row after its checkpoint. Returns whether it padded;
  // throws WriteError when the file cannot be extended (still no room).
  static bool repair_cut_short(const std::string& path);
  // Flushes and closes the file. Never throws: a failing flush is reported on stderr.
  ~Hdf5Log();
  Hdf5Log(const Hdf5Log&) = delete;
  Hdf5Log& operator=(const Hdf5Log&) = delete;

  // Buffers one row of scalar metrics (name, value) for the table /<group>, one dataset
  // /<group>/<name> per column. The first row of a group fixes its columns; a later row may add
  // columns (their earlier rows are back-filled with NaN, or 0 for int columns), and a column
  // missing from a row gets NaN (0 for int columns) in that row. Column order is irrelevant.
  // Columns "iteration" and "trajectories" are int64 (values rounded), all others float64.
  // Throws LogError (nothing buffered) on an empty or malformed group or name ('/' in a name),
  // a name given twice in the row, a non-finite value for an int column, or a name already used
  // by append() in the same group.
  void append_row(const std::string& group, const std::vector<std::pair<std::string, double>>& row);

  // Buffers `rows` rows for the dataset /<group>/<name>, each of shape `row_shape` (the trailing
  // dims; empty = one scalar per row), so the dataset has shape [total rows, row_shape...].
  // `data` holds rows * prod(row_shape) contiguous (row-major) elements of `dtype`; it is copied.
  // rows == 0 is a no-op. Throws LogError (nothing buffered) when rows < 0, `data` is null, a dim
  // of row_shape is <= 0, the name is malformed, or dtype / row_shape differ from earlier appends
  // of the same dataset, or the name is already a column of append_row in that group.
  void append(const std::string& group, const std::string& name, LogDType dtype,
              const std::vector<int64_t>& row_shape, const void* data, int64_t rows);

  // Declares columns of the table /<group> (as append_row would add them, with no row), so that
  // the next flush creates them even before their first value. Same errors as append_row.
  void declare_columns(const std::string& group, const std::vector<std::string>& names);
  // Declares the N-D dataset /<group>/<name> with no rows (as append with rows = 0 would).
  void declare(const std::string& group, const std::string& name, LogDType dtype,
               const std::vector<int64_t>& row_shape);
  // Writes the fixed-shape dataset /<group>/<name> of `shape` (not extendable) at the next flush;
  // `data` holds prod(shape) elements of `dtype` and is copied. A dataset of that name already in
  // the file (a resumed log) is left as it is. Throws LogError on a malformed name, a dim <= 0,
  // or a name already used.
  void write_fixed(const std::string& group, const std::string& name, LogDType dtype,
                   const std::vector<int64_t>& shape, const void* data);

  // Writes everything buffered to the file, creating datasets on first use (chunked, extendable
  // along the first axis: scalar-row chunks of 1024 rows, N-D chunks of about 64 KiB) and
  // intermediate groups as needed, then flushes the file to disk so that a reader opened
  // afterwards sees every row written so far. Throws WriteError (core/file_io.h) "<file>: cannot
  // write (<the system's reason>)" if HDF5 fails: a full disk, a file-size limit. The file then
  // keeps every row up to the last flush that completed, and the log writes nothing more (a
  // later flush, and the destructor, only report or close).
  void flush();

  // The path given to create().
  const std::string& path() const;

 private:
  struct Impl;
  explicit Hdf5Log(std::unique_ptr<Impl> impl);
  void flush_buffers();
  std::unique_ptr<Impl> impl_;
};

// Read-only access to a log written by Hdf5Log (for `gfn eval`, tests and analysis). Dataset
// paths are relative to the root, e.g. "train/loss" (a leading '/' is accepted).
class Hdf5LogReader {
 public:
  // Opens `path` read-only (also while a writer in this or another process has it open, in SWMR
  // mode when the writer uses it, and after a writer was killed).
  // Throws LogError if the file is missing, is not HDF5 or is truncated, has no schema_version
  // attribute ("<file>: not a gfn log (no schema_version attribute)"), or has a schema version
  // outside kLogSchemaVersionMin..kLogSchemaVersion ("<file>: schema_version 3 is newer than this
  // gfn reads (1 to 2): use a newer gfn", "... is older than ...").
  explicit Hdf5LogReader(const std::string& path);
  ~Hdf5LogReader();
  Hdf5LogReader(const Hdf5LogReader&) = delete;
  Hdf5LogReader& operator=(const Hdf5LogReader&) = delete;

  // The root attribute schema_version (in kLogSchemaVersionMin..kLogSchemaVersion).
  int64_t schema_version() const;
  // A string root attribute (variable- or fixed-length). Throws LogError if it is missing or
  // not a string.
  std::string attribute_string(const std::string& name) const;
  // An integer root attribute. Throws LogError if it is missing or not an integer.
  int64_t attribute_int(const std::string& name) const;
  // Whether `dataset_path` names a dataset (false for groups and missing paths).
  bool has(const std::string& dataset_path) const;
  // The names of the datasets directly in `group`, sorted; empty if there is no such group.
  std::vector<std::string> list(const std::string& group) const;
  // The dims of a dataset ({} for a scalar dataset). Throws LogError if it is missing.
  std::vector<int64_t> shape(const std::string& dataset_path) const;
  // All elements of a numeric dataset (float, integer or bool), converted to double and
  // flattened in row-major order. Throws LogError if it is missing or not numeric.
  std::vector<double> read_double(const std::string& dataset_path) const;
  // All elements of an integer (or bool) dataset as int64, flattened in row-major order.
  // Throws LogError if it is missing or not an integer dataset.
  std::vector<int64_t> read_int64(const std::string& dataset_path) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gfn

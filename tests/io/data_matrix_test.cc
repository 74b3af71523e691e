// Tests of the data matrix reader: text files with and without a header, comments, blank lines,
// spaces, CRLF and separators; HDF5 datasets of float64 and int32 in groups; and every rejected
// file, whose message must name the key, the file and the line, field or dataset.
#include "io/data_matrix.h"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/params.h"

namespace gfn {
namespace {

namespace fs = std::filesystem;

class DataMatrixTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("gfn_data_matrix_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes `bytes` to DIR/name and returns its path.
  std::string write(const std::string& name, const std::string& bytes) const {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

// The ConfigError message of `body` (fails the test if none is thrown or it spans lines).
template <class F>
std::string error_of(F&& body) {
  try {
    body();
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << "message is not one line: " << message;
    return message;
  }
  ADD_FAILURE() << "no ConfigError thrown";
  return "";
}

// The message of reading `file` as env.data.
std::string text_error(const std::string& file, int64_t expected_cols = 0) {
  return error_of([&] { read_data_matrix(file, "env.data", "data", expected_cols); });
}

// The start of every message about `file`.
std::string prefix(const std::string& file) { return "env.data = \"" + file + "\": "; }

#define EXPECT_CONTAINS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

TEST_F(DataMatrixTest, CsvWithHeader) {
  const DataMatrix m = read_data_matrix(write("a.csv", "a,b,c\n1,2,3\n4.5,-6e-1,0x10\n"), "env.data");
  EXPECT_EQ(m.rows, 2);
  EXPECT_EQ(m.cols, 3);
  EXPECT_EQ(m.values, (std::vector<double>{1, 2, 3, 4.5, -0.6, 16}));
  EXPECT_EQ(m.names, (std::vector<std::string>{"a", "b", "c"}));
}

TEST_F(DataMatrixTest, CsvWithoutHeader) {
  const DataMatrix m = read_data_matrix(write("a.CSV", "1,2\n3,4\n5,6"), "env.data", "data", 2);
  EXPECT_EQ(m.rows, 3);
  EXPECT_EQ(m.cols, 2);
  EXPECT_EQ(m.values, (std::vector<double>{1, 2, 3, 4, 5, 6}));
  EXPECT_TRUE(m.names.empty());
}

TEST_F(DataMatrixTest, CsvCommentsBlankLinesSpacesCrlf) {
  const std::string text =
      "\xEF\xBB\xBF# data of the test\r\n\r\n  x , \"y z\" \r\n 1 ,2\r\n   # another\r\n \t \r\n\t3,\t-4.25 \r\n";
  const DataMatrix m = read_data_matrix(write("a.csv", text), "env.data");
  EXPECT_EQ(m.rows, 2);
  EXPECT_EQ(m.cols, 2);
  EXPECT_EQ(m.values, (std::vector<double>{1, 2, 3, -4.25}));
  EXPECT_EQ(m.names, (std::vector<std::string>{"x", "y z"}));
}

TEST_F(DataMatrixTest, SingleColumnAndSeparators) {
  EXPECT_EQ(read_data_matrix(write("one.csv", "v\n1\n2\n"), "k").values, (std::vector<double>{1, 2}));
  const DataMatrix tsv = read_data_matrix(write("a.tsv", "p\tq\n1\t2\n3 \t 4\n"), "k");
  EXPECT_EQ(tsv.values, (std::vector<double>{1, 2, 3, 4}));
  EXPECT_EQ(tsv.names, (std::vector<std::string>{"p", "q"}));
  const DataMatrix spaces = read_data_matrix(write("a.txt", "1 2   3\n\t4\t5 6\n"), "k");
  EXPECT_EQ(spaces.cols, 3);
  EXPECT_EQ(spaces.values, (std::vector<double>{1, 2, 3, 4, 5, 6}));
  const DataMatrix commas = read_data_matrix(write("b.txt", "# c\n1, 2\n3,4\n"), "k");
  EXPECT_EQ(commas.values, (std::vector<double>{1, 2, 3, 4}));
}

TEST_F(DataMatrixTest, MissingFileAndDirectory) {
  const std::string missing = path("missing.csv");
  EXPECT_EQ(text_error(missing), prefix(missing) + "cannot open the file: No such file or directory");
  const std::string dir = path("dir.csv");
  fs::create_directory(dir);
  EXPECT_EQ(text_error(dir), prefix(dir) + "cannot read the file: it is a directory");
}

TEST_F(DataMatrixTest, EmptyFileAndNoDataRows) {
  const std::string empty = write("empty.csv", "");
  EXPECT_EQ(text_error(empty), prefix(empty) + "the file is empty");
  const std::string comments = write("comments.csv", "# only\n\n  # comments\n");
  EXPECT_EQ(text_error(comments), prefix(comments) + "no data rows (only blank and comment lines)");
  const std::string header = write("header.csv", "# c\na,b\n\n");
  EXPECT_EQ(text_error(header), prefix(header) + "no data rows (only the header on line 2)");
}

TEST_F(DataMatrixTest, RaggedRows) {
  const std::string file = write("ragged.csv", "a,b\n# c\n1,2\n3\n");
  EXPECT_EQ(text_error(file), prefix(file) + "line 4 has 1 field, expected 2 as on line 1");
  const std::string longer = write("longer.csv", "1,2\n3,4,\n");
  EXPECT_EQ(text_error(longer), prefix(longer) + "line 2 has 3 fields, expected 2 as on line 1");
}

TEST_F(DataMatrixTest, NonNumericField) {
  const std::string file = write("x.csv", "a,b,c\n1,2,3\n\n4,5,abc\n");
  EXPECT_EQ(text_error(file), prefix(file) + "line 4: field 3 \"abc\" is not a number");
  const std::string partial = write("y.csv", "1,2\n3,4.5.6\n");
  EXPECT_EQ(text_error(partial), prefix(partial) + "line 2: field 2 \"4.5.6\" is not a number");
  const std::string empty_field = write("z.csv", "1,2,3\r\n4,,6\r\n");
  EXPECT_EQ(text_error(empty_field), prefix(empty_field) + "line 2: field 2 \"\" is not a number");
}

TEST_F(DataMatrixTest, NonFiniteValue) {
  for (const std::string value : {"nan", "inf", "-Infinity", "1e999"}) {
    const std::string file = write("f.csv", "1,2\n3," + value + "\n");
    EXPECT_EQ(text_error(file), prefix(file) + "line 2: field 2 \"" + value + "\" is not finite");
  }
}

TEST_F(DataMatrixTest, BadHeaderNames) {
  const std::string repeated = write("r.csv", "a,b,a\n1,2,3\n");
  EXPECT_EQ(text_error(repeated), prefix(repeated) + "line 1: column name 3 \"a\" of the header is repeated");
  const std::string empty = write("e.csv", "a,\"\",c\n1,2,3\n");
  EXPECT_EQ(text_error(empty), prefix(empty) + "line 1: column name 2 of the header is empty");
}

TEST_F(DataMatrixTest, WrongColumnCount) {
  const std::string file = write("c.csv", "# c\n1,2,3\n");
  EXPECT_EQ(text_error(file, 4), prefix(file) + "line 2 has 3 columns, expected 4");
  EXPECT_EQ(read_data_matrix(file, "env.data", "data", 3).cols, 3);
}

TEST_F(DataMatrixTest, UnknownExtension) {
  const std::string file = write("x.dat", "1,2\n");
  EXPECT_EQ(text_error(file), prefix(file) +
                                  "unknown file extension \".dat\", expected .csv, .tsv or .txt (text) or .h5 or "
                                  ".hdf5 (HDF5)");
  EXPECT_CONTAINS(text_error(write("noext", "1\n")), "unknown file extension (none)");
}

// ---------------------------------------------------------------------------------------------
// HDF5

// Writes the dataset `name` (groups created) of `dims` from `data` of memory type `type`.
void write_dataset(hid_t file, const std::string& name, hid_t type, const std::vector<hsize_t>& dims,
                   const void* data) {
  const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  const hid_t dset = H5Dcreate2(file, name.c_str(), type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(dset, 0) << name;
  ASSERT_GE(H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0) << name;
  H5Dclose(dset);
  H5Sclose(space);
  H5Pclose(lcpl);
}

// A file with /data [3, 2] float64, /g/x [2, 3] int32, /v [5] float64, /s [1, 2] strings,
// /bad [2, 2] float64 with a NaN at (1, 0), /empty [0, 3] float64.
std::string write_h5(const std::string& path) {
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  EXPECT_GE(file, 0);
  const std::vector<double> data{1.5, -2, 3, 4e10, 0, 6.25};
  write_dataset(file, "data", H5T_NATIVE_DOUBLE, {3, 2}, data.data());
  const std::vector<int32_t> ints{1, -2, 3, 2147483647, 5, -6};
  write_dataset(file, "/g/x", H5T_NATIVE_INT32, {2, 3}, ints.data());
  write_dataset(file, "v", H5T_NATIVE_DOUBLE, {5}, data.data());
  const hid_t str = H5Tcopy(H5T_C_S1);
  H5Tset_size(str, 4);
  write_dataset(file, "s", str, {1, 2}, "abcdefgh");
  H5Tclose(str);
  const std::vector<double> bad{1, 2, std::nan(""), 4};
  write_dataset(file, "bad", H5T_NATIVE_DOUBLE, {2, 2}, bad.data());
  write_dataset(file, "empty", H5T_NATIVE_DOUBLE, {0, 3}, data.data());
  H5Fclose(file);
  return path;
}

// The message of reading `dataset` of `file`.
std::string h5_error(const std::string& file, const std::string& dataset, int64_t expected_cols = 0) {
  return error_of([&] { read_data_matrix(file, "env.data", dataset, expected_cols); });
}

TEST_F(DataMatrixTest, Hdf5Float64AndInt32) {
  const std::string file = write_h5(path("d.h5"));
  const DataMatrix m = read_data_matrix(file, "env.data");
  EXPECT_EQ(m.rows, 3);
  EXPECT_EQ(m.cols, 2);
  EXPECT_EQ(m.values, (std::vector<double>{1.5, -2, 3, 4e10, 0, 6.25}));
  EXPECT_TRUE(m.names.empty());
  for (const std::string name : {"/g/x", "g/x"}) {
    const DataMatrix x = read_data_matrix(file, "env.data", name, 3);
    EXPECT_EQ(x.rows, 2);
    EXPECT_EQ(x.cols, 3);
    EXPECT_EQ(x.values, (std::vector<double>{1, -2, 3, 2147483647, 5, -6}));
  }
  // the extension is matched whatever its case
  fs::copy_file(file, path("d.HDF5"));
  EXPECT_EQ(read_data_matrix(path("d.HDF5"), "env.data").values, m.values);
}

TEST_F(DataMatrixTest, Hdf5BadDatasets) {
  const std::string file = write_h5(path("d.h5"));
  const std::string pre = prefix(file);
  EXPECT_EQ(h5_error(file, "v"), pre + "dataset \"v\" has shape [5] (1-D), expected a 2-D dataset (rows x columns)");
  EXPECT_EQ(h5_error(file, "s"), pre + "dataset \"s\" has a string type, expected a float or integer type");
  EXPECT_EQ(h5_error(file, "g"), pre + "\"g\" is not a dataset");
  EXPECT_EQ(h5_error(file, "empty"), pre + "dataset \"empty\" has no rows (shape [0, 3])");
  EXPECT_EQ(h5_error(file, "bad"),
            pre + "dataset \"bad\": row 1, column 0 (0-based) is nan, expected a finite number");
  EXPECT_EQ(h5_error(file, "data", 3), pre + "dataset \"data\" has 2 columns, expected 3");
  EXPECT_EQ(h5_error(file, ""), pre + "the dataset name is empty");
}

TEST_F(DataMatrixTest, Hdf5MissingDatasetListsGroup) {
  const std::string file = write_h5(path("d.h5"));
  const std::string pre = prefix(file);
  EXPECT_EQ(h5_error(file, "nope"),
            pre + "no dataset \"nope\" (the file's root holds: \"bad\", \"data\", \"empty\", \"g\", \"s\", \"v\")");
  EXPECT_EQ(h5_error(file, "/g/y"), pre + "no dataset \"/g/y\" (the group \"/g\" holds: \"x\")");
  EXPECT_EQ(h5_error(file, "h/y"), pre + "no dataset \"h/y\" (the file's root holds: \"bad\", \"data\", \"empty\", "
                                         "\"g\", \"s\", \"v\")");
  const hid_t empty = H5Fcreate(path("e.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  H5Fclose(empty);
  EXPECT_EQ(h5_error(path("e.h5"), "data"), prefix(path("e.h5")) + "no dataset \"data\" (the file's root is empty)");
}

TEST_F(DataMatrixTest, Hdf5NotHdf5OrMissing) {
  const std::string csv = write("data.h5", "1,2\n3,4\n");
  EXPECT_EQ(h5_error(csv, "data"), prefix(csv) + "not an HDF5 file");
  const std::string missing = path("missing.hdf5");
  EXPECT_EQ(h5_error(missing, "data"), prefix(missing) + "cannot open the file: No such file or directory");
}

}  // namespace
}  // namespace gfn

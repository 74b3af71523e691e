// Damaged logs: bytes flipped in a log's metadata (its first 4 KB: the superblock, the object
// headers, the attribute heaps and the global heap holding the config text) are either reported
// as a LogError naming the file, when the log is opened or read, or change nothing the reader
// returns. Never a log that reads as something else (issue 22: `gfn analyse` used to print empty
// names and missing metrics for such files, where h5py reported a metadata checksum error).
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/wait.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "apps/registry.h"
#include "io/config.h"
#include "io/hdf5_log.h"

namespace gfn {
namespace {

namespace fs = std::filesystem;

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Everything a reader returns for a log: root attributes, then per dataset its shape and values
// (as text, so that NaNs compare equal).
using Contents = std::map<std::string, std::string>;

Contents contents_of(const std::string& path) {
  const Hdf5LogReader log(path);
  Contents c;
  c["schema_version"] = std::to_string(log.schema_version());
  for (const char* name : {"gfn_version", "created_utc", "config", "env", "objective", "device"})
    c[name] = log.attribute_string(name);
  c["seed"] = std::to_string(log.attribute_int("seed"));
  for (const std::string group : {"train", "eval", "samples"}) {
    std::string names;
    for (const std::string& name : log.list(group)) {
      names += name + ",";
      const std::string dataset = group + "/" + name;
      std::string text;
      for (int64_t d : log.shape(dataset)) text += std::to_string(d) + "x";
      text += ":";
      for (double v : log.read_double(dataset)) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.17g,", v);
        text += buf;
      }
      c[dataset] = text;
    }
    c["list " + group] = names;
  }
  return c;
}

class LogDamageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("gfn_log_damage_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A log as a run writes it: the root attributes with a real resolved config, /train and /eval
  // rows over three flushes (the first creates the datasets, the later ones extend them in SWMR
  // mode), and /samples.
  std::string make_log() {
    const std::string path = (dir_ / "log.h5").string();
    const RunConfig config = load_config_file("configs/hypergrid.toml", {}, run_schema(Registry::builtin()));
    LogAttributes attrs;
    attrs.gfn_version = "0.1.0";
    attrs.created_utc = "2026-12-04T12:00:00Z";
    attrs.config_toml = config.resolved_toml;
    attrs.env = "hypergrid";
    attrs.objective = "tb";
    attrs.device = "cpu";
    attrs.seed = 7;
    auto log = Hdf5Log::create(path, attrs);
    int64_t iteration = 0;
    for (int flush = 0; flush < 3; ++flush) {
      for (int row = 0; row < 20; ++row, iteration += 10)
        log->append_row("train", {{"iteration", iteration},
                                  {"trajectories", 16.0 * iteration},
                                  {"wall_s", 0.01 * iteration},
                                  {"loss", 1.0 / (iteration + 1)},
                                  {"log_z", 0.1 * row}});
      log->append_row("eval", {{"iteration", iteration}, {"tv", 0.5 / (flush + 1)}, {"l1", 0.1 * flush}});
      log->flush();
    }
    const std::vector<double> log_reward = {-1.0, -2.0, -0.5, -3.0};
    log->append("samples", "log_reward", LogDType::kFloat64, {}, log_reward.data(), 4);
    log->flush();
    return path;
  }

  fs::path dir_;
};

TEST_F(LogDamageTest, FlippedMetadataBytesAreReportedOrHarmless) {
  const std::string good = make_log();
  const Contents expected = contents_of(good);
  const std::string bytes = read_bytes(good);
  ASSERT_GT(bytes.size(), 8192u);

  // 30 trials: 8 bytes XOR-ed with nonzero values at a seeded offset in the first 4 KB
  std::mt19937_64 rng(20261204);
  std::uniform_int_distribution<size_t> offset_of(0, 4096 - 8);
  std::uniform_int_distribution<int> mask_of(1, 255);
  const char* gfn = std::getenv("GFN_BIN");
  int detected = 0, harmless = 0;
  for (int trial = 0; trial < 30; ++trial) {
    const size_t offset = offset_of(rng);
    std::string damaged = bytes;
    for (size_t i = 0; i < 8; ++i) damaged[offset + i] = static_cast<char>(damaged[offset + i] ^ mask_of(rng));
    const fs::path path = dir_ / ("damaged-" + std::to_string(trial) + ".h5");
    write_bytes(path, damaged);
    SCOPED_TRACE("trial " + std::to_string(trial) + ": 8 bytes at offset " + std::to_string(offset));

    Contents read;
    try {
      read = contents_of(path.string());
    } catch (const LogError& e) {
      // reported: one line, the file first
      const std::string message = e.what();
      EXPECT_EQ(message.rfind(path.string() + ": ", 0), 0u) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
      ++detected;

      // and `gfn analyse` says so in one line and exits 2 (checked on the first five: each
      // start of the command line loads LibTorch, seconds under the sanitizers)
      if (gfn != nullptr && detected <= 5) {
        const fs::path err = dir_ / "stderr.txt";
        const std::string command = std::string(gfn) + " analyse '" + path.string() + "' >/dev/null 2>'" + err.string() + "'";
        const int status = std::system(command.c_str());
        ASSERT_TRUE(WIFEXITED(status)) << command;
        EXPECT_EQ(WEXITSTATUS(status), 2) << command;
        const std::string text = read_bytes(err);
        EXPECT_NE(text.find(path.string() + ": "), std::string::npos) << text;
        EXPECT_EQ(text.find('\n'), text.size() - 1) << "not one line: " << text;
      }
      continue;
    }
    // not reported: then it read exactly what the undamaged log holds
    EXPECT_EQ(read, expected) << "the damaged log reads silently differently";
    ++harmless;
  }
  // the bytes of the first 4 KB are nearly all metadata that a reader uses
  EXPECT_GE(detected, 20) << detected << " of 30 damaged logs reported, " << harmless << " read unchanged";
  std::printf("damaged logs: %d of 30 reported, %d read unchanged\n", detected, harmless);
}

// The global heap holds the strings' bytes with no checksum, and HDF5 1.10's H5HG_read copies an
// object's stored size into a buffer of the string's length: each object's size field, grown
// within its 8-byte padding (which keeps the heap's layout valid) or past the heap, must be
// reported before HDF5 reads it, not overflow a buffer.
TEST_F(LogDamageTest, DamagedGlobalHeapSizesAreReported) {
  const std::string good = make_log();
  const std::string bytes = read_bytes(good);
  const size_t heap = bytes.find(std::string("GCOL\1\0\0\0", 8));
  ASSERT_NE(heap, std::string::npos);
  auto le64 = [&](const std::string& b, size_t at) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(b[at + i]);
    return v;
  };
  auto set_le64 = [](std::string& b, size_t at, uint64_t v) {
    for (int i = 0; i < 8; ++i, v >>= 8) b[at + i] = static_cast<char>(v & 0xFF);
  };
  const uint64_t heap_size = le64(bytes, heap + 8);
  int objects = 0;
  for (uint64_t p = 16; p + 16 <= heap_size; ++objects) {
    const size_t object = heap + p;
    const unsigned index = static_cast<unsigned char>(bytes[object]) | static_cast<unsigned char>(bytes[object + 1]) << 8;
    const uint64_t size = le64(bytes, object + 8);
    if (index == 0) break;  // the free space ends the collection
    for (const uint64_t damaged_size : {size + 1, (size + 7) / 8 * 8, size + (uint64_t{1} << 40)}) {
      if (damaged_size == size) continue;
      std::string damaged = bytes;
      set_le64(damaged, object + 8, damaged_size);
      const fs::path path = dir_ / "heap.h5";
      write_bytes(path, damaged);
      try {
        contents_of(path.string());
        ADD_FAILURE() << "object " << index << " of " << size << " bytes read as " << damaged_size;
      } catch (const LogError& e) {
        EXPECT_EQ(std::string(e.what()).rfind(path.string() + ": damaged: ", 0), 0u) << e.what();
      }
    }
    p += 16 + (size + 7) / 8 * 8;
  }
  EXPECT_EQ(objects, 6);  // gfn_version, created_utc, config, env, objective, device
}

// A log written before gfn kept strings_crc32 (here: the attribute deleted) still reads, with
// the global heap's structure checked; its text is then as HDF5 reads it.
TEST_F(LogDamageTest, LogsWithoutStringChecksumsStillRead) {
  const std::string good = make_log();
  const Contents expected = contents_of(good);
  {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    const hid_t file = H5Fopen(good.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    EXPECT_GE(H5Adelete(file, "strings_crc32"), 0);
    H5Fclose(file);
  }
  EXPECT_EQ(contents_of(good), expected);
}

}  // namespace
}  // namespace gfn

// The sizes a LibTorch archive declares are checked against its bytes before LibTorch reads it
// (core/archive_check.h): a real archive passes; a record size, a pickle string's length or a
// memo index that the file cannot back is refused, naming the record and the size.
#include "core/archive_check.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include <torch/serialize/archive.h>
#include <torch/torch.h>

#include "core/estimator.h"

namespace gfn {
namespace {

// A small archive as gfn writes them: a string and two tensors.
std::string real_archive() {
  torch::serialize::OutputArchive a;
  a.write("text", c10::IValue(std::string("hello-gfn-text")));
  a.write("weights", torch::arange(64, torch::kFloat32), /*is_buffer=*/true);
  a.write("step", torch::tensor(int64_t{7}), /*is_buffer=*/true);
  return archive_bytes(a);
}

void put_le32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + static_cast<size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xff);
}

TEST(ArchiveCheckTest, RealArchivePassesAndLoads) {
  const std::string bytes = real_archive();
  EXPECT_EQ(torch_archive_problem(bytes), "");
  torch::serialize::InputArchive in;
  in.load_from(bytes.data(), bytes.size());
  torch::Tensor w;
  ASSERT_TRUE(in.try_read("weights", w, true));
  EXPECT_EQ(w.numel(), 64);
  // not a zip at all, or empty: left to LibTorch's own message
  EXPECT_EQ(torch_archive_problem("garbage"), "");
  EXPECT_EQ(torch_archive_problem(""), "");
}

TEST(ArchiveCheckTest, PickleStringLongerThanItsRecordIsRefused) {
  std::string bytes = real_archive();
  const std::string text = "hello-gfn-text";
  std::string op = "X";
  op += std::string("\x0e\x00\x00\x00", 4);
  const size_t at = bytes.find(op + text);
  ASSERT_NE(at, std::string::npos) << "the string's BINUNICODE opcode";
  put_le32(bytes, at + 1, 0xf0000000u);  // 4 GB claimed by a string of 14 bytes
  const std::string problem = torch_archive_problem(bytes);
  EXPECT_NE(problem.find("data.pkl': a string of 4026531840 bytes at byte "), std::string::npos) << problem;
}

TEST(ArchiveCheckTest, RecordLargerThanTheFileIsRefused) {
  std::string bytes = real_archive();
  // the central directory's entry of the pickle: its uncompressed size
  const size_t directory = bytes.rfind(std::string("PK\x01\x02", 4), bytes.rfind("data.pkl"));
  ASSERT_NE(directory, std::string::npos);
  put_le32(bytes, directory + 24, 0x7fffffffu);
  const std::string problem = torch_archive_problem(bytes);
  EXPECT_NE(problem.find("data.pkl' declares 2147483647 bytes"), std::string::npos) << problem;
  // and a directory that points outside the file
  bytes = real_archive();
  const size_t end = bytes.rfind(std::string("PK\x05\x06", 4));
  ASSERT_NE(end, std::string::npos);
  put_le32(bytes, end + 16, static_cast<uint32_t>(bytes.size()));
  EXPECT_NE(torch_archive_problem(bytes).find("its directory"), std::string::npos) << torch_archive_problem(bytes);
}

}  // namespace
}  // namespace gfn

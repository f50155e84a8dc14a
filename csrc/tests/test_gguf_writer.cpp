// GGUF writer: files written by GGUFWriter read back through read_gguf with
// every value type, nested arrays, key order, in-place replacement, tensor
// offsets padded to the alignment (default 32 and a custom one), many
// tensors, zero padding bytes; and every failure (bad names/types, a missing
// or read-only folder, a throwing producer) leaves no file behind.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "io/safetensors.h"
#include "quant/dequant.h"

using namespace peftcpp;
namespace fs = std::filesystem;

namespace {

std::string temp_dir(const std::string& tag) {
  fs::path d = fs::temp_directory_path() / ("peftcpp_gguf_writer_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

// Names of everything in dir (to check no temporary file is left).
std::vector<std::string> listing(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  return out;
}

GGUFWriter::Producer fill_f32(std::vector<float> v) {
  return [v](uint8_t* dst, size_t n) {
    ASSERT_EQ(n, v.size() * 4);
    std::memcpy(dst, v.data(), n);
  };
}

GGUFValue scalar_u(GGUFType t, uint64_t u) {
  GGUFValue v;
  v.type = t;
  v.u = u;
  return v;
}
GGUFValue scalar_i(GGUFType t, int64_t i) {
  GGUFValue v;
  v.type = t;
  v.i = i;
  return v;
}

}  // namespace

TEST(GgufWriter, AllValueTypesRoundTrip) {
  const std::string dir = temp_dir("values");
  const std::string path = dir + "/v.gguf";
  GGUFWriter w(path);
  w.set("u8", scalar_u(GGUFType::UINT8, 200));
  w.set("i8", scalar_i(GGUFType::INT8, -100));
  w.set("u16", scalar_u(GGUFType::UINT16, 60000));
  w.set("i16", scalar_i(GGUFType::INT16, -30000));
  w.set("u32", GGUFWriter::u32(4000000000u));
  w.set("i32", GGUFWriter::i32(-2000000000));
  w.set("f32", GGUFWriter::f32(1.25f));
  w.set("bool", GGUFWriter::boolean(true));
  w.set("str", GGUFWriter::string("héllo \xF0\x9F\x99\x82"));
  w.set("u64", scalar_u(GGUFType::UINT64, 0xFFFFFFFFFFFFFFF0ull));
  w.set("i64", scalar_i(GGUFType::INT64, -(int64_t(1) << 60)));
  GGUFValue f64;
  f64.type = GGUFType::FLOAT64;
  f64.f = 3.141592653589793;
  w.set("f64", f64);
  w.set("strs", GGUFWriter::string_array({"a", "", "Ġthe"}));
  w.set("i32s", GGUFWriter::i32_array({1, -2, 3}));
  w.set("u32s", GGUFWriter::u32_array({7, 4000000000u}));
  w.set("f32s", GGUFWriter::f32_array({0.5f, -1e30f}));
  w.set("empty", GGUFWriter::i32_array({}));
  GGUFValue nested;
  nested.type = GGUFType::ARRAY;
  nested.elem_type = GGUFType::ARRAY;
  nested.arrays = {GGUFWriter::i32_array({1, 2}), GGUFWriter::string_array({"x"})};
  nested.count = 2;
  w.set("nested", nested);
  // Replacing keeps the first position; removing drops it.
  w.set("u8", scalar_u(GGUFType::UINT8, 201));
  w.set("gone", GGUFWriter::u32(1));
  w.remove("gone");
  EXPECT_EQ(w.find("gone"), nullptr);
  ASSERT_NE(w.find("u8"), nullptr);
  w.write();

  GGUFFile f = read_gguf(path);
  EXPECT_EQ(f.version, 3u);
  EXPECT_EQ(f.tensors.size(), 0u);
  const std::vector<std::string> order = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str",
                                          "u64", "i64", "f64", "strs", "i32s", "u32s", "f32s", "empty", "nested"};
  ASSERT_EQ(f.metadata.size(), order.size());
  for (size_t k = 0; k < order.size(); ++k) EXPECT_EQ(f.metadata[k].first, order[k]);
  EXPECT_EQ(f.find("u8")->u, 201u);
  EXPECT_EQ(f.find("u8")->type, GGUFType::UINT8);
  EXPECT_EQ(f.find("i8")->i, -100);
  EXPECT_EQ(f.find("u16")->u, 60000u);
  EXPECT_EQ(f.find("i16")->i, -30000);
  EXPECT_EQ(f.find("u32")->u, 4000000000u);
  EXPECT_EQ(f.find("u32")->type, GGUFType::UINT32);
  EXPECT_EQ(f.find("i32")->i, -2000000000);
  EXPECT_EQ(f.find("f32")->f, 1.25);
  EXPECT_EQ(f.find("f32")->type, GGUFType::FLOAT32);
  EXPECT_EQ(f.find("bool")->u, 1u);
  EXPECT_EQ(f.find("bool")->type, GGUFType::BOOL);
  EXPECT_EQ(f.find("str")->str, "héllo \xF0\x9F\x99\x82");
  EXPECT_EQ(f.find("u64")->u, 0xFFFFFFFFFFFFFFF0ull);
  EXPECT_EQ(f.find("i64")->i, -(int64_t(1) << 60));
  EXPECT_EQ(f.find("f64")->f, 3.141592653589793);
  const GGUFValue* s = f.find("strs");
  ASSERT_EQ(s->elem_type, GGUFType::STRING);
  EXPECT_EQ(s->strings, (std::vector<std::string>{"a", "", "Ġthe"}));
  EXPECT_EQ(f.find("i32s")->elem_type, GGUFType::INT32);
  EXPECT_EQ(f.find("i32s")->int_at(1), -2);
  EXPECT_EQ(f.find("u32s")->uint_at(1), 4000000000u);
  EXPECT_EQ(f.find("f32s")->float_at(1), static_cast<double>(-1e30f));
  EXPECT_EQ(f.find("empty")->count, 0u);
  const GGUFValue* n = f.find("nested");
  ASSERT_EQ(n->count, 2u);
  EXPECT_EQ(n->arrays[0].int_at(1), 2);
  EXPECT_EQ(n->arrays[1].strings[0], "x");
  EXPECT_EQ(listing(dir), std::vector<std::string>{"v.gguf"});
  fs::remove_all(dir);
}

TEST(GgufWriter, TensorsAlignedAndPadded) {
  for (uint32_t align : {32u, 64u}) {
    const std::string dir = temp_dir("tensors" + std::to_string(align));
    const std::string path = dir + "/t.gguf";
    GGUFWriter w(path, align);
    w.set("general.architecture", GGUFWriter::string("llama"));
    // Many tensors of odd sizes so every offset needs padding.
    const int n = 300;
    std::vector<std::vector<float>> data(n);
    for (int k = 0; k < n; ++k) {
      data[k].resize(static_cast<size_t>(k % 7 + 1) * 3);
      for (size_t i = 0; i < data[k].size(); ++i) data[k][i] = static_cast<float>(k * 1000 + i);
      w.add_tensor("t." + std::to_string(k), 0, {3, static_cast<int64_t>(k % 7 + 1)}, fill_f32(data[k]));
    }
    // An F16 and a Q8_0 tensor given as bytes.
    std::vector<uint16_t> h = {float_to_half(1.5f), float_to_half(-2.f)};
    w.add_tensor("half", 1, {2}, [h](uint8_t* d, size_t nb) { std::memcpy(d, h.data(), nb); });
    std::vector<uint8_t> q(34, 0);
    const uint16_t d16 = float_to_half(0.5f);
    std::memcpy(q.data(), &d16, 2);
    for (int i = 0; i < 32; ++i) q[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(i - 16));
    w.add_tensor("q8", 8, {32}, [q](uint8_t* d, size_t nb) {
      ASSERT_EQ(nb, 34u);
      std::memcpy(d, q.data(), nb);
    });
    EXPECT_EQ(w.n_tensors(), static_cast<size_t>(n + 2));
    size_t calls = 0;
    w.write([&](size_t done, size_t total) {
      EXPECT_EQ(done, ++calls);
      EXPECT_EQ(total, static_cast<size_t>(n + 2));
    });
    EXPECT_EQ(calls, static_cast<size_t>(n + 2));

    GGUFFile f = read_gguf(path);
    EXPECT_EQ(f.alignment, align);
    EXPECT_EQ(f.data_offset % align, 0u);
    EXPECT_EQ(f.find("general.alignment") != nullptr, align != 32);
    ASSERT_EQ(f.tensors.size(), static_cast<size_t>(n + 2));
    uint64_t expect_off = 0;
    for (size_t k = 0; k < f.tensors.size(); ++k) {
      EXPECT_EQ(f.tensors[k].offset, expect_off) << f.tensors[k].name;
      // Padding between tensors is zero.
      const uint8_t* p = f.tensor_data(k);
      const uint64_t padded = (f.tensors[k].nbytes + align - 1) / align * align;
      if (k + 1 < f.tensors.size())
        for (uint64_t b = f.tensors[k].nbytes; b < padded; ++b) EXPECT_EQ(p[b], 0) << f.tensors[k].name;
      expect_off += padded;
    }
    for (int k = 0; k < n; ++k) {
      Tensor t = gguf_tensor(f, static_cast<size_t>(k));
      ASSERT_EQ(t.shape(), (Shape{k % 7 + 1, 3}));
      EXPECT_EQ(std::memcmp(t.data<float>(), data[k].data(), data[k].size() * 4), 0);
    }
    Tensor th = gguf_tensor(f, static_cast<size_t>(n));
    EXPECT_EQ(th.dtype(), DType::F16);
    EXPECT_EQ(half_to_float(th.data<uint16_t>()[1]), -2.f);
    Tensor tq = gguf_tensor(f, static_cast<size_t>(n + 1));
    EXPECT_EQ(tq.data<float>()[0], -8.f);
    EXPECT_EQ(tq.data<float>()[31], 7.5f);
    EXPECT_EQ(listing(dir), std::vector<std::string>{"t.gguf"});
    fs::remove_all(dir);
  }
}

TEST(GgufWriter, RejectsBadTensors) {
  GGUFWriter w("/tmp/never-written.gguf");
  auto p = [](uint8_t*, size_t) {};
  w.add_tensor("a", 0, {4}, p);
  EXPECT_THROW(w.add_tensor("a", 0, {4}, p), std::invalid_argument);                      // duplicate
  EXPECT_THROW(w.add_tensor(std::string(64, 'x'), 0, {4}, p), std::invalid_argument);      // too long
  EXPECT_THROW(w.add_tensor("b", 0, {1, 1, 1, 1, 1}, p), std::invalid_argument);            // 5 dims
  EXPECT_THROW(w.add_tensor("c", 999, {4}, p), std::invalid_argument);                     // unknown type
  try {
    w.add_tensor("blk.0.attn_q.weight", 8, {48, 2}, p);  // Q8_0 rows must be multiples of 32
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("blk.0.attn_q.weight"), std::string::npos);
  }
  EXPECT_NO_THROW(w.add_tensor(std::string(63, 'y'), 0, {4}, p));
  EXPECT_THROW(w.set("", GGUFWriter::u32(1)), std::invalid_argument);
  EXPECT_THROW(GGUFWriter("/tmp/x.gguf", 24), std::invalid_argument);
}

TEST(GgufWriter, IOFailuresLeaveNoFile) {
  // Missing folder.
  {
    GGUFWriter w("/nonexistent-peftcpp-dir/sub/m.gguf");
    w.set("k", GGUFWriter::u32(1));
    try {
      w.write();
      FAIL() << "no error";
    } catch (const FileError& e) {
      EXPECT_NE(std::string(e.what()).find("/nonexistent-peftcpp-dir/sub/m.gguf"), std::string::npos);
    }
  }
  // A path through a regular file (ENOTDIR; fails as root too).
  {
    const std::string dir = temp_dir("notdir");
    { std::ofstream(dir + "/file") << "x"; }
    GGUFWriter w(dir + "/file/m.gguf");
    w.add_tensor("t", 0, {4}, [](uint8_t* d, size_t n) { std::memset(d, 0, n); });
    try {
      w.write();
      FAIL() << "no error";
    } catch (const FileError& e) {
      EXPECT_EQ(e.err, ENOTDIR);
      EXPECT_NE(std::string(e.what()).find(dir + "/file/m.gguf"), std::string::npos);
    }
    EXPECT_EQ(listing(dir), std::vector<std::string>{"file"});
    fs::remove_all(dir);
  }
  // A folder nobody can create files in, root included (/proc).
  {
    GGUFWriter w("/proc/peftcpp-writer-test.gguf");
    w.add_tensor("t", 0, {4}, [](uint8_t* d, size_t n) { std::memset(d, 0, n); });
    try {
      w.write();
      FAIL() << "no error";
    } catch (const FileError& e) {
      EXPECT_NE(std::string(e.what()).find("/proc/peftcpp-writer-test.gguf"), std::string::npos);
    }
    EXPECT_FALSE(fs::exists("/proc/peftcpp-writer-test.gguf"));
  }
  // A producer that throws: no temporary and no final file; an existing
  // file under the final name is left untouched.
  {
    const std::string dir = temp_dir("throw");
    const std::string path = dir + "/m.gguf";
    { std::ofstream(path) << "old"; }
    GGUFWriter w(path);
    w.set("k", GGUFWriter::u32(1));
    w.add_tensor("ok", 0, {4}, [](uint8_t* d, size_t n) { std::memset(d, 0, n); });
    w.add_tensor("bad", 0, {4}, [](uint8_t*, size_t) { throw std::runtime_error("producer failed"); });
    EXPECT_THROW(w.write(), std::runtime_error);
    EXPECT_EQ(listing(dir), std::vector<std::string>{"m.gguf"});
    std::ifstream in(path);
    std::string s;
    in >> s;
    EXPECT_EQ(s, "old");
    fs::remove_all(dir);
  }
}

// A full disk, emulated with RLIMIT_FSIZE (writes past the limit fail with
// EFBIG, like ENOSPC, without needing a small filesystem): FileError naming
// the path, the temporary removed, nothing under the final name.
TEST(GgufWriter, FullDiskLeavesNoFile) {
  const std::string dir = temp_dir("full");
  const std::string path = dir + "/big.gguf";
  GGUFWriter w(path);
  w.set("general.architecture", GGUFWriter::string("llama"));
  w.add_tensor("big", 0, {1 << 16}, [](uint8_t* d, size_t n) { std::memset(d, 1, n); });
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  rlimit lim = old;
  lim.rlim_cur = 64 * 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &lim), 0);
  bool threw = false;
  std::string msg;
  try {
    w.write();
  } catch (const FileError& e) {
    threw = true;
    msg = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  ASSERT_TRUE(threw);
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_TRUE(listing(dir).empty());
  fs::remove_all(dir);
}

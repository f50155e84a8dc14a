// GGUF reader and block dequantization: a hand-built file parses to the
// expected metadata and tensors (zero-copy for F32/F16), dequantizers give
// hand-computed values, every malformed header is rejected with the file
// named, and a deterministic fuzz run (mutations, truncations, huge counts)
// never crashes: each input loads or throws.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "quant/dequant.h"

using namespace peftcpp;

namespace {

// Little-endian byte builder for GGUF files.
struct Bytes {
  std::string b;
  template <class T>
  Bytes& put(T v) {
    b.append(reinterpret_cast<const char*>(&v), sizeof v);
    return *this;
  }
  Bytes& str(const std::string& s) {
    put<uint64_t>(s.size());
    b += s;
    return *this;
  }
  Bytes& pad(size_t align) {
    b.append((align - b.size() % align) % align, '\0');
    return *this;
  }
};

uint16_t f16(float x) { return float_to_half(x); }

// A Q8_0 block: d then 32 int8 values.
std::string q8_0_block(float d, const int8_t* q) {
  Bytes blk;
  blk.put<uint16_t>(f16(d));
  for (int i = 0; i < 32; ++i) blk.put<int8_t>(q[i]);
  return blk.b;
}

// A small valid file: metadata of several types (string, u32, f32, bool,
// string array, i32 array, nested array, empty array) and tensors F32 [2,3]
// (ne = {3,2}), F16 [4], Q8_0 [1,32], a zero-size F32 and an IQ2_XXS
// (a known type peftcpp cannot decode).
std::string valid_file(uint32_t version = 3) {
  Bytes h;
  h.put<uint32_t>(0x46554747).put<uint32_t>(version).put<uint64_t>(5).put<uint64_t>(8);
  h.str("general.architecture").put<int32_t>(8).str("llama");
  h.str("llama.block_count").put<int32_t>(4).put<uint32_t>(7);
  h.str("eps").put<int32_t>(6).put<float>(1e-5f);
  h.str("flag").put<int32_t>(7).put<uint8_t>(1);
  h.str("tokens").put<int32_t>(9).put<int32_t>(8).put<uint64_t>(3).str("a").str("").str("<s>");
  h.str("types").put<int32_t>(9).put<int32_t>(5).put<uint64_t>(2).put<int32_t>(-1).put<int32_t>(6);
  h.str("nested").put<int32_t>(9).put<int32_t>(9).put<uint64_t>(2);
  h.put<int32_t>(10).put<uint64_t>(1).put<uint64_t>(99);
  h.put<int32_t>(12).put<uint64_t>(2).put<double>(0.5).put<double>(-2.0);
  h.str("empty").put<int32_t>(9).put<int32_t>(4).put<uint64_t>(0);
  // tensor infos
  h.str("w.f32").put<uint32_t>(2).put<int64_t>(3).put<int64_t>(2).put<int32_t>(0).put<uint64_t>(0);
  h.str("w.f16").put<uint32_t>(1).put<int64_t>(4).put<int32_t>(1).put<uint64_t>(32);
  h.str("w.q8").put<uint32_t>(2).put<int64_t>(32).put<int64_t>(1).put<int32_t>(8).put<uint64_t>(64);
  h.str("w.empty").put<uint32_t>(2).put<int64_t>(0).put<int64_t>(5).put<int32_t>(0).put<uint64_t>(128);
  h.str("w.iq").put<uint32_t>(1).put<int64_t>(256).put<int32_t>(16).put<uint64_t>(128);
  h.pad(32);
  // data: f32 at 0 (24 bytes), f16 at 32 (8 bytes), q8_0 at 64 (34 bytes), iq2_xxs at 128 (66 bytes)
  Bytes d;
  for (int i = 0; i < 6; ++i) d.put<float>(0.5f * i - 1.0f);
  d.pad(32);
  for (int i = 0; i < 4; ++i) d.put<uint16_t>(f16(static_cast<float>(i) * 2.0f));
  d.pad(32);
  int8_t q[32];
  for (int i = 0; i < 32; ++i) q[i] = static_cast<int8_t>(i * 8 - 128);
  d.b += q8_0_block(0.25f, q);
  d.pad(32);
  for (int i = 0; i < 66; ++i) d.put<uint8_t>(static_cast<uint8_t>(i));
  return h.b + d.b;
}

// Parses an exactly-sized heap copy, so ASan flags any read past the end.
GGUFFile parse_copy(const std::string& bytes, const std::string& name = "mem.gguf") {
  std::shared_ptr<uint8_t> buf(new uint8_t[bytes.size() ? bytes.size() : 1], std::default_delete<uint8_t[]>());
  std::memcpy(buf.get(), bytes.data(), bytes.size());
  return parse_gguf(name, buf.get(), bytes.size(), buf);
}

class GgufTempFile {
 public:
  explicit GgufTempFile(const std::string& bytes) {
    path_ = ::testing::TempDir() + "peftcpp_gguf_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++) +
            ".gguf";
    std::ofstream f(path_, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  ~GgufTempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
};

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace

TEST(GgufReader, ParsesMetadataInOrder) {
  GgufTempFile tf(valid_file());
  GGUFFile f = read_gguf(tf.path());
  EXPECT_EQ(f.version, 3u);
  EXPECT_EQ(f.alignment, 32u);
  ASSERT_EQ(f.metadata.size(), 8u);
  EXPECT_EQ(f.metadata[0].first, "general.architecture");
  EXPECT_EQ(f.metadata[0].second.str, "llama");
  EXPECT_EQ(f.find("llama.block_count")->u, 7u);
  EXPECT_EQ(f.find("llama.block_count")->type, GGUFType::UINT32);
  EXPECT_FLOAT_EQ(static_cast<float>(f.find("eps")->f), 1e-5f);
  EXPECT_EQ(f.find("flag")->u, 1u);
  const GGUFValue* tok = f.find("tokens");
  ASSERT_TRUE(tok && tok->is_array());
  EXPECT_EQ(tok->elem_type, GGUFType::STRING);
  EXPECT_EQ(tok->strings, (std::vector<std::string>{"a", "", "<s>"}));
  const GGUFValue* ty = f.find("types");
  EXPECT_EQ(ty->count, 2u);
  EXPECT_EQ(ty->int_at(0), -1);
  EXPECT_EQ(ty->int_at(1), 6);
  const GGUFValue* nest = f.find("nested");
  ASSERT_EQ(nest->arrays.size(), 2u);
  EXPECT_EQ(nest->arrays[0].elem_type, GGUFType::UINT64);
  EXPECT_EQ(nest->arrays[0].uint_at(0), 99u);
  EXPECT_EQ(nest->arrays[1].float_at(1), -2.0);
  EXPECT_EQ(f.find("empty")->count, 0u);
  EXPECT_EQ(f.find("absent"), nullptr);
  EXPECT_THROW(ty->uint_at(0), std::invalid_argument);
  EXPECT_THROW(ty->int_at(2), std::invalid_argument);
}

TEST(GgufReader, TensorsZeroCopyAndDequantized) {
  GgufTempFile tf(valid_file(2));
  GGUFFile f = read_gguf(tf.path());
  EXPECT_EQ(f.version, 2u);
  ASSERT_EQ(f.tensors.size(), 5u);
  const GGUFTensorInfo& a = f.tensors[0];
  EXPECT_EQ(a.ne, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(a.shape, (Shape{2, 3}));
  EXPECT_EQ(a.nbytes, 24u);
  EXPECT_EQ(f.tensors[2].type_name, "Q8_0");
  EXPECT_EQ(f.tensors[2].nbytes, 34u);
  EXPECT_EQ(f.tensor_index("w.q8"), 2);
  EXPECT_EQ(f.tensor_index("nope"), -1);

  Tensor t = gguf_tensor(f, 0);
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.dtype(), DType::F32);
  EXPECT_FALSE(t.storage()->owned);
  EXPECT_FALSE(t.storage()->writable);
  EXPECT_EQ(static_cast<const uint8_t*>(t.raw_data()), f.tensor_data(0));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(t.data<float>()[i], 0.5f * i - 1.0f);

  Tensor h = gguf_tensor(f, 1);
  EXPECT_EQ(h.dtype(), DType::F16);
  EXPECT_FALSE(h.storage()->owned);
  EXPECT_EQ(half_to_float(h.data<uint16_t>()[3]), 6.0f);

  Tensor q = gguf_tensor(f, 2);
  EXPECT_EQ(q.shape(), (Shape{1, 32}));
  EXPECT_EQ(q.dtype(), DType::F32);
  EXPECT_TRUE(q.storage()->owned);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(q.data<float>()[i], 0.25f * static_cast<float>(i * 8 - 128));
  EXPECT_THROW(gguf_tensor(f, 2, /*dequantize=*/false), TypeError);

  Tensor e = gguf_tensor(f, 3);
  EXPECT_EQ(e.shape(), (Shape{5, 0}));

  std::string msg = error_of([&] { gguf_tensor(f, 4); });
  EXPECT_NE(msg.find("w.iq"), std::string::npos) << msg;
  EXPECT_NE(msg.find("IQ2_XXS"), std::string::npos) << msg;
  EXPECT_THROW(gguf_tensor(f, 5), std::out_of_range);

  // The tensor keeps the mapping alive after the file object is gone.
  {
    GGUFFile g = read_gguf(tf.path());
    t = gguf_tensor(g, 0);
  }
  EXPECT_EQ(t.data<float>()[5], 1.5f);
}

TEST(GgufReader, MissingFileIsFileError) {
  try {
    read_gguf("/nonexistent/dir/x.gguf");
    FAIL() << "no error";
  } catch (const FileError& e) {
    EXPECT_EQ(e.err, ENOENT);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/x.gguf"), std::string::npos);
  }
}

TEST(GgufReader, RejectsBadHeaders) {
  const std::string good = valid_file();
  auto expect_error = [](const std::string& bytes, const std::string& needle) {
    std::string msg = error_of([&] { parse_copy(bytes, "named.gguf"); });
    EXPECT_NE(msg.find("named.gguf"), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << "expected '" << needle << "' in: " << msg;
  };
  std::string b = good;
  b[0] = 'X';
  expect_error(b, "not a GGUF file");
  b = good;
  b[4] = 1;
  expect_error(b, "version 1");
  b = good;
  b[4] = 0;
  b[7] = 3;
  expect_error(b, "big-endian");
  b = good;
  std::memset(&b[16], 0xff, 7);  // n_kv huge
  expect_error(b, "metadata entries");
  b = good;
  std::memset(&b[8], 0x7f, 7);  // n_tensors huge
  expect_error(b, "tensors");
  for (size_t n = 0; n < good.size(); ++n) {
    std::string msg = error_of([&] { parse_copy(good.substr(0, n), "named.gguf"); });
    EXPECT_NE(msg.find("named.gguf"), std::string::npos) << "prefix " << n << ": " << msg;
  }
}

TEST(GgufDequant, HandComputedValues) {
  // Q4_0: d = 2, low nibble i, high nibble 15 - i -> x = 2 * (nib - 8).
  Bytes q4;
  q4.put<uint16_t>(f16(2.0f));
  for (int l = 0; l < 16; ++l) q4.put<uint8_t>(static_cast<uint8_t>(l | ((15 - l) << 4)));
  float y[256];
  dequantize_blocks(ggml_type_from_name("Q4_0"), q4.b.data(), y, 1);
  for (int l = 0; l < 16; ++l) {
    EXPECT_EQ(y[l], 2.0f * (l - 8));
    EXPECT_EQ(y[l + 16], 2.0f * (7 - l));
  }
  // Q4_K: d = 1, dmin = 0.5, sub-block j has scale j+1 and min j (6-bit
  // packing), every nibble 3 -> x = (j+1)*3 - 0.5*j.
  Bytes k;
  k.put<uint16_t>(f16(1.0f)).put<uint16_t>(f16(0.5f));
  uint8_t sc[12] = {0};
  for (int j = 0; j < 8; ++j) {
    int s = j + 1, m = j;
    if (j < 4) {
      sc[j] = static_cast<uint8_t>(s);
      sc[j + 4] = static_cast<uint8_t>(m);
    } else {
      sc[j + 4] = static_cast<uint8_t>((s & 15) | ((m & 15) << 4));
      sc[j - 4] |= static_cast<uint8_t>((s >> 4) << 6);
      sc[j] |= static_cast<uint8_t>((m >> 4) << 6);
    }
  }
  for (uint8_t c : sc) k.put<uint8_t>(c);
  for (int i = 0; i < 128; ++i) k.put<uint8_t>(0x33);
  dequantize_blocks(ggml_type_from_name("Q4_K"), k.b.data(), y, 1);
  for (int e = 0; e < 256; ++e) {
    int j = e / 32;
    EXPECT_EQ(y[e], static_cast<float>(j + 1) * 3.0f - 0.5f * static_cast<float>(j)) << e;
  }
  // Q6_K: d = 0.5, scales 2, all bits zero -> q = -32 -> x = 0.5*2*-32.
  std::string q6(210, '\0');
  for (int j = 0; j < 16; ++j) q6[192 + j] = 2;
  uint16_t h = f16(0.5f);
  std::memcpy(&q6[208], &h, 2);
  dequantize_blocks(ggml_type_from_name("Q6_K"), q6.data(), y, 1);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], -32.0f);
  EXPECT_THROW(dequantize_blocks(ggml_type_from_name("IQ2_XS"), q6.data(), y, 1), TypeError);
  EXPECT_THROW(dequantize_blocks(4, q6.data(), y, 1), TypeError);
}

TEST(GgufDequant, TypeTable) {
  EXPECT_EQ(ggml_type_traits(12).block_size, 256);
  EXPECT_EQ(ggml_type_traits(12).type_size, 144);
  EXPECT_STREQ(ggml_type_traits(14).name, "Q6_K");
  EXPECT_FALSE(ggml_type_traits(4).known());
  EXPECT_FALSE(ggml_type_traits(-1).known());
  EXPECT_FALSE(ggml_type_traits(1000).known());
  EXPECT_EQ(ggml_type_from_name("BF16"), 30);
  EXPECT_EQ(ggml_type_from_name("nope"), -1);
}

// Deterministic fuzz: byte flips, random u64 writes (huge counts, lengths,
// offsets), truncations and insertions of a valid file. Each input must load
// or throw a std::exception; loaded files must also survive reading every
// tensor. Runs under ASan in `make test-asan`.
TEST(GgufFuzz, MutatedFilesLoadOrThrow) {
  const std::string good = valid_file();
  std::mt19937_64 rng(20240611);
  int loaded = 0, rejected = 0;
  const uint64_t interesting[] = {0, 1, 31, 32, 255, 0x7fffffffffffffffull, 0xffffffffffffffffull,
                                  0x100000000ull, 1ull << 62, static_cast<uint64_t>(good.size())};
  for (int it = 0; it < 20000; ++it) {
    std::string b = good;
    const int n_mut = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < n_mut; ++m) {
      const size_t pos = rng() % b.size();
      switch (rng() % 6) {
        case 0: b[pos] = static_cast<char>(rng()); break;
        case 1: b[pos] ^= static_cast<char>(1u << (rng() % 8)); break;
        case 2: {
          uint64_t v = (rng() % 2) ? interesting[rng() % 10] : rng();
          size_t w = 1u << (rng() % 4);  // 1, 2, 4 or 8 bytes
          if (pos + w <= b.size()) std::memcpy(&b[pos], &v, w);
          break;
        }
        case 3: b.resize(pos); break;
        case 4: b.insert(pos, std::string(1 + rng() % 16, static_cast<char>(rng()))); break;
        case 5: b.erase(pos, 1 + rng() % 8); break;
      }
      if (b.empty()) b = "G";
    }
    try {
      GGUFFile f = parse_copy(b);
      ++loaded;
      for (size_t k = 0; k < f.tensors.size(); ++k) {
        try {
          Tensor t = gguf_tensor(f, k);
          if (t.numel() > 0 && t.dtype() == DType::F32) {
            volatile float s = t.data<float>()[t.numel() - 1];
            (void)s;
          }
        } catch (const TypeError&) {
        }
      }
    } catch (const std::invalid_argument& e) {
      ++rejected;
      EXPECT_NE(std::string(e.what()).find("mem.gguf"), std::string::npos) << e.what();
    }
  }
  RecordProperty("loaded", loaded);
  RecordProperty("rejected", rejected);
  EXPECT_GT(loaded, 1000);
  EXPECT_GT(rejected, 1000);
}

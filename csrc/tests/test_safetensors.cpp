// safetensors I/O (round trip, exact layout, every malformed-input error, a
// deterministic fuzz run, atomic writes) and the optimizers (AdamW, SGD and
// clipping against closed forms; parameters without a gradient get no state).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "io/safetensors.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/sgd.h"

using namespace peftcpp;

namespace {

// A fresh directory per test, removed (with its files) afterwards.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "peftcpp_st_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    char* d = ::mkdtemp(buf.data());
    EXPECT_NE(d, nullptr);
    path_ = d ? d : "/tmp";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A file from a header JSON and a data section (header padded as the format
// expects unless pad is false).
std::string make_file(std::string header, const std::string& data, bool pad = true) {
  if (pad) header.append((8 - header.size() % 8) % 8, ' ');
  uint64_t n = header.size();
  std::string out(reinterpret_cast<const char*>(&n), 8);
  return out + header + data;
}

Tensor arange_f32(const Shape& shape) {
  Tensor t = Tensor::empty(shape);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(i) * 0.5f - 1.f;
  return t;
}

// The exception message of load_safetensors(path), or "" when it loads.
template <class E>
std::string load_error(const std::string& path) {
  try {
    load_safetensors(path);
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

std::map<std::string, Tensor> sample_tensors() {
  std::map<std::string, Tensor> m;
  m["weight"] = arange_f32({3, 5});
  m["half"] = arange_f32({7}).to(DType::F16);
  m["bf"] = arange_f32({2, 3}).to(DType::BF16);
  Tensor ids = Tensor::empty({4}, DType::I64);
  for (int i = 0; i < 4; ++i) ids.data<int64_t>()[i] = int64_t(1) << (10 * i);
  m["ids"] = ids;
  Tensor i32 = Tensor::empty({3}, DType::I32);
  for (int i = 0; i < 3; ++i) i32.data<int32_t>()[i] = -i * 1000;
  m["i32"] = i32;
  m["scalar"] = Tensor::full({}, 2.5f);
  m["empty"] = Tensor::zeros({0, 4});
  return m;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.raw_data(), cb.raw_data(), ca.numel() * dtype_size(ca.dtype())) == 0;
}

}  // namespace

// ---------------------------------------------------------------- safetensors

TEST(Safetensors, RoundTripAllDtypesZeroCopy) {
  TempDir dir;
  auto tensors = sample_tensors();
  std::map<std::string, std::string> meta{{"format", "pt"}, {"note", "ünïcode \"quoted\""}};
  const std::string path = dir.file("a.safetensors");
  save_safetensors(path, tensors, meta);
  SafetensorsFile f = load_safetensors(path);
  EXPECT_EQ(f.metadata, meta);
  ASSERT_EQ(f.tensors.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(f.tensors.count(name)) << name;
    const Tensor& l = f.tensors.at(name);
    EXPECT_TRUE(same_bytes(l, t)) << name;
    EXPECT_FALSE(l.storage()->owned) << name << " should borrow the mapping";
    EXPECT_FALSE(l.storage()->writable) << name;
    if (l.numel() > 0) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(l.raw_data()) % dtype_size(l.dtype()), 0u) << name;
    }
  }
  // All tensors share one keepalive (the mapping).
  EXPECT_EQ(f.tensors.at("weight").storage()->keepalive, f.tensors.at("ids").storage()->keepalive);
}

TEST(Safetensors, LayoutMatchesReferenceWriter) {
  // What safetensors (Rust, 0.4+) writes for the same tensors: metadata first,
  // tensors by dtype alignment then name, compact JSON padded to 8 bytes.
  TempDir dir;
  std::map<std::string, Tensor> m;
  m["b"] = Tensor::zeros({3}, DType::F16);
  m["a"] = Tensor::full({3}, 1.f);
  m["c"] = Tensor::zeros({2}, DType::I64);
  m["d"] = Tensor::zeros({2, 0}, DType::I32);
  m["e"] = Tensor::zeros({});
  save_safetensors(dir.file("x.st"), m, {{"k", "v"}});
  std::string bytes = read_bytes(dir.file("x.st"));
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.substr(8, n),
            "{\"__metadata__\":{\"k\":\"v\"},"
            "\"c\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
            "\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[16,28]},"
            "\"e\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[28,32]},"
            "\"d\":{\"dtype\":\"I32\",\"shape\":[2,0],\"data_offsets\":[32,32]},"
            "\"b\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[32,38]}}   ");
  EXPECT_EQ(bytes.size(), 8 + n + 38);
}

TEST(Safetensors, NonContiguousTensorIsWrittenContiguous) {
  TempDir dir;
  Tensor t = arange_f32({3, 4});
  Tensor tt = t.as_strided({4, 3}, {1, 4}, 0);  // transpose
  save_safetensors(dir.file("t.st"), {{"t", tt}});
  Tensor l = load_safetensors(dir.file("t.st")).tensors.at("t");
  ASSERT_EQ(l.shape(), Shape({4, 3}));
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(l.data<float>()[i * 3 + j], t.data<float>()[j * 4 + i]);
}

TEST(Safetensors, MappingOutlivesFileAndOtherTensors) {
  TempDir dir;
  const std::string path = dir.file("m.st");
  save_safetensors(path, sample_tensors());
  Tensor w;
  {
    SafetensorsFile f = load_safetensors(path);
    w = f.tensors.at("weight");
  }
  ASSERT_EQ(::unlink(path.c_str()), 0);
  EXPECT_TRUE(same_bytes(w, arange_f32({3, 5})));
}

TEST(Safetensors, MisalignedDataIsCopiedNotBorrowed) {
  // An unpadded header (another writer) leaves the F32 data at an odd address.
  TempDir dir;
  float v[2] = {1.5f, -2.f};
  std::string data(reinterpret_cast<const char*>(v), 8);
  write_bytes(dir.file("odd.st"),
              make_file("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", data, false));
  Tensor x = load_safetensors(dir.file("odd.st")).tensors.at("x");
  EXPECT_TRUE(x.storage()->owned);
  EXPECT_EQ(x.data<float>()[0], 1.5f);
  EXPECT_EQ(x.data<float>()[1], -2.f);
}

TEST(Safetensors, MalformedFilesRaiseClearErrors) {
  TempDir dir;
  const std::string p = dir.file("bad.st");
  auto expect_value_error = [&](const std::string& bytes, const std::vector<std::string>& needles) {
    write_bytes(p, bytes);
    std::string msg = load_error<std::invalid_argument>(p);
    ASSERT_FALSE(msg.empty()) << "no error for a malformed file";
    EXPECT_NE(msg.find(p), std::string::npos) << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  };
  const std::string data16(16, '\0');
  auto entry = [](const std::string& dtype, const std::string& shape, const std::string& offs) {
    return "{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offs + "}";
  };
  expect_value_error("abc", {"too short"});
  expect_value_error(std::string("\xff\xff\xff\xff\x00\x00\x00\x00", 8) + "{}", {"exceeds the file size"});
  expect_value_error(make_file("{\"x\": [1, 2", data16), {"not valid JSON"});
  expect_value_error(make_file("[1,2]", ""), {"not a JSON object"});
  expect_value_error(make_file("{\"x\":" + entry("F32", "[4]", "[0,16]") + "}", "12345678"),
                     {"'x'", "run past the end"});
  expect_value_error(make_file("{\"x\":" + entry("F32", "[4]", "[0,12]") + "}", data16), {"'x'", "needs 16 bytes"});
  expect_value_error(make_file("{\"x\":" + entry("F32", "[2]", "[0,8]") + ",\"y\":" + entry("F32", "[2]", "[4,12]") +
                                   "}",
                               data16),
                     {"'x'", "'y'", "overlap"});
  expect_value_error(make_file("{\"x\":" + entry("Q7", "[2]", "[0,8]") + "}", data16), {"'x'", "unknown dtype"});
  expect_value_error(make_file("{\"x\":" + entry("F32", "[-2]", "[0,8]") + "}", data16), {"'x'", "shape"});
  expect_value_error(make_file("{\"x\":" + entry("F32", "[2.0]", "[0,8]") + "}", data16), {"'x'", "shape"});
  expect_value_error(make_file("{\"x\":" + entry("F32", "[4294967296,4294967296]", "[0,8]") + "}", data16),
                     {"'x'", "too many elements"});
  expect_value_error(make_file("{\"x\":" + entry("F32", "[2]", "[8,0]") + "}", data16), {"'x'", "end before"});
  expect_value_error(make_file("{\"x\":" + entry("F32", "[2]", "[0]") + "}", data16), {"'x'", "data_offsets"});
  expect_value_error(make_file("{\"x\":{\"shape\":[2],\"data_offsets\":[0,8]}}", data16), {"'x'", "dtype"});
  expect_value_error(make_file("{\"x\":5}", data16), {"'x'", "not a JSON object"});
  expect_value_error(make_file("{\"__metadata__\":{\"k\":1}}", ""), {"metadata", "'k'"});

  // Invalid UTF-8 inside the JSON: the parser quotes it; the message must
  // stay printable ASCII so it converts to a Python str.
  expect_value_error(make_file("{\"__metadata__\":{\"a\":\"\xff\xfe\"}}", ""), {"not valid JSON"});
  for (unsigned char c : load_error<std::invalid_argument>(p)) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << int(c);
  // Deep nesting must not exhaust the stack.
  expect_value_error(make_file("{\"x\":" + std::string(1000000, '['), ""), {"not valid JSON"});

  // A real dtype peftcpp has no type for: TypeError naming tensor and dtype.
  write_bytes(p, make_file("{\"d\":" + entry("F64", "[2]", "[0,16]") + "}", data16));
  std::string msg = load_error<TypeError>(p);
  EXPECT_NE(msg.find("'d'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("F64"), std::string::npos) << msg;

  // Missing file and directory: FileError with the errno.
  try {
    load_safetensors(dir.file("missing.st"));
    FAIL() << "no error for a missing file";
  } catch (const FileError& e) {
    EXPECT_EQ(e.err, ENOENT);
    EXPECT_NE(std::string(e.what()).find("missing.st"), std::string::npos);
  }
  EXPECT_THROW(load_safetensors(dir.path()), FileError);
}

TEST(Safetensors, FuzzedFilesLoadOrThrowNeverCrash) {
  // Deterministic: mutations of a valid file (random bytes, digits changed
  // inside the JSON header, truncations, header lengths). Each load must
  // either throw a std::exception or return tensors whose bytes are all
  // readable (touched below, so an out-of-range view would fault or trip ASan).
  TempDir dir;
  const std::string good_path = dir.file("good.st");
  save_safetensors(good_path, sample_tensors(), {{"m", "1"}});
  const std::string good = read_bytes(good_path);
  uint64_t hlen;
  std::memcpy(&hlen, good.data(), 8);
  std::vector<size_t> digits;  // positions of digits in the header
  for (size_t i = 8; i < 8 + hlen; ++i)
    if (good[i] >= '0' && good[i] <= '9') digits.push_back(i);
  ASSERT_FALSE(digits.empty());

  std::mt19937_64 rng(20240611);
  const std::string path = dir.file("fuzz.st");
  int loaded = 0, rejected = 0;
  for (int iter = 0; iter < 1500; ++iter) {
    std::string b = good;
    const int kind = iter % 5;
    if (kind == 0) {  // random bytes anywhere
      for (int k = 0, n = 1 + rng() % 4; k < n; ++k) b[rng() % b.size()] = static_cast<char>(rng());
    } else if (kind == 1) {  // a digit of a shape or offset changed
      for (int k = 0, n = 1 + rng() % 2; k < n; ++k) b[digits[rng() % digits.size()]] = '0' + rng() % 10;
    } else if (kind == 2) {  // truncated
      b.resize(rng() % b.size());
    } else if (kind == 3) {  // header length field
      uint64_t n = (rng() % 2) ? rng() : hlen + (rng() % 64) - 32;
      std::memcpy(&b[0], &n, 8);
    } else {  // structural characters of the header
      const char pool[] = "{}[]\":, -.e\\0";
      b[8 + rng() % hlen] = pool[rng() % (sizeof(pool) - 1)];
    }
    write_bytes(path, b);
    try {
      SafetensorsFile f = load_safetensors(path);
      volatile uint8_t sink = 0;
      for (const auto& [name, t] : f.tensors) {
        const auto* p = static_cast<const uint8_t*>(t.raw_data());
        const size_t nb = static_cast<size_t>(t.numel()) * dtype_size(t.dtype());
        for (size_t i = 0; i < nb; ++i) sink = sink ^ p[i];
      }
      ++loaded;
    } catch (const std::exception&) {
      ++rejected;
    }
  }
  // Both outcomes must actually occur, or the mutations are not exercising
  // the validation.
  EXPECT_GT(loaded, 10);
  EXPECT_GT(rejected, 500);
}

TEST(Safetensors, FailedSaveLeavesExistingFileUntouched) {
  TempDir dir;
  const std::string path = dir.file("keep.st");
  save_safetensors(path, sample_tensors());
  const std::string before = read_bytes(path);
  std::map<std::string, Tensor> bad{{"ok", Tensor::zeros({2})}, {"__metadata__", Tensor::zeros({1})}};
  EXPECT_THROW(save_safetensors(path, bad), std::invalid_argument);
  std::map<std::string, Tensor> undefined{{"x", Tensor()}};
  EXPECT_THROW(save_safetensors(path, undefined), std::invalid_argument);
  EXPECT_EQ(read_bytes(path), before);

  // The rename itself fails (the target is a directory): the temporary file
  // is removed and the directory is left alone.
  const std::string target = dir.file("adir");
  ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);
  EXPECT_THROW(save_safetensors(target, sample_tensors()), FileError);
  struct stat sb;
  ASSERT_EQ(::stat(target.c_str(), &sb), 0);
  EXPECT_TRUE(S_ISDIR(sb.st_mode));
  const std::string tmp = target + ".tmp-" + std::to_string(::getpid());
  EXPECT_NE(::access(tmp.c_str(), F_OK), 0) << "temporary file left behind";
}

TEST(Safetensors, OverwriteFileThatTensorsStillMap) {
  TempDir dir;
  const std::string path = dir.file("o.st");
  save_safetensors(path, {{"w", arange_f32({4})}});
  Tensor old = load_safetensors(path).tensors.at("w");
  save_safetensors(path, {{"w", Tensor::full({4}, 9.f)}});  // rename: the old inode stays mapped
  EXPECT_TRUE(same_bytes(old, arange_f32({4})));
  EXPECT_EQ(load_safetensors(path).tensors.at("w").data<float>()[2], 9.f);
}

// ------------------------------------------------------------------ optimizers

TEST(Optim, AdamWFirstStepIsSignedLearningRate) {
  // Step 1: m_hat = g, v_hat = g^2, so p <- p * (1 - lr*wd) - lr * g / (|g| + eps).
  Tensor p = arange_f32({5});
  p.set_requires_grad(true);
  Tensor g = Tensor::empty({5});
  const float gv[5] = {0.3f, -2.f, 1e-3f, 5.f, -0.7f};
  std::memcpy(g.data<float>(), gv, sizeof gv);
  p.set_grad(g);
  Tensor p0 = p.clone();
  AdamW opt({p}, {0.1, 0.9, 0.999, 1e-8, 0.01});
  opt.step();
  for (int i = 0; i < 5; ++i) {
    double expect = p0.data<float>()[i] * (1 - 0.1 * 0.01) - 0.1 * gv[i] / (std::fabs(gv[i]) + 1e-8);
    EXPECT_NEAR(p.data<float>()[i], expect, 1e-6) << i;
  }
  EXPECT_EQ(opt.state()[0].step, 1);
  EXPECT_NEAR(opt.state()[0].exp_avg.data<float>()[1], 0.1 * -2.0, 1e-7);
  EXPECT_NEAR(opt.state()[0].exp_avg_sq.data<float>()[1], 0.001 * 4.0, 1e-8);
}

TEST(Optim, ParametersWithoutGradAreSkippedAndGetNoState) {
  Tensor a = arange_f32({3}), b = arange_f32({2, 2});
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  a.set_grad(Tensor::full({3}, 1.f));
  AdamW adam({a, b});
  adam.step();
  adam.step();
  EXPECT_EQ(adam.state()[0].step, 2);
  EXPECT_EQ(adam.state()[1].step, 0);
  EXPECT_FALSE(adam.state()[1].exp_avg.defined());
  EXPECT_TRUE(same_bytes(b, arange_f32({2, 2})));

  SGD sgd({a, b}, {0.1, 0.9});
  sgd.step();
  EXPECT_TRUE(sgd.state()[0].momentum_buffer.defined());
  EXPECT_FALSE(sgd.state()[1].momentum_buffer.defined());
  sgd.zero_grad();
  EXPECT_FALSE(a.grad().defined());
}

TEST(Optim, SGDMomentumMatchesClosedForm) {
  // Constant gradient g, momentum mu, no dampening: buf1 = g, buf2 = mu*g + g.
  Tensor p = Tensor::full({4}, 1.f);
  p.set_requires_grad(true);
  p.set_grad(Tensor::full({4}, 0.5f));
  SGD opt({p}, {0.1, 0.9});
  opt.step();
  opt.step();
  EXPECT_NEAR(p.data<float>()[0], 1.0 - 0.1 * 0.5 - 0.1 * (0.9 * 0.5 + 0.5), 1e-7);
  SGD nesterov({p}, {0.1, 0.9, 0, 0, true});
  Tensor before = p.clone();
  nesterov.step();  // buf = g; update = g + mu*buf
  EXPECT_NEAR(p.data<float>()[0], before.data<float>()[0] - 0.1 * (0.5 + 0.9 * 0.5), 1e-7);
  EXPECT_THROW(SGD({p}, {0.1, 0.0, 0, 0, true}), std::invalid_argument);  // Nesterov needs momentum
}

TEST(Optim, ClipGradNormScalesOnlyAboveMax) {
  Tensor a = Tensor::zeros({2}), b = Tensor::zeros({1}), c = Tensor::zeros({3});
  for (Tensor* t : {&a, &b, &c}) t->set_requires_grad(true);
  Tensor ga = Tensor::empty({2});
  ga.data<float>()[0] = 3.f;
  ga.data<float>()[1] = 0.f;
  a.set_grad(ga);
  b.set_grad(Tensor::full({1}, 4.f));  // c has no gradient: ignored
  double n = clip_grad_norm({a, b, c}, 1.0);
  EXPECT_NEAR(n, 5.0, 1e-6);
  EXPECT_NEAR(a.grad().data<float>()[0], 3.0 / (5.0 + 1e-6), 1e-7);
  EXPECT_NEAR(b.grad().data<float>()[0], 4.0 / (5.0 + 1e-6), 1e-7);
  const float before = a.grad().data<float>()[0];
  EXPECT_NEAR(clip_grad_norm({a, b, c}, 10.0), 1.0, 1e-5);  // below max: unchanged
  EXPECT_EQ(a.grad().data<float>()[0], before);
  EXPECT_NEAR(clip_grad_norm({a, b}, 100.0, INFINITY), 4.0 / (5.0 + 1e-6), 1e-6);
  b.grad().data<float>()[0] = NAN;
  EXPECT_THROW(clip_grad_norm({a, b}, 1.0, 2.0, true), std::runtime_error);
}

TEST(Optim, ReadOnlyParameterIsRejectedBeforeAnyUpdate) {
  TempDir dir;
  save_safetensors(dir.file("w.st"), {{"w", arange_f32({3})}});
  Tensor frozen = load_safetensors(dir.file("w.st")).tensors.at("w");
  Tensor ok = arange_f32({3});
  ok.set_requires_grad(true);
  ok.set_grad(Tensor::full({3}, 1.f));
  frozen.set_requires_grad(true);
  frozen.set_grad(Tensor::full({3}, 1.f));
  AdamW opt({ok, frozen});
  EXPECT_THROW(opt.step(), std::invalid_argument);
  EXPECT_TRUE(same_bytes(ok, arange_f32({3})));  // validated first: nothing moved
  EXPECT_EQ(opt.state()[0].step, 0);
}

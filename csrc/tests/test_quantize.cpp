// Float32 -> ggml quantization (quant/quantize.h). Byte identity with ggml is
// checked in tests/test_gguf_quants.py against llama.cpp's own library; here:
// round-trip error within llama.cpp's test-quantize-fns bounds, bytes that do
// not depend on the thread count, no NaN from zero/constant/huge/tiny rows,
// exact F32/F16/BF16 conversions, and errors for bad row lengths and types.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "quant/dequant.h"
#include "quant/quantize.h"

using namespace peftcpp;

namespace {

const char* kTypes[] = {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
                        "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"};

int type_id(const char* name) {
  const int id = ggml_type_from_name(name);
  EXPECT_GE(id, 0) << name;
  return id;
}

std::vector<uint8_t> quantize(int id, const std::vector<float>& x, int64_t nrows, int nthreads = 1) {
  const int64_t n = static_cast<int64_t>(x.size()) / nrows;
  std::vector<uint8_t> q(quantized_row_bytes(id, n) * static_cast<size_t>(nrows));
  quantize_rows(id, x.data(), q.data(), nrows, n, nthreads);
  return q;
}

std::vector<float> dequantize(int id, const std::vector<uint8_t>& q, size_t n) {
  const GGMLTypeTraits t = ggml_type_traits(id);
  std::vector<float> y(n);
  dequantize_blocks(id, q.data(), y.data(), static_cast<int64_t>(q.size()) / t.type_size);
  return y;
}

}  // namespace

TEST(Quantize, SupportedTypesAndRowBytes) {
  for (const char* name : kTypes) EXPECT_TRUE(can_quantize(type_id(name))) << name;
  EXPECT_FALSE(can_quantize(ggml_type_from_name("IQ4_NL")));
  EXPECT_FALSE(can_quantize(-1));
  EXPECT_EQ(quantized_row_bytes(type_id("Q4_K"), 512), 288u);
  EXPECT_EQ(quantized_row_bytes(type_id("Q8_0"), 64), 68u);
  EXPECT_EQ(quantized_row_bytes(type_id("BF16"), 10), 20u);
  EXPECT_EQ(quantized_row_bytes(type_id("Q2_K"), 0), 0u);
}

// llama.cpp tests/test-quantize-fns.cpp: 4096 values of 0.1 + 2*cos(i),
// total error sqrt(sum d^2)/n below 0.002 (Q2_K 0.0075, Q3_K 0.004).
TEST(Quantize, RoundTripErrorWithinLlamaCppBounds) {
  std::vector<float> x(4096);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.1f + 2.0f * std::cos(static_cast<float>(i));
  for (const char* name : kTypes) {
    const int id = type_id(name);
    const auto y = dequantize(id, quantize(id, x, 1), x.size());
    double s = 0;
    for (size_t i = 0; i < x.size(); ++i) s += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
    const double err = std::sqrt(s) / static_cast<double>(x.size());
    const std::string n = name;
    const double bound = n == "Q2_K" ? 0.0075 : n == "Q3_K" ? 0.004 : 0.002;
    EXPECT_LT(err, bound) << name;
  }
}

TEST(Quantize, BytesIndependentOfThreadCount) {
  std::mt19937 gen(42);
  std::normal_distribution<float> nd(0.f, 1.f);
  const int64_t nrows = 37, n = 512;
  std::vector<float> x(static_cast<size_t>(nrows * n));
  for (size_t i = 0; i < x.size(); ++i) x[i] = nd(gen) * (1.0f + static_cast<float>(i / n));
  for (const char* name : kTypes) {
    const int id = type_id(name);
    const auto one = quantize(id, x, nrows, 1);
    EXPECT_EQ(one, quantize(id, x, nrows, 2)) << name;
    EXPECT_EQ(one, quantize(id, x, nrows, 5)) << name;
    EXPECT_EQ(one, quantize(id, x, nrows, 0)) << name;
    // A row on its own gives the same bytes as inside the batch.
    std::vector<float> row(x.begin() + 3 * n, x.begin() + 4 * n);
    const auto r = quantize(id, row, 1);
    EXPECT_TRUE(std::equal(r.begin(), r.end(), one.begin() + 3 * static_cast<int64_t>(r.size()))) << name;
  }
}

TEST(Quantize, DegenerateRowsGiveNoNaN) {
  const int64_t n = 256;
  std::vector<std::vector<float>> rows;
  rows.emplace_back(n, 0.0f);                           // zero
  rows.emplace_back(n, 3.25f);                          // constant
  rows.emplace_back(n, -1e-3f);                         // constant negative
  rows.emplace_back(n, 1e-30f);                         // tiny (below ggml's 1e-15 cutoff)
  std::vector<float> huge(n, 0.5f);
  huge[17] = 6e4f;                                      // large but within f16 range of the scales
  rows.push_back(huge);
  std::vector<float> spike(n, 0.0f);
  spike[100] = -7.0f;                                   // one value, rest zero
  rows.push_back(spike);
  for (const char* name : kTypes) {
    const int id = type_id(name);
    for (size_t r = 0; r < rows.size(); ++r) {
      const auto y = dequantize(id, quantize(id, rows[r], 1), n);
      for (int64_t i = 0; i < n; ++i) ASSERT_FALSE(std::isnan(y[i])) << name << " row " << r << " elem " << i;
      // Zero rows decode to zeros exactly; constants close to themselves.
      if (r == 0) {
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i], 0.0f) << name;
      }
      if (r == 1) {
        for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(y[i], 3.25f, 0.25f) << name;
      }
    }
  }
}

TEST(Quantize, HugeValueDoesNotCrash) {
  // 1e30 overflows the f16 scales (as in ggml); it must still run and keep
  // the other rows intact.
  const int64_t n = 256;
  std::vector<float> x(2 * n, 0.25f);
  x[5] = 1e30f;
  for (const char* name : kTypes) {
    const int id = type_id(name);
    const auto q = quantize(id, x, 2);
    std::vector<float> row(x.begin() + n, x.end());
    const auto r = quantize(id, row, 1);
    EXPECT_TRUE(std::equal(r.begin(), r.end(), q.begin() + static_cast<int64_t>(r.size()))) << name;
  }
}

TEST(Quantize, PlainConversionsAreExact) {
  const float vals[] = {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 65520.0f, 1e-8f, 5.960464477539063e-08f,
                        2.98023223876953125e-08f, 1.00048828125f, 1.0009765625f, INFINITY};
  std::vector<float> x(std::begin(vals), std::end(vals));
  const auto f32 = quantize(type_id("F32"), x, 1);
  EXPECT_EQ(std::memcmp(f32.data(), x.data(), x.size() * 4), 0);
  const auto f16 = quantize(type_id("F16"), x, 1);
  auto h = [&](size_t i) { return static_cast<uint16_t>(f16[2 * i] | (f16[2 * i + 1] << 8)); };
  EXPECT_EQ(h(0), 0x0000);
  EXPECT_EQ(h(1), 0x8000);
  EXPECT_EQ(h(2), 0x3C00);
  EXPECT_EQ(h(3), 0xC100);
  EXPECT_EQ(h(4), 0x7BFF);
  EXPECT_EQ(h(5), 0x7C00);  // rounds up to inf
  EXPECT_EQ(h(6), 0x0000);  // below half the smallest subnormal
  EXPECT_EQ(h(7), 0x0001);  // smallest subnormal
  EXPECT_EQ(h(8), 0x0000);  // exactly half of it: ties to even
  EXPECT_EQ(h(9), 0x3C00);  // halfway between 1 and next: ties to even (down)
  EXPECT_EQ(h(10), 0x3C01);
  EXPECT_EQ(h(11), 0x7C00);
  const auto bf = quantize(type_id("BF16"), x, 1);
  auto b = [&](size_t i) { return static_cast<uint16_t>(bf[2 * i] | (bf[2 * i + 1] << 8)); };
  EXPECT_EQ(b(2), 0x3F80);
  EXPECT_EQ(b(3), 0xC020);
  EXPECT_EQ(b(11), 0x7F80);
  // NaN stays a quiet NaN in both (ggml: f16 0x7E00, bf16 top bits | 0x40).
  std::vector<float> nan(1);
  const uint32_t snan = 0x7F800001u;
  std::memcpy(nan.data(), &snan, 4);
  const auto hn = quantize(type_id("F16"), nan, 1);
  EXPECT_EQ(hn[0] | (hn[1] << 8), 0x7E00);
  const auto bn = quantize(type_id("BF16"), nan, 1);
  EXPECT_EQ(bn[0] | (bn[1] << 8), 0x7FC0);
}

TEST(Quantize, ErrorsNameTypeAndSizes) {
  std::vector<float> x(300, 1.0f);
  std::vector<uint8_t> out(4096);
  try {
    quantize_rows(type_id("Q4_K"), x.data(), out.data(), 1, 300, 1);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("Q4_K"), std::string::npos) << msg;
    EXPECT_NE(msg.find("256"), std::string::npos) << msg;
    EXPECT_NE(msg.find("300"), std::string::npos) << msg;
  }
  EXPECT_THROW(quantized_row_bytes(type_id("Q8_0"), 48), std::invalid_argument);
  try {
    quantized_row_bytes(ggml_type_from_name("IQ4_NL"), 256);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("IQ4_NL"), std::string::npos) << e.what();
  }
  EXPECT_THROW(quantize_rows(99, x.data(), out.data(), 1, 256, 1), std::invalid_argument);
  EXPECT_THROW(quantize_rows(type_id("Q8_0"), x.data(), out.data(), -1, 32, 1), std::invalid_argument);
  // Zero rows is a no-op, not an error.
  EXPECT_NO_THROW(quantize_rows(type_id("Q6_K"), x.data(), out.data(), 0, 256, 1));
}

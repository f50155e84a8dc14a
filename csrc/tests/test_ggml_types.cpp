// The ggml type table (quant/ggml_types.h): every row consistent with
// itself, with the lookups, and with what its codecs read and write; the
// llama file type table pointing at types peftcpp can write.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "quant/dequant.h"
#include "quant/ggml_types.h"
#include "quant/quantize.h"
#include "quant/type_rules.h"

using namespace peftcpp;

namespace {

constexpr uint8_t kGuard = 0xA5;

// Two blocks' worth of smooth values with one outlier, scaled by `scale`.
std::vector<float> sample(int64_t n, float scale) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[i] = scale * (0.1f + std::sin(0.37f * static_cast<float>(i)));
  x[n / 3] = 1.75f * scale;
  return x;
}

}  // namespace

TEST(GGMLTypes, RowsAreUniqueAndFoundByIdAndName) {
  std::set<int> ids;
  std::set<std::string> names;
  for (const GGMLTypeTraits* t : ggml_types()) {
    ASSERT_TRUE(t->known());
    EXPECT_TRUE(ids.insert(t->id).second) << t->name;
    EXPECT_TRUE(names.insert(t->name).second) << t->name;
    EXPECT_EQ(&ggml_type_traits(t->id), t) << t->name;
    EXPECT_EQ(ggml_type_from_name(t->name), t->id) << t->name;
    EXPECT_GT(t->block_size, 0) << t->name;
    EXPECT_GT(t->type_size, 0) << t->name;
  }
  EXPECT_EQ(ids.size(), 34u);  // ggml.h's GGML_TYPE_COUNT (42) less the 8 removed ids
  EXPECT_FALSE(ggml_type_traits(4).known());
  EXPECT_FALSE(ggml_type_traits(GGML_TYPE_Q1_0 + 1).known());
}

TEST(GGMLTypes, ListedUnblockedFirstThenById) {
  const auto& v = ggml_types();
  for (size_t k = 1; k < v.size(); ++k) {
    const bool prev_blocked = v[k - 1]->block_size > 1, blocked = v[k]->block_size > 1;
    EXPECT_TRUE(prev_blocked < blocked || (prev_blocked == blocked && v[k - 1]->id < v[k]->id))
        << v[k - 1]->name << " before " << v[k]->name;
  }
  EXPECT_EQ(ggml_type_names(&GGMLTypeTraits::quantizable),
            "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K");
  EXPECT_EQ(ggml_type_names(&GGMLTypeTraits::dequantizable),
            "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS");
}

// from_float_ref writes exactly type_size bytes per block: every byte of
// the blocks is written (same result over two different fills) and not one
// past them; quantized_row_bytes agrees.
TEST(GGMLTypes, QuantizerWritesTypeSizeBytesPerBlock) {
  for (const GGMLTypeTraits* t : ggml_types()) {
    if (!t->quantizable()) continue;
    const int64_t n = 2 * t->block_size;
    const size_t bytes = static_cast<size_t>(2 * t->type_size);
    EXPECT_EQ(quantized_row_bytes(t->id, n), bytes) << t->name;
    const std::vector<float> x = sample(n, 1.0f);
    std::vector<uint8_t> a(bytes + 16, kGuard), b(bytes + 16, static_cast<uint8_t>(~kGuard));
    t->from_float_ref(x.data(), a.data(), n);
    t->from_float_ref(x.data(), b.data(), n);
    EXPECT_EQ(std::memcmp(a.data(), b.data(), bytes), 0) << t->name << ": some block bytes are not written";
    for (size_t k = bytes; k < a.size(); ++k) ASSERT_EQ(a[k], kGuard) << t->name << ": wrote past its blocks";
  }
}

// to_float decodes exactly block_size values per block, the same ones
// dequantize_blocks gives, close to what was quantized.
TEST(GGMLTypes, BlockRoundTrip) {
  for (const GGMLTypeTraits* t : ggml_types()) {
    if (!t->quantizable()) continue;
    ASSERT_TRUE(t->dequantizable()) << t->name;
    const int64_t n = t->block_size == 1 ? 64 : t->block_size;
    const float scale = 3.0f;
    const std::vector<float> x = sample(n, scale);
    std::vector<uint8_t> q(quantized_row_bytes(t->id, n));
    t->from_float_ref(x.data(), q.data(), n);

    std::vector<float> y(static_cast<size_t>(n) + 4, 123.0f), z(static_cast<size_t>(n));
    for (int64_t b = 0; b < n / t->block_size; ++b)
      t->to_float(q.data() + b * t->type_size, y.data() + b * t->block_size);
    for (size_t k = static_cast<size_t>(n); k < y.size(); ++k) ASSERT_EQ(y[k], 123.0f) << t->name;
    dequantize_blocks(t->id, q.data(), z.data(), n / t->block_size);
    EXPECT_EQ(std::memcmp(y.data(), z.data(), z.size() * sizeof(float)), 0) << t->name;

    // Error bounds per element: exact for F32, f16/bf16 rounding for the
    // other unblocked types, and for the block types an RMS error small
    // against the values (test_quantize.cpp checks llama.cpp's tighter bounds).
    double se = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (t->id == GGML_TYPE_F32) {
        EXPECT_EQ(z[i], x[i]) << t->name;
      } else if (t->block_size == 1) {
        EXPECT_LE(std::fabs(z[i] - x[i]), 0.01f * scale) << t->name << " element " << i;
      }
      se += (double(z[i]) - x[i]) * (double(z[i]) - x[i]);
    }
    EXPECT_LT(std::sqrt(se / static_cast<double>(n)), 0.2 * scale) << t->name;
  }
}

TEST(GGMLTypes, LlamaFileTypesPointAtWritableTypes) {
  std::set<std::string> names;
  int prev = -1;
  for (const LlamaFileType& f : llama_file_types()) {
    EXPECT_TRUE(names.insert(f.name).second) << f.name;
    EXPECT_GT(f.id, prev) << f.name;
    prev = f.id;
    EXPECT_EQ(ftype_from_name(f.name), f.id);
    EXPECT_STREQ(ftype_name(f.id), f.name);
    EXPECT_TRUE(ggml_type_traits(f.default_type).quantizable()) << f.name;
    EXPECT_EQ(ftype_default_type(f.id), f.default_type) << f.name;
  }
  EXPECT_EQ(names.size(), 17u);
}

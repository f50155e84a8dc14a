// Norms, embedding and dropout without Python: hand-computed values, error
// types and the dropout mask's reproducibility.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/autograd.h"
#include "core/generator.h"
#include "ops/activation.h"
#include "ops/dropout.h"
#include "ops/embedding.h"
#include "ops/norm.h"

using namespace peftcpp;

namespace {
Tensor from(const Shape& s, std::initializer_list<float> v) {
  Tensor t = Tensor::empty(s);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}
}  // namespace

TEST(NnOps, RmsNormHandComputed) {
  // Row [3, 4]: mean(x²) = 12.5, so y = x / sqrt(12.5 + eps) * (offset + w).
  Tensor x = from({1, 2}, {3.f, 4.f});
  Tensor w = from({2}, {2.f, 0.5f});
  const float r = 1.f / std::sqrt(12.5f + 1e-6f);
  Tensor y = rms_norm(x, w, 1e-6f, 0.f);
  EXPECT_NEAR(y.data<float>()[0], 3.f * r * 2.f, 1e-6);
  EXPECT_NEAR(y.data<float>()[1], 4.f * r * 0.5f, 1e-6);
  Tensor yg = rms_norm(x, w, 1e-6f, 1.f);  // Gemma: (1 + w)
  EXPECT_NEAR(yg.data<float>()[0], 3.f * r * 3.f, 1e-6);
  EXPECT_NEAR(yg.data<float>()[1], 4.f * r * 1.5f, 1e-6);
}

TEST(NnOps, RmsNormGradientOfSumOfSquaresIsZero) {
  // Σy² = C for every x when w = 1 (y has unit RMS), so d(Σy²)/dx = 0.
  Tensor x = from({2, 3}, {1.f, -2.f, 0.5f, 3.f, 1.f, -1.f});
  x.set_requires_grad(true);
  Tensor y = rms_norm(x, Tensor(), 0.f, 0.f);
  Tensor g = y.detach().clone();
  for (int64_t i = 0; i < g.numel(); ++i) g.data<float>()[i] *= 2.f;  // d(Σy²)/dy = 2y
  y.backward(g);
  for (int64_t i = 0; i < 6; ++i) EXPECT_NEAR(x.grad().data<float>()[i], 0.f, 1e-6);
}

TEST(NnOps, LayerNormRowHasZeroMeanUnitVariance) {
  Tensor x = from({1, 4}, {1.f, 2.f, 3.f, 10.f});
  Tensor y = layer_norm(x, Tensor(), Tensor(), 0.f);
  float s = 0.f, ss = 0.f;
  for (int i = 0; i < 4; ++i) {
    s += y.data<float>()[i];
    ss += y.data<float>()[i] * y.data<float>()[i];
  }
  EXPECT_NEAR(s, 0.f, 1e-6);
  EXPECT_NEAR(ss / 4.f, 1.f, 1e-6);
}

TEST(NnOps, EmbeddingGathersAndAccumulates) {
  Tensor w = from({3, 2}, {0.f, 1.f, 10.f, 11.f, 20.f, 21.f});
  w.set_requires_grad(true);
  Tensor ids = Tensor::empty({3}, DType::I64);
  int64_t v[3] = {2, 0, 2};
  std::memcpy(ids.data<int64_t>(), v, sizeof v);
  Tensor y = embedding(ids, w);
  ASSERT_EQ(y.shape(), (Shape{3, 2}));
  EXPECT_EQ(y.data<float>()[0], 20.f);
  EXPECT_EQ(y.data<float>()[3], 1.f);
  y.backward(Tensor::full({3, 2}, 1.f));
  const float* g = w.grad().data<float>();
  EXPECT_EQ(g[0], 1.f);  // id 0 once
  EXPECT_EQ(g[2], 0.f);  // id 1 never
  EXPECT_EQ(g[4], 2.f);  // id 2 twice
}

TEST(NnOps, EmbeddingOutOfRangeThrows) {
  Tensor w = Tensor::zeros({49152, 4});
  Tensor ids = Tensor::empty({2}, DType::I32);
  ids.data<int32_t>()[0] = 5;
  ids.data<int32_t>()[1] = 70000;
  try {
    embedding(ids, w);
    FAIL() << "expected std::out_of_range";
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "[embedding] index 70000 out of range for vocabulary of 49152");
  }
  ids.data<int32_t>()[1] = -1;
  EXPECT_THROW(embedding(ids, w), std::out_of_range);
  EXPECT_THROW(embedding(Tensor::zeros({2}), w), TypeError);
}

TEST(NnOps, DropoutReproducibleForSeed) {
  Tensor x = Tensor::full({1000}, 1.f);
  Generator::global().manual_seed(7);
  Tensor a = dropout(x, 0.25f, true);
  Tensor b = dropout(x, 0.25f, true);
  Generator::global().manual_seed(7);
  Tensor a2 = dropout(x, 0.25f, true);
  bool differs = false;
  int kept = 0;
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(a.data<float>()[i], a2.data<float>()[i]);
    differs |= a.data<float>()[i] != b.data<float>()[i];
    kept += a.data<float>()[i] != 0.f;
  }
  EXPECT_TRUE(differs);  // the generator advances between calls
  EXPECT_NEAR(kept / 1000.0, 0.75, 0.05);
  // Off: x itself, not a copy.
  EXPECT_EQ(dropout(x, 0.25f, false).impl(), x.impl());
  EXPECT_EQ(dropout(x, 0.f, true).impl(), x.impl());
  EXPECT_THROW(dropout(x, 1.f, true), std::invalid_argument);
}

TEST(NnOps, SwigluMatchesDefinition) {
  Tensor g = from({2}, {1.f, -2.f}), u = from({2}, {3.f, 0.5f});
  Tensor y = swiglu(g, u);
  for (int i = 0; i < 2; ++i) {
    const float x = g.data<float>()[i];
    EXPECT_NEAR(y.data<float>()[i], x / (1.f + std::exp(-x)) * u.data<float>()[i], 1e-6);
  }
  EXPECT_THROW(swiglu(g, Tensor::zeros({3})), std::invalid_argument);
}

// Cross-entropy ops, independent of Python: hand-computed values, the fused
// op against the unfused linear + cross_entropy, and its memory bound.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "ops/elementwise.h"
#include "ops/linear.h"
#include "ops/loss.h"
#include "ops/shape.h"

using namespace peftcpp;

namespace {

Tensor filled(const Shape& shape, float scale, int seed, bool requires_grad = false) {
  Tensor t = Tensor::empty(shape);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = scale * std::sin(0.7f * float(i) + float(seed));
  t.set_requires_grad(requires_grad);
  return t;
}

Tensor targets_of(const std::vector<int64_t>& v) {
  Tensor t = Tensor::empty({int64_t(v.size())}, DType::I64);
  std::copy(v.begin(), v.end(), t.data<int64_t>());
  return t;
}

float max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  Tensor ac = a.contiguous(), bc = b.contiguous();
  float m = 0.f;
  for (int64_t i = 0; i < ac.numel(); ++i) m = std::max(m, std::fabs(ac.data<float>()[i] - bc.data<float>()[i]));
  return m;
}

}  // namespace

TEST(LossCrossEntropy, MatchesHandComputedWithIgnoredRow) {
  Tensor x = filled({3, 4}, 2.f, 1, true);
  Tensor loss = cross_entropy(x, targets_of({1, -100, 3}));
  const float* px = x.data<float>();
  const int tg[3] = {1, -1, 3};
  double expect = 0.0;
  std::vector<double> lse(3);
  for (int i = 0; i < 3; ++i) {
    double s = 0.0;
    for (int j = 0; j < 4; ++j) s += std::exp(double(px[i * 4 + j]));
    lse[i] = std::log(s);
    if (tg[i] >= 0) expect += lse[i] - px[i * 4 + tg[i]];
  }
  expect /= 2.0;  // mean over the two rows that are not ignored
  EXPECT_NEAR(loss.item(), expect, 1e-5);

  loss.backward();
  const float* g = x.grad().data<float>();
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) {
      const double want = tg[i] < 0 ? 0.0 : (std::exp(px[i * 4 + j] - lse[i]) - (j == tg[i])) / 2.0;
      EXPECT_NEAR(g[i * 4 + j], want, 1e-6) << "row " << i << " col " << j;
    }
}

TEST(LossLinearCrossEntropy, MatchesLinearThenCrossEntropy) {
  for (float cap : {0.f, 3.f}) {
    Tensor h = filled({5, 7}, 1.f, 2, true), W = filled({13, 7}, 0.8f, 3, true);
    Tensor h2 = filled({5, 7}, 1.f, 2, true), W2 = filled({13, 7}, 0.8f, 3, true);
    Tensor tg = targets_of({0, 12, -100, 5, 7});
    // chunk 4 over 13 columns: a partial last chunk.
    Tensor fused = linear_cross_entropy(h, W, tg, -100, "mean", 4, cap);
    Tensor z = linear(h2, W2);
    if (cap > 0.f) z = mul_scalar(tanh(mul_scalar(z, 1.f / cap)), cap);
    Tensor ref = cross_entropy(z, tg);
    EXPECT_NEAR(fused.item(), ref.item(), 1e-5) << "softcap " << cap;
    fused.backward();
    ref.backward();
    EXPECT_LT(max_abs_diff(h.grad(), h2.grad()), 1e-5) << "softcap " << cap;
    EXPECT_LT(max_abs_diff(W.grad(), W2.grad()), 1e-5) << "softcap " << cap;
    for (int k = 0; k < 7; ++k) EXPECT_EQ(h.grad().data<float>()[2 * 7 + k], 0.f);  // ignored row
  }
}

TEST(LossLinearCrossEntropy, PeakMemoryIndependentOfVocabulary) {
  const int64_t N = 16, C = 8, V = 50000, chunk = 512;
  Tensor h = filled({N, C}, 1.f, 4, true), W = filled({V, C}, 0.5f, 5);
  std::vector<int64_t> t(N);
  for (int64_t i = 0; i < N; ++i) t[i] = (i * 7919) % V;
  Tensor tg = targets_of(t);
  const int64_t before = memory_stats().current;
  reset_peak_memory();
  Tensor loss = linear_cross_entropy(h, W, tg, -100, "mean", chunk);
  loss.backward();
  const int64_t growth = memory_stats().peak - before;
  EXPECT_TRUE(std::isfinite(loss.item()));
  EXPECT_LT(growth, N * V * 4 / 8) << "the full logits would be " << N * V * 4 << " bytes";
  EXPECT_LT(growth, 4 * (N * chunk * 3 + chunk * C * 3) + 4 * N * C * 3);
}

TEST(LossLinearCrossEntropy, BadTargetsNameTheOp) {
  Tensor h = filled({2, 3}, 1.f, 6), W = filled({4, 3}, 1.f, 7);
  try {
    linear_cross_entropy(h, W, targets_of({1, 4}));
    FAIL() << "an out-of-range target must throw";
  } catch (const std::out_of_range& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("[linear_cross_entropy]"), std::string::npos) << m;
    EXPECT_NE(m.find("position 1 is 4"), std::string::npos) << m;
  }
  EXPECT_THROW(linear_cross_entropy(h, W, targets_of({1, 2, 3})), std::invalid_argument);
  EXPECT_THROW(cross_entropy(h, targets_of({0, 1}), -100, "median"), std::invalid_argument);
}

TEST(LossLinearCrossEntropy, HalfAndRowStridedWeightsMatchFloat) {
  Tensor h = filled({6, 7}, 1.f, 8, true), h2 = filled({6, 7}, 1.f, 8, true);
  Tensor tg = targets_of({3, -100, 0, 12, 9, 1});
  // bf16 weight, widened chunk by chunk; the reference uses the same values in f32.
  Tensor Wb = filled({13, 7}, 0.8f, 9).to(DType::BF16);
  Tensor loss = linear_cross_entropy(h, Wb, tg, -100, "sum", 5, 2.f);
  Tensor z = linear(h2, Wb.to(DType::F32));
  Tensor ref = cross_entropy(mul_scalar(tanh(mul_scalar(z, 0.5f)), 2.f), tg, -100, "sum");
  EXPECT_NEAR(loss.item(), ref.item(), 1e-5 * std::fabs(ref.item()));
  loss.backward();
  ref.backward();
  EXPECT_LT(max_abs_diff(h.grad(), h2.grad()), 1e-5);

  // Rows with a stride of 10 (a column slice of a [13, 10] matrix), used in place.
  Tensor wide = filled({13, 10}, 0.8f, 10);
  Tensor Ws = narrow(wide, 1, 2, 7);
  Tensor a = linear_cross_entropy(h, Ws, tg, -100, "mean", 4);
  Tensor b = cross_entropy(linear(h, Ws.contiguous()), tg);
  EXPECT_NEAR(a.item(), b.item(), 1e-5 * std::fabs(b.item()));
}

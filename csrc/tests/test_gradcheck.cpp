// One harness that checks every differentiable op's backward against central
// finite differences (as ggml's test-backend-ops does in grad mode). It runs
// entirely in C++, so `make test-asan` also sweeps every backward kernel under
// AddressSanitizer and UBSan. The PyTorch comparisons live in tests/*.py.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "core/autograd.h"
#include "core/generator.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/loss.h"
#include "ops/norm.h"
#include "ops/reduce.h"
#include "ops/rope.h"
#include "ops/shape.h"
#include "ops/softmax.h"

using namespace peftcpp;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

struct Input {
  Shape shape;
  float lo = -1.f, hi = 1.f;  // uniform range (keeps log/sqrt/div away from 0)
  bool grad = true;
};

struct Case {
  const char* name;
  std::vector<Input> inputs;
  Fn fn;
};

Tensor uniform(const Shape& s, float lo, float hi, std::mt19937& rng) {
  Tensor t = Tensor::empty(s);
  std::uniform_real_distribution<float> u(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
  return t;
}

Tensor ids(const Shape& s, int64_t hi, std::mt19937& rng) {
  Tensor t = Tensor::empty(s, DType::I64);
  std::uniform_int_distribution<int64_t> u(0, hi - 1);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<int64_t>()[i] = u(rng);
  return t;
}

// Σ out·w in double, with the generator reset so dropout draws the same mask.
double objective(const Case& c, const std::vector<Tensor>& xs, const Tensor& w) {
  NoGradGuard ng;
  Generator::global().set_state({42, 0});
  Tensor out = c.fn(xs).contiguous();
  double s = 0;
  for (int64_t i = 0; i < out.numel(); ++i) s += double(out.data<float>()[i]) * w.data<float>()[i];
  return s;
}

void gradcheck(const Case& c) {
  std::mt19937 rng(1234);
  std::vector<Tensor> xs;
  for (auto& in : c.inputs) {
    Tensor t = uniform(in.shape, in.lo, in.hi, rng);
    if (in.grad) t.set_requires_grad(true);
    xs.push_back(t);
  }
  Generator::global().set_state({42, 0});
  Tensor out = c.fn(xs);
  Tensor w = uniform(out.shape(), -1.f, 1.f, rng);
  out.backward(w);
  for (size_t k = 0; k < xs.size(); ++k) {
    if (!c.inputs[k].grad) continue;
    Tensor g = xs[k].grad();
    ASSERT_TRUE(g.defined()) << c.name << ": input " << k << " got no gradient";
    float* p = xs[k].data<float>();
    const int64_t n = xs[k].numel();
    const int64_t stride = std::max<int64_t>(1, n / 48);  // a spread of elements
    int64_t checked = 0, kinks = 0;
    for (int64_t i = 0; i < n; i += stride) {
      const float eps = 1e-2f * std::max(1.f, std::fabs(p[i]));
      auto central = [&](float h) {
        const float orig = p[i];
        p[i] = orig + h;
        double up = objective(c, xs, w);
        p[i] = orig - h;
        double dn = objective(c, xs, w);
        p[i] = orig;
        return (up - dn) / (2.0 * h);
      };
      const double num = central(eps), half = central(eps / 2);
      ++checked;
      // A difference that changes with the step straddles a kink (relu,
      // maximum, abs): the derivative is not defined there, skip it.
      if (std::fabs(num - half) > 5e-3 * std::max(1.0, std::fabs(num))) {
        ++kinks;
        continue;
      }
      const double ana = g.data<float>()[i];
      EXPECT_NEAR(ana, num, 2e-2 * std::max(1.0, std::fabs(num))) << c.name << ": input " << k << " element " << i;
    }
    EXPECT_LE(kinks * 4, checked) << c.name << ": too many non-smooth points to check input " << k;
  }
}

std::vector<Case> cases() {
  std::mt19937 rng(7);
  Tensor tok = ids({7}, 11, rng);
  Tensor tgt = ids({6}, 13, rng);
  tgt.data<int64_t>()[2] = -100;  // an ignored position
  Tensor idx = ids({5}, 4, rng);
  Tensor gidx = ids({3, 4}, 5, rng);
  Tensor cosv = uniform({5, 3}, -1, 1, rng), sinv = uniform({5, 3}, -1, 1, rng);
  Tensor mask = uniform({1, 1, 5, 5}, -2, 0, rng);
  Tensor cond = Tensor::empty({3, 1}, DType::BOOL);
  for (int i = 0; i < 3; ++i) cond.data<uint8_t>()[i] = i != 1;
  return {
      {"add_broadcast", {{{3, 4}}, {{4}}}, [](auto& x) { return add(x[0], x[1]); }},
      {"sub_broadcast", {{{3, 1}}, {{1, 4}}}, [](auto& x) { return sub(x[0], x[1]); }},
      {"mul", {{{3, 4}}, {{3, 4}}}, [](auto& x) { return mul(x[0], x[1]); }},
      {"div", {{{3, 4}}, {{4}, 0.5f, 2.f}}, [](auto& x) { return div(x[0], x[1]); }},
      {"maximum", {{{3, 4}}, {{3, 4}}}, [](auto& x) { return maximum(x[0], x[1]); }},
      {"minimum_broadcast", {{{3, 4}}, {{4}}}, [](auto& x) { return minimum(x[0], x[1]); }},
      {"pow_tensors", {{{3, 4}, 0.5f, 2.f}, {{4}, -1.5f, 1.5f}}, [](auto& x) { return pow(x[0], x[1]); }},
      {"where_broadcast", {{{1, 4}}, {{3, 4}}}, [cond](auto& x) { return where(cond, x[0], x[1]); }},
      {"clamp", {{{12}, -2.f, 2.f}}, [](auto& x) { return clamp(x[0], -0.7f, 0.9f); }},
      {"sin_cos", {{{8}, -3.f, 3.f}}, [](auto& x) { return mul(sin(x[0]), cos(x[0])); }},
      {"scalars", {{{5}, 0.5f, 2.f}}, [](auto& x) {
         return rdiv_scalar(pow_scalar(rsub_scalar(add_scalar(mul_scalar(x[0], 1.5f), 0.2f), 4.f), 1.5f), 2.f);
       }},
      {"unary", {{{6}, 0.2f, 2.f}}, [](auto& x) { return abs(neg(tanh(sigmoid(rsqrt(sqrt(log(exp(x[0])))))))); }},
      {"relu", {{{6}, 0.1f, 1.f}}, [](auto& x) { return relu(x[0]); }},
      {"sum_mean", {{{3, 4, 5}}}, [](auto& x) { return add(sum(x[0], {1}, true), mean(x[0], {1, 2}, true)); }},
      {"amax", {{{3, 4}}}, [](auto& x) { return amax(x[0], 1); }},
      {"views", {{{3, 4, 5}}}, [](auto& x) {
         Tensor t = transpose(permute(x[0], {2, 0, 1}), 0, 1);
         return reshape(select(narrow(t, 2, 1, 3), 0, 2), {-1});
       }},
      {"broadcast_to", {{{3, 1}}}, [](auto& x) { return broadcast_to(x[0], {2, 3, 4}); }},
      {"cat_split", {{{2, 3}}, {{2, 2}}}, [](auto& x) {
         auto parts = split(cat({x[0], x[1]}, 1), {1, 4}, 1);
         return mul(parts[1], parts[0]);
       }},
      {"index_select", {{{4, 3}}}, [idx](auto& x) { return index_select(x[0], 0, idx); }},
      {"gather", {{{3, 5}}}, [gidx](auto& x) { return gather(x[0], 1, gidx); }},
      {"matmul_batched", {{{2, 3, 4}}, {{4, 5}}}, [](auto& x) { return matmul(x[0], x[1]); }},
      {"linear", {{{3, 4}}, {{5, 4}}, {{5}}}, [](auto& x) { return linear(x[0], x[1], x[2]); }},
      {"lora_linear", {{{3, 6}}, {{5, 6}}, {{5}}, {{2, 6}}, {{5, 2}}},
       [](auto& x) { return lora_linear(x[0], x[1], x[2], x[3], x[4], 1.5f, 0.f, true); }},
      {"lora_linear_dropout", {{{3, 6}}, {{5, 6}, -1, 1, false}, {{5}, -1, 1, false}, {{2, 6}}, {{5, 2}}},
       [](auto& x) { return lora_linear(x[0], x[1], x[2], x[3], x[4], 2.f, 0.3f, true); }},
      {"embedding", {{{11, 4}}}, [tok](auto& x) { return embedding(tok, x[0]); }},
      {"layer_norm", {{{3, 7}}, {{7}}, {{7}}}, [](auto& x) { return layer_norm(x[0], x[1], x[2], 1e-5f); }},
      {"rms_norm", {{{3, 7}}, {{7}}}, [](auto& x) { return rms_norm(x[0], x[1], 1e-6f, 0.f); }},
      {"rms_norm_gemma", {{{3, 7}}, {{7}}}, [](auto& x) { return rms_norm(x[0], x[1], 1e-6f, 1.f); }},
      {"gelu", {{{9}}}, [](auto& x) { return add(gelu(x[0], "none"), gelu(x[0], "tanh")); }},
      {"silu", {{{9}}}, [](auto& x) { return silu(x[0]); }},
      {"swiglu", {{{2, 5}}, {{2, 5}}}, [](auto& x) { return swiglu(x[0], x[1]); }},
      {"gelu_mul", {{{2, 5}}, {{2, 5}}}, [](auto& x) { return gelu_mul(x[0], x[1], "tanh"); }},
      {"softmax", {{{3, 6}}}, [](auto& x) { return add(softmax(x[0], 1), log_softmax(x[0], 0)); }},
      {"rope_half", {{{2, 2, 5, 8}}}, [cosv, sinv](auto& x) { return rope(x[0], cosv, sinv, false); }},
      {"rope_interleaved", {{{2, 2, 5, 6}}}, [cosv, sinv](auto& x) { return rope(x[0], cosv, sinv, true); }},
      {"attention_gqa_causal", {{{1, 4, 5, 3}}, {{1, 2, 5, 3}}, {{1, 2, 5, 3}}},
       [](auto& x) { return scaled_dot_product_attention(x[0], x[1], x[2], Tensor(), true, 0.f, 0, 0.f); }},
      {"attention_mask_window_softcap", {{{1, 2, 5, 3}}, {{1, 2, 5, 3}}, {{1, 2, 5, 4}}},
       [mask](auto& x) { return scaled_dot_product_attention(x[0], x[1], x[2], mask, true, 0.7f, 3, 2.f); }},
      {"dropout", {{{40}}}, [](auto& x) { return dropout(x[0], 0.4f, true); }},
      {"cross_entropy", {{{6, 13}}}, [tgt](auto& x) { return cross_entropy(x[0], tgt, -100, "mean", 0.1f); }},
      {"linear_cross_entropy", {{{6, 4}}, {{13, 4}}},
       [tgt](auto& x) { return linear_cross_entropy(x[0], x[1], tgt, -100, "sum", 5, 3.f); }},
      {"checkpoint", {{{3, 4}}, {{4, 4}}}, [](auto& x) {
         Tensor w = x[1];
         auto fn = [w](const std::vector<Tensor>& in) { return std::vector<Tensor>{tanh(matmul(in[0], w))}; };
         return checkpoint(fn, {x[0]})[0];
       }},
  };
}

}  // namespace

class GradCheck : public ::testing::TestWithParam<size_t> {};

TEST_P(GradCheck, MatchesFiniteDifferences) {
  const Case c = cases()[GetParam()];
  SCOPED_TRACE(c.name);
  gradcheck(c);
}

INSTANTIATE_TEST_SUITE_P(AllOps, GradCheck, ::testing::Range<size_t>(0, cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& i) { return std::string(cases()[i.param].name); });

#include "ops/dropout.h"

#include "core/autograd.h"
#include "core/generator.h"

namespace peftcpp {

namespace {

constexpr int64_t kParallelMin = 32768;

// out[i] = in[i]·keep(i)/(1-p), keep(i) iff u(seed, base+i) >= p. The forward
// and the backward both go through here, so they see the same mask.
void masked_scale(const float* in, float* out, int64_t n, float p, uint64_t seed, uint64_t base) {
  const float s = 1.f / (1.f - p);
#pragma omp parallel for if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i)
    out[i] = Generator::uniform(seed, base + static_cast<uint64_t>(i)) >= p ? in[i] * s : 0.f;
}

struct DropoutBackward : Node {
  float p = 0.f;
  uint64_t seed = 0, base = 0;  // the mask, regenerated rather than stored
  const char* name() const override { return "DropoutBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    Tensor gc = as_f32_contiguous(g[0]);
    Tensor dx = Tensor::empty(gc.shape());
    masked_scale(gc.data<float>(), dx.data<float>(), gc.numel(), p, seed, base);
    return {dx};
  }
};

}  // namespace

Tensor dropout(const Tensor& x_in, float p, bool training) {
  PC_CHECK(x_in.defined(), "[dropout] got an undefined input");
  PC_CHECK(p >= 0.f && p < 1.f, "[dropout] probability must be in [0, 1), got ", p);
  PC_CHECK_TYPE(is_floating(x_in.dtype()), "[dropout] input must be a float tensor, got ",
                dtype_name(x_in.dtype()), " of shape ", shape_str(x_in.shape()));
  if (!training || p == 0.f) return x_in;
  Tensor x = as_f32_contiguous(x_in);
  const int64_t n = x.numel();
  Generator& gen = Generator::global();
  const uint64_t seed = gen.seed();
  const uint64_t base = gen.reserve(static_cast<uint64_t>(n));
  Tensor out = Tensor::empty(x.shape());
  masked_scale(x.data<float>(), out.data<float>(), n, p, seed, base);
  if (needs_history({&x_in})) {
    auto node = std::make_shared<DropoutBackward>();
    node->p = p;
    node->seed = seed;
    node->base = base;
    attach(node, {&x_in}, {&out});
  }
  return out;
}

}  // namespace peftcpp

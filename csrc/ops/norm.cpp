#include "ops/norm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/autograd.h"

namespace peftcpp {

namespace {

constexpr int64_t kParallelMin = 32768;  // elements below which threads cost more than they save

void check_input(const Tensor& x, const char* op) {
  PC_CHECK(x.defined(), "[", op, "] got an undefined input");
  PC_CHECK_TYPE(is_floating(x.dtype()), "[", op, "] input must be a float tensor, got ", dtype_name(x.dtype()),
                " of shape ", shape_str(x.shape()));
  PC_CHECK(x.dim() >= 1, "[", op, "] input must have at least 1 dimension, got shape ", shape_str(x.shape()));
}

void check_param(const Tensor& p, const Tensor& x, const char* op, const char* what) {
  if (!p.defined()) return;
  const int64_t C = x.shape().back();
  PC_CHECK_TYPE(is_floating(p.dtype()), "[", op, "] ", what, " must be a float tensor, got ", dtype_name(p.dtype()),
                " of shape ", shape_str(p.shape()));
  PC_CHECK(p.dim() == 1 && p.shape()[0] == C, "[", op, "] ", what, " of shape ", shape_str(p.shape()),
           " does not match input ", shape_str(x.shape()), " (expected [", C, "])");
  PC_CHECK_TYPE(p.dtype() == DType::F32 || !p.requires_grad(), "[", op, "] a ", dtype_name(p.dtype()), " ", what,
                " cannot require grad (half-precision weights are frozen)");
}

// Runs body(row_begin, row_end, partial) over M rows split into one
// contiguous block per thread; partial is that thread's zeroed [width]
// accumulator. The partials are then summed in thread order into out, so
// weight gradients are deterministic for a given thread count.
template <class F>
void rows_with_partials(int64_t M, int64_t C, int64_t width, float* out, F body) {
  const int nt = M * C > kParallelMin ? omp_get_max_threads() : 1;
  Tensor part = Tensor::zeros({nt, std::max<int64_t>(width, 1)});
  float* P = part.data<float>();
  int used = 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
#pragma omp single
    used = T;
    body(M * t / T, M * (t + 1) / T, P + t * width);
  }
  for (int64_t j = 0; j < width; ++j) out[j] = 0.f;
  for (int t = 0; t < used; ++t)
    for (int64_t j = 0; j < width; ++j) out[j] += P[t * width + j];
}

// ---------------------------------------------------------------- layer_norm

struct LayerNormBackward : Node {
  Tensor x, w;        // x: [M, C] f32 contiguous; w: [C] f32 or undefined
  Tensor mean, rstd;  // [M]
  Shape in_shape;
  const char* name() const override { return "LayerNormBackward"; }

  // dy, x: [M, C]. Per row, with x̂ = (x - mean)·rstd and dx̂ = dy·w:
  // dx = rstd·(dx̂ - mean(dx̂) - x̂·mean(dx̂·x̂)); dw = Σrows dy·x̂; db = Σrows dy.
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    const int64_t M = x.shape()[0], C = x.shape()[1];
    Tensor dyc = as_f32_contiguous(g[0]);
    const float* dY = dyc.data<float>();
    const float* X = x.data<float>();
    const float* W = w.defined() ? w.data<float>() : nullptr;
    const float* MU = mean.data<float>();
    const float* RS = rstd.data<float>();
    const bool want_dx = needs_grad(0), want_dw = needs_grad(1), want_db = needs_grad(2);
    Tensor dx, dw, db;
    float* dX = nullptr;
    if (want_dx) {
      dx = Tensor::empty(in_shape);
      dX = dx.data<float>();
    }
    Tensor dwb = Tensor::empty({2 * C});  // [dw | db]
    rows_with_partials(M, C, (want_dw || want_db) ? 2 * C : 0, dwb.data<float>(),
                       [&](int64_t r0, int64_t r1, float* acc) {
                         for (int64_t r = r0; r < r1; ++r) {
                           const float* x_r = X + r * C;
                           const float* dy_r = dY + r * C;
                           const float mu = MU[r], rs = RS[r];
                           if (want_dx) {
                             float s1 = 0.f, s2 = 0.f;
                             for (int64_t i = 0; i < C; ++i) {
                               const float dxh = W ? dy_r[i] * W[i] : dy_r[i];
                               s1 += dxh;
                               s2 += dxh * (x_r[i] - mu) * rs;
                             }
                             s1 /= C;
                             s2 /= C;
                             float* dx_r = dX + r * C;
                             for (int64_t i = 0; i < C; ++i) {
                               const float dxh = W ? dy_r[i] * W[i] : dy_r[i];
                               dx_r[i] = rs * (dxh - s1 - (x_r[i] - mu) * rs * s2);
                             }
                           }
                           if (want_dw || want_db) {
                             for (int64_t i = 0; i < C; ++i) {
                               acc[i] += dy_r[i] * (x_r[i] - mu) * rs;
                               acc[C + i] += dy_r[i];
                             }
                           }
                         }
                       });
    if (want_dw) {
      dw = Tensor::empty({C});
      std::copy(dwb.data<float>(), dwb.data<float>() + C, dw.data<float>());
    }
    if (want_db) {
      db = Tensor::empty({C});
      std::copy(dwb.data<float>() + C, dwb.data<float>() + 2 * C, db.data<float>());
    }
    return {dx, dw, db};
  }
  void release() override { x = w = mean = rstd = Tensor(); }
};

}  // namespace

Tensor layer_norm(const Tensor& x_in, const Tensor& weight, const Tensor& bias, float eps) {
  check_input(x_in, "layer_norm");
  check_param(weight, x_in, "layer_norm", "weight");
  check_param(bias, x_in, "layer_norm", "bias");
  const int64_t C = x_in.shape().back();
  const int64_t M = C ? x_in.numel() / C : 0;
  Tensor x = as_f32_contiguous(x_in);
  Tensor w = weight.defined() ? as_f32_contiguous(weight) : Tensor();
  Tensor b = bias.defined() ? as_f32_contiguous(bias) : Tensor();
  Tensor out = Tensor::empty(x_in.shape());
  Tensor mean = Tensor::empty({M}), rstd = Tensor::empty({M});
  const float* X = x.data<float>();
  const float* W = w.defined() ? w.data<float>() : nullptr;
  const float* B = b.defined() ? b.data<float>() : nullptr;
  float* Y = out.data<float>();
  float* MU = mean.data<float>();
  float* RS = rstd.data<float>();
  // x, y: [M, C]; two passes per row (mean, then centred variance) for accuracy.
#pragma omp parallel for if (M * C > kParallelMin) schedule(static)
  for (int64_t r = 0; r < M; ++r) {
    const float* x_r = X + r * C;
    float s = 0.f;
    for (int64_t i = 0; i < C; ++i) s += x_r[i];
    const float mu = s / C;
    float v = 0.f;
    for (int64_t i = 0; i < C; ++i) v += (x_r[i] - mu) * (x_r[i] - mu);
    const float rs = 1.f / std::sqrt(v / C + eps);
    float* y_r = Y + r * C;
    for (int64_t i = 0; i < C; ++i) {
      float y = (x_r[i] - mu) * rs;
      if (W) y *= W[i];
      if (B) y += B[i];
      y_r[i] = y;
    }
    MU[r] = mu;
    RS[r] = rs;
  }
  if (needs_history({&x_in, &weight, &bias})) {
    auto n = std::make_shared<LayerNormBackward>();
    n->x = x.detach().view({M, C});
    if (w.defined()) n->w = w.detach();
    n->mean = mean;
    n->rstd = rstd;
    n->in_shape = x_in.shape();
    attach(n, {&x_in, &weight, &bias}, {&out});
  }
  return out;
}

// ---------------------------------------------------------------- rms_norm

namespace {

struct RmsNormBackward : Node {
  Tensor x, w;  // x: [M, C] f32 contiguous; w: [C] f32 (widened) or undefined
  Tensor rstd;  // [M]
  float offset = 0.f;
  Shape in_shape;
  const char* name() const override { return "RmsNormBackward"; }

  // dy, x: [M, C]. Per row, with x̂ = x·rstd and dx̂ = dy·(offset + w):
  // dx = rstd·(dx̂ - x̂·mean(dx̂·x̂)); dw = Σrows dy·x̂.
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    const int64_t M = x.shape()[0], C = x.shape()[1];
    Tensor dyc = as_f32_contiguous(g[0]);
    const float* dY = dyc.data<float>();
    const float* X = x.data<float>();
    const float* W = w.defined() ? w.data<float>() : nullptr;
    const float* RS = rstd.data<float>();
    const float off = offset;
    const bool want_dx = needs_grad(0), want_dw = needs_grad(1);
    Tensor dx, dw;
    float* dX = nullptr;
    if (want_dx) {
      dx = Tensor::empty(in_shape);
      dX = dx.data<float>();
    }
    if (want_dw) dw = Tensor::empty({C});
    rows_with_partials(M, C, want_dw ? C : 0, want_dw ? dw.data<float>() : nullptr,
                       [&](int64_t r0, int64_t r1, float* acc) {
                         for (int64_t r = r0; r < r1; ++r) {
                           const float* x_r = X + r * C;
                           const float* dy_r = dY + r * C;
                           const float rs = RS[r];
                           if (want_dx) {
                             float s = 0.f;
                             for (int64_t i = 0; i < C; ++i) {
                               const float dxh = W ? dy_r[i] * (off + W[i]) : dy_r[i];
                               s += dxh * x_r[i];
                             }
                             s *= rs / C;  // mean(dx̂·x̂)
                             float* dx_r = dX + r * C;
                             for (int64_t i = 0; i < C; ++i) {
                               const float dxh = W ? dy_r[i] * (off + W[i]) : dy_r[i];
                               dx_r[i] = rs * (dxh - x_r[i] * rs * s);
                             }
                           }
                           if (want_dw)
                             for (int64_t i = 0; i < C; ++i) acc[i] += dy_r[i] * x_r[i] * rs;
                         }
                       });
    return {dx, dw};
  }
  void release() override { x = w = rstd = Tensor(); }
};

}  // namespace

Tensor rms_norm(const Tensor& x_in, const Tensor& weight, float eps, float offset) {
  check_input(x_in, "rms_norm");
  check_param(weight, x_in, "rms_norm", "weight");
  const int64_t C = x_in.shape().back();
  const int64_t M = C ? x_in.numel() / C : 0;
  Tensor x = as_f32_contiguous(x_in);
  Tensor w = weight.defined() ? as_f32_contiguous(weight) : Tensor();  // widens a frozen bf16/f16 weight
  Tensor out = Tensor::empty(x_in.shape());
  Tensor rstd = Tensor::empty({M});
  const float* X = x.data<float>();
  const float* W = w.defined() ? w.data<float>() : nullptr;
  float* Y = out.data<float>();
  float* RS = rstd.data<float>();
  // x, y: [M, C]
#pragma omp parallel for if (M * C > kParallelMin) schedule(static)
  for (int64_t r = 0; r < M; ++r) {
    const float* x_r = X + r * C;
    float ss = 0.f;
    for (int64_t i = 0; i < C; ++i) ss += x_r[i] * x_r[i];
    const float rs = 1.f / std::sqrt(ss / C + eps);
    float* y_r = Y + r * C;
    if (W) {
      for (int64_t i = 0; i < C; ++i) y_r[i] = x_r[i] * rs * (offset + W[i]);
    } else {
      for (int64_t i = 0; i < C; ++i) y_r[i] = x_r[i] * rs;
    }
    RS[r] = rs;
  }
  if (needs_history({&x_in, &weight})) {
    auto n = std::make_shared<RmsNormBackward>();
    n->x = x.detach().view({M, C});
    if (w.defined()) n->w = w.detach();
    n->rstd = rstd;
    n->offset = offset;
    n->in_shape = x_in.shape();
    attach(n, {&x_in, &weight}, {&out});
  }
  return out;
}

}  // namespace peftcpp

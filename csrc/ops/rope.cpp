#include "ops/rope.h"

#include "core/autograd.h"

namespace peftcpp {

namespace {

// Rotates one row of D values by the angles of one position. SIGN = -1 runs
// the inverse rotation (sin negated), which is also the backward pass: the
// Jacobian of a rotation is the rotation, so dx = Rᵀ·g.
//   half:        y[i]  = x[i]c  − x[i+h]s,  y[i+h]  = x[i+h]c  + x[i]s
//   interleaved: y[2i] = x[2i]c − x[2i+1]s, y[2i+1] = x[2i+1]c + x[2i]s
template <int SIGN, bool INTERLEAVED>
inline void rotate_row(const float* x, int64_t xs, float* y, const float* c, const float* s, int64_t h, int64_t D) {
  if (INTERLEAVED) {
    for (int64_t i = 0; i < h; ++i) {
      const float a = x[2 * i * xs], b = x[(2 * i + 1) * xs], sn = SIGN * s[i];
      y[2 * i] = a * c[i] - b * sn;
      y[2 * i + 1] = b * c[i] + a * sn;
    }
  } else {
    for (int64_t i = 0; i < h; ++i) {
      const float a = x[i * xs], b = x[(i + h) * xs], sn = SIGN * s[i];
      y[i] = a * c[i] - b * sn;
      y[i + h] = b * c[i] + a * sn;
    }
  }
  for (int64_t i = 2 * h; i < D; ++i) y[i] = x[i * xs];  // pass-through dims
}

// y[b, h, t, :] = rotate(x[b, h, t, :]) for every row.
// x: [B, H, T, D] f32, any strides (e.g. a [B, T, H, D] buffer permuted);
// c, s: [CB, T, half] contiguous, CB in {1, B}; y: [B, H, T, D] contiguous.
template <int SIGN>
void rope_kernel(const Tensor& x, const float* c, const float* s, int64_t CB, int64_t half, bool interleaved,
                 Tensor& y) {
  const int64_t B = x.shape()[0], H = x.shape()[1], T = x.shape()[2], D = x.shape()[3];
  const int64_t s0 = x.strides()[0], s1 = x.strides()[1], s2 = x.strides()[2], s3 = x.strides()[3];
  const float* px = static_cast<const float*>(x.storage()->data) + x.offset();
  float* py = y.data<float>();
  const int64_t rows = B * H * T;
#pragma omp parallel for if (rows * D > 16384) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = r % T, bh = r / T, hh = bh % H, b = bh / H;
    const float* xr = px + b * s0 + hh * s1 + t * s2;
    const int64_t co = ((CB == 1 ? 0 : b) * T + t) * half;
    if (interleaved) rotate_row<SIGN, true>(xr, s3, py + r * D, c + co, s + co, half, D);
    else rotate_row<SIGN, false>(xr, s3, py + r * D, c + co, s + co, half, D);
  }
}

struct RopeBackward : Node {
  Tensor cos, sin;  // [CB, T, half] contiguous f32, detached
  int64_t CB = 1, half = 0;
  bool interleaved = false;
  const char* name() const override { return "RopeBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    Tensor dx;
    if (needs_grad(0)) {
      Tensor gc = as_f32_contiguous(g[0]);
      dx = Tensor::empty(gc.shape());
      rope_kernel<-1>(gc, cos.data<float>(), sin.data<float>(), CB, half, interleaved, dx);
    }
    return {dx};
  }
  void release() override { cos = sin = Tensor(); }
};

}  // namespace

Tensor rope(const Tensor& x, const Tensor& cos_in, const Tensor& sin_in, bool interleaved) {
  PC_CHECK(x.defined() && cos_in.defined() && sin_in.defined(), "[rope] x, cos and sin must be defined");
  PC_CHECK_TYPE(is_floating(x.dtype()) && is_floating(cos_in.dtype()) && is_floating(sin_in.dtype()),
                "[rope] expected floating-point tensors, got x ", dtype_name(x.dtype()), ", cos ",
                dtype_name(cos_in.dtype()), ", sin ", dtype_name(sin_in.dtype()));
  PC_CHECK(x.dim() == 4, "[rope] x must be 4-D [B, H, T, D], got ", shape_str(x.shape()));
  PC_CHECK(cos_in.shape() == sin_in.shape(), "[rope] cos ", shape_str(cos_in.shape()), " and sin ",
           shape_str(sin_in.shape()), " must have the same shape");
  const int64_t B = x.shape()[0], T = x.shape()[2], D = x.shape()[3];
  const int64_t cd = cos_in.dim();
  PC_CHECK(cd == 2 || cd == 3, "[rope] cos/sin must be [T, R/2] or [B, T, R/2], got ", shape_str(cos_in.shape()),
           " for x ", shape_str(x.shape()));
  const int64_t CB = cd == 3 ? cos_in.shape()[0] : 1;
  const int64_t half = cos_in.shape()[cd - 1];
  PC_CHECK(cos_in.shape()[cd - 2] == T && (CB == 1 || CB == B), "[rope] cos/sin ", shape_str(cos_in.shape()),
           " do not match x ", shape_str(x.shape()), " (expected [", T, ", R/2] or [", B, ", ", T, ", R/2])");
  PC_CHECK(2 * half <= D, "[rope] cos/sin ", shape_str(cos_in.shape()), " rotate ", 2 * half,
           " dims but x ", shape_str(x.shape()), " has only ", D);

  Tensor xf = x.dtype() == DType::F32 ? x : x.to(DType::F32);  // strided f32 reads are fine
  Tensor c = as_f32_contiguous(cos_in), s = as_f32_contiguous(sin_in);
  Tensor y = Tensor::empty(x.shape());
  if (y.numel() > 0) rope_kernel<1>(xf, c.data<float>(), s.data<float>(), CB, half, interleaved, y);
  if (needs_history({&x})) {
    auto n = std::make_shared<RopeBackward>();
    n->cos = c.detach();
    n->sin = s.detach();
    n->CB = CB;
    n->half = half;
    n->interleaved = interleaved;
    attach(n, {&x}, {&y});  // cos/sin are constants: no edges
  }
  return y;
}

}  // namespace peftcpp

#include "ops/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/autograd.h"
#include "core/vmath.h"
#include "ops/shape.h"

namespace peftcpp {

namespace {

// x viewed as [outer, n, inner] with the softmax taken over n.
struct Dims {
  int64_t outer = 1, n = 1, inner = 1;
};

Dims split_dims(const Shape& s, int64_t dim) {
  Dims d;
  if (s.empty()) return d;
  for (int64_t i = 0; i < dim; ++i) d.outer *= s[i];
  d.n = s[dim];
  for (size_t i = dim + 1; i < s.size(); ++i) d.inner *= s[i];
  return d;
}

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kCols = 64;  // columns per task when the dim is not the last

// One row (contiguous): y = softmax(x) or log_softmax(x). A row that is all
// -inf gives zeros (softmax) or -inf (log_softmax) instead of NaN.
template <bool LOG>
inline void row_forward(const float* x, float* y, int64_t n) {
  float m = kNegInf;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  if (m == kNegInf) {
    for (int64_t i = 0; i < n; ++i) y[i] = LOG ? kNegInf : 0.f;
    return;
  }
  float s = 0.f;
  if (LOG) {
    for (int64_t i = 0; i < n; ++i) s += exp_approx(x[i] - m);
    // (x − m) − log s, not x − (m + log s): keeps precision when |m| is large.
    const float ls = std::log(s);
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) - ls;
  } else {
    for (int64_t i = 0; i < n; ++i) {
      y[i] = exp_approx(x[i] - m);
      s += y[i];
    }
    const float inv = 1.f / s;
    for (int64_t i = 0; i < n; ++i) y[i] *= inv;
  }
}

// Strided case: a block of c <= kCols adjacent columns of an [n, inner] slab,
// walked row by row so the inner loops stay contiguous.
template <bool LOG>
inline void cols_forward(const float* x, float* y, int64_t n, int64_t inner, int64_t c) {
  float m[kCols], s[kCols];
  for (int64_t j = 0; j < c; ++j) m[j] = kNegInf, s[j] = 0.f;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j) m[j] = std::max(m[j], x[i * inner + j]);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j) {
      const float e = m[j] == kNegInf ? 0.f : exp_approx(x[i * inner + j] - m[j]);
      if (!LOG) y[i * inner + j] = e;
      s[j] += e;
    }
  for (int64_t j = 0; j < c; ++j) {
    if (LOG) s[j] = std::log(s[j]);  // unused on all -inf columns
    else s[j] = s[j] > 0.f ? 1.f / s[j] : 0.f;
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j) {
      if (LOG) y[i * inner + j] = m[j] == kNegInf ? kNegInf : (x[i * inner + j] - m[j]) - s[j];
      else y[i * inner + j] *= s[j];
    }
}

// Backward on one row / column block, from the saved output y:
//   softmax:     dx = y ⊙ (g − Σ g⊙y)
//   log_softmax: dx = g − exp(y) · Σ g
template <bool LOG>
inline void row_backward(const float* y, const float* g, float* dx, int64_t n) {
  float s = 0.f;
  for (int64_t i = 0; i < n; ++i) s += LOG ? g[i] : g[i] * y[i];
  for (int64_t i = 0; i < n; ++i) dx[i] = LOG ? g[i] - exp_approx(y[i]) * s : y[i] * (g[i] - s);
}

template <bool LOG>
inline void cols_backward(const float* y, const float* g, float* dx, int64_t n, int64_t inner, int64_t c) {
  float s[kCols];
  for (int64_t j = 0; j < c; ++j) s[j] = 0.f;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j) {
      const int64_t k = i * inner + j;
      s[j] += LOG ? g[k] : g[k] * y[k];
    }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j) {
      const int64_t k = i * inner + j;
      dx[k] = LOG ? g[k] - exp_approx(y[k]) * s[j] : y[k] * (g[k] - s[j]);
    }
}

// Runs a row kernel (inner == 1) or a column-block kernel over all of x.
template <class RowF, class ColF>
void for_each_slice(const Dims& d, RowF row, ColF cols) {
  const int64_t total = d.outer * d.n * d.inner;
  if (d.inner == 1) {
#pragma omp parallel for if (total > 16384) schedule(static)
    for (int64_t r = 0; r < d.outer; ++r) row(r * d.n, d.n);
    return;
  }
  const int64_t nblk = (d.inner + kCols - 1) / kCols;
#pragma omp parallel for if (total > 16384) schedule(static)
  for (int64_t t = 0; t < d.outer * nblk; ++t) {
    const int64_t o = t / nblk, j0 = (t % nblk) * kCols;
    cols(o * d.n * d.inner + j0, std::min(kCols, d.inner - j0));
  }
}

template <bool LOG>
struct SoftmaxBackward : Node {
  Tensor y;  // saved output, contiguous f32, detached
  int64_t dim = 0;
  const char* name() const override { return LOG ? "LogSoftmaxBackward" : "SoftmaxBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    Tensor g = as_f32_contiguous(grads[0]);
    Tensor dx = Tensor::empty(y.shape());
    const Dims d = split_dims(y.shape(), dim);
    const float* py = y.data<float>();
    const float* pg = g.data<float>();
    float* pd = dx.data<float>();
    for_each_slice(
        d, [&](int64_t off, int64_t n) { row_backward<LOG>(py + off, pg + off, pd + off, n); },
        [&](int64_t off, int64_t c) { cols_backward<LOG>(py + off, pg + off, pd + off, d.n, d.inner, c); });
    return {dx};
  }
  void release() override { y = Tensor(); }
};

template <bool LOG>
Tensor softmax_impl(const Tensor& x, int64_t dim_in, const char* op) {
  PC_CHECK(x.defined(), "[", op, "] got an undefined tensor");
  PC_CHECK_TYPE(is_floating(x.dtype()), "[", op, "] expected a floating-point tensor, got ", dtype_name(x.dtype()),
                " of shape ", shape_str(x.shape()));
  // A 0-d tensor is one row of one element (dim 0 or -1), as in torch.
  const int64_t dim = wrap_dim(dim_in, std::max<int64_t>(x.dim(), 1), op);
  Tensor xc = as_f32_contiguous(x);
  Tensor y = Tensor::empty(xc.shape());
  const Dims d = split_dims(xc.shape(), dim);
  const float* px = xc.data<float>();
  float* py = y.data<float>();
  if (y.numel() > 0) {
    for_each_slice(
        d, [&](int64_t off, int64_t n) { row_forward<LOG>(px + off, py + off, n); },
        [&](int64_t off, int64_t c) { cols_forward<LOG>(px + off, py + off, d.n, d.inner, c); });
  }
  if (needs_history({&x})) {
    auto n = std::make_shared<SoftmaxBackward<LOG>>();
    n->y = y.detach();
    n->dim = dim;
    attach(n, {&x}, {&y});
  }
  return y;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl<false>(x, dim, "softmax"); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl<true>(x, dim, "log_softmax"); }

}  // namespace peftcpp

#include "ops/reduce.h"

#include <algorithm>
#include <limits>

#include "core/autograd.h"
#include "ops/shape.h"

namespace peftcpp {

namespace {

// Shape with the reduced dims kept as 1; normalises and validates dims.
Shape keep_shape(const Tensor& x, std::vector<int64_t>& dims, const char* op) {
  Shape ks = x.shape();
  if (dims.empty())
    for (int64_t d = 0; d < x.dim(); ++d) dims.push_back(d);
  for (auto& d : dims) {
    d = wrap_dim(d, x.dim(), op);
    ks[d] = 1;
  }
  return ks;
}

Shape drop_dims(const Shape& ks, const std::vector<int64_t>& dims) {
  Shape out;
  for (int64_t d = 0; d < static_cast<int64_t>(ks.size()); ++d)
    if (std::find(dims.begin(), dims.end(), d) == dims.end()) out.push_back(ks[d]);
  return out;
}

// Sum of x into keep-shape ks. Fast path for "reduce the trailing dims".
Tensor sum_kernel(const Tensor& x_in, const Shape& ks) {
  Tensor x = as_f32_contiguous(x_in);
  int64_t lead = 0;  // number of leading dims kept intact
  while (lead < x.dim() && ks[lead] == x.shape()[lead]) ++lead;
  bool trailing = true;
  for (int64_t d = lead; d < x.dim(); ++d) trailing &= ks[d] == 1;
  if (!trailing) return sum_to_shape(x, ks);
  int64_t rows = 1;
  for (int64_t d = 0; d < lead; ++d) rows *= x.shape()[d];
  const int64_t cols = rows ? x.numel() / std::max<int64_t>(rows, 1) : 0;
  Tensor out = Tensor::empty(ks);
  const float* p = x.data<float>();
  float* o = out.data<float>();
#pragma omp parallel for if (x.numel() > 65536) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    double acc = 0.0;  // double so long sums match torch's pairwise sum closely
    const float* row = p + r * cols;
    for (int64_t c = 0; c < cols; ++c) acc += row[c];
    o[r] = static_cast<float>(acc);
  }
  return out;
}

struct SumBackward : Node {
  Shape in_shape, keep;
  float scale = 1.f;
  const char* name() const override { return scale == 1.f ? "SumBackward" : "MeanBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    Tensor gk = reshape(g[0], keep);
    Tensor out = Tensor::empty(in_shape);
    Tensor src = as_f32_contiguous(gk);
    // Expand the kept-shape gradient over the reduced dims.
    Tensor b = src.as_strided(in_shape, [&] {
      Shape st = contiguous_strides(keep);
      for (size_t d = 0; d < keep.size(); ++d)
        if (keep[d] == 1) st[d] = 0;
      return st;
    }(), src.offset()).clone();
    float* o = out.data<float>();
    const float* s = b.data<float>();
    const int64_t n = out.numel();
    for (int64_t i = 0; i < n; ++i) o[i] = s[i] * scale;
    return {out};
  }
};

struct AmaxBackward : Node {
  Shape in_shape, keep;
  Tensor argmax;  // i64, keep shape
  int64_t dim;
  const char* name() const override { return "AmaxBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    Tensor gk = as_f32_contiguous(reshape(g[0], keep));
    Tensor out = Tensor::zeros(in_shape);
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < dim; ++d) outer *= in_shape[d];
    for (size_t d = dim + 1; d < in_shape.size(); ++d) inner *= in_shape[d];
    const int64_t n = in_shape[dim];
    const int64_t* am = argmax.data<int64_t>();
    const float* s = gk.data<float>();
    float* o = out.data<float>();
    for (int64_t a = 0; a < outer; ++a)
      for (int64_t k = 0; k < inner; ++k) o[(a * n + am[a * inner + k]) * inner + k] = s[a * inner + k];
    return {out};
  }
  void release() override { argmax = Tensor(); }
};

}  // namespace

Tensor sum(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  PC_CHECK_TYPE(is_floating(x.dtype()), "[sum] expected a floating-point tensor, got ", dtype_name(x.dtype()));
  Shape ks = keep_shape(x, dims, "sum");
  Tensor out = sum_kernel(x, ks);
  if (!keepdim) out = out.view(drop_dims(ks, dims));
  if (needs_history({&x})) {
    auto n = std::make_shared<SumBackward>();
    n->in_shape = x.shape();
    n->keep = ks;
    attach(n, {&x}, {&out});
  }
  return out;
}

Tensor mean(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  PC_CHECK_TYPE(is_floating(x.dtype()), "[mean] expected a floating-point tensor, got ", dtype_name(x.dtype()));
  Shape ks = keep_shape(x, dims, "mean");
  const int64_t count = std::max<int64_t>(1, x.numel() / std::max<int64_t>(1, shape_numel(ks)));
  Tensor out = sum_kernel(x, ks);
  const float inv = 1.f / static_cast<float>(count);
  float* o = out.data<float>();
  for (int64_t i = 0; i < out.numel(); ++i) o[i] *= inv;
  if (!keepdim) out = out.view(drop_dims(ks, dims));
  if (needs_history({&x})) {
    auto n = std::make_shared<SumBackward>();
    n->in_shape = x.shape();
    n->keep = ks;
    n->scale = inv;
    attach(n, {&x}, {&out});
  }
  return out;
}

Tensor amax(const Tensor& x_in, int64_t dim, bool keepdim) {
  PC_CHECK_TYPE(is_floating(x_in.dtype()), "[amax] expected a floating-point tensor, got ", dtype_name(x_in.dtype()));
  dim = wrap_dim(dim, x_in.dim(), "amax");
  PC_CHECK(x_in.shape()[dim] > 0, "[amax] cannot reduce an empty dimension of shape ", shape_str(x_in.shape()));
  Tensor x = as_f32_contiguous(x_in);
  Shape ks = x.shape();
  ks[dim] = 1;
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= ks[d];
  for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= ks[d];
  const int64_t n = x.shape()[dim];
  Tensor out = Tensor::empty(ks);
  Tensor arg = Tensor::empty(ks, DType::I64);
  const float* p = x.data<float>();
  float* o = out.data<float>();
  int64_t* am = arg.data<int64_t>();
  for (int64_t a = 0; a < outer; ++a)
    for (int64_t k = 0; k < inner; ++k) {
      float best = -std::numeric_limits<float>::infinity();
      int64_t bi = 0;
      for (int64_t j = 0; j < n; ++j) {
        float v = p[(a * n + j) * inner + k];
        if (v > best || (j == 0)) { best = v; bi = j; }
      }
      o[a * inner + k] = best;
      am[a * inner + k] = bi;
    }
  if (!keepdim) out = out.view(drop_dims(ks, {dim}));
  if (needs_history({&x_in})) {
    auto nd = std::make_shared<AmaxBackward>();
    nd->in_shape = x.shape();
    nd->keep = ks;
    nd->argmax = arg;
    nd->dim = dim;
    attach(nd, {&x_in}, {&out});
  }
  return out;
}

}  // namespace peftcpp

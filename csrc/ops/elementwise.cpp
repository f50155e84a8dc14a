#include "ops/elementwise.h"

#include <cmath>

#include "core/autograd.h"

namespace peftcpp {

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    PC_CHECK(da == db || da == 1 || db == 1, "[", op, "] shapes ", shape_str(a), " and ", shape_str(b),
             " are not broadcastable");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace {

void check_float(const Tensor& t, const char* op) {
  PC_CHECK(t.defined(), "[", op, "] got an undefined tensor");
  PC_CHECK_TYPE(is_floating(t.dtype()), "[", op, "] expected a floating-point tensor, got ",
                dtype_name(t.dtype()), " of shape ", shape_str(t.shape()));
}

// Strides of t seen from an output of shape out (0 on broadcast dims).
Shape bstrides(const Tensor& t, const Shape& out) {
  Shape s(out.size(), 0);
  size_t off = out.size() - t.shape().size();
  for (size_t i = 0; i < t.shape().size(); ++i)
    s[i + off] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  return s;
}

template <class F>
Tensor binary_kernel(const Tensor& a_in, const Tensor& b_in, const char* op, F f) {
  check_float(a_in, op);
  check_float(b_in, op);
  Tensor a = a_in.dtype() == DType::F32 ? a_in : a_in.to(DType::F32);
  Tensor b = b_in.dtype() == DType::F32 ? b_in : b_in.to(DType::F32);
  Shape out_shape = broadcast_shapes(a.shape(), b.shape(), op);
  Tensor out = Tensor::empty(out_shape);
  float* o = out.data<float>();
  const float* pa = static_cast<const float*>(a.storage()->data) + a.offset();
  const float* pb = static_cast<const float*>(b.storage()->data) + b.offset();
  const int64_t n = out.numel();
  if (n == 0) return out;
  if (a.shape() == b.shape() && a.is_contiguous() && b.is_contiguous()) {
#pragma omp parallel for if (n > 32768) schedule(static)
    for (int64_t i = 0; i < n; ++i) o[i] = f(pa[i], pb[i]);
    return out;
  }
  const int64_t nd = static_cast<int64_t>(out_shape.size());
  Shape sa = bstrides(a, out_shape), sb = bstrides(b, out_shape);
  const int64_t inner = nd ? out_shape[nd - 1] : 1;
  const int64_t ia = nd ? sa[nd - 1] : 0, ib = nd ? sb[nd - 1] : 0;
  const int64_t outer = n / inner;
#pragma omp parallel for if (n > 32768) schedule(static)
  for (int64_t r = 0; r < outer; ++r) {
    int64_t rem = r, oa = 0, ob = 0;
    for (int64_t d = nd - 2; d >= 0; --d) {
      int64_t k = rem % out_shape[d];
      rem /= out_shape[d];
      oa += k * sa[d];
      ob += k * sb[d];
    }
    float* orow = o + r * inner;
    for (int64_t i = 0; i < inner; ++i) orow[i] = f(pa[oa + i * ia], pb[ob + i * ib]);
  }
  return out;
}

template <class F>
Tensor unary_kernel(const Tensor& a_in, const char* op, F f) {
  check_float(a_in, op);
  Tensor a = as_f32_contiguous(a_in);
  Tensor out = Tensor::empty(a.shape());
  const float* p = a.data<float>();
  float* o = out.data<float>();
  const int64_t n = a.numel();
#pragma omp parallel for if (n > 32768) schedule(static)
  for (int64_t i = 0; i < n; ++i) o[i] = f(p[i]);
  return out;
}

Tensor where_kernel(const Tensor& cond_in, const Tensor& a_in, const Tensor& b_in) {
  PC_CHECK(cond_in.defined(), "[where] got an undefined condition");
  check_float(a_in, "where");
  check_float(b_in, "where");
  Tensor c = cond_in.dtype() == DType::BOOL ? cond_in : cond_in.to(DType::BOOL);
  Tensor a = a_in.dtype() == DType::F32 ? a_in : a_in.to(DType::F32);
  Tensor b = b_in.dtype() == DType::F32 ? b_in : b_in.to(DType::F32);
  Shape out_shape = broadcast_shapes(broadcast_shapes(c.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = Tensor::empty(out_shape);
  const int64_t n = out.numel();
  if (n == 0) return out;
  float* o = out.data<float>();
  const uint8_t* pc = static_cast<const uint8_t*>(c.storage()->data) + c.offset();
  const float* pa = static_cast<const float*>(a.storage()->data) + a.offset();
  const float* pb = static_cast<const float*>(b.storage()->data) + b.offset();
  const int64_t nd = static_cast<int64_t>(out_shape.size());
  Shape sc = bstrides(c, out_shape), sa = bstrides(a, out_shape), sb = bstrides(b, out_shape);
  const int64_t inner = nd ? out_shape[nd - 1] : 1;
  const int64_t ic = nd ? sc[nd - 1] : 0, ia = nd ? sa[nd - 1] : 0, ib = nd ? sb[nd - 1] : 0;
  const int64_t outer = n / inner;
#pragma omp parallel for if (n > 32768) schedule(static)
  for (int64_t r = 0; r < outer; ++r) {
    int64_t rem = r, oc = 0, oa = 0, ob = 0;
    for (int64_t d = nd - 2; d >= 0; --d) {
      int64_t k = rem % out_shape[d];
      rem /= out_shape[d];
      oc += k * sc[d];
      oa += k * sa[d];
      ob += k * sb[d];
    }
    float* orow = o + r * inner;
    for (int64_t i = 0; i < inner; ++i) orow[i] = pc[oc + i * ic] ? pa[oa + i * ia] : pb[ob + i * ib];
  }
  return out;
}

// Backward nodes -------------------------------------------------------------

struct AddBackward : Node {
  Shape sa, sb;
  float alpha = 1.f;  // sub uses -1
  const char* name() const override { return alpha > 0 ? "AddBackward" : "SubBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    Tensor ga, gb;
    if (needs_grad(0)) ga = sum_to_shape(g[0], sa);
    if (needs_grad(1)) gb = sum_to_shape(alpha == 1.f ? g[0] : neg(g[0]), sb);
    return {ga, gb};
  }
};

struct MulBackward : Node {
  Tensor a, b;
  const char* name() const override { return "MulBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    Tensor ga, gb;
    if (needs_grad(0)) ga = sum_to_shape(mul(g[0], b), a.shape());
    if (needs_grad(1)) gb = sum_to_shape(mul(g[0], a), b.shape());
    return {ga, gb};
  }
  void release() override { a = b = Tensor(); }
};

struct DivBackward : Node {
  Tensor a, b;
  const char* name() const override { return "DivBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    Tensor ga, gb;
    Tensor gdb = div(g[0], b);
    if (needs_grad(0)) ga = sum_to_shape(gdb, a.shape());
    if (needs_grad(1)) gb = sum_to_shape(neg(mul(gdb, div(a, b))), b.shape());
    return {ga, gb};
  }
  void release() override { a = b = Tensor(); }
};

struct MaximumBackward : Node {
  Tensor a, b;
  bool is_min = false;
  const char* name() const override { return is_min ? "MinimumBackward" : "MaximumBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    // Ties split the gradient evenly, as torch does.
    Tensor wa = is_min ? binary_kernel(a, b, "minimum", [](float x, float y) { return x < y ? 1.f : (x == y ? 0.5f : 0.f); })
                       : binary_kernel(a, b, "maximum", [](float x, float y) { return x > y ? 1.f : (x == y ? 0.5f : 0.f); });
    Tensor ga, gb;
    if (needs_grad(0)) ga = sum_to_shape(mul(g[0], wa), a.shape());
    if (needs_grad(1)) gb = sum_to_shape(mul(g[0], rsub_scalar(wa, 1.f)), b.shape());
    return {ga, gb};
  }
  void release() override { a = b = Tensor(); }
};

struct PowBackward : Node {
  Tensor a, b;
  const char* name() const override { return "PowBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    // torch's conventions: no gradient through a zero exponent, nor to the
    // exponent where the base is 0 and the exponent is not negative.
    Tensor ga, gb;
    if (needs_grad(0)) {
      Tensor w = binary_kernel(a, b, "pow", [](float x, float y) { return y == 0.f ? 0.f : y * std::pow(x, y - 1.f); });
      ga = sum_to_shape(mul(g[0], w), a.shape());
    }
    if (needs_grad(1)) {
      Tensor w = binary_kernel(a, b, "pow", [](float x, float y) {
        return x == 0.f && y >= 0.f ? 0.f : std::pow(x, y) * std::log(x);
      });
      gb = sum_to_shape(mul(g[0], w), b.shape());
    }
    return {ga, gb};
  }
  void release() override { a = b = Tensor(); }
};

struct WhereBackward : Node {
  Tensor cond;
  Shape sa, sb;
  const char* name() const override { return "WhereBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    Tensor zero = Tensor::scalar(0.f), ga, gb;
    if (needs_grad(0)) ga = sum_to_shape(where_kernel(cond, g[0], zero), sa);
    if (needs_grad(1)) gb = sum_to_shape(where_kernel(cond, zero, g[0]), sb);
    return {ga, gb};
  }
  void release() override { cond = Tensor(); }
};

// Unary op whose derivative is a function of the input x and output y.
template <class D>
struct UnaryBackward : Node {
  const char* op;
  Tensor x, y;
  D deriv;
  UnaryBackward(const char* o, D d) : op(o), deriv(d) {}
  const char* name() const override { return op; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    Tensor gc = as_f32_contiguous(g[0]);
    Tensor out = Tensor::empty(gc.shape());
    const float* pg = gc.data<float>();
    const float* px = x.data<float>();
    const float* py = y.data<float>();
    float* o = out.data<float>();
    const int64_t n = gc.numel();
#pragma omp parallel for if (n > 32768) schedule(static)
    for (int64_t i = 0; i < n; ++i) o[i] = pg[i] * deriv(px[i], py[i]);
    return {out};
  }
  void release() override { x = y = Tensor(); }
};

template <class F, class D>
Tensor unary_op(const Tensor& a, const char* op, const char* node_name, F f, D d) {
  Tensor out = unary_kernel(a, op, f);
  if (needs_history({&a})) {
    auto n = std::make_shared<UnaryBackward<D>>(node_name, d);
    n->x = as_f32_contiguous(a).detach();
    n->y = out.detach();
    attach(n, {&a}, {&out});
  }
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_kernel(a, b, "add", [](float x, float y) { return x + y; });
  if (needs_history({&a, &b})) {
    auto n = std::make_shared<AddBackward>();
    n->sa = a.shape();
    n->sb = b.shape();
    attach(n, {&a, &b}, {&out});
  }
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_kernel(a, b, "sub", [](float x, float y) { return x - y; });
  if (needs_history({&a, &b})) {
    auto n = std::make_shared<AddBackward>();
    n->sa = a.shape();
    n->sb = b.shape();
    n->alpha = -1.f;
    attach(n, {&a, &b}, {&out});
  }
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_kernel(a, b, "mul", [](float x, float y) { return x * y; });
  if (needs_history({&a, &b})) {
    auto n = std::make_shared<MulBackward>();
    n->a = a.detach();
    n->b = b.detach();
    attach(n, {&a, &b}, {&out});
  }
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_kernel(a, b, "div", [](float x, float y) { return x / y; });
  if (needs_history({&a, &b})) {
    auto n = std::make_shared<DivBackward>();
    n->a = a.detach();
    n->b = b.detach();
    attach(n, {&a, &b}, {&out});
  }
  return out;
}

Tensor maximum(const Tensor& a, const Tensor& b) {
  Tensor out = binary_kernel(a, b, "maximum", [](float x, float y) { return x > y ? x : y; });
  if (needs_history({&a, &b})) {
    auto n = std::make_shared<MaximumBackward>();
    n->a = a.detach();
    n->b = b.detach();
    attach(n, {&a, &b}, {&out});
  }
  return out;
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  Tensor out = binary_kernel(a, b, "minimum", [](float x, float y) { return x < y ? x : y; });
  if (needs_history({&a, &b})) {
    auto n = std::make_shared<MaximumBackward>();
    n->a = a.detach();
    n->b = b.detach();
    n->is_min = true;
    attach(n, {&a, &b}, {&out});
  }
  return out;
}

Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor out = binary_kernel(a, b, "pow", [](float x, float y) { return std::pow(x, y); });
  if (needs_history({&a, &b})) {
    auto n = std::make_shared<PowBackward>();
    n->a = a.detach();
    n->b = b.detach();
    attach(n, {&a, &b}, {&out});
  }
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  Tensor out = where_kernel(cond, a, b);
  if (needs_history({&a, &b})) {
    auto n = std::make_shared<WhereBackward>();
    n->cond = cond.detach();
    n->sa = a.shape();
    n->sb = b.shape();
    attach(n, {&a, &b}, {&out});
  }
  return out;
}

Tensor add_scalar(const Tensor& a, float s) {
  return unary_op(a, "add", "AddBackward", [s](float x) { return x + s; }, [](float, float) { return 1.f; });
}
Tensor mul_scalar(const Tensor& a, float s) {
  return unary_op(a, "mul", "MulBackward", [s](float x) { return x * s; }, [s](float, float) { return s; });
}
Tensor rsub_scalar(const Tensor& a, float s) {
  return unary_op(a, "rsub", "RsubBackward", [s](float x) { return s - x; }, [](float, float) { return -1.f; });
}
Tensor rdiv_scalar(const Tensor& a, float s) {
  return unary_op(a, "rdiv", "DivBackward", [s](float x) { return s / x; },
                  [s](float x, float) { return -s / (x * x); });
}
Tensor pow_scalar(const Tensor& a, float p) {
  return unary_op(a, "pow", "PowBackward", [p](float x) { return std::pow(x, p); },
                  [p](float x, float) { return p == 0.f ? 0.f : p * std::pow(x, p - 1.f); });
}
Tensor clamp(const Tensor& a, float lo, float hi) {
  // torch: min > max gives max everywhere; NaN stays NaN; the gradient flows where lo <= x <= hi
  return unary_op(a, "clamp", "ClampBackward", [lo, hi](float x) { return std::min(std::max(x, lo), hi); },
                  [lo, hi](float x, float) { return x >= lo && x <= hi ? 1.f : 0.f; });
}
Tensor neg(const Tensor& a) {
  return unary_op(a, "neg", "NegBackward", [](float x) { return -x; }, [](float, float) { return -1.f; });
}
Tensor exp(const Tensor& a) {
  return unary_op(a, "exp", "ExpBackward", [](float x) { return std::exp(x); }, [](float, float y) { return y; });
}
Tensor log(const Tensor& a) {
  return unary_op(a, "log", "LogBackward", [](float x) { return std::log(x); },
                  [](float x, float) { return 1.f / x; });
}
Tensor sqrt(const Tensor& a) {
  return unary_op(a, "sqrt", "SqrtBackward", [](float x) { return std::sqrt(x); },
                  [](float, float y) { return 0.5f / y; });
}
Tensor rsqrt(const Tensor& a) {
  return unary_op(a, "rsqrt", "RsqrtBackward", [](float x) { return 1.f / std::sqrt(x); },
                  [](float x, float y) { return -0.5f * y / x; });
}
Tensor tanh(const Tensor& a) {
  return unary_op(a, "tanh", "TanhBackward", [](float x) { return std::tanh(x); },
                  [](float, float y) { return 1.f - y * y; });
}
Tensor sigmoid(const Tensor& a) {
  return unary_op(a, "sigmoid", "SigmoidBackward", [](float x) { return 1.f / (1.f + std::exp(-x)); },
                  [](float, float y) { return y * (1.f - y); });
}
Tensor relu(const Tensor& a) {
  return unary_op(a, "relu", "ReluBackward", [](float x) { return x > 0.f ? x : 0.f; },
                  [](float x, float) { return x > 0.f ? 1.f : 0.f; });
}
Tensor abs(const Tensor& a) {
  return unary_op(a, "abs", "AbsBackward", [](float x) { return std::fabs(x); },
                  [](float x, float) { return x > 0.f ? 1.f : (x < 0.f ? -1.f : 0.f); });
}

Tensor sin(const Tensor& a) {
  return unary_op(a, "sin", "SinBackward", [](float x) { return std::sin(x); },
                  [](float x, float) { return std::cos(x); });
}
Tensor cos(const Tensor& a) {
  return unary_op(a, "cos", "CosBackward", [](float x) { return std::cos(x); },
                  [](float x, float) { return -std::sin(x); });
}

}  // namespace peftcpp

#include "ops/activation.h"

#include <cmath>
#include <type_traits>

#include "core/autograd.h"
#include "core/vmath.h"

namespace peftcpp {

namespace {

constexpr int64_t kParallelMin = 32768;

enum class Act { Silu, GeluErf, GeluTanh };

constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;  // 1/√(2π)
constexpr float kSqrt2OverPi = 0.79788456080286536f;  // √(2/π)
constexpr float kGeluC = 0.044715f;

// The activation is a template parameter so each loop is specialised and
// vectorizes (a runtime switch inside the loop keeps it scalar).
template <Act A>
inline float act_f(float x) {
  if constexpr (A == Act::Silu) return x * sigmoid_approx(x);
  if constexpr (A == Act::GeluErf) return 0.5f * x * (1.f + std::erf(x * kInvSqrt2));
  if constexpr (A == Act::GeluTanh) return 0.5f * x * (1.f + std::tanh(kSqrt2OverPi * (x + kGeluC * x * x * x)));
  return 0.f;
}

// d act(x) / dx
template <Act A>
inline float act_df(float x) {
  if constexpr (A == Act::Silu) {
    const float s = sigmoid_approx(x);
    return s * (1.f + x * (1.f - s));
  }
  if constexpr (A == Act::GeluErf)
    return 0.5f * (1.f + std::erf(x * kInvSqrt2)) + x * kInvSqrt2Pi * exp_approx(-0.5f * x * x);
  if constexpr (A == Act::GeluTanh) {
    const float t = std::tanh(kSqrt2OverPi * (x + kGeluC * x * x * x));
    return 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * kSqrt2OverPi * (1.f + 3.f * kGeluC * x * x);
  }
  return 0.f;
}

// Calls f(std::integral_constant<Act, a>) so f's loops see a constant.
template <class F>
void with_act(Act a, F&& f) {
  switch (a) {
    case Act::Silu: f(std::integral_constant<Act, Act::Silu>{}); return;
    case Act::GeluErf: f(std::integral_constant<Act, Act::GeluErf>{}); return;
    case Act::GeluTanh: f(std::integral_constant<Act, Act::GeluTanh>{}); return;
  }
}

Act gelu_kind(const std::string& approximate, const char* op) {
  if (approximate == "none") return Act::GeluErf;
  if (approximate == "tanh") return Act::GeluTanh;
  throw std::invalid_argument(std::string("[") + op + "] approximate must be 'none' or 'tanh', got '" +
                              approximate + "'");
}

const char* act_name(Act a) { return a == Act::Silu ? "silu" : "gelu"; }

void check_float(const Tensor& t, const char* op, const char* what) {
  PC_CHECK(t.defined(), "[", op, "] got an undefined ", what);
  PC_CHECK_TYPE(is_floating(t.dtype()), "[", op, "] ", what, " must be a float tensor, got ", dtype_name(t.dtype()),
                " of shape ", shape_str(t.shape()));
}

// ---------------------------------------------------------------- unary

struct ActBackward : Node {
  Act act;
  Tensor x;  // f32 contiguous
  explicit ActBackward(Act a) : act(a) {}
  const char* name() const override { return act == Act::Silu ? "SiluBackward" : "GeluBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    Tensor gc = as_f32_contiguous(g[0]);
    Tensor dx = Tensor::empty(gc.shape());
    const float* dY = gc.data<float>();
    const float* X = x.data<float>();
    float* dX = dx.data<float>();
    const int64_t n = gc.numel();
    const Act a = act;
    with_act(a, [&](auto k) {
#pragma omp parallel for if (n > kParallelMin) schedule(static)
      for (int64_t i = 0; i < n; ++i) dX[i] = dY[i] * act_df<decltype(k)::value>(X[i]);
    });
    return {dx};
  }
  void release() override { x = Tensor(); }
};

Tensor unary_act(const Tensor& x_in, Act a) {
  const char* op = act_name(a);
  check_float(x_in, op, "input");
  Tensor x = as_f32_contiguous(x_in);
  Tensor out = Tensor::empty(x.shape());
  const float* X = x.data<float>();
  float* Y = out.data<float>();
  const int64_t n = x.numel();
  with_act(a, [&](auto k) {
#pragma omp parallel for if (n > kParallelMin) schedule(static)
    for (int64_t i = 0; i < n; ++i) Y[i] = act_f<decltype(k)::value>(X[i]);
  });
  if (needs_history({&x_in})) {
    auto node = std::make_shared<ActBackward>(a);
    node->x = x.detach();
    attach(node, {&x_in}, {&out});
  }
  return out;
}

// ---------------------------------------------------------------- gated

struct GatedBackward : Node {
  Act act;
  Tensor gate, up;  // f32 contiguous, same shape
  explicit GatedBackward(Act a) : act(a) {}
  const char* name() const override { return act == Act::Silu ? "SwigluBackward" : "GeluMulBackward"; }
  // y = act(gate)·up:  dgate = dy·up·act'(gate), dup = dy·act(gate).
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    Tensor gc = as_f32_contiguous(g[0]);
    const float* dY = gc.data<float>();
    const float* G = gate.data<float>();
    const float* U = up.data<float>();
    const int64_t n = gc.numel();
    const Act a = act;
    Tensor dg, du;
    if (needs_grad(0)) {
      dg = Tensor::empty(gc.shape());
      float* dG = dg.data<float>();
      with_act(a, [&](auto k) {
#pragma omp parallel for if (n > kParallelMin) schedule(static)
        for (int64_t i = 0; i < n; ++i) dG[i] = dY[i] * U[i] * act_df<decltype(k)::value>(G[i]);
      });
    }
    if (needs_grad(1)) {
      du = Tensor::empty(gc.shape());
      float* dU = du.data<float>();
      with_act(a, [&](auto k) {
#pragma omp parallel for if (n > kParallelMin) schedule(static)
        for (int64_t i = 0; i < n; ++i) dU[i] = dY[i] * act_f<decltype(k)::value>(G[i]);
      });
    }
    return {dg, du};
  }
  void release() override { gate = up = Tensor(); }
};

Tensor gated_op(const Tensor& gate_in, const Tensor& up_in, Act a, const char* op) {
  check_float(gate_in, op, "gate");
  check_float(up_in, op, "up");
  PC_CHECK(gate_in.shape() == up_in.shape(), "[", op, "] gate ", shape_str(gate_in.shape()), " and up ",
           shape_str(up_in.shape()), " must have the same shape");
  Tensor gate = as_f32_contiguous(gate_in), up = as_f32_contiguous(up_in);
  Tensor out = Tensor::empty(gate.shape());
  const float* G = gate.data<float>();
  const float* U = up.data<float>();
  float* Y = out.data<float>();
  const int64_t n = gate.numel();
  with_act(a, [&](auto k) {
#pragma omp parallel for if (n > kParallelMin) schedule(static)
    for (int64_t i = 0; i < n; ++i) Y[i] = act_f<decltype(k)::value>(G[i]) * U[i];
  });
  if (needs_history({&gate_in, &up_in})) {
    auto node = std::make_shared<GatedBackward>(a);
    node->gate = gate.detach();
    node->up = up.detach();
    attach(node, {&gate_in, &up_in}, {&out});
  }
  return out;
}

}  // namespace

Tensor gelu(const Tensor& x, const std::string& approximate) { return unary_act(x, gelu_kind(approximate, "gelu")); }

Tensor silu(const Tensor& x) { return unary_act(x, Act::Silu); }

Tensor swiglu(const Tensor& gate, const Tensor& up) { return gated_op(gate, up, Act::Silu, "swiglu"); }

Tensor gelu_mul(const Tensor& gate, const Tensor& up, const std::string& approximate) {
  return gated_op(gate, up, gelu_kind(approximate, "gelu_mul"), "gelu_mul");
}

}  // namespace peftcpp

#include "ops/linear.h"

#include <cblas.h>
#include <omp.h>

#include <cstring>

#include "core/autograd.h"
#include "core/generator.h"
#include "core/parallel.h"
#include "ops/elementwise.h"
#include "ops/shape.h"

namespace peftcpp {

void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
    return;
  }
  if (M == 1 && !ta) {
    // One row (decoding a token): a matrix-vector product, which OpenBLAS's
    // sgemm handles poorly. c = alpha·op(B)ᵀ·a + beta·c
    if (tb)  // B: [N, K]
      cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)N, (int)K, alpha, B, (int)ldb, A, 1, beta, C, 1);
    else  // B: [K, N]
      cblas_sgemv(CblasRowMajor, CblasTrans, (int)K, (int)N, alpha, B, (int)ldb, A, 1, beta, C, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K,
              alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

namespace {

// ---------------------------------------------------------------- matmul

// How one operand's trailing 2-D matrices are laid out for sgemm.
struct MatLayout {
  bool trans;
  int64_t ld;
};

bool layout_of(const Tensor& t, MatLayout& l) {
  const int64_t nd = t.dim();
  const int64_t rows = t.shape()[nd - 2], cols = t.shape()[nd - 1];
  const int64_t sr = t.strides()[nd - 2], sc = t.strides()[nd - 1];
  if ((sc == 1 || cols == 1) && sr >= std::max<int64_t>(cols, 1)) {
    l = {false, std::max<int64_t>(sr, 1)};
    return true;
  }
  if ((sr == 1 || rows == 1) && sc >= std::max<int64_t>(rows, 1)) {
    l = {true, std::max<int64_t>(sc, 1)};
    return true;
  }
  return false;
}

struct MatmulBackward : Node {
  Tensor a, b;
  const char* name() const override { return "MatmulBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    Tensor ga, gb;
    if (needs_grad(0)) ga = sum_to_shape(matmul(g[0], transpose(b, -1, -2)), a.shape());
    if (needs_grad(1)) gb = sum_to_shape(matmul(transpose(a, -1, -2), g[0]), b.shape());
    return {ga, gb};
  }
  void release() override { a = b = Tensor(); }
};

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  PC_CHECK(a_in.dim() >= 2 && b_in.dim() >= 2, "[matmul] both operands need at least 2 dimensions, got ",
           shape_str(a_in.shape()), " and ", shape_str(b_in.shape()));
  PC_CHECK_TYPE(is_floating(a_in.dtype()) && is_floating(b_in.dtype()), "[matmul] expected float tensors, got ",
                dtype_name(a_in.dtype()), " and ", dtype_name(b_in.dtype()));
  const int64_t M = a_in.shape()[a_in.dim() - 2], K = a_in.shape()[a_in.dim() - 1];
  const int64_t K2 = b_in.shape()[b_in.dim() - 2], N = b_in.shape()[b_in.dim() - 1];
  PC_CHECK(K == K2, "[matmul] shapes ", shape_str(a_in.shape()), " and ", shape_str(b_in.shape()),
           " cannot be multiplied (", K, " != ", K2, ")");
  Tensor a = a_in.dtype() == DType::F32 ? a_in : a_in.to(DType::F32);
  Tensor b = b_in.dtype() == DType::F32 ? b_in : b_in.to(DType::F32);
  MatLayout la, lb;
  if (!layout_of(a, la)) { a = a.contiguous(); layout_of(a, la); }
  if (!layout_of(b, lb)) { b = b.contiguous(); layout_of(b, lb); }

  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch;
  {
    size_t n = std::max(ba.size(), bb.size());
    batch.resize(n);
    for (size_t i = 0; i < n; ++i) {
      int64_t x = i < n - ba.size() ? 1 : ba[i - (n - ba.size())];
      int64_t y = i < n - bb.size() ? 1 : bb[i - (n - bb.size())];
      PC_CHECK(x == y || x == 1 || y == 1, "[matmul] batch dimensions of ", shape_str(a_in.shape()), " and ",
               shape_str(b_in.shape()), " are not broadcastable");
      batch[i] = x == 1 ? y : x;
    }
  }
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = Tensor::empty(out_shape);
  const int64_t nb = shape_numel(batch);
  auto batch_strides = [&](const Tensor& t) {
    Shape s(batch.size(), 0);
    size_t off = batch.size() - (t.dim() - 2);
    for (int64_t i = 0; i < t.dim() - 2; ++i) s[i + off] = t.shape()[i] == 1 ? 0 : t.strides()[i];
    return s;
  };
  Shape sa = batch_strides(a), sb = batch_strides(b);
  const float* pa = static_cast<const float*>(a.storage()->data) + a.offset();
  const float* pb = static_cast<const float*>(b.storage()->data) + b.offset();
  float* po = out.data<float>();
  auto one = [&](int64_t i) {
    int64_t rem = i, oa = 0, ob = 0;
    for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
      int64_t k = rem % batch[d];
      rem /= batch[d];
      oa += k * sa[d];
      ob += k * sb[d];
    }
    sgemm(la.trans, lb.trans, M, N, K, 1.f, pa + oa, la.ld, pb + ob, lb.ld, 0.f, po + i * M * N, N);
  };
  if (nb >= 2 * get_num_threads() || (nb > 1 && M * N * K < (1 << 18))) {
    // Many small products: one per thread, sgemm single-threaded inside.
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < nb; ++i) one(i);
  } else {
    for (int64_t i = 0; i < nb; ++i) one(i);
  }
  if (needs_history({&a_in, &b_in})) {
    auto n = std::make_shared<MatmulBackward>();
    n->a = a_in.detach();
    n->b = b_in.detach();
    attach(n, {&a_in, &b_in}, {&out});
  }
  return out;
}

// ---------------------------------------------------------------- linear

namespace {

// W as float32 rows: the tensor's own data, or a widened copy in scratch.
const float* weight_f32(const Tensor& W, const Tensor& Wc, int slot) {
  if (Wc.dtype() == DType::F32) return Wc.data<float>();
  float* s = scratch_f32(slot, Wc.numel());
  convert_to_f32(Wc.raw_data(), Wc.dtype(), s, Wc.numel());
  return s;
}

void check_linear(const Tensor& x, const Tensor& W, const Tensor& b, const char* op) {
  PC_CHECK(x.defined() && W.defined(), "[", op, "] input and weight must be defined");
  PC_CHECK_TYPE(x.dtype() == DType::F32, "[", op, "] input must be float32, got ", dtype_name(x.dtype()), " of shape ",
                shape_str(x.shape()));
  PC_CHECK_TYPE(is_floating(W.dtype()), "[", op, "] weight must be a float tensor, got ", dtype_name(W.dtype()));
  PC_CHECK(W.dim() == 2, "[", op, "] weight must be 2-D [out, in], got ", shape_str(W.shape()));
  PC_CHECK(x.dim() >= 1 && x.shape().back() == W.shape()[1], "[", op, "] input ", shape_str(x.shape()),
           " does not match weight ", shape_str(W.shape()), " (last input dim must equal in_features ",
           W.shape()[1], ")");
  if (b.defined()) {
    PC_CHECK(b.dim() == 1 && b.shape()[0] == W.shape()[0], "[", op, "] bias ", shape_str(b.shape()),
             " does not match weight ", shape_str(W.shape()));
  }
  PC_CHECK_TYPE(W.dtype() == DType::F32 || !W.requires_grad(), "[", op, "] a ", dtype_name(W.dtype()),
                " weight cannot require grad");
}

void add_bias(float* Y, const Tensor& b, int64_t M, int64_t N) {
  Tensor bc = as_f32_contiguous(b);
  const float* pb = bc.data<float>();
#pragma omp parallel for if (M * N > 65536) schedule(static)
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) Y[i * N + j] += pb[j];
}

// dW += dYᵀ·X and db += Σrows dY, shared by linear and lora_linear.
void weight_grads(Node& n, const float* dY, const float* X, int64_t M, int64_t N, int64_t K, Tensor& dW, Tensor& db,
                  size_t w_slot, size_t b_slot) {
  if (n.needs_grad(w_slot)) {
    dW = Tensor::empty({N, K});
    sgemm(true, false, N, K, M, 1.f, dY, N, X, K, 0.f, dW.data<float>(), K);
  }
  if (n.needs_grad(b_slot)) {
    db = Tensor::zeros({N});
    float* pdb = db.data<float>();
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) pdb[j] += dY[i * N + j];
  }
}

struct LinearBackward : Node {
  Tensor x, W;  // x: [M, K] contiguous f32
  bool has_bias = false;
  const char* name() const override { return "LinearBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    const int64_t M = x.shape()[0], K = x.shape()[1], N = W.shape()[0];
    Tensor dy = as_f32_contiguous(g[0]);
    const float* dY = dy.data<float>();
    Tensor dx, dW, db;
    if (needs_grad(0)) {
      dx = Tensor::empty(in_shape);
      sgemm(false, false, M, K, N, 1.f, dY, N, weight_f32(W, W, 0), K, 0.f, dx.data<float>(), K);
    }
    weight_grads(*this, dY, x.data<float>(), M, N, K, dW, db, 1, 2);
    return {dx, dW, db};
  }
  void release() override { x = W = Tensor(); }
  Shape in_shape;
};

}  // namespace

Tensor linear(const Tensor& x, const Tensor& W, const Tensor& b) {
  check_linear(x, W, b, "linear");
  const int64_t K = W.shape()[1], N = W.shape()[0];
  const int64_t M = x.numel() / std::max<int64_t>(K, 1);
  Tensor xc = x.contiguous();
  Tensor Wc = W.contiguous();
  Shape out_shape = x.shape();
  out_shape.back() = N;
  Tensor out = Tensor::empty(out_shape);
  float* Y = out.data<float>();
  sgemm(false, true, M, N, K, 1.f, xc.data<float>(), K, weight_f32(W, Wc, 0), K, 0.f, Y, N);
  if (b.defined()) add_bias(Y, b, M, N);
  if (needs_history({&x, &W, &b})) {
    auto n = std::make_shared<LinearBackward>();
    n->x = xc.detach().view({M, K});
    n->W = Wc.detach();
    n->in_shape = x.shape();
    n->has_bias = b.defined();
    attach(n, {&x, &W, &b}, {&out});
  }
  return out;
}

// ---------------------------------------------------------------- LoRA

namespace {

// Regenerates the dropout mask from (seed, base): keep iff u >= p.
inline bool keep_elem(uint64_t seed, uint64_t base, int64_t i, float p) {
  return Generator::uniform(seed, base + static_cast<uint64_t>(i)) >= p;
}

// out = x ⊙ mask / (1-p)
void apply_dropout(const float* x, float* out, int64_t n, float p, uint64_t seed, uint64_t base) {
  const float s = 1.f / (1.f - p);
#pragma omp parallel for if (n > 32768) schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = keep_elem(seed, base, i, p) ? x[i] * s : 0.f;
}

struct LoraLinearBackward : Node {
  Tensor x, W, A, B, H;  // x [M,K] f32, H [M,r]
  Shape in_shape;
  float scale = 1.f, p = 0.f;
  uint64_t seed = 0, base = 0;
  const char* name() const override { return "LoraLinearBackward"; }

  // Shapes (llm.c style): dY [M,N], W [N,K], A [r,K], B [N,r], H [M,r].
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    const int64_t M = x.shape()[0], K = x.shape()[1], N = W.shape()[0], r = A.shape()[0];
    Tensor dy = as_f32_contiguous(g[0]);
    const float* dY = dy.data<float>();
    const float* X = x.data<float>();
    // dHs = scale·dY·B  [M, r]: the gradient reaching H, shared by dA and dx.
    Tensor dHs = Tensor::empty({M, r});
    sgemm(false, false, M, r, N, scale, dY, N, B.data<float>(), r, 0.f, dHs.data<float>(), r);

    Tensor dx, dW, db, dA, dB;
    if (needs_grad(4)) {  // dB = scale·dYᵀ·H  [N, r]
      dB = Tensor::empty({N, r});
      sgemm(true, false, N, r, M, scale, dY, N, H.data<float>(), r, 0.f, dB.data<float>(), r);
    }
    // The dropped-out input, rebuilt from the mask seed when there is dropout.
    Tensor xd_buf;
    const float* Xd = X;
    if (p > 0.f && (needs_grad(3))) {
      xd_buf = Tensor::empty({M, K});
      apply_dropout(X, xd_buf.data<float>(), M * K, p, seed, base);
      Xd = xd_buf.data<float>();
    }
    if (needs_grad(3)) {  // dA = dHsᵀ·Xd  [r, K]
      dA = Tensor::empty({r, K});
      sgemm(true, false, r, K, M, 1.f, dHs.data<float>(), r, Xd, K, 0.f, dA.data<float>(), K);
    }
    xd_buf = Tensor();
    if (needs_grad(0)) {  // dx = dY·W + dropout'(dHs·A)
      dx = Tensor::empty(in_shape);
      float* dX = dx.data<float>();
      sgemm(false, false, M, K, N, 1.f, dY, N, weight_f32(W, W, 0), K, 0.f, dX, K);
      if (p > 0.f) {
        Tensor t = Tensor::empty({M, K});
        float* T = t.data<float>();
        sgemm(false, false, M, K, r, 1.f, dHs.data<float>(), r, A.data<float>(), K, 0.f, T, K);
        const float s = 1.f / (1.f - p);
        const int64_t n = M * K;
#pragma omp parallel for if (n > 32768) schedule(static)
        for (int64_t i = 0; i < n; ++i)
          if (keep_elem(seed, base, i, p)) dX[i] += T[i] * s;
      } else {
        sgemm(false, false, M, K, r, 1.f, dHs.data<float>(), r, A.data<float>(), K, 1.f, dX, K);
      }
    }
    weight_grads(*this, dY, X, M, N, K, dW, db, 1, 2);
    return {dx, dW, db, dA, dB};
  }
  void release() override { x = W = A = B = H = Tensor(); }
};

}  // namespace

Tensor lora_linear(const Tensor& x, const Tensor& W, const Tensor& b, const Tensor& A_in, const Tensor& B_in,
                   float scale, float dropout_p, bool training) {
  check_linear(x, W, b, "lora_linear");
  PC_CHECK(A_in.defined() && B_in.defined(), "[lora_linear] lora_A and lora_B must be defined");
  PC_CHECK_TYPE(A_in.dtype() == DType::F32 && B_in.dtype() == DType::F32,
                "[lora_linear] lora_A and lora_B must be float32, got ", dtype_name(A_in.dtype()), " and ",
                dtype_name(B_in.dtype()));
  const int64_t K = W.shape()[1], N = W.shape()[0];
  PC_CHECK(A_in.dim() == 2 && A_in.shape()[1] == K, "[lora_linear] lora_A ", shape_str(A_in.shape()),
           " must be [r, ", K, "] for weight ", shape_str(W.shape()));
  const int64_t r = A_in.shape()[0];
  PC_CHECK(B_in.dim() == 2 && B_in.shape()[0] == N && B_in.shape()[1] == r, "[lora_linear] lora_B ",
           shape_str(B_in.shape()), " must be [", N, ", ", r, "] for weight ", shape_str(W.shape()), " and lora_A ",
           shape_str(A_in.shape()));
  PC_CHECK(dropout_p >= 0.f && dropout_p < 1.f, "[lora_linear] dropout probability must be in [0, 1), got ",
           dropout_p);
  const int64_t M = x.numel() / std::max<int64_t>(K, 1);
  Tensor xc = x.contiguous(), Wc = W.contiguous(), A = A_in.contiguous(), B = B_in.contiguous();
  const float* X = xc.data<float>();
  Shape out_shape = x.shape();
  out_shape.back() = N;
  Tensor out = Tensor::empty(out_shape);
  float* Y = out.data<float>();

  // Y = X·Wᵀ + b
  sgemm(false, true, M, N, K, 1.f, X, K, weight_f32(W, Wc, 0), K, 0.f, Y, N);
  if (b.defined()) add_bias(Y, b, M, N);

  // H = dropout(X)·Aᵀ  [M, r]
  const float p = training ? dropout_p : 0.f;
  uint64_t seed = 0, base = 0;
  Tensor H = Tensor::empty({M, r});
  if (p > 0.f) {
    Generator& gen = Generator::global();
    seed = gen.seed();
    base = gen.reserve(static_cast<uint64_t>(M * K));
    Tensor xd = Tensor::empty({M, K});
    apply_dropout(X, xd.data<float>(), M * K, p, seed, base);
    sgemm(false, true, M, r, K, 1.f, xd.data<float>(), K, A.data<float>(), K, 0.f, H.data<float>(), r);
  } else {
    sgemm(false, true, M, r, K, 1.f, X, K, A.data<float>(), K, 0.f, H.data<float>(), r);
  }
  // Y += scale·H·Bᵀ
  sgemm(false, true, M, N, r, scale, H.data<float>(), r, B.data<float>(), r, 1.f, Y, N);

  if (needs_history({&x, &W, &b, &A_in, &B_in})) {
    auto n = std::make_shared<LoraLinearBackward>();
    n->x = xc.detach().view({M, K});
    n->W = Wc.detach();
    n->A = A.detach();
    n->B = B.detach();
    n->H = H;
    n->in_shape = x.shape();
    n->scale = scale;
    n->p = p;
    n->seed = seed;
    n->base = base;
    attach(n, {&x, &W, &b, &A_in, &B_in}, {&out});
  }
  return out;
}

}  // namespace peftcpp

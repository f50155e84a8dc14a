#include "ops/loss.h"

#include "core/vmath.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/autograd.h"
#include "core/parallel.h"
#include "ops/linear.h"

namespace peftcpp {

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Rows per block in linear_cross_entropy: bounds the logits buffer by
// kRowBlock·chunk even for very long batches.
constexpr int64_t kRowBlock = 1024;

enum class Reduction { Mean, Sum, None };

// Row sum and max; `omp simd` lets the compiler reassociate (vectorize) the
// float reductions, which it otherwise may not without -ffast-math.
inline float row_sum(const float* x, int64_t n) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; ++j) s += x[j];
  return s;
}
inline float row_max(const float* x, int64_t n) {
  float m = kNegInf;
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < n; ++j) m = std::max(m, x[j]);
  return m;
}

Reduction parse_reduction(const std::string& r, const char* op) {
  if (r == "mean") return Reduction::Mean;
  if (r == "sum") return Reduction::Sum;
  if (r == "none") return Reduction::None;
  PC_CHECK(false, "[", op, "] reduction must be 'mean', 'sum' or 'none', got '", r, "'");
  return Reduction::Mean;
}

// Targets as int64 in flat order, each either ignore_index or in [0, V).
std::vector<int64_t> read_targets(const Tensor& targets, int64_t V, int64_t ignore_index, const char* op) {
  Tensor t = targets.contiguous();
  const int64_t n = t.numel();
  std::vector<int64_t> out(n);
  if (t.dtype() == DType::I32) {
    const int32_t* p = t.data<int32_t>();
    for (int64_t i = 0; i < n; ++i) out[i] = p[i];
  } else {
    const int64_t* p = t.data<int64_t>();
    std::copy(p, p + n, out.begin());
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t v = out[i];
    PC_CHECK_INDEX(v == ignore_index || (v >= 0 && v < V), "[", op, "] target at position ", i, " is ", v,
                   ", outside the class range [0, ", V, ") and not ignore_index (", ignore_index, ")");
  }
  return out;
}

void check_targets_dtype(const Tensor& targets, const char* op) {
  PC_CHECK(targets.defined(), "[", op, "] targets must be defined");
  PC_CHECK_TYPE(targets.dtype() == DType::I32 || targets.dtype() == DType::I64, "[", op,
                "] targets must be int32 or int64 class indices, got ", dtype_name(targets.dtype()), " of shape ",
                shape_str(targets.shape()));
}

// The per-row weight of dloss in backward: 0 for ignored rows.
//   mean: g/count, sum: g, none: g[i]
std::vector<float> row_scales(const Tensor& g_in, Reduction red, const std::vector<int64_t>& tg, int64_t ignore_index,
                              int64_t count) {
  const int64_t n = static_cast<int64_t>(tg.size());
  std::vector<float> w(n, 0.f);
  Tensor g = as_f32_contiguous(g_in);
  const float* pg = g.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    if (tg[i] == ignore_index) continue;
    w[i] = red == Reduction::None ? pg[i] : red == Reduction::Sum ? pg[0] : pg[0] / static_cast<float>(count);
  }
  return w;
}

// ---------------------------------------------------------------- cross_entropy

struct CrossEntropyBackward : Node {
  Tensor logits, lse;  // [N, V] f32 contiguous, [N]
  std::vector<int64_t> tg;
  int64_t ignore_index = -100, count = 0;
  Reduction red = Reduction::Mean;
  float eps = 0.f;
  const char* name() const override { return "CrossEntropyBackward"; }

  // dlogits[i, j] = w_i·(softmax_ij - ε/V - (1-ε)·[j == t_i])
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    if (!needs_grad(0)) return {Tensor()};
    const int64_t N = logits.shape()[0], V = logits.shape()[1];
    const std::vector<float> w = row_scales(g[0], red, tg, ignore_index, count);
    Tensor dx = Tensor::empty({N, V});
    const float* X = logits.data<float>();
    const float* L = lse.data<float>();
    float* dX = dx.data<float>();
    const float smooth = eps / static_cast<float>(V);
#pragma omp parallel for if (N * V > 32768) schedule(static)
    for (int64_t i = 0; i < N; ++i) {
      const float* x = X + i * V;
      float* d = dX + i * V;
      if (tg[i] == ignore_index) {
        std::fill(d, d + V, 0.f);
        continue;
      }
      const float wi = w[i], li = L[i];
      for (int64_t j = 0; j < V; ++j) d[j] = wi * (exp_approx(x[j] - li) - smooth);
      d[tg[i]] -= wi * (1.f - eps);
    }
    return {dx};
  }
  void release() override { logits = lse = Tensor(); tg.clear(); }
};

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index, const std::string& reduction,
                     float label_smoothing) {
  const char* op = "cross_entropy";
  PC_CHECK(logits.defined(), "[cross_entropy] logits must be defined");
  PC_CHECK_TYPE(logits.dtype() == DType::F32, "[cross_entropy] logits must be float32, got ",
                dtype_name(logits.dtype()), " of shape ", shape_str(logits.shape()));
  check_targets_dtype(targets, op);
  PC_CHECK(logits.dim() == 2, "[cross_entropy] logits must be [N, V], got ", shape_str(logits.shape()));
  const int64_t N = logits.shape()[0], V = logits.shape()[1];
  PC_CHECK(targets.dim() == 1 && targets.shape()[0] == N, "[cross_entropy] targets ", shape_str(targets.shape()),
           " do not match logits ", shape_str(logits.shape()), " (expected [", N, "])");
  PC_CHECK(V >= 1, "[cross_entropy] logits ", shape_str(logits.shape()), " have no classes");
  PC_CHECK(label_smoothing >= 0.f && label_smoothing <= 1.f, "[cross_entropy] label_smoothing must be in [0, 1], got ",
           label_smoothing);
  const Reduction red = parse_reduction(reduction, op);
  std::vector<int64_t> tg = read_targets(targets, V, ignore_index, op);

  Tensor x = logits.contiguous();
  const float* X = x.data<float>();
  Tensor lse = Tensor::empty({N});
  Tensor rows = Tensor::empty({N});  // per-row loss, 0 at ignored rows
  float* L = lse.data<float>();
  float* R = rows.data<float>();
  const float eps = label_smoothing;
  // loss_i = (1-ε)·(lse_i - x_i,t) + ε/V·Σ_j (lse_i - x_ij), torch's smoothing.
#pragma omp parallel for if (N * V > 32768) schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const float* xi = X + i * V;
    const float m = row_max(xi, V);
    float e[256];  // exp(x - m) a block at a time, summed vectorized
    double s = 0.0;
    for (int64_t j0 = 0; j0 < V; j0 += 256) {
      const int64_t nb = std::min<int64_t>(256, V - j0);
      for (int64_t j = 0; j < nb; ++j) e[j] = exp_approx(xi[j0 + j] - m);
      s += row_sum(e, nb);
    }
    const float l = m + static_cast<float>(std::log(s));
    L[i] = l;
    if (tg[i] == ignore_index) {
      R[i] = 0.f;
      continue;
    }
    double loss = (1.0 - eps) * (double(l) - xi[tg[i]]);
    if (eps > 0.f) {
      double sm = 0.0;
      for (int64_t j = 0; j < V; ++j) sm += double(l) - xi[j];
      loss += eps / double(V) * sm;
    }
    R[i] = static_cast<float>(loss);
  }

  int64_t count = 0;
  for (int64_t v : tg) count += v != ignore_index;
  Tensor out;
  if (red == Reduction::None) {
    out = rows;
  } else {
    double total = 0.0;
    for (int64_t i = 0; i < N; ++i) total += R[i];
    // torch: mean over zero non-ignored targets is 0/0 = nan.
    const float v = red == Reduction::Sum ? float(total) : count == 0 ? kNaN : float(total / double(count));
    out = Tensor::scalar(v);
  }

  if (needs_history({&logits})) {
    auto n = std::make_shared<CrossEntropyBackward>();
    n->logits = x.detach();
    n->lse = lse;
    n->tg = std::move(tg);
    n->ignore_index = ignore_index;
    n->count = count;
    n->red = red;
    n->eps = eps;
    attach(n, {&logits}, {&out});
  }
  return out;
}

// ---------------------------------------------------------------- linear_cross_entropy

namespace {

// Rows of the [V, C] weight as float32: f32 rows are used in place (any row
// stride), f16/bf16 rows are widened chunk by chunk into scratch, so the
// whole matrix is never converted.
struct WeightRows {
  Tensor W;  // keeps the storage alive; contiguous rows
  int64_t C = 0, ld = 0;
  explicit WeightRows(const Tensor& w) : C(w.shape()[1]) {
    const bool rows_ok = (w.strides()[1] == 1 || C <= 1) && w.strides()[0] >= C;
    W = rows_ok ? w : w.contiguous();
    ld = rows_ok ? std::max<int64_t>(W.strides()[0], 1) : std::max<int64_t>(C, 1);
  }
  // Rows [v0, v0+n) as a row-major f32 matrix with leading dimension *ld_out.
  const float* chunk(int64_t v0, int64_t n, int64_t* ld_out) const {
    if (W.dtype() == DType::F32) {
      *ld_out = ld;
      return static_cast<const float*>(W.raw_data()) + v0 * ld;
    }
    float* s = scratch_f32(0, static_cast<size_t>(std::max<int64_t>(n * C, 1)));
    const uint16_t* src = static_cast<const uint16_t*>(W.raw_data()) + v0 * ld;
    if (ld == C) {
      convert_to_f32(src, W.dtype(), s, static_cast<size_t>(n * C));
    } else {
      for (int64_t r = 0; r < n; ++r) convert_to_f32(src + r * ld, W.dtype(), s + r * C, static_cast<size_t>(C));
    }
    *ld_out = C;
    return s;
  }
};

// Hidden rows whose target is not ignored, packed [Nv, C] (hidden itself
// when none is ignored, so the common case copies nothing).
struct ValidRows {
  std::vector<int64_t> idx;  // row of each packed row
  std::vector<int64_t> tgt;  // its target
  Tensor packed;             // [Nv, C]
  const float* H = nullptr;
  ValidRows(const Tensor& h, const std::vector<int64_t>& tg, int64_t ignore_index) {
    const int64_t N = static_cast<int64_t>(tg.size()), C = h.shape()[1];
    for (int64_t i = 0; i < N; ++i)
      if (tg[i] != ignore_index) {
        idx.push_back(i);
        tgt.push_back(tg[i]);
      }
    const int64_t Nv = static_cast<int64_t>(idx.size());
    if (Nv == N) {
      H = h.data<float>();
      return;
    }
    packed = Tensor::empty({Nv, C});
    float* P = packed.data<float>();
    const float* src = h.data<float>();
    for (int64_t r = 0; r < Nv; ++r) std::copy(src + idx[r] * C, src + (idx[r] + 1) * C, P + r * C);
    H = P;
  }
  int64_t size() const { return static_cast<int64_t>(idx.size()); }
};

// Walks the logits Z = H·Wᵀ of the valid rows one [rb, vc] block at a time
// (vocabulary chunks outside, row blocks inside, so each weight chunk is
// widened once), calling f(b0, rb, v0, vc, Z, Wc, ldw) with the block's
// logits in Z [rb, vc] and its weight rows Wc. Forward and backward both
// go through here: the full [N, V] logits never exist.
template <class F>
void for_each_logits_block(const ValidRows& rows, const Tensor& W, int64_t C, int64_t chunk, F f) {
  const int64_t Nv = rows.size(), V = W.shape()[0];
  if (Nv == 0) return;
  const int64_t RB = std::min(Nv, kRowBlock), VC = std::min(chunk, V);
  Tensor buf = Tensor::empty({RB, VC});
  float* Z = buf.data<float>();
  WeightRows wr(W);
  for (int64_t v0 = 0; v0 < V; v0 += VC) {
    const int64_t vc = std::min(VC, V - v0);
    int64_t ldw = 0;
    const float* Wc = wr.chunk(v0, vc, &ldw);
    for (int64_t b0 = 0; b0 < Nv; b0 += RB) {
      const int64_t rb = std::min(RB, Nv - b0);
      // Z = H_b·W_cᵀ  [rb, vc]
      sgemm(false, true, rb, vc, C, 1.f, rows.H + b0 * C, C, Wc, ldw, 0.f, Z, vc);
      f(b0, rb, v0, vc, Z, Wc, ldw);
    }
  }
}

struct LinearCrossEntropyBackward : Node {
  Tensor hidden, W, lse;  // [N, C] f32 contiguous, [V, C], [N] (0 at ignored rows)
  std::vector<int64_t> tg;
  Shape hidden_shape;
  int64_t ignore_index = -100, chunk = 4096;
  Reduction red = Reduction::Mean;
  float softcap = 0.f;
  const char* name() const override { return "LinearCrossEntropyBackward"; }

  // Per vocabulary chunk c and row block b (llm.c-style shapes):
  //   Z  = H_b·W_cᵀ                          [rb, vc]  recomputed
  //   D  = w·(softmax(cap(Z)) - onehot)·cap'(Z)  [rb, vc]  in place of Z
  //   dH_b += D·W_c                          [rb, C]
  //   dW_c += Dᵀ·H_b                         [vc, C]
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    const bool need_h = needs_grad(0), need_w = needs_grad(1);
    if (!need_h && !need_w) return {Tensor(), Tensor()};
    const int64_t N = hidden.shape()[0], C = hidden.shape()[1], V = W.shape()[0];
    const std::vector<float> w_all = row_scales(g[0], red, tg, ignore_index, count_valid());
    ValidRows rows(hidden, tg, ignore_index);
    const int64_t Nv = rows.size();
    std::vector<float> w(Nv), l(Nv);
    const float* Lse = lse.data<float>();
    for (int64_t r = 0; r < Nv; ++r) {
      w[r] = w_all[rows.idx[r]];
      l[r] = Lse[rows.idx[r]];
    }

    Tensor dH_packed = need_h ? Tensor::zeros({Nv, C}) : Tensor();
    Tensor dW = need_w ? Tensor::zeros({V, C}) : Tensor();
    for_each_logits_block(rows, W, C, chunk, [&](int64_t b0, int64_t rb, int64_t v0, int64_t vc, float* Z,
                                                 const float* Wc, int64_t ldw) {
      const float* Hb = rows.H + b0 * C;
      const float cap = softcap;
#pragma omp parallel for if (rb * vc > 16384) schedule(static)
      for (int64_t r = 0; r < rb; ++r) {
        float* z = Z + r * vc;
        const float wi = w[b0 + r], li = l[b0 + r];
        // The one-hot term goes through the cap's derivative too: read
        // the target's raw logit before z is overwritten.
        const int64_t t = rows.tgt[b0 + r] - v0;
        const bool has_t = t >= 0 && t < vc;
        float dcap_t = 1.f;
        if (cap > 0.f && has_t) {
          const float th = std::tanh(z[t] / cap);
          dcap_t = 1.f - th * th;
        }
        if (cap > 0.f) {
          for (int64_t j = 0; j < vc; ++j) {
            const float th = std::tanh(z[j] / cap);
            z[j] = wi * exp_approx(cap * th - li) * (1.f - th * th);
          }
        } else {
          for (int64_t j = 0; j < vc; ++j) z[j] = wi * exp_approx(z[j] - li);
        }
        if (has_t) z[t] -= wi * dcap_t;
      }
      // dH_b += dZ·W_c;  dW_c += dZᵀ·H_b
      if (need_h) sgemm(false, false, rb, C, vc, 1.f, Z, vc, Wc, ldw, 1.f, dH_packed.data<float>() + b0 * C, C);
      if (need_w) sgemm(true, false, vc, C, rb, 1.f, Z, vc, Hb, C, 1.f, dW.data<float>() + v0 * C, C);
    });

    Tensor dH;
    if (need_h) {
      if (Nv == N) {
        dH = dH_packed.view(hidden_shape);
      } else {
        dH = Tensor::zeros(hidden_shape);
        float* out = dH.data<float>();
        const float* src = dH_packed.data<float>();
        for (int64_t r = 0; r < Nv; ++r) std::copy(src + r * C, src + (r + 1) * C, out + rows.idx[r] * C);
      }
    }
    return {dH, dW};
  }
  int64_t count_valid() const {
    int64_t c = 0;
    for (int64_t v : tg) c += v != ignore_index;
    return c;
  }
  void release() override { hidden = W = lse = Tensor(); tg.clear(); }
};

}  // namespace

Tensor linear_cross_entropy(const Tensor& hidden, const Tensor& weight, const Tensor& targets, int64_t ignore_index,
                            const std::string& reduction, int64_t chunk_size, float softcap) {
  const char* op = "linear_cross_entropy";
  PC_CHECK(hidden.defined() && weight.defined(), "[linear_cross_entropy] hidden and weight must be defined");
  PC_CHECK_TYPE(hidden.dtype() == DType::F32, "[linear_cross_entropy] hidden must be float32, got ",
                dtype_name(hidden.dtype()), " of shape ", shape_str(hidden.shape()));
  PC_CHECK_TYPE(is_floating(weight.dtype()), "[linear_cross_entropy] weight must be a float tensor, got ",
                dtype_name(weight.dtype()), " of shape ", shape_str(weight.shape()));
  PC_CHECK_TYPE(weight.dtype() == DType::F32 || !weight.requires_grad(), "[linear_cross_entropy] a ",
                dtype_name(weight.dtype()), " weight cannot require grad (only float32 weights are trainable)");
  check_targets_dtype(targets, op);
  PC_CHECK(hidden.dim() >= 2, "[linear_cross_entropy] hidden must be [N, C] (or [..., C]), got ",
           shape_str(hidden.shape()));
  PC_CHECK(weight.dim() == 2, "[linear_cross_entropy] weight must be [V, C], got ", shape_str(weight.shape()));
  const int64_t C = hidden.shape().back(), V = weight.shape()[0];
  PC_CHECK(weight.shape()[1] == C, "[linear_cross_entropy] hidden ", shape_str(hidden.shape()), " and weight ",
           shape_str(weight.shape()), " disagree on the hidden size (", C, " != ", weight.shape()[1], ")");
  const Shape lead(hidden.shape().begin(), hidden.shape().end() - 1);
  PC_CHECK(targets.shape() == lead, "[linear_cross_entropy] targets ", shape_str(targets.shape()),
           " do not match hidden ", shape_str(hidden.shape()), " (expected ", shape_str(lead), ")");
  PC_CHECK(V >= 1, "[linear_cross_entropy] weight ", shape_str(weight.shape()), " has no vocabulary rows");
  PC_CHECK(chunk_size >= 1, "[linear_cross_entropy] chunk_size must be positive, got ", chunk_size);
  PC_CHECK(softcap >= 0.f && std::isfinite(softcap), "[linear_cross_entropy] softcap must be >= 0 (0 disables it), got ",
           softcap);
  const Reduction red = parse_reduction(reduction, op);
  std::vector<int64_t> tg = read_targets(targets, V, ignore_index, op);
  const int64_t N = shape_numel(lead);

  Tensor h = hidden.contiguous().view({N, C});
  ValidRows rows(h, tg, ignore_index);
  const int64_t Nv = rows.size();

  // Online logsumexp over vocabulary chunks, per valid row:
  //   m = running max, s = Σ exp(z - m), zt = the target's (capped) logit.
  std::vector<float> m(Nv, kNegInf), zt(Nv, 0.f);
  std::vector<double> s(Nv, 0.0);
  for_each_logits_block(rows, weight, C, chunk_size, [&](int64_t b0, int64_t rb, int64_t v0, int64_t vc, float* Z,
                                                       const float*, int64_t) {
#pragma omp parallel for if (rb * vc > 16384) schedule(static)
    for (int64_t r = 0; r < rb; ++r) {
      float* z = Z + r * vc;
      const int64_t i = b0 + r;
      if (softcap > 0.f)
        for (int64_t j = 0; j < vc; ++j) z[j] = softcap * std::tanh(z[j] / softcap);
      const int64_t t = rows.tgt[i] - v0;
      if (t >= 0 && t < vc) zt[i] = z[t];
      const float nm = std::max(m[i], row_max(z, vc));
      for (int64_t j = 0; j < vc; ++j) z[j] = exp_approx(z[j] - nm);
      const float cs = row_sum(z, vc);
      s[i] = (m[i] == kNegInf ? 0.0 : s[i] * std::exp(double(m[i]) - nm)) + cs;
      m[i] = nm;
    }
  });

  Tensor lse = Tensor::zeros({N});
  float* L = lse.data<float>();
  Tensor per_row = Tensor::zeros(lead);  // loss per row, 0 at ignored rows
  float* P = per_row.data<float>();
  double total = 0.0;
  for (int64_t r = 0; r < Nv; ++r) {
    const double l = double(m[r]) + std::log(s[r]);
    L[rows.idx[r]] = static_cast<float>(l);
    P[rows.idx[r]] = static_cast<float>(l - zt[r]);
    total += l - zt[r];
  }
  Tensor out;
  if (red == Reduction::None) {
    out = per_row;
  } else {
    // torch: mean over zero non-ignored targets is 0/0 = nan.
    out = Tensor::scalar(red == Reduction::Sum ? float(total) : Nv == 0 ? kNaN : float(total / double(Nv)));
  }

  if (needs_history({&hidden, &weight})) {
    auto n = std::make_shared<LinearCrossEntropyBackward>();
    n->hidden = h.detach();
    n->W = weight.detach();
    n->lse = lse;
    n->tg = std::move(tg);
    n->hidden_shape = hidden.shape();
    n->ignore_index = ignore_index;
    n->chunk = chunk_size;
    n->red = red;
    n->softcap = softcap;
    attach(n, {&hidden, &weight}, {&out});
  }
  return out;
}

}  // namespace peftcpp

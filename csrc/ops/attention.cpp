#include "ops/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/autograd.h"
#include "core/vmath.h"
#include "core/parallel.h"
#include "ops/linear.h"

namespace peftcpp {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// A [B, H, R, C] f32 operand as sgemm reads it: per-(b, h) base pointer and
// row stride, unit column stride.
struct Mat {
  const float* p = nullptr;
  int64_t s0 = 0, s1 = 0, ld = 0;
  const float* at(int64_t b, int64_t h) const { return p + b * s0 + h * s1; }
};

// f32 with rows sgemm can read in place (e.g. a [B, T, H, D] projection
// permuted to [B, H, T, D]); otherwise a contiguous copy.
Tensor gemm_ready(const Tensor& t) {
  Tensor f = t.dtype() == DType::F32 ? t : t.to(DType::F32);
  const int64_t R = f.shape()[2], C = f.shape()[3];
  const bool ok = (f.strides()[3] == 1 || C <= 1) && (R <= 1 || f.strides()[2] >= std::max<int64_t>(C, 1));
  return ok ? f : f.contiguous();
}

Mat mat_of(const Tensor& t) {
  Mat m;
  m.p = static_cast<const float*>(t.storage()->data) + t.offset();
  m.s0 = t.strides()[0];
  m.s1 = t.strides()[1];
  m.ld = t.shape()[2] <= 1 ? std::max<int64_t>(t.shape()[3], 1) : t.strides()[2];
  return m;
}

// Everything one (b, h) slice needs, shared by forward and backward.
struct Attn {
  int64_t B = 0, Hq = 0, Hkv = 0, T = 0, S = 0, D = 0, Dv = 0, group = 1;
  float scale = 1.f, softcap = 0.f;
  bool causal = true;
  int64_t window = 0;
  Mat q, k, v;
  // Additive mask broadcast to [B, Hq, T, S]: 0 strides on broadcast dims.
  const float* mp = nullptr;
  int64_t ms[4] = {0, 0, 0, 0};

  // Keys [lo, hi) that query row i may see (empty when lo >= hi).
  void range(int64_t i, int64_t& lo, int64_t& hi) const {
    const int64_t pos = i + S - T;  // the query's position among the keys
    hi = causal ? std::clamp<int64_t>(pos + 1, 0, S) : S;
    lo = window > 0 ? std::clamp<int64_t>(pos - window + 1, 0, S) : 0;
  }

  // Causal and windowed rows see a band of keys, so products are done in
  // blocks of query rows over just the keys that block can see: about half
  // the work for a causal square. Calls f(i0, i1, c0, c1) for rows [i0, i1)
  // and keys [c0, c1) (c1 <= c0: the block sees nothing).
  template <class F>
  void for_each_block(F f) const {
    const int64_t rb = (causal || window > 0) ? 32 : std::max<int64_t>(T, 1);
    for (int64_t i0 = 0; i0 < T; i0 += rb) {
      const int64_t i1 = std::min(T, i0 + rb);
      int64_t c0, c1, lo, hi;
      range(i0, c0, hi);
      range(i1 - 1, lo, c1);
      f(i0, i1, c0, c1);
    }
  }

  // Z = softcap(scale·Q·Kᵀ) + mask for one (b, h), valid only inside each
  // row's range. th (if non-null) receives tanh(z/softcap) for backward.
  // Z, th: [T, S]
  void logits(int64_t b, int64_t h, float* Z, float* th, bool par) const {
    const int64_t kh = h / group;
    const float* Q = q.at(b, h);
    const float* K = k.at(b, kh);
    for_each_block([&](int64_t i0, int64_t i1, int64_t c0, int64_t c1) {
      if (c1 > c0)
        sgemm(false, true, i1 - i0, c1 - c0, D, scale, Q + i0 * q.ld, q.ld, K + c0 * k.ld, k.ld, 0.f, Z + i0 * S + c0,
              S);
    });
    if (softcap <= 0.f && !mp) return;
    const float inv_cap = softcap > 0.f ? 1.f / softcap : 0.f;
#pragma omp parallel for if (par && T * S > 16384) schedule(static)
    for (int64_t i = 0; i < T; ++i) {
      int64_t lo, hi;
      range(i, lo, hi);
      float* z = Z + i * S;
      if (softcap > 0.f) {
        for (int64_t j = lo; j < hi; ++j) {
          const float t = std::tanh(z[j] * inv_cap);
          if (th) th[i * S + j] = t;
          z[j] = softcap * t;
        }
      }
      if (mp) {
        const float* m = mp + b * ms[0] + h * ms[1] + i * ms[2];
        for (int64_t j = lo; j < hi; ++j) z[j] += m[j * ms[3]];
      }
    }
  }
};

// Per-thread scratch: nthr blocks of `per` floats.
struct Scratch {
  Tensor buf;
  int64_t per = 0;
  Scratch(int nthr, int64_t per_) : buf(Tensor::empty({std::max(nthr, 1), std::max<int64_t>(per_, 1)})), per(per_) {}
  float* get(bool par) const { return buf.data<float>() + (par ? omp_get_thread_num() : 0) * per; }
};

// Many (b, h) slices: one per thread with single-threaded BLAS inside. Few
// slices: run them in turn and let BLAS and the row loops use the threads.
bool heads_in_parallel(int64_t nbh, int64_t T, int64_t S) {
  const int nt = get_num_threads();
  return nt > 1 && nbh > 1 && (nbh >= nt || T * S < 16384);
}

template <class F>
void for_each_head(int64_t nbh, bool par, F f) {
  if (par) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < nbh; ++bh) f(bh, true);
  } else {
    for (int64_t bh = 0; bh < nbh; ++bh) f(bh, false);
  }
}

struct AttentionBackward : Node {
  Attn a;
  Tensor q, k, v, mask;  // saved f32 inputs, detached; they own the memory a points into
  Tensor lse;            // [B, Hq, T]; -inf on rows that see no key
  const char* name() const override { return "ScaledDotProductAttentionBackward"; }

  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    const int64_t B = a.B, Hq = a.Hq, Hkv = a.Hkv, T = a.T, S = a.S, D = a.D, Dv = a.Dv, G = a.group;
    Tensor go = as_f32_contiguous(grads[0]);  // dO: [B, Hq, T, Dv]
    const bool want_q = needs_grad(0), want_k = needs_grad(1), want_v = needs_grad(2), want_m = needs_grad(3);
    Tensor dq, dm_full;
    if (want_q) dq = Tensor::empty({B, Hq, T, D});
    // dK/dV per query head: written in place when G == 1, else summed over
    // each group afterwards (keeps the heads independent across threads).
    Tensor dk_h, dv_h;
    if (want_k) dk_h = Tensor::empty({B, Hq, S, D});
    if (want_v) dv_h = Tensor::empty({B, Hq, S, Dv});
    if (want_m) dm_full = Tensor::empty({B, Hq, T, S});

    const int64_t nbh = B * Hq, TS = T * S;
    const bool par = heads_in_parallel(nbh, T, S);
    const int nbuf = a.softcap > 0.f ? 3 : 2;  // P, dP[, tanh]
    Scratch scr(par ? get_num_threads() : 1, nbuf * TS);
    const float* pgo = go.data<float>();
    const float* plse = lse.data<float>();

    for_each_head(nbh, par, [&](int64_t bh, bool in_par) {
      const int64_t b = bh / Hq, h = bh % Hq, kh = h / G;
      const bool rows_par = !in_par;
      float* P = scr.get(in_par);  // P, dP, dS: [T, S]
      float* dP = P + TS;
      float* th = a.softcap > 0.f ? dP + TS : nullptr;
      const float* dO = pgo + bh * T * Dv;  // [T, Dv]
      const float* L = plse + bh * T;
      // Recompute P = exp(Z − lse) inside each row's range, 0 elsewhere.
      a.logits(b, h, P, th, rows_par);
#pragma omp parallel for if (rows_par && TS > 16384) schedule(static)
      for (int64_t i = 0; i < T; ++i) {
        int64_t lo, hi;
        a.range(i, lo, hi);
        float* p = P + i * S;
        if (L[i] == kNegInf) lo = hi = 0;
        for (int64_t j = 0; j < lo; ++j) p[j] = 0.f;
        for (int64_t j = lo; j < hi; ++j) p[j] = exp_approx(p[j] - L[i]);
        for (int64_t j = std::max(lo, hi); j < S; ++j) p[j] = 0.f;
      }
      // dV_h = Pᵀ·dO  [S, Dv], accumulated over row blocks
      const float* V = a.v.at(b, kh);
      if (want_v) {
        float* dV = dv_h.data<float>() + bh * S * Dv;
        std::fill(dV, dV + S * Dv, 0.f);
        a.for_each_block([&](int64_t i0, int64_t i1, int64_t c0, int64_t c1) {
          if (c1 > c0)
            sgemm(true, false, c1 - c0, Dv, i1 - i0, 1.f, P + i0 * S + c0, S, dO + i0 * Dv, Dv, 1.f, dV + c0 * Dv, Dv);
        });
      }
      if (!want_q && !want_k && !want_m) return;
      // dP = dO·Vᵀ  [T, S], only where rows see keys
      a.for_each_block([&](int64_t i0, int64_t i1, int64_t c0, int64_t c1) {
        if (c1 > c0)
          sgemm(false, true, i1 - i0, c1 - c0, Dv, 1.f, dO + i0 * Dv, Dv, V + c0 * a.v.ld, a.v.ld, 0.f,
                dP + i0 * S + c0, S);
      });
      // Softmax backward in place over each row's visible keys (0 elsewhere):
      // dS = P ⊙ (dP − Σⱼ P⊙dP); then through the softcap: dZ = dS ⊙ (1 − tanh²).
      float* dm = want_m ? dm_full.data<float>() + bh * TS : nullptr;
#pragma omp parallel for if (rows_par && TS > 16384) schedule(static)
      for (int64_t i = 0; i < T; ++i) {
        int64_t lo, hi;
        a.range(i, lo, hi);
        if (L[i] == kNegInf) lo = hi = 0;
        const float* p = P + i * S;
        float* ds = dP + i * S;
        float dot = 0.f;
        for (int64_t j = lo; j < hi; ++j) dot += p[j] * ds[j];
        for (int64_t j = lo; j < hi; ++j) ds[j] = p[j] * (ds[j] - dot);
        std::fill(ds, ds + std::max<int64_t>(lo, 0), 0.f);
        std::fill(ds + std::max(lo, hi), ds + S, 0.f);
        if (dm) std::copy(ds, ds + S, dm + i * S);
        if (th) {
          const float* t = th + i * S;
          for (int64_t j = lo; j < hi; ++j) ds[j] *= 1.f - t[j] * t[j];
        }
      }
      // dQ = scale·dZ·K  [T, D];  dK_h = scale·dZᵀ·Q  [S, D]
      const float* K = a.k.at(b, kh);
      const float* Q = a.q.at(b, h);
      float* dQ = want_q ? dq.data<float>() + bh * T * D : nullptr;
      float* dK = want_k ? dk_h.data<float>() + bh * S * D : nullptr;
      if (dK) std::fill(dK, dK + S * D, 0.f);
      a.for_each_block([&](int64_t i0, int64_t i1, int64_t c0, int64_t c1) {
        if (c1 <= c0) {
          if (dQ) std::fill(dQ + i0 * D, dQ + i1 * D, 0.f);
          return;
        }
        if (dQ)
          sgemm(false, false, i1 - i0, D, c1 - c0, a.scale, dP + i0 * S + c0, S, K + c0 * a.k.ld, a.k.ld, 0.f,
                dQ + i0 * D, D);
        if (dK)
          sgemm(true, false, c1 - c0, D, i1 - i0, a.scale, dP + i0 * S + c0, S, Q + i0 * a.q.ld, a.q.ld, 1.f,
                dK + c0 * D, D);
      });
    });

    Tensor dk = G == 1 ? dk_h : group_sum(dk_h, B, Hkv, G, S * D);
    Tensor dv = G == 1 ? dv_h : group_sum(dv_h, B, Hkv, G, S * Dv);
    Tensor dmask;
    if (want_m) dmask = sum_to_shape(dm_full, mask.shape());
    return {dq, dk, dv, dmask};
  }

  // [B, Hkv·G, n] -> [B, Hkv, n]: sum over the G query heads of each kv head.
  Tensor group_sum(const Tensor& x, int64_t B, int64_t Hkv, int64_t G, int64_t n) const {
    if (!x.defined()) return x;
    const Shape& s = x.shape();
    Tensor out = Tensor::empty({B, Hkv, s[2], s[3]});
    const float* px = x.data<float>();
    float* po = out.data<float>();
    const int64_t rows = B * Hkv;
#pragma omp parallel for if (rows * n * G > 32768) schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      float* o = po + r * n;
      const float* src = px + r * G * n;  // heads r·G .. r·G+G-1 are adjacent
      std::copy(src, src + n, o);
      for (int64_t g = 1; g < G; ++g)
        for (int64_t e = 0; e < n; ++e) o[e] += src[g * n + e];
    }
    return out;
  }

  void release() override { q = k = v = mask = lse = Tensor(); }
};

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor& mask_in,
                                    bool is_causal, float scale, int64_t sliding_window, float softcap) {
  constexpr const char* op = "[scaled_dot_product_attention]";
  PC_CHECK(q_in.defined() && k_in.defined() && v_in.defined(), op, " q, k and v must be defined");
  PC_CHECK_TYPE(is_floating(q_in.dtype()) && is_floating(k_in.dtype()) && is_floating(v_in.dtype()), op,
                " expected floating-point q, k, v, got ", dtype_name(q_in.dtype()), ", ", dtype_name(k_in.dtype()),
                ", ", dtype_name(v_in.dtype()));
  PC_CHECK(q_in.dim() == 4 && k_in.dim() == 4 && v_in.dim() == 4, op,
           " q, k, v must be 4-D [B, H, T, D], got q ", shape_str(q_in.shape()), ", k ", shape_str(k_in.shape()),
           ", v ", shape_str(v_in.shape()));
  const Shape &qs = q_in.shape(), &ks = k_in.shape(), &vs = v_in.shape();
  PC_CHECK(ks[0] == qs[0] && vs[0] == qs[0], op, " batch sizes differ: q ", shape_str(qs), ", k ", shape_str(ks),
           ", v ", shape_str(vs));
  PC_CHECK(ks[1] == vs[1] && ks[2] == vs[2], op, " k ", shape_str(ks), " and v ", shape_str(vs),
           " must share heads and length ([B, Hkv, S, *])");
  PC_CHECK(ks[3] == qs[3], op, " head dims differ: q ", shape_str(qs), " vs k ", shape_str(ks));
  PC_CHECK(ks[1] > 0 && qs[1] % ks[1] == 0, op, " query heads (", qs[1], ") must be a multiple of kv heads (", ks[1],
           "): q ", shape_str(qs), ", k ", shape_str(ks));
  PC_CHECK(sliding_window >= 0, op, " sliding_window must be >= 0 (0 = none), got ", sliding_window);

  Attn a;
  a.B = qs[0], a.Hq = qs[1], a.T = qs[2], a.D = qs[3];
  a.Hkv = ks[1], a.S = ks[2], a.Dv = vs[3];
  a.group = a.Hq / a.Hkv;
  a.scale = scale > 0.f ? scale : 1.f / std::sqrt(static_cast<float>(std::max<int64_t>(a.D, 1)));
  a.softcap = softcap > 0.f ? softcap : 0.f;
  a.causal = is_causal;
  a.window = sliding_window;

  Tensor q = gemm_ready(q_in), k = gemm_ready(k_in), v = gemm_ready(v_in);
  a.q = mat_of(q), a.k = mat_of(k), a.v = mat_of(v);

  Tensor mask;
  if (mask_in.defined()) {
    PC_CHECK_TYPE(is_floating(mask_in.dtype()), op, " mask must be an additive float mask, got ",
                  dtype_name(mask_in.dtype()), " of shape ", shape_str(mask_in.shape()));
    const Shape full = {a.B, a.Hq, a.T, a.S};
    const int64_t md = mask_in.dim();
    bool ok = md <= 4;
    for (int64_t d = 0; ok && d < md; ++d) {
      const int64_t m = mask_in.shape()[d], f = full[4 - md + d];
      ok = m == f || m == 1;
    }
    PC_CHECK(ok, op, " mask ", shape_str(mask_in.shape()), " is not broadcastable to [B, Hq, T, S] = ",
             shape_str(full));
    mask = mask_in.dtype() == DType::F32 ? mask_in : mask_in.to(DType::F32);
    a.mp = static_cast<const float*>(mask.storage()->data) + mask.offset();
    for (int64_t d = 0; d < md; ++d)
      a.ms[4 - md + d] = mask.shape()[d] == 1 ? 0 : mask.strides()[d];
  }

  const int64_t B = a.B, Hq = a.Hq, T = a.T, S = a.S, Dv = a.Dv, TS = T * S, nbh = B * Hq;
  Tensor out = Tensor::empty({B, Hq, T, Dv});
  Tensor lse = Tensor::empty({B, Hq, T});
  const bool par = heads_in_parallel(nbh, T, S);
  Scratch scr(par ? get_num_threads() : 1, TS);
  float* po = out.data<float>();
  float* pl = lse.data<float>();

  for_each_head(nbh, par, [&](int64_t bh, bool in_par) {
    const int64_t b = bh / Hq, h = bh % Hq;
    const bool rows_par = !in_par;
    float* P = scr.get(in_par);  // Z then P: [T, S]
    a.logits(b, h, P, nullptr, rows_par);
    float* L = pl + bh * T;
    // Row softmax over each row's visible keys; rows that see nothing
    // (empty range or all -inf mask) become zeros with lse = -inf.
#pragma omp parallel for if (rows_par && TS > 16384) schedule(static)
    for (int64_t i = 0; i < T; ++i) {
      int64_t lo, hi;
      a.range(i, lo, hi);
      float* p = P + i * S;
      float m = kNegInf;
      for (int64_t j = lo; j < hi; ++j) m = std::max(m, p[j]);
      if (m == kNegInf) {
        std::fill(p, p + S, 0.f);
        L[i] = kNegInf;
        continue;
      }
      float sum = 0.f;
      for (int64_t j = lo; j < hi; ++j) {
        p[j] = exp_approx(p[j] - m);
        sum += p[j];
      }
      const float inv = 1.f / sum;
      for (int64_t j = lo; j < hi; ++j) p[j] *= inv;
      std::fill(p, p + lo, 0.f);
      std::fill(p + hi, p + S, 0.f);
      L[i] = m + std::log(sum);
    }
    // O = P·V  [T, Dv], each row block over the keys it sees
    const float* V = a.v.at(b, h / a.group);
    float* O = po + bh * T * Dv;
    a.for_each_block([&](int64_t i0, int64_t i1, int64_t c0, int64_t c1) {
      if (c1 > c0)
        sgemm(false, false, i1 - i0, Dv, c1 - c0, 1.f, P + i0 * S + c0, S, V + c0 * a.v.ld, a.v.ld, 0.f, O + i0 * Dv,
              Dv);
      else
        std::fill(O + i0 * Dv, O + i1 * Dv, 0.f);
    });
  });

  if (needs_history({&q_in, &k_in, &v_in, &mask_in})) {
    auto n = std::make_shared<AttentionBackward>();
    n->q = q.detach();
    n->k = k.detach();
    n->v = v.detach();
    if (mask.defined()) n->mask = mask.detach();
    n->lse = lse;
    n->a = a;  // its pointers stay valid: n holds the tensors they point into
    attach(n, {&q_in, &k_in, &v_in, &mask_in}, {&out});
  }
  return out;
}

}  // namespace peftcpp

// The 256-element K formats Q2_K..Q6_K, quantized as ggml's
// quantize_row_q*_K_ref (layouts in dequant.cpp). Each super-block is split
// into 16- or 32-element sub-blocks, each fitted by one of the solvers
// below; the sub-block scales (and mins) are then quantized against the
// super-block's largest one, and every element is requantized with the
// scales as they will be decoded (f16 d times the integer sub-scale).
//
// Byte identity with ggml depends on doing the same float32 operations in
// the same order: a*b*c is (a*b)*c, integers convert to float where C's
// usual conversions put them, divisions stay divisions.
#include <cmath>
#include <cstring>

#include "quant/quantize_impl.h"

namespace peftcpp {
namespace quant {

namespace {

constexpr int QK_K = 256;
constexpr float GROUP_MAX_EPS = 1e-15f;

inline int imax(int a, int b) { return a > b ? a : b; }
inline int imin(int a, int b) { return a < b ? a : b; }

// Round half to even in float32: adding 1.5*2^23 leaves the rounded integer
// in the low mantissa bits (valid for |f| <= 2^22 - 1).
inline int nearest_int(float f) {
  const float v = f + 12582912.f;
  int32_t i;
  std::memcpy(&i, &v, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// The value of largest magnitude, with its sign, in *max; false (and L
// zeroed) when the group is all but zero, which the symmetric fits skip.
bool signed_absmax(int n, const float* x, int8_t* L, float* max) {
  float amax = 0;
  *max = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      *max = x[i];
    }
  }
  if (amax < GROUP_MAX_EPS) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return false;
  }
  return true;
}

// Symmetric fit of n values to integers in [-nmax, nmax-1] (stored + nmax in
// L): start from the scale that maps the largest-magnitude value to -nmax,
// then try 18 nearby scales, keeping the one that maximises sumlx^2/suml2
// with weights x^2 (rmse_type 1, the only mode the ref quantizers use).
// Returns the least-squares scale.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
  float max;
  if (!signed_absmax(n, x, L, &max)) return 0.f;
  float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * static_cast<float>(l);
    suml2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * static_cast<float>(l);
      suml2 += w * static_cast<float>(l) * static_cast<float>(l);
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = static_cast<int8_t>(l + nmax);
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Symmetric fit for Q3_K (integers in [-nmax, nmax-1], stored + nmax): the
// initial rounding, then up to 5 sweeps of single-element changes that
// raise sumlx^2/suml2 (weights x^2). Returns sumlx/suml2 (0 if suml2 == 0).
float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
  float max;
  if (!signed_absmax(n, x, L, &max)) return 0.f;
  const float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * static_cast<float>(l);
    suml2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      const float li = static_cast<float>(L[i]);
      float slx = sumlx - w * x[i] * li;
      if (slx > 0) {
        float sl2 = suml2 - w * li * li;
        int new_l = nearest_int(x[i] * sl2 / slx);
        new_l = imax(-nmax, imin(nmax - 1, new_l));
        if (new_l != L[i]) {
          const float nl = static_cast<float>(new_l);
          slx += w * x[i] * nl;
          sl2 += w * nl * nl;
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<int8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Asymmetric weighted fit x ~ scale*l - the_min with l in [0, nmax]: start
// from the min/max grid, then try nstep+1 grid widths, solving the 2x2
// weighted least-squares problem for (scale, min) at each (min clamped to
// <= 0) and keeping the lowest weighted error (|err| if use_mad, else
// err^2). Returns the scale; *the_min receives -min (>= 0).
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = static_cast<float>(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(imax(0, imin(nmax, l)));
    float diff = scale * static_cast<float>(L[i]) + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      const float fl = static_cast<float>(l);
      sum_l += w * fl;
      sum_l2 += w * fl * fl;
      sum_xl += w * fl * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * static_cast<float>(Laux[i]) + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// Two 2-bit fields per byte group: element j+l+32*s of each 128 goes to bits
// 2s..2s+1 of qs[j/4 + l] (shared by Q2_K and Q3_K).
inline void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < QK_K; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

// The 6-bit (scale, min) pairs of Q4_K/Q5_K: see scale_min_k4 in dequant.cpp.
inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Q4_K and Q5_K differ only in nmax, the solver's search grid and packing.
// Fills scales[12], d and dmin at y, and L[256] with values in [0, nmax].
void fit_k4_superblock(const float* x, uint8_t* y, uint8_t* L, int nmax, float rmin, int nstep) {
  float mins[QK_K / 32], scales[QK_K / 32], weights[32];
  uint8_t Laux[32];
  float max_scale = 0, max_min = 0;  // mins are deducted: scales are >= 0
  for (int j = 0; j < QK_K / 32; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
    scales[j] = make_qkx2_quants(32, nmax, xs, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t* sc = y + 4;
  for (int j = 0; j < QK_K / 32; ++j) {
    // ggml stores nearest_int() into uint8_t before clamping to 63.
    uint8_t ls = static_cast<uint8_t>(nearest_int(inv_scale * scales[j]));
    uint8_t lm = static_cast<uint8_t>(nearest_int(inv_min * mins[j]));
    ls = ls < 63 ? ls : 63;
    lm = lm < 63 ? lm : 63;
    if (j < 4) {
      sc[j] = ls;
      sc[j + 4] = lm;
    } else {
      sc[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      sc[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      sc[j] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  store_f16(y, max_scale / 63.f);
  store_f16(y + 2, max_min / 63.f);
  const float d_all = load_f16(y), dmin_all = load_f16(y + 2);
  for (int j = 0; j < QK_K / 32; ++j) {
    uint8_t s, m;
    get_scale_min_k4(j, sc, &s, &m);
    const float d = d_all * static_cast<float>(s);
    if (d == 0.0f) continue;  // keep the solver's L
    const float dm = dmin_all * static_cast<float>(m);
    for (int ii = 0; ii < 32; ++ii) {
      const int l = nearest_int((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = static_cast<uint8_t>(imax(0, imin(nmax, l)));
    }
  }
}

}  // namespace

// Q2_K (84 bytes): scales[16] (4-bit scale | 4-bit min << 4), qs[64], d, dmin.
void quantize_row_q2_k(const float* x, uint8_t* y, int64_t k) {
  uint8_t L[QK_K], Laux[16];
  float weights[16], mins[QK_K / 16], scales[QK_K / 16];
  const float q4scale = 15.f;
  for (int64_t b = 0; b < k / QK_K; ++b, x += QK_K, y += 84) {
    uint8_t* sc = y;
    uint8_t* qs = y + 16;
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
      const float iscale = q4scale / max_scale;
      for (int j = 0; j < QK_K / 16; ++j) sc[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
      store_f16(y + 80, max_scale / q4scale);
    } else {
      for (int j = 0; j < QK_K / 16; ++j) sc[j] = 0;
      store_f16(y + 80, 0.f);
    }
    if (max_min > 0) {
      const float iscale = q4scale / max_min;
      for (int j = 0; j < QK_K / 16; ++j) sc[j] |= static_cast<uint8_t>(nearest_int(iscale * mins[j]) << 4);
      store_f16(y + 82, max_min / q4scale);
    } else {
      store_f16(y + 82, 0.f);
    }
    const float d_all = load_f16(y + 80), dmin_all = load_f16(y + 82);
    for (int j = 0; j < QK_K / 16; ++j) {
      const float d = d_all * static_cast<float>(sc[j] & 0xF);
      if (d == 0.0f) continue;
      const float dm = dmin_all * static_cast<float>(sc[j] >> 4);
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int((x[16 * j + ii] + dm) / d);
        L[16 * j + ii] = static_cast<uint8_t>(imax(0, imin(3, l)));
      }
    }
    pack_2bit(L, qs);
  }
}

// Q3_K (110 bytes): hmask[32], qs[64], scales[12] (16 6-bit signed scales),
// d. Each element is l + 4 in [0, 7]: low two bits in qs, bit 2 in hmask.
void quantize_row_q3_k(const float* x, uint8_t* y, int64_t k) {
  int8_t L[QK_K];
  float scales[QK_K / 16];
  for (int64_t b = 0; b < k / QK_K; ++b, x += QK_K, y += 110) {
    uint8_t* hmask = y;
    uint8_t* qs = y + 32;
    uint8_t* sc = y + 96;
    float max_scale = 0, amax = 0;
    for (int j = 0; j < QK_K / 16; ++j) {
      scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
      const float a = std::fabs(scales[j]);
      if (a > amax) {
        amax = a;
        max_scale = scales[j];
      }
    }
    std::memset(sc, 0, 12);
    if (max_scale != 0.0f) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < QK_K / 16; ++j) {
        // ggml keeps nearest_int() in an int8_t before clamping.
        int l = static_cast<int8_t>(nearest_int(iscale * scales[j]));
        l = imax(-32, imin(31, l)) + 32;
        if (j < 8)
          sc[j] = static_cast<uint8_t>(l & 0xF);
        else
          sc[j - 8] |= static_cast<uint8_t>((l & 0xF) << 4);
        l >>= 4;
        sc[j % 4 + 8] |= static_cast<uint8_t>(l << (2 * (j / 4)));
      }
      store_f16(y + 108, 1 / iscale);
    } else {
      store_f16(y + 108, 0.f);
    }
    const float d_all = load_f16(y + 108);
    for (int j = 0; j < QK_K / 16; ++j) {
      int s = j < 8 ? (sc[j] & 0xF) : (sc[j - 8] >> 4);
      s = (s | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
      const float d = d_all * static_cast<float>(s);
      if (d == 0.0f) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int(x[16 * j + ii] / d);
        L[16 * j + ii] = static_cast<int8_t>(imax(-4, imin(3, l)) + 4);
      }
    }
    // Bit 2 of element e goes to bit e/32 of hmask[e%32].
    std::memset(hmask, 0, QK_K / 8);
    uint8_t Lu[QK_K];
    for (int e = 0; e < QK_K; ++e) {
      int v = L[e];
      if (v > 3) {
        hmask[e % 32] |= static_cast<uint8_t>(1u << (e / 32));
        v -= 4;
      }
      Lu[e] = static_cast<uint8_t>(v);
    }
    pack_2bit(Lu, qs);
  }
}

// Q4_K (144 bytes): d, dmin, scales[12], qs[128] (element 64c+l in the low
// nibble of qs[32c+l], 64c+32+l in its high nibble).
void quantize_row_q4_k(const float* x, uint8_t* y, int64_t k) {
  uint8_t L[QK_K];
  for (int64_t b = 0; b < k / QK_K; ++b, x += QK_K, y += 144) {
    fit_k4_superblock(x, y, L, 15, -1.f, 20);
    uint8_t* q = y + 16;
    for (int j = 0; j < QK_K; j += 64, q += 32)
      for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
  }
}

// Q5_K (176 bytes): as Q4_K plus qh[32]; bit 4 of element 64c+l is bit 2c of
// qh[l], of element 64c+32+l bit 2c+1.
void quantize_row_q5_k(const float* x, uint8_t* y, int64_t k) {
  uint8_t L[QK_K];
  for (int64_t b = 0; b < k / QK_K; ++b, x += QK_K, y += 176) {
    fit_k4_superblock(x, y, L, 31, -0.5f, 15);
    uint8_t* qh = y + 16;
    uint8_t* ql = y + 48;
    std::memset(qh, 0, QK_K / 8);
    uint8_t m1 = 1, m2 = 2;
    for (int c = 0; c < QK_K; c += 64, ql += 32, m1 <<= 2, m2 <<= 2) {
      for (int j = 0; j < 32; ++j) {
        int l1 = L[c + j], l2 = L[c + j + 32];
        if (l1 > 15) {
          l1 -= 16;
          qh[j] |= m1;
        }
        if (l2 > 15) {
          l2 -= 16;
          qh[j] |= m2;
        }
        ql[j] = static_cast<uint8_t>(l1 | (l2 << 4));
      }
    }
  }
}

// Q6_K (210 bytes): ql[128], qh[64], int8 scales[16], d. Elements are
// l + 32 in [0, 63]; per 128: low nibbles of e and e+64 share ql, the high
// two bits of e, e+32, e+64, e+96 share qh.
void quantize_row_q6_k(const float* x, uint8_t* y, int64_t k) {
  int8_t L[QK_K];
  float scales[QK_K / 16];
  for (int64_t b = 0; b < k / QK_K; ++b, x += QK_K, y += 210) {
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < QK_K / 16; ++ib) {
      const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
      scales[ib] = scale;
      const float a = std::fabs(scale);
      if (a > max_abs_scale) {
        max_abs_scale = a;
        max_scale = scale;
      }
    }
    if (max_abs_scale < GROUP_MAX_EPS) {  // an all-zero block
      std::memset(y, 0, 210);
      store_f16(y + 208, 0.f);
      continue;
    }
    int8_t* sc = reinterpret_cast<int8_t*>(y + 192);
    const float iscale = -128.f / max_scale;
    store_f16(y + 208, 1 / iscale);
    for (int ib = 0; ib < QK_K / 16; ++ib) sc[ib] = static_cast<int8_t>(imin(127, nearest_int(iscale * scales[ib])));
    const float d_all = load_f16(y + 208);
    for (int j = 0; j < QK_K / 16; ++j) {
      const float d = d_all * static_cast<float>(sc[j]);
      if (d == 0.0f) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int(x[16 * j + ii] / d);
        L[16 * j + ii] = static_cast<int8_t>(imax(-32, imin(31, l)) + 32);
      }
    }
    uint8_t* ql = y;
    uint8_t* qh = y + 128;
    for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        const int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
        const int q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
        ql[l] = static_cast<uint8_t>(q1 | (q3 << 4));
        ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
        qh[l] = static_cast<uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                     ((L[j + l + 96] >> 4) << 6));
      }
    }
  }
}

}  // namespace quant
}  // namespace peftcpp

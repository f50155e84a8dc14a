// The 32-element block formats Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, quantized as
// ggml's quantize_row_*_ref (layouts in dequant.cpp). The float32 scale d
// gives id = 1/d *before* d is rounded to f16; quants are truncating casts
// of x*id plus an offset (roundf for Q8_0). Element l < 16 goes to the low
// nibble of qs[l], element l + 16 to its high nibble; the fifth bit of
// element e is bit e of the little-endian u32 qh.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/quantize_impl.h"

namespace peftcpp {
namespace quant {

namespace {

constexpr int QK = 32;

// C's (int8_t)(float) / (uint8_t)(float) as compiled on x86-64: truncate to
// int32, keep the low byte.
inline int trunc_i8(float v) { return static_cast<int8_t>(static_cast<int32_t>(v)); }
inline unsigned trunc_u8(float v) { return static_cast<uint8_t>(static_cast<int32_t>(v)); }

// The signed value of largest magnitude (the first one on ties).
inline float signed_absmax(const float* x) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < QK; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

inline void min_max(const float* x, float* mn, float* mx) {
  float lo = 3.402823466e+38f, hi = -3.402823466e+38f;
  for (int j = 0; j < QK; ++j) {
    if (x[j] < lo) lo = x[j];
    if (x[j] > hi) hi = x[j];
  }
  *mn = lo;
  *mx = hi;
}

}  // namespace

void quantize_row_q4_0(const float* x, uint8_t* y, int64_t k) {
  for (int64_t b = 0; b < k / QK; ++b, x += QK, y += 18) {
    const float d = signed_absmax(x) / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(y, d);
    for (int j = 0; j < QK / 2; ++j) {
      const int q0 = std::min(15, trunc_i8(x[j] * id + 8.5f));
      const int q1 = std::min(15, trunc_i8(x[j + QK / 2] * id + 8.5f));
      y[2 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void quantize_row_q4_1(const float* x, uint8_t* y, int64_t k) {
  for (int64_t b = 0; b < k / QK; ++b, x += QK, y += 20) {
    float mn, mx;
    min_max(x, &mn, &mx);
    const float d = (mx - mn) / 15;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(y, d);
    store_f16(y + 2, mn);
    for (int j = 0; j < QK / 2; ++j) {
      const int q0 = std::min(15, trunc_i8((x[j] - mn) * id + 0.5f));
      const int q1 = std::min(15, trunc_i8((x[j + QK / 2] - mn) * id + 0.5f));
      y[4 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void quantize_row_q5_0(const float* x, uint8_t* y, int64_t k) {
  for (int64_t b = 0; b < k / QK; ++b, x += QK, y += 22) {
    const float d = signed_absmax(x) / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(y, d);
    uint32_t qh = 0;
    for (int j = 0; j < QK / 2; ++j) {
      const unsigned q0 = static_cast<uint8_t>(std::min(31, trunc_i8(x[j] * id + 16.5f)));
      const unsigned q1 = static_cast<uint8_t>(std::min(31, trunc_i8(x[j + QK / 2] * id + 16.5f)));
      y[6 + j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= ((q0 & 0x10u) >> 4) << j;
      qh |= ((q1 & 0x10u) >> 4) << (j + QK / 2);
    }
    std::memcpy(y + 2, &qh, 4);
  }
}

void quantize_row_q5_1(const float* x, uint8_t* y, int64_t k) {
  for (int64_t b = 0; b < k / QK; ++b, x += QK, y += 24) {
    float mn, mx;
    min_max(x, &mn, &mx);
    const float d = (mx - mn) / 31;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(y, d);
    store_f16(y + 2, mn);
    uint32_t qh = 0;
    for (int j = 0; j < QK / 2; ++j) {
      const unsigned q0 = trunc_u8((x[j] - mn) * id + 0.5f);
      const unsigned q1 = trunc_u8((x[j + QK / 2] - mn) * id + 0.5f);
      y[8 + j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= ((q0 & 0x10u) >> 4) << j;
      qh |= ((q1 & 0x10u) >> 4) << (j + QK / 2);
    }
    std::memcpy(y + 4, &qh, 4);
  }
}

void quantize_row_q8_0(const float* x, uint8_t* y, int64_t k) {
  for (int64_t b = 0; b < k / QK; ++b, x += QK, y += 34) {
    float amax = 0.0f;
    for (int j = 0; j < QK; ++j) {
      const float a = std::fabs(x[j]);
      amax = amax > a ? amax : a;  // ggml's MAX (NaN propagates)
    }
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(y, d);
    for (int j = 0; j < QK; ++j) y[2 + j] = static_cast<uint8_t>(trunc_i8(std::round(x[j] * id)));
  }
}

}  // namespace quant
}  // namespace peftcpp

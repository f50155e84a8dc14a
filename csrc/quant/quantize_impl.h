// Internal to csrc/quant: the per-type row quantizers that the ggml type
// table (quant/ggml_types.cpp) points to, and the scalar primitives they share.
// Every function here must reproduce ggml's float32 arithmetic step by step
// (these files are compiled with -ffp-contract=off).
#pragma once
#include <cstdint>
#include <cstring>

#include "core/dtype.h"

namespace peftcpp {
namespace quant {

// f32 -> f16 as ggml_compute_fp32_to_fp16: round to nearest even through a
// scaled float addition, overflow to inf, any NaN -> sign | 0x7E00.
inline uint16_t fp32_to_fp16(float f) {
  auto bits = [](float v) { uint32_t u; std::memcpy(&u, &v, 4); return u; };
  auto from_bits = [](uint32_t u) { float v; std::memcpy(&v, &u, 4); return v; };
  const float scale_to_inf = 0x1.0p+112f;
  const float scale_to_zero = 0x1.0p-110f;
  float base = (__builtin_fabsf(f) * scale_to_inf) * scale_to_zero;
  const uint32_t w = bits(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = from_bits((bias >> 1) + 0x07800000u) + base;
  const uint32_t b = bits(base);
  const uint32_t nonsign = ((b >> 13) & 0x00007C00u) + (b & 0x00000FFFu);
  return static_cast<uint16_t>((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

// f16 -> f32 is exact; any correct conversion matches ggml's.
inline float fp16_to_fp32(uint16_t h) { return half_to_float(h); }

inline void store_f16(uint8_t* p, float f) {
  const uint16_t h = fp32_to_fp16(f);
  std::memcpy(p, &h, 2);
}
inline float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_fp32(h);
}

// Row quantizers: k floats (a multiple of the block size) -> k/block blocks.
void quantize_row_f32(const float* x, uint8_t* y, int64_t k);
void quantize_row_f16(const float* x, uint8_t* y, int64_t k);
void quantize_row_bf16(const float* x, uint8_t* y, int64_t k);
void quantize_row_q4_0(const float* x, uint8_t* y, int64_t k);
void quantize_row_q4_1(const float* x, uint8_t* y, int64_t k);
void quantize_row_q5_0(const float* x, uint8_t* y, int64_t k);
void quantize_row_q5_1(const float* x, uint8_t* y, int64_t k);
void quantize_row_q8_0(const float* x, uint8_t* y, int64_t k);
void quantize_row_q2_k(const float* x, uint8_t* y, int64_t k);
void quantize_row_q3_k(const float* x, uint8_t* y, int64_t k);
void quantize_row_q4_k(const float* x, uint8_t* y, int64_t k);
void quantize_row_q5_k(const float* x, uint8_t* y, int64_t k);
void quantize_row_q6_k(const float* x, uint8_t* y, int64_t k);

}  // namespace quant
}  // namespace peftcpp

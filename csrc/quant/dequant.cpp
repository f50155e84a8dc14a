// Block decoders for ggml's quantized types. Layouts (bytes in file order):
//   Q4_0  (32, 18):  f16 d | u8 qs[16]                 x = d * (nib - 8)
//   Q4_1  (32, 20):  f16 d, m | u8 qs[16]              x = d * nib + m
//   Q5_0  (32, 22):  f16 d | u32 qh | u8 qs[16]        x = d * ((nib | hbit<<4) - 16)
//   Q5_1  (32, 24):  f16 d, m | u32 qh | u8 qs[16]     x = d * (nib | hbit<<4) + m
//   Q8_0  (32, 34):  f16 d | i8 qs[32]                 x = q * d
//   Q2_K  (256, 84): u8 scales[16] | u8 qs[64] | f16 d, dmin
//   Q3_K  (256,110): u8 hmask[32] | u8 qs[64] | u8 scales[12] | f16 d
//   Q4_K  (256,144): f16 d, dmin | u8 scales[12] | u8 qs[128]
//   Q5_K  (256,176): f16 d, dmin | u8 scales[12] | u8 qh[32] | u8 qs[128]
//   Q6_K  (256,210): u8 ql[128] | u8 qh[64] | i8 scales[16] | f16 d
//   IQ4_NL, IQ4_XS: see their decoders.
// In the 32-element types, element l < 16 is the low nibble of qs[l] and
// element l + 16 its high nibble; bit e of qh is the fifth bit of element e.
// The K types are described at each decoder.
#include "quant/dequant.h"

#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "quant/dequant_impl.h"
#include "quant/ggml_types.h"

// Products and sums are rounded separately, as in the references (ggml is
// built without FMA contraction; numpy never contracts): bit-exact results.
#if defined(__clang__)
#pragma clang fp contract(off)
#else
#pragma GCC optimize("fp-contract=off")
#endif

namespace peftcpp {

namespace quant {

namespace {

inline float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return half_to_float(h);
}

// Eight 6-bit (scale, min) pairs of Q4_K/Q5_K in 12 bytes: for j < 4 the low
// 6 bits of bytes j (scale) and j+4 (min); for j >= 4 the nibbles of byte
// j+4 (scale low, min high) with the top two bits taken from bits 6-7 of
// bytes j-4 (scale) and j (min).
inline void scale_min_k4(const uint8_t* s, int j, int* sc, int* mn) {
  if (j < 4) {
    *sc = s[j] & 63;
    *mn = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
    *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// IQ4_NL/IQ4_XS values of the 16 nibbles.
constexpr int8_t kIQ4NL[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

}  // namespace

void dequantize_block_q4_0(const uint8_t* b, float* y) {
  const float d = f16_at(b);
  const uint8_t* qs = b + 2;
  for (int l = 0; l < 16; ++l) {
    y[l] = d * static_cast<float>(static_cast<int>(qs[l] & 0x0F) - 8);
    y[l + 16] = d * static_cast<float>(static_cast<int>(qs[l] >> 4) - 8);
  }
}

void dequantize_block_q4_1(const uint8_t* b, float* y) {
  const float d = f16_at(b), m = f16_at(b + 2);
  const uint8_t* qs = b + 4;
  for (int l = 0; l < 16; ++l) {
    y[l] = d * static_cast<float>(qs[l] & 0x0F) + m;
    y[l + 16] = d * static_cast<float>(qs[l] >> 4) + m;
  }
}

void dequantize_block_q5_0(const uint8_t* b, float* y) {
  const float d = f16_at(b);
  uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  const uint8_t* qs = b + 6;
  for (int l = 0; l < 16; ++l) {
    const int lo = (qs[l] & 0x0F) | (((qh >> l) & 1u) << 4);
    const int hi = (qs[l] >> 4) | (((qh >> (l + 16)) & 1u) << 4);
    y[l] = d * static_cast<float>(lo - 16);
    y[l + 16] = d * static_cast<float>(hi - 16);
  }
}

void dequantize_block_q5_1(const uint8_t* b, float* y) {
  const float d = f16_at(b), m = f16_at(b + 2);
  uint32_t qh;
  std::memcpy(&qh, b + 4, 4);
  const uint8_t* qs = b + 8;
  for (int l = 0; l < 16; ++l) {
    const int lo = (qs[l] & 0x0F) | (((qh >> l) & 1u) << 4);
    const int hi = (qs[l] >> 4) | (((qh >> (l + 16)) & 1u) << 4);
    y[l] = d * static_cast<float>(lo) + m;
    y[l + 16] = d * static_cast<float>(hi) + m;
  }
}

void dequantize_block_q8_0(const uint8_t* b, float* y) {
  const float d = f16_at(b);
  const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
  for (int l = 0; l < 32; ++l) y[l] = static_cast<float>(qs[l]) * d;
}

// Q2_K: element e = 128*h + 32*s + l (h < 2, s < 4, l < 32) is bits 2s..2s+1
// of qs[32*h + l]; sub-block e/16 has scale (low nibble) and min (high
// nibble) in scales[e/16]: x = (d*sc)*q - dmin*mn.
void dequantize_block_q2_k(const uint8_t* b, float* y) {
  const uint8_t* scales = b;
  const uint8_t* qs = b + 16;
  const float d = f16_at(b + 80), dmin = f16_at(b + 82);
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 4; ++s)
      for (int half = 0; half < 2; ++half) {
        const int e0 = 128 * h + 32 * s + 16 * half;
        const uint8_t sc = scales[e0 / 16];
        const float dl = d * static_cast<float>(sc & 0x0F);
        const float ml = dmin * static_cast<float>(sc >> 4);
        for (int l = 16 * half; l < 16 * half + 16; ++l) {
          const int q = (qs[32 * h + l] >> (2 * s)) & 3;
          y[128 * h + 32 * s + l] = dl * static_cast<float>(q) - ml;
        }
      }
}

// Q3_K: low two bits as in Q2_K; bit e/32 of hmask[e%32] is the third bit,
// *set* meaning no offset: q = low - (hbit ? 0 : 4). Sixteen 6-bit scales:
// low 4 bits in nibble j/8 of scales[j%8], high 2 bits at bit 2*(j/4) of
// scales[8 + j%4]; x = (d*(sc-32))*q.
void dequantize_block_q3_k(const uint8_t* b, float* y) {
  const uint8_t* hmask = b;
  const uint8_t* qs = b + 32;
  const uint8_t* sc = b + 96;
  const float d = f16_at(b + 108);
  float dl[16];
  for (int j = 0; j < 16; ++j) {
    const int lo = (sc[j % 8] >> (4 * (j / 8))) & 0x0F;
    const int hi = (sc[8 + j % 4] >> (2 * (j / 4))) & 0x03;
    dl[j] = d * static_cast<float>((lo | (hi << 4)) - 32);
  }
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 4; ++s)
      for (int l = 0; l < 32; ++l) {
        const int e = 128 * h + 32 * s + l;
        const int low = (qs[32 * h + l] >> (2 * s)) & 3;
        const int hb = (hmask[l] >> (e / 32)) & 1;
        y[e] = dl[e / 16] * static_cast<float>(low - (hb ? 0 : 4));
      }
}

// Q4_K: element e = 64*c + 32*s + l is nibble s of qs[32*c + l]; sub-block
// j = e/32: x = (d*sc_j)*q - dmin*mn_j.
void dequantize_block_q4_k(const uint8_t* b, float* y) {
  const float d = f16_at(b), dmin = f16_at(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qs = b + 16;
  for (int j = 0; j < 8; ++j) {
    int sc, mn;
    scale_min_k4(scales, j, &sc, &mn);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(mn);
    const int c = j / 2, s = j % 2;
    for (int l = 0; l < 32; ++l) {
      const int q = (qs[32 * c + l] >> (4 * s)) & 0x0F;
      y[32 * j + l] = d1 * static_cast<float>(q) - m1;
    }
  }
}

// Q5_K: Q4_K plus a fifth bit: bit e/32 of qh[e%32].
void dequantize_block_q5_k(const uint8_t* b, float* y) {
  const float d = f16_at(b), dmin = f16_at(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + 48;
  for (int j = 0; j < 8; ++j) {
    int sc, mn;
    scale_min_k4(scales, j, &sc, &mn);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(mn);
    const int c = j / 2, s = j % 2;
    for (int l = 0; l < 32; ++l) {
      const int q = ((qs[32 * c + l] >> (4 * s)) & 0x0F) | (((qh[l] >> j) & 1) << 4);
      y[32 * j + l] = d1 * static_cast<float>(q) - m1;
    }
  }
}

// Q6_K: element e = 128*h + 64*s + m (m < 64) has low nibble s of
// ql[64*h + m]; with e = 128*h + 32*t + l (l < 32) its high two bits are
// bits 2t..2t+1 of qh[32*h + l]. x = (d*scales[e/16])*(q - 32).
void dequantize_block_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* scales = reinterpret_cast<const int8_t*>(b + 192);
  const float d = f16_at(b + 208);
  float dl[16];
  for (int j = 0; j < 16; ++j) dl[j] = d * static_cast<float>(scales[j]);
  for (int h = 0; h < 2; ++h)
    for (int t = 0; t < 4; ++t)
      for (int l = 0; l < 32; ++l) {
        const int e = 128 * h + 32 * t + l;
        const int m = e % 64, s = (e % 128) / 64;
        const int lo = (ql[64 * h + m] >> (4 * s)) & 0x0F;
        const int hi = (qh[32 * h + l] >> (2 * t)) & 0x03;
        y[e] = dl[e / 16] * static_cast<float>((lo | (hi << 4)) - 32);
      }
}

// IQ4_NL (32, 18): f16 d | u8 qs[16], nibbles as in Q4_0, each an index
// into a fixed non-linear table: x = d * kIQ4NL[nib].
void dequantize_block_iq4_nl(const uint8_t* b, float* y) {
  const float d = f16_at(b);
  const uint8_t* qs = b + 2;
  for (int l = 0; l < 16; ++l) {
    y[l] = d * static_cast<float>(kIQ4NL[qs[l] & 0x0F]);
    y[l + 16] = d * static_cast<float>(kIQ4NL[qs[l] >> 4]);
  }
}

// IQ4_XS (256, 136): f16 d | u16 scales_h | u8 scales_l[4] | u8 qs[128].
// Sub-block j (32 elements) has the 6-bit scale nibble j%2 of scales_l[j/2]
// | bits 2j..2j+1 of scales_h << 4, minus 32; element 32j + 16s + l is
// nibble s of qs[16j + l]: x = (d*ls) * kIQ4NL[nib].
void dequantize_block_iq4_xs(const uint8_t* b, float* y) {
  const float d = f16_at(b);
  uint16_t sh;
  std::memcpy(&sh, b + 2, 2);
  const uint8_t* sl = b + 4;
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 8; ++j) {
    const int ls = (((sl[j / 2] >> (4 * (j % 2))) & 0x0F) | (((sh >> (2 * j)) & 3) << 4)) - 32;
    const float dl = d * static_cast<float>(ls);
    for (int l = 0; l < 16; ++l) {
      y[32 * j + l] = dl * static_cast<float>(kIQ4NL[qs[16 * j + l] & 0x0F]);
      y[32 * j + 16 + l] = dl * static_cast<float>(kIQ4NL[qs[16 * j + l] >> 4]);
    }
  }
}

void dequantize_block_f32(const uint8_t* b, float* y) { std::memcpy(y, b, 4); }
void dequantize_block_f16(const uint8_t* b, float* y) { *y = f16_at(b); }
void dequantize_block_bf16(const uint8_t* b, float* y) {
  uint16_t h;
  std::memcpy(&h, b, 2);
  *y = bf16_to_float(h);
}

}  // namespace quant

void dequantize_blocks(int type_id, const void* src, float* dst, int64_t n_blocks) {
  const GGMLTypeTraits& t = ggml_type_traits(type_id);
  PC_CHECK_TYPE(t.dequantizable(), "[dequantize] ggml type ", t.known() ? t.name : "id " + std::to_string(type_id),
                " cannot be dequantized (supported: ", ggml_type_names(&GGMLTypeTraits::dequantizable), ")");
  const ToFloatFn fn = t.to_float;
  const uint8_t* s = static_cast<const uint8_t*>(src);
  const int64_t bs = t.block_size, ts = t.type_size;
  // Worth a parallel region only past ~64K elements.
  const bool par = n_blocks * bs > 65536;
#pragma omp parallel for if (par) schedule(static)
  for (int64_t i = 0; i < n_blocks; ++i) fn(s + i * ts, dst + i * bs);
}

}  // namespace peftcpp

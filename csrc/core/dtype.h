// Element types. Compute is float32; f16/bf16 hold frozen weights at half the
// memory and are widened on use; i32/i64 hold token ids and indices; bool
// (one byte, 0 or 1) holds masks and comparison results.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace peftcpp {

enum class DType : uint8_t { F32, F16, BF16, I32, I64, BOOL };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::BOOL: return 1;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::F16: return "float16";
    case DType::BF16: return "bfloat16";
    case DType::I32: return "int32";
    case DType::I64: return "int64";
    case DType::BOOL: return "bool";
  }
  return "?";
}

inline bool is_floating(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// Scalar conversions (round-to-nearest-even, as torch does).
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
inline float bf16_to_float(uint16_t b) {
  union { uint32_t u; float f; } v;
  v.u = uint32_t(b) << 16;
  return v.f;
}
inline uint16_t float_to_bf16(float f) {
  union { uint32_t u; float f; } v;
  v.f = f;
  if ((v.u & 0x7f800000u) == 0x7f800000u && (v.u & 0x007fffffu))  // NaN stays NaN
    return uint16_t((v.u >> 16) | 0x40);
  uint32_t rounding = 0x7fffu + ((v.u >> 16) & 1u);
  return uint16_t((v.u + rounding) >> 16);
}

// Bulk widen/narrow used when frozen weights are converted into scratch.
void convert_to_f32(const void* src, DType src_type, float* dst, size_t n);
void convert_from_f32(const float* src, void* dst, DType dst_type, size_t n);

}  // namespace peftcpp

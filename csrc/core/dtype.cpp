#include "core/dtype.h"

#include <Eigen/Core>
#include <cstring>

#include "core/error.h"

namespace peftcpp {

float half_to_float(uint16_t h) {
  return static_cast<float>(Eigen::numext::bit_cast<Eigen::half>(h));
}
uint16_t float_to_half(float f) {
  return Eigen::numext::bit_cast<uint16_t>(Eigen::half(f));
}

void convert_to_f32(const void* src, DType t, float* dst, size_t n) {
  const int64_t N = static_cast<int64_t>(n);
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::F16: {
      auto s = static_cast<const uint16_t*>(src);
#pragma omp parallel for if (N > 65536) schedule(static)
      for (int64_t i = 0; i < N; ++i) dst[i] = half_to_float(s[i]);
      return;
    }
    case DType::BF16: {
      auto s = static_cast<const uint16_t*>(src);
#pragma omp parallel for if (N > 65536) schedule(static)
      for (int64_t i = 0; i < N; ++i) dst[i] = bf16_to_float(s[i]);
      return;
    }
    case DType::I32: {
      auto s = static_cast<const int32_t*>(src);
      for (int64_t i = 0; i < N; ++i) dst[i] = static_cast<float>(s[i]);
      return;
    }
    case DType::I64: {
      auto s = static_cast<const int64_t*>(src);
      for (int64_t i = 0; i < N; ++i) dst[i] = static_cast<float>(s[i]);
      return;
    }
    case DType::BOOL: {
      auto s = static_cast<const uint8_t*>(src);
      for (int64_t i = 0; i < N; ++i) dst[i] = s[i] ? 1.f : 0.f;
      return;
    }
  }
}

void convert_from_f32(const float* src, void* dst, DType t, size_t n) {
  const int64_t N = static_cast<int64_t>(n);
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::F16: {
      auto d = static_cast<uint16_t*>(dst);
#pragma omp parallel for if (N > 65536) schedule(static)
      for (int64_t i = 0; i < N; ++i) d[i] = float_to_half(src[i]);
      return;
    }
    case DType::BF16: {
      auto d = static_cast<uint16_t*>(dst);
#pragma omp parallel for if (N > 65536) schedule(static)
      for (int64_t i = 0; i < N; ++i) d[i] = float_to_bf16(src[i]);
      return;
    }
    case DType::I32: {
      auto d = static_cast<int32_t*>(dst);
      for (int64_t i = 0; i < N; ++i) d[i] = static_cast<int32_t>(src[i]);
      return;
    }
    case DType::I64: {
      auto d = static_cast<int64_t*>(dst);
      for (int64_t i = 0; i < N; ++i) d[i] = static_cast<int64_t>(src[i]);
      return;
    }
    case DType::BOOL: {  // as torch: any nonzero (NaN included) is true
      auto d = static_cast<uint8_t*>(dst);
      for (int64_t i = 0; i < N; ++i) d[i] = src[i] != 0.f;
      return;
    }
  }
}

}  // namespace peftcpp

// Vectorizable float math shared by the kernels.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>

namespace peftcpp {

// exp(x) in float, branch-free so that row loops vectorize (std::exp stays a
// scalar call without -ffast-math, and the softmax passes are exp-bound when
// the hidden size is small). exp = 2^n·e^r with |r| <= ln2/2 and Cephes'
// expf polynomial: within 1e-7 relative for x <= 88 (callers pass x <= 0).
// Below -87.3 (incl. -inf) gives 0, NaN stays NaN. n is rounded with the
// 1.5·2^23 trick, since GCC does not vectorize floorf in a map loop.
inline float exp_approx(float x) {
  const float xc = std::min(std::max(x, -87.33654f), 88.0f);
  const float n = (xc * 1.44269504088896341f + 12582912.f) - 12582912.f;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  const float y = x < -87.33654f ? 0.f : x > 88.7f ? std::numeric_limits<float>::infinity() : p * scale;
  return x != x ? x : y;
}

// 1 / (1 + e^-x), vectorizable; exact limits at ±inf.
inline float sigmoid_approx(float x) { return 1.f / (1.f + exp_approx(-x)); }

}  // namespace peftcpp

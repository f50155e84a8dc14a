// Overflow-checked size arithmetic for every size that comes from a file or
// from a caller's shape (element counts, byte sizes, offsets). Results must
// fit in int64: element counts, shapes and file offsets are int64_t in
// peftcpp (and off_t in the OS), so a larger value is corrupt or hostile.
//
// On overflow each helper throws std::invalid_argument (Python ValueError)
// whose message starts with the caller's description, e.g.
//   checked_mul(numel, 4, where, ": tensor 'w' (F32) byte size")
//   -> "<where>: tensor 'w' (F32) byte size is too large: 4611686018427387904 x 4 exceeds 2^63-1"
// The description is built only when the check fails.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"

namespace peftcpp {

constexpr uint64_t kMaxSize = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

// a * b.
template <class... What>
uint64_t checked_mul(uint64_t a, uint64_t b, const What&... what) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r) || r > kMaxSize)
    throw std::invalid_argument(detail::cat(what..., " is too large: ", a, " x ", b, " exceeds 2^63-1"));
  return r;
}

// a + b.
template <class... What>
uint64_t checked_add(uint64_t a, uint64_t b, const What&... what) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r) || r > kMaxSize)
    throw std::invalid_argument(detail::cat(what..., " is too large: ", a, " + ", b, " exceeds 2^63-1"));
  return r;
}

// x rounded up to a multiple of align (> 0).
template <class... What>
uint64_t checked_pad(uint64_t x, uint64_t align, const What&... what) {
  return checked_add(x, align - 1, what...) / align * align;
}

// Element count of a shape. Every dimension must be >= 0, and the product of
// the non-zero dimensions must fit too: a [0, 2^40, 2^40] tensor holds no
// element, but its strides would still overflow.
template <class... What>
int64_t checked_numel(const std::vector<int64_t>& dims, const What&... what) {
  uint64_t n = 1;
  bool zero = false;
  for (int64_t d : dims) {
    if (d < 0) throw std::invalid_argument(detail::cat(what..., " has a negative dimension ", d));
    if (d == 0) {
      zero = true;
      continue;
    }
    uint64_t r;
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &r) || r > kMaxSize) {
      std::string shape;
      for (int64_t e : dims) shape += (shape.empty() ? "" : ", ") + std::to_string(e);
      throw std::invalid_argument(detail::cat(what..., " has too many elements: [", shape, "] exceeds 2^63-1"));
    }
    n = r;
  }
  return zero ? 0 : static_cast<int64_t>(n);
}

}  // namespace peftcpp

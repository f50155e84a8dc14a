// Token embedding lookup.
#pragma once
#include "core/tensor.h"

namespace peftcpp {

// ids: int32/int64 of any shape; weight: [V, C] in f32, or frozen f16/bf16.
// Returns float32 [..., C]. An id outside [0, V) throws std::out_of_range.
// The backward scatter-adds into a dense dW [V, C], built only when weight
// requires grad.
Tensor embedding(const Tensor& ids, const Tensor& weight);

}  // namespace peftcpp

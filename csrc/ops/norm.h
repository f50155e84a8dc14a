// Normalisation over the last dimension, float32 compute.
#pragma once
#include "core/tensor.h"

namespace peftcpp {

// y = (x - mean) / sqrt(var + eps) * weight + bias, statistics over the last
// dim. x: [..., C]; weight, bias: [C] or undefined. Biased variance, as torch.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps = 1e-5f);

// y = x / sqrt(mean(x²) + eps) * (offset + weight). offset 0 is llama's
// RMSNorm, 1 is Gemma's (1 + w). weight: [C] in f32, or frozen f16/bf16, or
// undefined (then y is the normalised x and offset is unused).
Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps = 1e-6f, float offset = 0.f);

}  // namespace peftcpp

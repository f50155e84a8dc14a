// Activations and the fused gated units of transformer MLPs, float32 compute.
#pragma once
#include <string>

#include "core/tensor.h"

namespace peftcpp {

// approximate: "none" (exact, erf) or "tanh", as torch.nn.functional.gelu.
Tensor gelu(const Tensor& x, const std::string& approximate = "none");
Tensor silu(const Tensor& x);

// Gated units as one op (no silu(gate) intermediate kept for backward):
// swiglu = silu(gate) * up (llama), gelu_mul = gelu(gate) * up (Gemma's
// GeGLU). gate and up must have the same shape.
Tensor swiglu(const Tensor& gate, const Tensor& up);
Tensor gelu_mul(const Tensor& gate, const Tensor& up, const std::string& approximate = "tanh");

}  // namespace peftcpp

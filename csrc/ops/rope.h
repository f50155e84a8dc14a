// Rotary position embedding (RoPE) applied to queries or keys.
#pragma once
#include "core/tensor.h"

namespace peftcpp {

// x: [B, H, T, D]; cos, sin: [T, R/2] or [B, T, R/2] (B may be 1), where
// R = 2·cos.shape[-1] <= D is the number of rotated dims. Only x[..., :R]
// rotates (partial rotary); the rest passes through unchanged.
//   interleaved = false: pairs (i, i + R/2), HF/NeoX rotate_half layout.
//   interleaved = true:  pairs (2i, 2i + 1), GPT-J / original llama layout.
// Pair i of position t turns by the angle whose cos/sin are cos[t, i], sin[t, i].
// Gradient flows to x only (cos/sin are treated as constants).
Tensor rope(const Tensor& x, const Tensor& cos, const Tensor& sin, bool interleaved = false);

}  // namespace peftcpp

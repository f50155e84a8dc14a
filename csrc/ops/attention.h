// Fused scaled-dot-product attention (forward and backward on OpenBLAS).
#pragma once
#include "core/tensor.h"

namespace peftcpp {

// q: [B, Hq, T, D], k: [B, Hkv, S, D], v: [B, Hkv, S, Dv] -> [B, Hq, T, Dv].
// Grouped-query attention: Hq must be a multiple of Hkv; query head h reads
// kv head h / (Hq / Hkv).
//   mask:           additive float mask broadcastable to [B, Hq, T, S], or undefined.
//   is_causal:      query i sees key j iff j <= i + (S - T) (bottom-right
//                   aligned, so a KV cache with S > T works).
//   scale:          <= 0 means 1/sqrt(D).
//   sliding_window: > 0 also requires (i + S - T) - j < sliding_window.
//   softcap:        > 0 turns scaled scores z into softcap·tanh(z/softcap)
//                   before the mask and softmax (Gemma 2).
// Rows that see no key produce zeros (and zero gradients), never NaN.
// Backward saves q, k, v and the per-row logsumexp [B, Hq, T] and recomputes
// the probabilities, so no [T, S] matrix per head is kept alive. The mask gets
// a gradient only when it requires one.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask = Tensor(),
                                    bool is_causal = true, float scale = 0.f, int64_t sliding_window = 0,
                                    float softcap = 0.f);

}  // namespace peftcpp

// Cross-entropy losses: the plain one over given logits, and the fused
// output-projection + cross-entropy that never materialises [N, V] logits
// (the LM head of a 150k-vocabulary model would otherwise dominate memory).
#pragma once
#include <string>

#include "core/tensor.h"

namespace peftcpp {

// torch.nn.functional.cross_entropy for class-index targets.
// logits: [N, V] float32; targets: [N] int32/int64. Rows whose target is
// ignore_index contribute nothing; "mean" divides by the number of the other
// rows (nan when there are none, as torch). reduction: "mean" | "sum" |
// "none" ([N], 0 at ignored rows). Targets outside [0, V) throw
// std::out_of_range. Gradient flows to logits.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100,
                     const std::string& reduction = "mean", float label_smoothing = 0.f);

// cross_entropy(cap(hidden·Wᵀ), targets) without the full logits, where
// cap(z) = softcap·tanh(z/softcap) when softcap > 0 (Gemma) and z otherwise.
// hidden: [..., C] float32; weight: [V, C] float32, or frozen float16/bfloat16
// (widened chunk by chunk); targets: hidden's leading shape, int32/int64.
// The vocabulary is walked in chunks of chunk_size columns and the rows in
// blocks of at most 1024 with an online logsumexp, so the extra memory is
// O(min(N,1024)·chunk + chunk·C), independent of V. Only hidden, weight,
// targets and the per-row logsumexp [N] are saved; backward recomputes each
// logits chunk. reduction: "mean" | "sum" | "none".
Tensor linear_cross_entropy(const Tensor& hidden, const Tensor& weight, const Tensor& targets,
                            int64_t ignore_index = -100, const std::string& reduction = "mean",
                            int64_t chunk_size = 4096, float softcap = 0.f);

}  // namespace peftcpp

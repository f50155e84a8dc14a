// Matrix products on OpenBLAS: batched matmul, linear, and the fused LoRA
// linear that training spends most of its time in.
#pragma once
#include "core/tensor.h"

namespace peftcpp {

// a: [..., M, K], b: [..., K, N] (batch dims broadcast). Transposed views are
// passed to sgemm as such, without copies.
Tensor matmul(const Tensor& a, const Tensor& b);

// y = x·Wᵀ + b.  x: [..., K]; W: [N, K] in f32, f16 or bf16 (half-precision
// weights are widened on use into scratch and must be frozen); b: [N] or
// undefined. dW and db are computed only when they require grad.
Tensor linear(const Tensor& x, const Tensor& W, const Tensor& b = Tensor());

// y = x·Wᵀ + b + scale·(dropout(x)·Aᵀ)·Bᵀ as one op.
// x: [..., K], W: [N, K], b: [N] or undefined, A: [r, K], B: [N, r].
// Saves x, W, the rank-r intermediate H = dropout(x)·Aᵀ ([M, r]) and the
// dropout mask's seed (the mask is regenerated, never stored).
// Backward gives dx, dA, dB; dW and db only when W, b require grad.
Tensor lora_linear(const Tensor& x, const Tensor& W, const Tensor& b, const Tensor& A, const Tensor& B,
                   float scale, float dropout_p, bool training);

// Row-major sgemm on raw pointers (C = alpha·op(A)·op(B) + beta·C), the one
// place every GEMM goes through.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace peftcpp

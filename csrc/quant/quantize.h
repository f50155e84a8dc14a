// Float32 -> ggml block formats, byte-identical to ggml's reference
// quantizers (quantize_row_*_ref in ggml-quants.c, which is what
// llama-quantize runs when no importance matrix is given).
//
// Identity needs the same float32 arithmetic in the same order: no FMA
// contraction in these files, nearest_int() as ggml's magic-number
// round-half-even, roundf where ggml uses it, round-to-nearest-even f16.
#pragma once
#include <cstddef>
#include <cstdint>

namespace peftcpp {

// Whether quantize_rows can produce the type (its ggml type table row has a
// from_float_ref): Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K,
// Q6_K, and the plain conversions F32, F16, BF16.
bool can_quantize(int type_id);

// Bytes of one row of n_per_row elements of this type. Throws ValueError
// naming the type when n_per_row is not a multiple of its block size.
size_t quantized_row_bytes(int type_id, int64_t n_per_row);

// Quantizes nrows contiguous rows of n_per_row floats from src into dst
// (nrows * quantized_row_bytes(type_id, n_per_row) bytes). Rows are split
// over nthreads threads (<= 0: the engine's thread count); blocks are
// independent, so the bytes never depend on the thread count. Throws
// ValueError for a type can_quantize() rejects, a bad row length or a
// negative nrows. Verified byte-identical to ggml_quantize_chunk(...,
// imatrix=NULL) of llama.cpp (tests/test_gguf_quants.py).
void quantize_rows(int type_id, const float* src, void* dst, int64_t nrows, int64_t n_per_row, int nthreads = 0);

}  // namespace peftcpp

// Dequantization of ggml's block formats (llama.cpp's GGUF tensor types) to
// float32; the block geometry of each type is in quant/ggml_types.h.
//
// Each format stores a row as independent blocks of block_size elements in
// type_size bytes (little-endian, f16 scales). The decoders reproduce the
// reference arithmetic exactly (same operation order, no FMA contraction),
// so results are bit-identical to ggml's dequantize_row_* and to the
// numpy reference in the PyPI gguf package (gguf.quants.dequantize).
#pragma once
#include <cstdint>

#include "quant/ggml_types.h"

namespace peftcpp {

// Decodes n_blocks consecutive blocks of a dequantizable type (also F32, F16,
// BF16) from src into n_blocks * block_size floats at dst. Parallel over
// blocks with OpenMP for large inputs. Throws TypeError for other types.
void dequantize_blocks(int type_id, const void* src, float* dst, int64_t n_blocks);

}  // namespace peftcpp

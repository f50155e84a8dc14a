// ggml block-quantized formats (llama.cpp's GGUF tensor types): their block
// geometry and dequantization to float32.
//
// Each format stores a row as independent blocks of block_size elements in
// type_size bytes (little-endian, f16 scales). The decoders reproduce the
// reference arithmetic exactly (same operation order, no FMA contraction),
// so results are bit-identical to ggml's dequantize_row_* and to the
// numpy reference in the PyPI gguf package (gguf.quants.dequantize).
#pragma once
#include <cstddef>
#include <cstdint>

namespace peftcpp {

// Geometry of one ggml type id. known=false for ids no ggml release defines.
struct GGMLTypeTraits {
  const char* name = nullptr;  // "Q4_K", "F32", ...
  int64_t block_size = 0;      // elements per block
  int64_t type_size = 0;       // bytes per block
  bool known = false;
  bool dequantizable = false;  // dequantize_blocks() supports it
};

// Traits of a ggml type id (any int; unknown ids give known=false).
GGMLTypeTraits ggml_type_traits(int64_t type_id);

// Type id of a name ("Q4_K"), or -1 if no known type has that name.
int ggml_type_from_name(const char* name);

// Decodes n_blocks consecutive blocks of a dequantizable type (also F32, F16,
// BF16) from src into n_blocks * block_size floats at dst. Parallel over
// blocks with OpenMP for large inputs. Throws TypeError for other types.
void dequantize_blocks(int type_id, const void* src, float* dst, int64_t n_blocks);

}  // namespace peftcpp

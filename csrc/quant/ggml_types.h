// ggml's tensor types (ggml.h enum ggml_type), one traits row per type: the
// single table that GGUF reading and writing, dequantization, quantization
// and the llama-quantize type rules look types up in (and that Python reads
// through peftcpp._core.ggml_types()).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace peftcpp {

// ggml type ids as ggml.h numbers them; ids ggml has removed (4, 5, 31-33,
// 36-38) are absent and unknown.
enum GGMLType : int {
  GGML_TYPE_F32 = 0, GGML_TYPE_F16 = 1, GGML_TYPE_Q4_0 = 2, GGML_TYPE_Q4_1 = 3, GGML_TYPE_Q5_0 = 6,
  GGML_TYPE_Q5_1 = 7, GGML_TYPE_Q8_0 = 8, GGML_TYPE_Q8_1 = 9, GGML_TYPE_Q2_K = 10, GGML_TYPE_Q3_K = 11,
  GGML_TYPE_Q4_K = 12, GGML_TYPE_Q5_K = 13, GGML_TYPE_Q6_K = 14, GGML_TYPE_Q8_K = 15, GGML_TYPE_IQ2_XXS = 16,
  GGML_TYPE_IQ2_XS = 17, GGML_TYPE_IQ3_XXS = 18, GGML_TYPE_IQ1_S = 19, GGML_TYPE_IQ4_NL = 20, GGML_TYPE_IQ3_S = 21,
  GGML_TYPE_IQ2_S = 22, GGML_TYPE_IQ4_XS = 23, GGML_TYPE_I8 = 24, GGML_TYPE_I16 = 25, GGML_TYPE_I32 = 26,
  GGML_TYPE_I64 = 27, GGML_TYPE_F64 = 28, GGML_TYPE_IQ1_M = 29, GGML_TYPE_BF16 = 30, GGML_TYPE_TQ1_0 = 34,
  GGML_TYPE_TQ2_0 = 35, GGML_TYPE_MXFP4 = 39, GGML_TYPE_NVFP4 = 40, GGML_TYPE_Q1_0 = 41,
};

// Decodes one block (type_size bytes) into block_size floats.
using ToFloatFn = void (*)(const uint8_t* block, float* y);
// Encodes k floats (a multiple of block_size) into k / block_size blocks,
// exactly as ggml's quantize_row_*_ref (the float types: exact conversions).
using FromFloatFn = void (*)(const float* x, uint8_t* y, int64_t k);

struct GGMLTypeTraits {
  int id = -1;
  const char* name = nullptr;  // "Q4_K", "F32", ...; nullptr for an unknown id
  int64_t block_size = 0;      // elements per block (1 for the plain types)
  int64_t type_size = 0;       // bytes per block
  ToFloatFn to_float = nullptr;           // nullptr: peftcpp cannot decode it
  FromFloatFn from_float_ref = nullptr;   // nullptr: peftcpp cannot produce it

  bool known() const { return name != nullptr; }
  bool dequantizable() const { return to_float != nullptr; }
  bool quantizable() const { return from_float_ref != nullptr; }
};

// The row of a type id; any int is accepted (unknown ids give known() false).
const GGMLTypeTraits& ggml_type_traits(int64_t type_id);

// Type id of a name ("Q4_K", exact case), or -1 if no known type has it.
int ggml_type_from_name(const char* name);

// Every known type, listed as users read them: the unblocked types (F32, F16,
// ..., BF16) first, then the block types, each group by id.
const std::vector<const GGMLTypeTraits*>& ggml_types();

// "F32, F16, BF16, Q4_0, ..." of the listed types that keep() accepts, e.g.
// ggml_type_names(&GGMLTypeTraits::quantizable), for error messages.
std::string ggml_type_names(const std::function<bool(const GGMLTypeTraits&)>& keep);

}  // namespace peftcpp

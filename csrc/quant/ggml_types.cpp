// The ggml type table: geometry as in gguf's GGML_QUANT_SIZES (ggml.c's
// type_traits), and peftcpp's decoder and reference quantizer where it has
// them. csrc/tests/test_ggml_types.cpp checks every row against its codecs.
#include "quant/ggml_types.h"

#include <algorithm>
#include <cstring>

#include "quant/dequant_impl.h"
#include "quant/quantize_impl.h"

namespace peftcpp {

namespace {

using namespace quant;

const GGMLTypeTraits kTypes[] = {
    // id                  name       block bytes  to_float                 from_float_ref
    {GGML_TYPE_F32,      "F32",      1,   4,   dequantize_block_f32,    quantize_row_f32},
    {GGML_TYPE_F16,      "F16",      1,   2,   dequantize_block_f16,    quantize_row_f16},
    {GGML_TYPE_Q4_0,     "Q4_0",     32,  18,  dequantize_block_q4_0,   quantize_row_q4_0},
    {GGML_TYPE_Q4_1,     "Q4_1",     32,  20,  dequantize_block_q4_1,   quantize_row_q4_1},
    {GGML_TYPE_Q5_0,     "Q5_0",     32,  22,  dequantize_block_q5_0,   quantize_row_q5_0},
    {GGML_TYPE_Q5_1,     "Q5_1",     32,  24,  dequantize_block_q5_1,   quantize_row_q5_1},
    {GGML_TYPE_Q8_0,     "Q8_0",     32,  34,  dequantize_block_q8_0,   quantize_row_q8_0},
    {GGML_TYPE_Q8_1,     "Q8_1",     32,  40,  nullptr,                 nullptr},
    {GGML_TYPE_Q2_K,     "Q2_K",     256, 84,  dequantize_block_q2_k,   quantize_row_q2_k},
    {GGML_TYPE_Q3_K,     "Q3_K",     256, 110, dequantize_block_q3_k,   quantize_row_q3_k},
    {GGML_TYPE_Q4_K,     "Q4_K",     256, 144, dequantize_block_q4_k,   quantize_row_q4_k},
    {GGML_TYPE_Q5_K,     "Q5_K",     256, 176, dequantize_block_q5_k,   quantize_row_q5_k},
    {GGML_TYPE_Q6_K,     "Q6_K",     256, 210, dequantize_block_q6_k,   quantize_row_q6_k},
    {GGML_TYPE_Q8_K,     "Q8_K",     256, 292, nullptr,                 nullptr},
    {GGML_TYPE_IQ2_XXS,  "IQ2_XXS",  256, 66,  nullptr,                 nullptr},
    {GGML_TYPE_IQ2_XS,   "IQ2_XS",   256, 74,  nullptr,                 nullptr},
    {GGML_TYPE_IQ3_XXS,  "IQ3_XXS",  256, 98,  nullptr,                 nullptr},
    {GGML_TYPE_IQ1_S,    "IQ1_S",    256, 50,  nullptr,                 nullptr},
    {GGML_TYPE_IQ4_NL,   "IQ4_NL",   32,  18,  dequantize_block_iq4_nl, nullptr},
    {GGML_TYPE_IQ3_S,    "IQ3_S",    256, 110, nullptr,                 nullptr},
    {GGML_TYPE_IQ2_S,    "IQ2_S",    256, 82,  nullptr,                 nullptr},
    {GGML_TYPE_IQ4_XS,   "IQ4_XS",   256, 136, dequantize_block_iq4_xs, nullptr},
    {GGML_TYPE_I8,       "I8",       1,   1,   nullptr,                 nullptr},
    {GGML_TYPE_I16,      "I16",      1,   2,   nullptr,                 nullptr},
    {GGML_TYPE_I32,      "I32",      1,   4,   nullptr,                 nullptr},
    {GGML_TYPE_I64,      "I64",      1,   8,   nullptr,                 nullptr},
    {GGML_TYPE_F64,      "F64",      1,   8,   nullptr,                 nullptr},
    {GGML_TYPE_IQ1_M,    "IQ1_M",    256, 56,  nullptr,                 nullptr},
    {GGML_TYPE_BF16,     "BF16",     1,   2,   dequantize_block_bf16,   quantize_row_bf16},
    {GGML_TYPE_TQ1_0,    "TQ1_0",    256, 54,  nullptr,                 nullptr},
    {GGML_TYPE_TQ2_0,    "TQ2_0",    256, 66,  nullptr,                 nullptr},
    {GGML_TYPE_MXFP4,    "MXFP4",    32,  17,  nullptr,                 nullptr},
    {GGML_TYPE_NVFP4,    "NVFP4",    64,  36,  nullptr,                 nullptr},
    {GGML_TYPE_Q1_0,     "Q1_0",     128, 18,  nullptr,                 nullptr},
};

const GGMLTypeTraits kUnknown{};

}  // namespace

const GGMLTypeTraits& ggml_type_traits(int64_t type_id) {
  for (const GGMLTypeTraits& t : kTypes)
    if (t.id == type_id) return t;
  return kUnknown;
}

int ggml_type_from_name(const char* name) {
  for (const GGMLTypeTraits& t : kTypes)
    if (std::strcmp(t.name, name) == 0) return t.id;
  return -1;
}

const std::vector<const GGMLTypeTraits*>& ggml_types() {
  static const std::vector<const GGMLTypeTraits*> listed = [] {
    std::vector<const GGMLTypeTraits*> v;
    for (const GGMLTypeTraits& t : kTypes) v.push_back(&t);
    std::stable_partition(v.begin(), v.end(), [](const GGMLTypeTraits* t) { return t->block_size == 1; });
    return v;
  }();
  return listed;
}

std::string ggml_type_names(const std::function<bool(const GGMLTypeTraits&)>& keep) {
  std::string out;
  for (const GGMLTypeTraits* t : ggml_types())
    if (keep(*t)) out += (out.empty() ? "" : ", ") + std::string(t->name);
  return out;
}

}  // namespace peftcpp

// Internal to csrc/quant: the per-type block decoders that the ggml type
// table (quant/ggml_types.cpp) points to. Each decodes one block into
// block_size floats with ggml's reference arithmetic (no FMA contraction).
#pragma once
#include <cstdint>

namespace peftcpp {
namespace quant {

void dequantize_block_f32(const uint8_t* b, float* y);
void dequantize_block_f16(const uint8_t* b, float* y);
void dequantize_block_bf16(const uint8_t* b, float* y);
void dequantize_block_q4_0(const uint8_t* b, float* y);
void dequantize_block_q4_1(const uint8_t* b, float* y);
void dequantize_block_q5_0(const uint8_t* b, float* y);
void dequantize_block_q5_1(const uint8_t* b, float* y);
void dequantize_block_q8_0(const uint8_t* b, float* y);
void dequantize_block_q2_k(const uint8_t* b, float* y);
void dequantize_block_q3_k(const uint8_t* b, float* y);
void dequantize_block_q4_k(const uint8_t* b, float* y);
void dequantize_block_q5_k(const uint8_t* b, float* y);
void dequantize_block_q6_k(const uint8_t* b, float* y);
void dequantize_block_iq4_nl(const uint8_t* b, float* y);
void dequantize_block_iq4_xs(const uint8_t* b, float* y);

}  // namespace quant
}  // namespace peftcpp

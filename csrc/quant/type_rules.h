// llama.cpp's whole-file quantization plan (src/llama-quant.cpp, no
// importance matrix, no overrides): which tensors are quantized, to which
// ggml type each one goes for a given file type (llama_ftype), and the order
// tensors are written in. The order matters: the attn_v / ffn_down rules use
// running counters over that order, so a different order gives a different
// (and not llama.cpp-identical) file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace peftcpp {

// llama_ftype ids of the supported file types.
enum LlamaFtype : int {
  FTYPE_F32 = 0, FTYPE_F16 = 1, FTYPE_Q4_0 = 2, FTYPE_Q4_1 = 3, FTYPE_Q8_0 = 7, FTYPE_Q5_0 = 8,
  FTYPE_Q5_1 = 9, FTYPE_Q2_K = 10, FTYPE_Q3_K_S = 11, FTYPE_Q3_K_M = 12, FTYPE_Q3_K_L = 13,
  FTYPE_Q4_K_S = 14, FTYPE_Q4_K_M = 15, FTYPE_Q5_K_S = 16, FTYPE_Q5_K_M = 17, FTYPE_Q6_K = 18,
  FTYPE_BF16 = 32,
};

// "Q4_K_M" -> 15 (case-insensitive). Throws ValueError listing the valid names.
int ftype_from_name(const std::string& name);
// 15 -> "Q4_K_M". Throws ValueError for an unsupported id.
const char* ftype_name(int ftype);
// One supported file type: its name, llama_ftype id and the ggml type most
// tensors get (llama_ftype_get_default_type).
struct LlamaFileType {
  const char* name;
  int id;
  int default_type;
};
// Every supported file type, in id order.
const std::vector<LlamaFileType>& llama_file_types();
// The ggml type most tensors get (llama_ftype_get_default_type).
int ftype_default_type(int ftype);

// Model facts the rules look at (from the GGUF metadata).
struct QuantModelInfo {
  std::string arch;      // general.architecture
  int n_layer = 0;       // {arch}.block_count: n for the ffn_down rule
  int n_head = 0;        // {arch}.attention.head_count
  int n_head_kv = 0;     // {arch}.attention.head_count_kv (n_head when absent)
  int n_expert = 0;      // {arch}.expert_count
  // llama.cpp's LLM_TYPE_70B (80-layer llama with GQA, qwen2/deci/olmo with
  // 80 layers): attn_v Q3_K/Q4_K are bumped to Q5_K.
  bool is_70b() const;
  int n_gqa() const { return n_head_kv > 0 ? n_head / n_head_kv : 0; }
};

struct QuantTensorDesc {
  std::string name;
  int type = 0;                 // current ggml type
  std::vector<int64_t> ne;      // ggml order
};

// ggml_n_dims: dims up to the last one that is not 1 (at least 1).
int tensor_n_dims(const std::vector<int64_t>& ne);

// tensor_allows_quantization: 2-D/3-D tensors named "*weight" except norms,
// MoE routers, positional embeddings and a few small special tensors.
bool tensor_allows_quantization(const std::string& name, const std::vector<int64_t>& ne);

// llama_model_loader's weights_map order: tensors outside "blk.N." first,
// then by block number, each group sorted by name (byte-wise).
bool llama_tensor_name_less(const std::string& a, const std::string& b);
std::vector<size_t> llama_tensor_order(const std::vector<std::string>& names);

// Running state of one planning pass (quantize_state_impl's counters).
struct QuantPlanState {
  int n_attention_wv = 0;   // attn_v / attn_qkv / attn_kv_b tensors in the file
  int i_attention_wv = 0;
  int n_ffn_down = 0;       // = n_layer
  int i_ffn_down = 0;
  int n_fallback = 0;       // tensors whose row length forced another type
  bool has_tied_embeddings = true;  // until an output.weight is seen
};

// Prepares the counters for these tensor names (already in file order).
QuantPlanState init_plan_state(const QuantModelInfo& model, const std::vector<std::string>& names);

// Type for one tensor, updating the counters; tensors must be visited in file
// order. Tensors that are not quantized keep their type.
int choose_tensor_type(QuantPlanState& st, const QuantModelInfo& model, int ftype, const QuantTensorDesc& t);

// The block-size fallback alone (tensor_type_fallback): Q4_K->Q5_0,
// Q5_K->Q5_1, Q6_K->Q8_0, Q2_K/Q3_K->Q4_0, then F16 when ne0 % 32 != 0.
int fallback_type(int type, int64_t ne0);

// Types for tensors already in file order.
std::vector<int> plan_tensor_types(const QuantModelInfo& model, int ftype, const std::vector<QuantTensorDesc>& ordered);

}  // namespace peftcpp

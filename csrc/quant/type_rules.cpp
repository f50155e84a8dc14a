#include "quant/type_rules.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <numeric>

#include "core/error.h"
#include "quant/ggml_types.h"

namespace peftcpp {

namespace {

// llama_ftype_get_default_type for the supported file types, in id order.
const std::vector<LlamaFileType> kFtypes = {
    {"F32", FTYPE_F32, GGML_TYPE_F32},       {"F16", FTYPE_F16, GGML_TYPE_F16},
    {"Q4_0", FTYPE_Q4_0, GGML_TYPE_Q4_0},    {"Q4_1", FTYPE_Q4_1, GGML_TYPE_Q4_1},
    {"Q8_0", FTYPE_Q8_0, GGML_TYPE_Q8_0},    {"Q5_0", FTYPE_Q5_0, GGML_TYPE_Q5_0},
    {"Q5_1", FTYPE_Q5_1, GGML_TYPE_Q5_1},    {"Q2_K", FTYPE_Q2_K, GGML_TYPE_Q2_K},
    {"Q3_K_S", FTYPE_Q3_K_S, GGML_TYPE_Q3_K}, {"Q3_K_M", FTYPE_Q3_K_M, GGML_TYPE_Q3_K},
    {"Q3_K_L", FTYPE_Q3_K_L, GGML_TYPE_Q3_K}, {"Q4_K_S", FTYPE_Q4_K_S, GGML_TYPE_Q4_K},
    {"Q4_K_M", FTYPE_Q4_K_M, GGML_TYPE_Q4_K}, {"Q5_K_S", FTYPE_Q5_K_S, GGML_TYPE_Q5_K},
    {"Q5_K_M", FTYPE_Q5_K_M, GGML_TYPE_Q5_K}, {"Q6_K", FTYPE_Q6_K, GGML_TYPE_Q6_K},
    {"BF16", FTYPE_BF16, GGML_TYPE_BF16},
};

const LlamaFileType& ftype_entry(int ftype) {
  for (const auto& e : kFtypes)
    if (e.id == ftype) return e;
  std::string valid;
  for (const auto& e : kFtypes) valid += std::string(valid.empty() ? "" : ", ") + e.name + "=" + std::to_string(e.id);
  PC_CHECK(false, "[quantize] unsupported file type id ", ftype, "; valid: ", valid);
  return kFtypes[0];
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

bool is_quantized(int type) { return type != GGML_TYPE_F32 && type != GGML_TYPE_F16 && type != GGML_TYPE_BF16; }

int64_t block_size(int type) {
  const GGMLTypeTraits& tr = ggml_type_traits(type);
  return tr.known() ? tr.block_size : 1;
}

enum class Cat { OUTPUT, TOKEN_EMBD, ATTN_QKV, ATTN_KV_B, ATTN_V, ATTN_K, ATTN_Q, ATTN_OUTPUT, FFN_UP, FFN_GATE, FFN_DOWN, OTHER };

// Same precedence as llama.cpp's tensor_get_category (substring tests in order).
Cat category(const std::string& n) {
  if (n == "output.weight") return Cat::OUTPUT;
  if (n == "token_embd.weight" || n == "per_layer_token_embd.weight") return Cat::TOKEN_EMBD;
  if (contains(n, "attn_qkv.weight")) return Cat::ATTN_QKV;
  if (contains(n, "attn_kv_b.weight")) return Cat::ATTN_KV_B;
  if (contains(n, "attn_v.weight")) return Cat::ATTN_V;
  if (contains(n, "attn_k.weight")) return Cat::ATTN_K;
  if (contains(n, "attn_q.weight")) return Cat::ATTN_Q;
  if (contains(n, "attn_output.weight")) return Cat::ATTN_OUTPUT;
  if (contains(n, "ffn_up")) return Cat::FFN_UP;
  if (contains(n, "ffn_gate")) return Cat::FFN_GATE;
  if (contains(n, "ffn_down")) return Cat::FFN_DOWN;
  return Cat::OTHER;
}

bool is_attn_v_like(Cat c) { return c == Cat::ATTN_V || c == Cat::ATTN_QKV || c == Cat::ATTN_KV_B; }

// Layers at both ends, and every third one between, are the most sensitive.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// "blk.N." -> N, else -1 (sscanf "blk.%d." semantics: sign and leading blanks accepted).
int block_index(const std::string& name) {
  if (name.compare(0, 4, "blk.") != 0) return -1;
  const char* p = name.c_str() + 4;
  char* end = nullptr;
  const long v = std::strtol(p, &end, 10);
  if (end == p) return -1;
  return static_cast<int>(v);
}

}  // namespace

int ftype_from_name(const std::string& name) {
  std::string up = name;
  for (auto& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const auto& e : kFtypes)
    if (up == e.name) return e.id;
  std::string valid;
  for (const auto& e : kFtypes) valid += std::string(valid.empty() ? "" : ", ") + e.name;
  PC_CHECK(false, "[quantize] unknown file type '", name, "'; valid: ", valid);
  return -1;
}

const char* ftype_name(int ftype) { return ftype_entry(ftype).name; }

const std::vector<LlamaFileType>& llama_file_types() { return kFtypes; }

int ftype_default_type(int ftype) { return ftype_entry(ftype).default_type; }

bool QuantModelInfo::is_70b() const {
  if (n_layer == 80 && (arch == "qwen2" || arch == "deci" || arch == "olmo")) return true;
  if (n_layer == 68 && arch == "jais2") return true;
  return arch == "llama" && n_expert != 8 && n_layer == 80 && n_head != n_head_kv;
}

int tensor_n_dims(const std::vector<int64_t>& ne) {
  int n = 1;
  for (int i = 0; i < static_cast<int>(ne.size()); ++i)
    if (ne[i] != 1) n = i + 1;
  return n;
}

bool tensor_allows_quantization(const std::string& name, const std::vector<int64_t>& ne) {
  if (tensor_n_dims(ne) < 2) return false;
  if (name.size() < 6 || name.compare(name.size() - 6, 6, "weight") != 0) return false;
  static const char* const kNever[] = {
      "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
      "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
      "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
      "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight",
      "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
      "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight",
      "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos",
      ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd"};
  for (const char* part : kNever)
    if (contains(name, part)) return false;
  // Positional embeddings and BERT token types.
  return name != "position_embd.weight" && name != "token_types.weight";
}

bool llama_tensor_name_less(const std::string& a, const std::string& b) {
  const int la = block_index(a), lb = block_index(b);
  if (la != lb) return la < lb;
  return a < b;
}

std::vector<size_t> llama_tensor_order(const std::vector<std::string>& names) {
  std::vector<size_t> idx(names.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  std::stable_sort(idx.begin(), idx.end(),
                   [&](size_t x, size_t y) { return llama_tensor_name_less(names[x], names[y]); });
  return idx;
}

QuantPlanState init_plan_state(const QuantModelInfo& model, const std::vector<std::string>& names) {
  QuantPlanState st;
  for (const auto& n : names) {
    const Cat c = category(n);
    if (is_attn_v_like(c)) ++st.n_attention_wv;
    if (c == Cat::OUTPUT) st.has_tied_embeddings = false;
  }
  st.n_ffn_down = model.n_layer;
  return st;
}

int fallback_type(int type, int64_t ne0) {
  const int64_t bs = block_size(type);
  if (ne0 % bs == 0) return type;
  int out = type;
  switch (type) {
    case GGML_TYPE_Q2_K: case GGML_TYPE_Q3_K: out = GGML_TYPE_Q4_0; break;
    case GGML_TYPE_Q4_K: out = GGML_TYPE_Q5_0; break;
    case GGML_TYPE_Q5_K: out = GGML_TYPE_Q5_1; break;
    case GGML_TYPE_Q6_K: out = GGML_TYPE_Q8_0; break;
    default:
      PC_CHECK(bs <= 32, "[quantize] no fallback type for ", ggml_type_traits(type).name, " with row length ", ne0);
  }
  if (ne0 % block_size(out) != 0) out = GGML_TYPE_F16;
  return out;
}

namespace {

// llama_tensor_get_type_impl for the supported file types.
int rule_type(QuantPlanState& st, const QuantModelInfo& m, int ftype, const QuantTensorDesc& t, Cat cat, int type) {
  const bool falcon = m.arch == "falcon";
  if (cat == Cat::OUTPUT || (st.has_tied_embeddings && cat == Cat::TOKEN_EMBD)) {
    // The output projection is the most sensitive matrix: at least Q6_K.
    if (falcon || t.ne[0] % block_size(type) != 0) return GGML_TYPE_Q8_0;
    return type != GGML_TYPE_Q8_0 ? GGML_TYPE_Q6_K : type;
  }
  if (cat == Cat::TOKEN_EMBD) return type;

  // With several experts the layer comes from the name (experts may be stored out of order).
  auto layer_of = [&](int counter) {
    if (m.n_expert <= 1) return counter;
    const int il = block_index(t.name);
    PC_CHECK(t.name.compare(0, 4, "blk.") == 0 && il >= 0 && il < m.n_layer,
             "[quantize] cannot determine the layer of tensor ", quoted_text(t.name), " (block_count ", m.n_layer,
             ")");
    return il;
  };

  if (is_attn_v_like(cat)) {
    const int i = st.i_attention_wv, n = st.n_attention_wv;
    if (ftype == FTYPE_Q2_K) type = m.n_gqa() >= 4 ? GGML_TYPE_Q4_K : GGML_TYPE_Q3_K;
    else if (ftype == FTYPE_Q3_K_M) type = i < 2 ? GGML_TYPE_Q5_K : GGML_TYPE_Q4_K;
    else if (ftype == FTYPE_Q3_K_L) type = GGML_TYPE_Q5_K;
    else if ((ftype == FTYPE_Q4_K_M || ftype == FTYPE_Q5_K_M) && use_more_bits(i, n)) type = GGML_TYPE_Q6_K;
    else if (ftype == FTYPE_Q4_K_S && i < 4) type = GGML_TYPE_Q5_K;
    if (m.is_70b() && (type == GGML_TYPE_Q3_K || type == GGML_TYPE_Q4_K)) type = GGML_TYPE_Q5_K;
    if (m.n_expert == 8) type = GGML_TYPE_Q8_0;
    ++st.i_attention_wv;
  } else if (cat == Cat::ATTN_K) {
    if (m.n_expert == 8) type = GGML_TYPE_Q8_0;
  } else if (cat == Cat::FFN_DOWN) {
    const int i = layer_of(st.i_ffn_down), n = st.n_ffn_down;
    if (ftype == FTYPE_Q2_K) type = GGML_TYPE_Q3_K;
    else if (ftype == FTYPE_Q3_K_M)
      type = i < n / 16 ? GGML_TYPE_Q5_K : (!falcon || use_more_bits(i, n)) ? GGML_TYPE_Q4_K : GGML_TYPE_Q3_K;
    else if (ftype == FTYPE_Q3_K_L) type = falcon ? GGML_TYPE_Q4_K : GGML_TYPE_Q5_K;
    else if (ftype == FTYPE_Q4_K_M) {
      if (falcon) type = i < n / 16 ? GGML_TYPE_Q6_K : use_more_bits(i, n) ? GGML_TYPE_Q5_K : GGML_TYPE_Q4_K;
      else if (use_more_bits(i, n)) type = GGML_TYPE_Q6_K;
    } else if (ftype == FTYPE_Q5_K_M && use_more_bits(i, n)) type = GGML_TYPE_Q6_K;
    else if (ftype == FTYPE_Q4_K_S && !falcon && i < n / 8) type = GGML_TYPE_Q5_K;
    ++st.i_ffn_down;
  } else if (cat == Cat::ATTN_OUTPUT) {
    if (!falcon) {
      if (m.n_expert == 8) {
        if (ftype == FTYPE_Q2_K || ftype == FTYPE_Q3_K_S || ftype == FTYPE_Q3_K_M || ftype == FTYPE_Q4_K_S ||
            ftype == FTYPE_Q4_K_M)
          type = GGML_TYPE_Q5_K;
      } else if (ftype == FTYPE_Q2_K) type = GGML_TYPE_Q3_K;
      else if (ftype == FTYPE_Q3_K_M) type = GGML_TYPE_Q4_K;
      else if (ftype == FTYPE_Q3_K_L) type = GGML_TYPE_Q5_K;
    } else if (ftype == FTYPE_Q3_K_L) {
      type = GGML_TYPE_Q4_K;
    }
  }
  // (attn_qkv is attn_v-like, so llama.cpp's separate attn_qkv branch never runs.)
  return type;
}

}  // namespace

int choose_tensor_type(QuantPlanState& st, const QuantModelInfo& model, int ftype, const QuantTensorDesc& t) {
  if (!tensor_allows_quantization(t.name, t.ne)) return t.type;
  const int def = ftype_default_type(ftype);
  if (!is_quantized(def)) return def;  // F32/F16/BF16 files: plain conversion, no rules
  int type = rule_type(st, model, ftype, t, category(t.name), def);
  const int fb = fallback_type(type, t.ne.at(0));
  if (fb != type) ++st.n_fallback;
  return fb;
}

std::vector<int> plan_tensor_types(const QuantModelInfo& model, int ftype, const std::vector<QuantTensorDesc>& ordered) {
  ftype_entry(ftype);  // validate before anything else
  std::vector<std::string> names;
  names.reserve(ordered.size());
  for (const auto& t : ordered) names.push_back(t.name);
  QuantPlanState st = init_plan_state(model, names);
  std::vector<int> out;
  out.reserve(ordered.size());
  for (const auto& t : ordered) out.push_back(choose_tensor_type(st, model, ftype, t));
  return out;
}

}  // namespace peftcpp

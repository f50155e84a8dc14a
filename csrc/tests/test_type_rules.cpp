// llama.cpp's per-tensor quantization types (quant/type_rules.h): the
// use_more_bits counters for attn_v/ffn_down, the Q4_K_S/Q3_K_M/Q2_K
// specifics, the output / tied token_embd rule, block-size fallbacks for
// hidden 576 (SmolLM2-135M) and 896 (Qwen2.5-0.5B), and the tensor order.
// Expected values are worked out by hand from llama.cpp's rules (and agree
// with tests/test_gguf_quantize.py, which compares with llama.cpp itself).
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "quant/ggml_types.h"
#include "quant/type_rules.h"

using namespace peftcpp;

namespace {

// Short names for the expectations below.
constexpr int F16 = GGML_TYPE_F16, Q4_0 = GGML_TYPE_Q4_0, Q5_0 = GGML_TYPE_Q5_0, Q5_1 = GGML_TYPE_Q5_1,
              Q8_0 = GGML_TYPE_Q8_0, Q2_K = GGML_TYPE_Q2_K, Q3_K = GGML_TYPE_Q3_K, Q4_K = GGML_TYPE_Q4_K,
              Q5_K = GGML_TYPE_Q5_K, Q6_K = GGML_TYPE_Q6_K;

// A llama-like model's tensors in llama.cpp's order.
std::vector<QuantTensorDesc> llama_tensors(int n_layer, int64_t hidden, int64_t n_ff, int64_t kv_dim, bool tied) {
  std::vector<QuantTensorDesc> t;
  if (!tied) t.push_back({"output.weight", 0, {hidden, 1000}});
  t.push_back({"output_norm.weight", 0, {hidden}});
  t.push_back({"token_embd.weight", 0, {hidden, 1000}});
  std::vector<std::string> names;
  for (int i = 0; i < n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    t.push_back({p + "attn_k.weight", 0, {hidden, kv_dim}});
    t.push_back({p + "attn_norm.weight", 0, {hidden}});
    t.push_back({p + "attn_output.weight", 0, {hidden, hidden}});
    t.push_back({p + "attn_q.weight", 0, {hidden, hidden}});
    t.push_back({p + "attn_v.weight", 0, {hidden, kv_dim}});
    t.push_back({p + "ffn_down.weight", 0, {n_ff, hidden}});
    t.push_back({p + "ffn_gate.weight", 0, {hidden, n_ff}});
    t.push_back({p + "ffn_norm.weight", 0, {hidden}});
    t.push_back({p + "ffn_up.weight", 0, {hidden, n_ff}});
  }
  return t;
}

std::map<std::string, int> plan(int ftype, int n_layer, int64_t hidden, int64_t n_ff, int64_t kv_dim, bool tied,
                                int n_head = 8, int n_head_kv = 2) {
  QuantModelInfo m;
  m.arch = "llama";
  m.n_layer = n_layer;
  m.n_head = n_head;
  m.n_head_kv = n_head_kv;
  const auto ts = llama_tensors(n_layer, hidden, n_ff, kv_dim, tied);
  const auto types = plan_tensor_types(m, ftype, ts);
  std::map<std::string, int> out;
  for (size_t i = 0; i < ts.size(); ++i) out[ts[i].name] = types[i];
  return out;
}

std::set<int> layers_with(const std::map<std::string, int>& p, const char* suffix, int type, int n_layer) {
  std::set<int> s;
  for (int i = 0; i < n_layer; ++i)
    if (p.at("blk." + std::to_string(i) + "." + suffix) == type) s.insert(i);
  return s;
}

}  // namespace

TEST(TypeRules, FileTypeNamesAndIds) {
  EXPECT_EQ(ftype_from_name("Q4_K_M"), 15);
  EXPECT_EQ(ftype_from_name("q5_k_s"), 16);
  EXPECT_EQ(ftype_from_name("BF16"), 32);
  EXPECT_STREQ(ftype_name(7), "Q8_0");
  EXPECT_EQ(ftype_default_type(FTYPE_Q4_K_M), Q4_K);
  EXPECT_EQ(ftype_default_type(FTYPE_Q3_K_L), Q3_K);
  try {
    ftype_from_name("Q4_K_X");
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("Q4_K_M"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ftype_name(4), std::invalid_argument);  // Q4_1_SOME_F16: retired in llama.cpp
}

TEST(TypeRules, Q4KMUseMoreBitsCounters) {
  // use_more_bits(i, 24): i < 3, i >= 21, or (i - 3) % 3 == 2.
  const auto p = plan(FTYPE_Q4_K_M, 24, 256, 512, 128, false);
  const std::set<int> more = {0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23};
  EXPECT_EQ(layers_with(p, "ffn_down.weight", Q6_K, 24), more);
  EXPECT_EQ(layers_with(p, "attn_v.weight", Q6_K, 24), more);
  EXPECT_EQ(layers_with(p, "attn_v.weight", Q4_K, 24).size(), 12u);
  EXPECT_EQ(p.at("output.weight"), Q6_K);
  EXPECT_EQ(p.at("token_embd.weight"), Q4_K);  // untied: default type
  EXPECT_EQ(p.at("output_norm.weight"), 0);    // 1-D stays F32
  EXPECT_EQ(p.at("blk.3.attn_q.weight"), Q4_K);
  EXPECT_EQ(p.at("blk.3.attn_output.weight"), Q4_K);
}

TEST(TypeRules, TiedEmbeddingsTakeTheOutputRule) {
  EXPECT_EQ(plan(FTYPE_Q4_K_M, 8, 256, 512, 128, true).at("token_embd.weight"), Q6_K);
  EXPECT_EQ(plan(FTYPE_Q8_0, 8, 256, 512, 128, true).at("token_embd.weight"), Q8_0);  // already >= Q6_K quality
  EXPECT_EQ(plan(FTYPE_Q4_0, 8, 256, 512, 128, true).at("token_embd.weight"), Q6_K);
}

TEST(TypeRules, Q4KSQ3KMQ2KSpecifics) {
  auto p = plan(FTYPE_Q4_K_S, 16, 256, 512, 128, false);
  EXPECT_EQ(layers_with(p, "attn_v.weight", Q5_K, 16), (std::set<int>{0, 1, 2, 3}));  // first 4
  EXPECT_EQ(layers_with(p, "ffn_down.weight", Q5_K, 16), (std::set<int>{0, 1}));      // i < n/8

  p = plan(FTYPE_Q3_K_M, 16, 256, 512, 128, false);
  EXPECT_EQ(layers_with(p, "attn_v.weight", Q5_K, 16), (std::set<int>{0, 1}));
  EXPECT_EQ(layers_with(p, "attn_v.weight", Q4_K, 16).size(), 14u);
  EXPECT_EQ(layers_with(p, "ffn_down.weight", Q5_K, 16), (std::set<int>{0}));  // i < n/16
  EXPECT_EQ(layers_with(p, "ffn_down.weight", Q4_K, 16).size(), 15u);
  EXPECT_EQ(p.at("blk.5.attn_output.weight"), Q4_K);
  EXPECT_EQ(p.at("blk.5.attn_q.weight"), Q3_K);

  p = plan(FTYPE_Q2_K, 8, 256, 512, 128, false, 8, 2);  // n_gqa 4
  EXPECT_EQ(p.at("blk.0.attn_v.weight"), Q4_K);
  EXPECT_EQ(p.at("blk.0.ffn_down.weight"), Q3_K);
  EXPECT_EQ(p.at("blk.0.attn_output.weight"), Q3_K);
  EXPECT_EQ(p.at("blk.0.ffn_up.weight"), Q2_K);
  p = plan(FTYPE_Q2_K, 8, 256, 512, 128, false, 8, 4);  // n_gqa 2
  EXPECT_EQ(p.at("blk.0.attn_v.weight"), Q3_K);
}

TEST(TypeRules, FallbacksForHidden576And896) {
  // SmolLM2-135M: hidden 576, n_ff 1536, kv 192, 30 layers, tied.
  auto p = plan(FTYPE_Q4_K_M, 30, 576, 1536, 192, true);
  EXPECT_EQ(p.at("token_embd.weight"), Q8_0);       // output rule: 576 % 256 != 0 -> Q8_0
  EXPECT_EQ(p.at("blk.0.attn_q.weight"), Q5_0);     // Q4_K -> Q5_0
  EXPECT_EQ(p.at("blk.0.attn_v.weight"), Q8_0);     // Q6_K -> Q8_0
  EXPECT_EQ(p.at("blk.4.attn_v.weight"), Q5_0);
  EXPECT_EQ(p.at("blk.0.ffn_down.weight"), Q6_K);   // ne0 = 1536 = 6 * 256 keeps the K-quant
  EXPECT_EQ(p.at("blk.4.ffn_down.weight"), Q4_K);
  p = plan(FTYPE_Q5_K_M, 30, 576, 1536, 192, true);
  EXPECT_EQ(p.at("blk.4.attn_q.weight"), Q5_1);     // Q5_K -> Q5_1
  p = plan(FTYPE_Q3_K_M, 30, 576, 1536, 192, true);
  EXPECT_EQ(p.at("blk.4.attn_q.weight"), Q4_0);     // Q3_K -> Q4_0
  // Qwen2.5-0.5B: hidden 896, n_ff 4864 (= 19 * 256).
  p = plan(FTYPE_Q4_K_M, 24, 896, 4864, 128, true);
  EXPECT_EQ(p.at("blk.1.ffn_gate.weight"), Q5_0);
  EXPECT_EQ(p.at("blk.1.ffn_down.weight"), Q6_K);
  EXPECT_EQ(p.at("blk.3.ffn_down.weight"), Q4_K);

  EXPECT_EQ(fallback_type(Q4_K, 256), Q4_K);
  EXPECT_EQ(fallback_type(Q6_K, 576), Q8_0);
  EXPECT_EQ(fallback_type(Q2_K, 576), Q4_0);
  EXPECT_EQ(fallback_type(Q4_K, 80), F16);   // not even a multiple of 32
  EXPECT_EQ(fallback_type(Q8_0, 80), F16);
  EXPECT_EQ(fallback_type(Q5_K, 96), Q5_1);

  QuantPlanState st;
  QuantModelInfo m;
  m.arch = "llama";
  m.n_layer = 1;
  st.n_ffn_down = 1;
  EXPECT_EQ(choose_tensor_type(st, m, FTYPE_Q4_K_M, {"blk.0.attn_q.weight", 0, {576, 576}}), Q5_0);
  EXPECT_EQ(choose_tensor_type(st, m, FTYPE_Q4_K_M, {"blk.0.attn_k.weight", 0, {256, 64}}), Q4_K);
  EXPECT_EQ(st.n_fallback, 1);
}

TEST(TypeRules, WhatIsQuantized) {
  EXPECT_TRUE(tensor_allows_quantization("blk.0.attn_q.weight", {256, 256}));
  EXPECT_TRUE(tensor_allows_quantization("blk.0.ffn_up_exps.weight", {256, 512, 8}));
  EXPECT_FALSE(tensor_allows_quantization("blk.0.attn_norm.weight", {256}));
  EXPECT_FALSE(tensor_allows_quantization("blk.0.attn_q.bias", {256, 2}));
  EXPECT_FALSE(tensor_allows_quantization("blk.0.attn_q.weight", {256, 1}));  // ggml_n_dims == 1
  EXPECT_FALSE(tensor_allows_quantization("blk.0.ffn_gate_inp.weight", {256, 8}));
  EXPECT_FALSE(tensor_allows_quantization("position_embd.weight", {256, 1024}));
  // F16 files: no rules, plain conversion of the quantizable tensors.
  auto p = plan(FTYPE_F16, 8, 576, 1536, 192, false);
  EXPECT_EQ(p.at("output.weight"), F16);
  EXPECT_EQ(p.at("blk.0.attn_v.weight"), F16);
  EXPECT_EQ(p.at("blk.0.attn_norm.weight"), 0);
}

TEST(TypeRules, TensorOrder) {
  const std::vector<std::string> names = {"blk.10.attn_q.weight", "token_embd.weight", "blk.2.ffn_up.weight",
                                          "blk.2.attn_k.weight",  "output.weight",     "blk.0.attn_v.weight",
                                          "output_norm.weight",   "blk.1.attn_q.weight", "rope_freqs.weight"};
  std::vector<std::string> got;
  for (size_t i : llama_tensor_order(names)) got.push_back(names[i]);
  const std::vector<std::string> want = {"output.weight",       "output_norm.weight",  "rope_freqs.weight",
                                         "token_embd.weight",   "blk.0.attn_v.weight", "blk.1.attn_q.weight",
                                         "blk.2.attn_k.weight", "blk.2.ffn_up.weight", "blk.10.attn_q.weight"};
  EXPECT_EQ(got, want);
}

TEST(TypeRules, MoeAndSeventyB) {
  QuantModelInfo m;
  m.arch = "llama";
  m.n_layer = 80;
  m.n_head = 64;
  m.n_head_kv = 8;
  EXPECT_TRUE(m.is_70b());
  QuantPlanState st;
  st.n_attention_wv = 80;
  st.n_ffn_down = 80;
  EXPECT_EQ(choose_tensor_type(st, m, FTYPE_Q3_K_M, {"blk.0.attn_v.weight", 0, {8192, 1024}}), Q5_K);
  EXPECT_EQ(choose_tensor_type(st, m, FTYPE_Q3_K_M, {"blk.1.attn_v.weight", 0, {8192, 1024}}), Q5_K);
  EXPECT_EQ(choose_tensor_type(st, m, FTYPE_Q3_K_M, {"blk.2.attn_v.weight", 0, {8192, 1024}}), Q5_K);  // Q4_K bumped
  m.n_layer = 32;
  m.n_expert = 8;
  st = QuantPlanState{};
  st.n_ffn_down = 32;
  EXPECT_EQ(choose_tensor_type(st, m, FTYPE_Q4_K_M, {"blk.3.attn_k.weight", 0, {4096, 1024}}), Q8_0);
  EXPECT_EQ(choose_tensor_type(st, m, FTYPE_Q4_K_M, {"blk.3.attn_v.weight", 0, {4096, 1024}}), Q8_0);
  EXPECT_EQ(choose_tensor_type(st, m, FTYPE_Q4_K_M, {"blk.3.attn_output.weight", 0, {4096, 4096}}), Q5_K);
  // Expert ffn_down: the layer comes from the name, not the counter.
  EXPECT_EQ(choose_tensor_type(st, m, FTYPE_Q4_K_M, {"blk.31.ffn_down_exps.weight", 0, {14336, 4096, 8}}), Q6_K);
  EXPECT_EQ(choose_tensor_type(st, m, FTYPE_Q4_K_M, {"blk.5.ffn_down_exps.weight", 0, {14336, 4096, 8}}), Q4_K);
  EXPECT_EQ(ggml_type_traits(Q5_0).block_size, 32);
}

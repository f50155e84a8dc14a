"""Gemma 3 text and GPT-2 models loaded from checkpoints that transformers
saves: same logits (≤ 1e-4 relative, f32), same greedy continuation, same
loss, batched left-padded generation, transformers' parameter names."""
import json

import numpy as np
import pytest
import torch
import transformers

import peftcpp
from peftcpp.models import AutoModelForCausalLM

from helpers import check_batched_left_padded, check_logits_loss_greedy, check_training_step_grads

V = 101


def ids(b=2, t=12, v=V, seed=0):
    return np.random.default_rng(seed).integers(3, v, size=(b, t))


def tiny_gemma3(tmp_path, **overrides):
    torch.manual_seed(0)
    kw = dict(vocab_size=V, hidden_size=48, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
              num_key_value_heads=2, head_dim=16, max_position_embeddings=256, sliding_window=5,
              layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
              query_pre_attn_scalar=24, rope_parameters={
                  "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                  "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 100000.0}})
    kw.update(overrides)
    model = transformers.Gemma3ForCausalLM(transformers.Gemma3TextConfig(**kw)).eval()
    with torch.no_grad():  # norms start at 0 ((1 + w) scaling): make them matter
        for n, p in model.named_parameters():
            if "norm" in n:
                p.normal_(0, 0.3)
    model.save_pretrained(tmp_path)
    return model


def tiny_gpt2(tmp_path, **overrides):
    torch.manual_seed(0)
    kw = dict(vocab_size=V, n_embd=48, n_layer=3, n_head=4, n_positions=128, bos_token_id=1, eos_token_id=2)
    kw.update(overrides)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**kw)).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("bias") or ".ln_" in n:
                p.normal_(0, 0.1)
    model.save_pretrained(tmp_path)
    return model


# ------------------------------------------------------------------ Gemma 3

@pytest.mark.parametrize("softcaps", [None, (30.0, 2.0)])
def test_gemma3_logits_greedy_and_loss_match_transformers(tmp_path, softcaps):
    kw = {} if softcaps is None else dict(final_logit_softcapping=softcaps[0], attn_logit_softcapping=softcaps[1])
    ref = tiny_gemma3(tmp_path, **kw)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(model).__name__ == "Gemma3ForCausalLM"
    assert [l.self_attn.sliding_window for l in model.model.layers] == [5, 0, 5, 0]
    check_logits_loss_greedy(ref, model, ids())  # 12 tokens > window of 5, then 32 more with the cache


def test_gemma3_batched_left_padded_generation_matches(tmp_path):
    ref = tiny_gemma3(tmp_path, attn_logit_softcapping=5.0)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    check_batched_left_padded(ref, model, ids(3, 8, seed=5))


def test_gemma3_state_dict_keys_untied_and_old_rope_config(tmp_path):
    ref = tiny_gemma3(tmp_path, tie_word_embeddings=False)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert list(model.state_dict()) == list(ref.state_dict())
    x = ids(1, 10, seed=3)
    # a pre-5 config.json: rope_theta / rope_local_base_freq / rope_scaling instead of rope_parameters
    cfg = json.loads((tmp_path / "config.json").read_text())
    rp = cfg.pop("rope_parameters")
    cfg.update(rope_theta=rp["full_attention"]["rope_theta"],
               rope_local_base_freq=rp["sliding_attention"]["rope_theta"],
               rope_scaling={"rope_type": "linear", "factor": 2.0})
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    old = AutoModelForCausalLM.from_pretrained(tmp_path)
    np.testing.assert_array_equal(old(x).logits.numpy(), model(x).logits.numpy())


def test_gemma3_bf16_embedding_scale_is_rounded_like_transformers(tmp_path):
    ref = tiny_gemma3(tmp_path / "f32", hidden_size=40, num_attention_heads=4, head_dim=10)  # √40 not bf16-exact
    ref.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "bf16")
    assert model.model.embed_tokens.weight.dtype == peftcpp.bfloat16
    x = ids(1, 6)
    with torch.no_grad():
        expect = ref.to(torch.bfloat16).model.embed_tokens(torch.tensor(x)).float().numpy()
    got = model.model.embed(peftcpp.tensor(x)).float().numpy()
    np.testing.assert_allclose(got, expect, rtol=1e-2, atol=0)  # bf16 result, same rounded scale
    w = ref.model.embed_tokens.weight.detach().to(torch.bfloat16).float().numpy()[x]
    np.testing.assert_allclose(got, w * float(torch.tensor(40 ** 0.5).to(torch.bfloat16)), rtol=1e-6)


def test_gemma3_training_step_gradients_match_torch(tmp_path):
    ref = tiny_gemma3(tmp_path, final_logit_softcapping=3.0)  # the soft-cap is inside the fused loss
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    check_training_step_grads(ref, model, ids(2, 10, seed=7), (
        "model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.k_norm.weight", "model.layers.1.post_feedforward_layernorm.weight",
        "model.layers.2.mlp.gate_proj.weight", "model.norm.weight"))


def test_gemma3_multimodal_checkpoint_loads_its_text_model(tmp_path):
    torch.manual_seed(0)
    text = transformers.Gemma3TextConfig(
        vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, sliding_window=4, layer_types=["sliding_attention", "full_attention"])
    vision = transformers.SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, image_size=16, patch_size=4)
    cfg = transformers.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4,
                                    image_token_index=V - 1, boi_token_index=V - 3, eoi_token_index=V - 2)
    ref = transformers.Gemma3ForConditionalGeneration(cfg).eval()
    ref.save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    x = ids(2, 9, v=V - 4)
    with torch.no_grad():
        expect = ref(input_ids=torch.tensor(x)).logits.numpy()
    got = model(x).logits.numpy()
    assert np.abs(got - expect).max() / np.abs(expect).max() <= 1e-4


# ------------------------------------------------------------------ GPT-2

@pytest.mark.parametrize("tied", [True, False])
def test_gpt2_logits_greedy_and_loss_match_transformers(tmp_path, tied):
    ref = tiny_gpt2(tmp_path, tie_word_embeddings=tied)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(model).__name__ == "GPT2LMHeadModel"
    assert tuple(model.transformer.h[0].attn.c_attn.weight.shape) == (48, 144)  # Conv1D: [in, out]
    check_logits_loss_greedy(ref, model, ids())


def test_gpt2_batched_left_padded_generation_matches(tmp_path):
    ref = tiny_gpt2(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    check_batched_left_padded(ref, model, ids(3, 8, seed=5))


def test_gpt2_state_dict_keys_and_old_attn_buffers_ignored(tmp_path):
    ref = tiny_gpt2(tmp_path, tie_word_embeddings=False, n_inner=80)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert list(model.state_dict()) == list(ref.state_dict())
    assert [n for n, _ in model.named_modules() if n.endswith(("c_attn", "c_fc", "c_proj"))] == \
        [n for n, _ in ref.named_modules() if n.endswith(("c_attn", "c_fc", "c_proj"))]
    # old exports carry attn.bias (causal mask) and attn.masked_bias buffers
    sd = {k: v.contiguous() for k, v in ref.state_dict().items()}
    for i in range(3):
        sd[f"transformer.h.{i}.attn.bias"] = torch.tril(torch.ones(1, 1, 128, 128, dtype=torch.uint8)).float()
        sd[f"transformer.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    import safetensors.torch
    safetensors.torch.save_file(sd, tmp_path / "model.safetensors", metadata={"format": "pt"})
    again = AutoModelForCausalLM.from_pretrained(tmp_path)
    x = ids(1, 7)
    np.testing.assert_array_equal(again(x).logits.numpy(), model(x).logits.numpy())


def test_gpt2_training_step_gradients_match_torch(tmp_path):
    ref = tiny_gpt2(tmp_path)  # eval mode: no dropout on either side
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    check_training_step_grads(ref, model, ids(2, 10, seed=7), (
        "transformer.h.1.attn.c_attn.weight", "transformer.h.0.mlp.c_fc.bias", "transformer.wpe.weight",
        "transformer.wte.weight", "transformer.h.2.ln_1.weight"))

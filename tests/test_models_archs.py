"""Mistral, Qwen2, Qwen3, SmolLM3 and Phi-3 (and Llama's RoPE scaling
variants) loaded from checkpoints that transformers saves: same logits
(≤ 1e-4 relative, f32), same 32-token greedy continuation, same loss,
same parameter names; and a sharded checkpoint loads."""
import json

import numpy as np
import pytest
import torch
import transformers

from peftcpp.models import AutoModelForCausalLM, DynamicCache

BASE = dict(vocab_size=101, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=6,
            num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=True, pad_token_id=None,
            bos_token_id=1, eos_token_id=None)

ARCHS = {"llama": "Llama", "mistral": "Mistral", "qwen2": "Qwen2", "qwen3": "Qwen3", "smollm3": "SmolLM3",
         "phi3": "Phi3"}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The oracles are tiny: one torch thread is faster than several
    contending with the engine's OpenMP pool."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def build(tmp_path, arch, **overrides):
    """A tiny random transformers model saved to tmp_path. Biases and norm
    weights are perturbed (transformers initialises them to 0 and 1, which
    would hide a missing bias or q/k norm)."""
    torch.manual_seed(0)
    kw = dict(BASE)
    kw.update(overrides)
    name = ARCHS[arch]
    model = getattr(transformers, f"{name}ForCausalLM")(getattr(transformers, f"{name}Config")(**kw)).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith(".bias") or n.endswith("norm.weight"):
                p.add_(torch.randn_like(p) * 0.2)
    model.save_pretrained(tmp_path)
    return model


def ids(b=2, t=9, v=101, seed=0):
    return np.random.default_rng(seed).integers(0, v, size=(b, t))


def rel_err(got, expect):
    return float(np.abs(got - expect).max() / np.abs(expect).max())


def check_logits(ref, model, x):
    with torch.no_grad():
        expect = ref(torch.tensor(x)).logits.numpy()
    err = rel_err(model(x).logits.numpy(), expect)
    assert err <= 1e-4, err
    return err


def check_all(tmp_path, arch, t=9, **overrides):
    """logits, loss with labels, 32-token greedy continuation, and
    state_dict keys, against transformers."""
    ref = build(tmp_path, arch, **overrides)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(model).__name__ == f"{ARCHS[arch]}ForCausalLM"
    assert list(model.state_dict()) == list(ref.state_dict())
    x = ids(t=t)
    err = check_logits(ref, model, x)
    with torch.no_grad():
        expect_loss = ref(torch.tensor(x), labels=torch.tensor(x)).loss.item()
    loss = model(x, labels=x).loss.item()
    assert abs(loss - expect_loss) / expect_loss <= 1e-5, (loss, expect_loss)
    g_ref = ref.generate(torch.tensor(x[:1]), max_new_tokens=32, do_sample=False)
    g = model.generate(x[:1], max_new_tokens=32, do_sample=False)
    assert g.shape[1] == t + 32
    np.testing.assert_array_equal(g.numpy(), g_ref.numpy())
    return ref, model, err


# ------------------------------------------------------------------ mistral

@pytest.mark.parametrize("tied,kv_heads", [(True, 6), (False, 3), (True, 2)])  # Hq/Hkv = 1, 2, 3
def test_mistral(tmp_path, tied, kv_heads):
    check_all(tmp_path, "mistral", tie_word_embeddings=tied, num_key_value_heads=kv_heads, sliding_window=None)


def test_mistral_sliding_window(tmp_path):
    # window 5 < prompt 12 + 32 new tokens: prefill and cached decoding both slide
    _, model, _ = check_all(tmp_path, "mistral", t=12, sliding_window=5, tie_word_embeddings=False)
    assert all(layer.self_attn.sliding_window == 5 for layer in model.model.layers)


# -------------------------------------------------------------------- qwen2

@pytest.mark.parametrize("tied,kv_heads", [(True, 2), (False, 6), (False, 3)])
def test_qwen2_biases(tmp_path, tied, kv_heads):
    _, model, _ = check_all(tmp_path, "qwen2", tie_word_embeddings=tied, num_key_value_heads=kv_heads)
    attn = model.model.layers[0].self_attn
    assert attn.q_proj.bias is not None and attn.k_proj.bias is not None and attn.v_proj.bias is not None
    assert attn.o_proj.bias is None
    assert attn.sliding_window == 0


def test_qwen2_sliding_window_only_when_enabled(tmp_path):
    # layers >= max_window_layers slide when use_sliding_window
    _, model, _ = check_all(tmp_path / "on", "qwen2", t=12, num_hidden_layers=3, use_sliding_window=True,
                            sliding_window=5, max_window_layers=1)
    assert [layer.self_attn.sliding_window for layer in model.model.layers] == [0, 5, 5]
    # sliding_window set but use_sliding_window False: full attention (as transformers)
    build(tmp_path / "off", "qwen2", num_hidden_layers=2)
    cfg = json.loads((tmp_path / "off" / "config.json").read_text())
    cfg.update(sliding_window=4, use_sliding_window=False, max_window_layers=0)
    cfg.pop("layer_types", None)
    (tmp_path / "off" / "config.json").write_text(json.dumps(cfg))
    off = AutoModelForCausalLM.from_pretrained(tmp_path / "off")
    assert [layer.self_attn.sliding_window for layer in off.model.layers] == [0, 0]


# -------------------------------------------------------------------- qwen3

@pytest.mark.parametrize("tied,kv_heads,bias", [(True, 2, False), (False, 6, True), (True, 3, False)])
def test_qwen3_qk_norm(tmp_path, tied, kv_heads, bias):
    # head_dim 16 with hidden 48 and 6 heads: q_proj is 48 -> 96, not square
    _, model, _ = check_all(tmp_path, "qwen3", tie_word_embeddings=tied, num_key_value_heads=kv_heads,
                            head_dim=16, attention_bias=bias)
    attn = model.model.layers[1].self_attn
    assert tuple(attn.q_norm.weight.shape) == (16,) and tuple(attn.k_norm.weight.shape) == (16,)
    assert tuple(attn.q_proj.weight.shape) == (96, 48)
    assert (attn.o_proj.bias is not None) == bias


# ------------------------------------------------------------------ smollm3

@pytest.mark.parametrize("no_rope,kv_heads,tied", [([1, 0, 1, 0], 2, True), ([0, 1, 1, 1], 3, False),
                                                   (None, 6, True)])  # None: every 4th layer NoPE
def test_smollm3_mixed_rope_layers(tmp_path, no_rope, kv_heads, tied):
    _, model, _ = check_all(tmp_path, "smollm3", num_hidden_layers=4, no_rope_layers=no_rope,
                            num_key_value_heads=kv_heads, tie_word_embeddings=tied)
    want = no_rope if no_rope is not None else [1, 1, 1, 0]
    assert [int(layer.self_attn.use_rope) for layer in model.model.layers] == want


def test_smollm3_sliding_nope_layers(tmp_path):
    _, model, _ = check_all(tmp_path, "smollm3", t=12, num_hidden_layers=3, no_rope_layers=[1, 0, 1],
                            use_sliding_window=True, sliding_window=5)
    assert [layer.self_attn.sliding_window for layer in model.model.layers] == [0, 5, 0]


# --------------------------------------------------------------------- phi3

@pytest.mark.parametrize("tied,kv_heads,partial", [(False, 6, 1.0), (True, 3, 0.5), (False, 2, 0.75)])
def test_phi3_fused_projections_partial_rotary(tmp_path, tied, kv_heads, partial):
    ref, model, _ = check_all(tmp_path, "phi3", tie_word_embeddings=tied, num_key_value_heads=kv_heads,
                              partial_rotary_factor=partial)
    names = [n for n, _ in model.named_modules() if n.startswith("model.layers.0.") and n.endswith("proj")]
    assert names == ["model.layers.0.self_attn.o_proj", "model.layers.0.self_attn.qkv_proj",
                     "model.layers.0.mlp.gate_up_proj", "model.layers.0.mlp.down_proj"]
    assert model.model.rotary_emb.inv_freq.shape[0] == int(8 * partial) // 2


def test_phi3_sliding_window(tmp_path):
    check_all(tmp_path, "phi3", t=12, sliding_window=5, partial_rotary_factor=0.5)


def test_phi3_longrope(tmp_path):
    # head_dim 8, partial 0.5: rotary dim 4, two factors each
    rope = dict(rope_type="longrope", rope_theta=10000.0, partial_rotary_factor=0.5, short_factor=[1.0, 1.5],
                long_factor=[3.0, 7.5])
    ref = build(tmp_path, "phi3", rope_parameters=rope, original_max_position_embeddings=48,
                max_position_embeddings=128)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    check_logits(ref, model, ids(t=9))   # short factors
    check_logits(ref, model, ids(t=70))  # past original_max_position_embeddings: long factors
    assert model.model.rotary_emb.attention_scaling != 1.0
    # 9 + 32 tokens stay within the original context: short factors throughout
    x = ids(1, 9)
    g_ref = ref.generate(torch.tensor(x), max_new_tokens=32, do_sample=False)
    np.testing.assert_array_equal(model.generate(x, max_new_tokens=32).numpy(), g_ref.numpy())


def test_phi3_longrope_generation_crossing_original_context(tmp_path):
    # 9 + 32 tokens cross original_max_position_embeddings 24: transformers then drops the cache and
    # reruns the whole sequence with the long factors; so does Phi3ForCausalLM
    rope = dict(rope_type="longrope", rope_theta=10000.0, partial_rotary_factor=1.0,
                short_factor=[1.0, 1.2, 1.5, 2.0], long_factor=[4.0, 6.0, 9.0, 16.0])
    ref = build(tmp_path, "phi3", rope_parameters=rope, original_max_position_embeddings=24,
                max_position_embeddings=128)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    # one cached step from 24 to 25 tokens gives the logits of the full 25-token forward
    x = ids(2, 25, seed=3)
    with torch.no_grad():
        expect = ref(torch.tensor(x)).logits.numpy()[:, -1]
    cache = DynamicCache()
    model(x[:, :24], past_key_values=cache, use_cache=True)
    step = model(x[:, 24:], past_key_values=cache, use_cache=True).logits.numpy()[:, -1]
    assert rel_err(step, expect) <= 1e-4
    assert cache.get_seq_length() == 25
    x = ids(2, 9, seed=3)
    g_ref = ref.generate(torch.tensor(x), max_new_tokens=32, do_sample=False)
    np.testing.assert_array_equal(model.generate(x, max_new_tokens=32).numpy(), g_ref.numpy())


# ---------------------------------------------------------------- gradients

@pytest.mark.parametrize("arch,kw", [
    ("phi3", dict(partial_rotary_factor=0.5, num_key_value_heads=3, tie_word_embeddings=False)),  # fused slices
    ("qwen3", dict(head_dim=16, attention_bias=True)),  # q/k norms
    ("qwen2", dict(num_key_value_heads=3)),  # q/k/v biases
    ("smollm3", dict(num_hidden_layers=4)),  # NoPE layer
], ids=["phi3", "qwen3", "qwen2", "smollm3"])
def test_loss_gradients_match(tmp_path, arch, kw):
    ref = build(tmp_path, arch, **kw).train()
    model = AutoModelForCausalLM.from_pretrained(tmp_path, dtype="float32")
    model.train()
    x = ids()
    model(x, labels=x).loss.backward()
    ref(torch.tensor(x), labels=torch.tensor(x)).loss.backward()
    expect = {n: p.grad.numpy() for n, p in ref.named_parameters()}
    got = {n: p.grad.numpy() for n, p in model.named_parameters()}
    assert sorted(got) == sorted(expect)
    for n, g in got.items():
        assert rel_err(g, expect[n]) <= 1e-4, n


# ------------------------------------------------------- llama rope scaling

@pytest.mark.parametrize("rope", [
    dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
         original_max_position_embeddings=32),
    dict(rope_type="linear", factor=2.0),
    dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=32),
    dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=32, beta_fast=16.0, beta_slow=2.0,
         attention_factor=1.2),
], ids=["llama3", "linear", "yarn", "yarn-params"])
def test_llama_rope_scaling(tmp_path, rope):
    # head_dim 16: frequencies on both sides of the llama3 band and inside it
    ref = build(tmp_path, "llama", hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                rope_parameters=dict(rope, rope_theta=10000.0))
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    check_logits(ref, model, ids(t=100))  # well past original_max_position_embeddings
    x = ids(1, 9)
    g_ref = ref.generate(torch.tensor(x), max_new_tokens=32, do_sample=False)
    np.testing.assert_array_equal(model.generate(x, max_new_tokens=32).numpy(), g_ref.numpy())


# --------------------------------------------------------- sharded checkpoint

@pytest.mark.parametrize("arch", ["qwen2", "phi3"])
def test_sharded_checkpoint_loads(tmp_path, arch):
    ref = build(tmp_path / "single", arch, tie_word_embeddings=False)
    ref.save_pretrained(tmp_path / "sharded", max_shard_size="40KB")
    index = json.loads((tmp_path / "sharded" / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    assert not (tmp_path / "sharded" / "model.safetensors").exists()
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "sharded")
    check_logits(ref, model, ids())


@pytest.mark.parametrize("arch,kw", [
    ("mistral", dict(sliding_window=5)),
    ("qwen2", dict(use_sliding_window=True, sliding_window=5, max_window_layers=1)),
    ("qwen3", dict(head_dim=16)),
    ("smollm3", dict(num_hidden_layers=4)),
    ("phi3", dict(partial_rotary_factor=0.5, tie_word_embeddings=False)),
])
def test_save_pretrained_round_trips_to_transformers(tmp_path, arch, kw):
    ref = build(tmp_path / "ref", arch, **kw)
    AutoModelForCausalLM.from_pretrained(tmp_path / "ref").save_pretrained(tmp_path / "back")
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "back").eval()
    assert type(back) is type(ref)
    x = torch.tensor(ids(t=12))
    with torch.no_grad():
        np.testing.assert_array_equal(back(x).logits.numpy(), ref(x).logits.numpy())

"""Llama-architecture models loaded from checkpoints that transformers
saves: same logits (≤ 1e-4 relative, f32), same greedy continuation, same
loss, batched left-padded generation, and clear errors on bad checkpoints."""
import json
import os

import numpy as np
import pytest
import torch
import transformers

import peftcpp
from peftcpp.models import AutoModelForCausalLM

from helpers import check_batched_left_padded, check_logits_loss_greedy, left_padding_mask


def tiny_llama(tmp_path, **overrides):
    torch.manual_seed(0)
    kw = dict(vocab_size=101, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=6,
              num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=True)
    kw.update(overrides)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**kw)).eval()
    model.save_pretrained(tmp_path)
    return model


def ids(b=2, t=9, v=101, seed=0):
    return np.random.default_rng(seed).integers(0, v, size=(b, t))


@pytest.mark.parametrize("tied,kv_heads", [(True, 2), (False, 6), (True, 1), (False, 3)])
def test_logits_greedy_and_loss_match_transformers(tmp_path, tied, kv_heads):
    ref = tiny_llama(tmp_path, tie_word_embeddings=tied, num_key_value_heads=kv_heads)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    check_logits_loss_greedy(ref, model, ids())


def test_batched_left_padded_generation_matches(tmp_path):
    ref = tiny_llama(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    check_batched_left_padded(ref, model, ids(3, 8, seed=5))


def test_state_dict_keys_are_transformers_keys(tmp_path):
    ref = tiny_llama(tmp_path, tie_word_embeddings=False)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert list(model.state_dict()) == list(ref.state_dict())
    assert [n for n, _ in model.named_modules() if n.endswith("proj")] == \
        [n for n, _ in ref.named_modules() if n.endswith("proj")]


def test_bf16_checkpoint_stays_bf16_and_saves_back(tmp_path):
    ref = tiny_llama(tmp_path / "f32")
    ref.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "bf16")
    assert model.model.layers[0].self_attn.q_proj.weight.dtype == peftcpp.bfloat16
    assert not model.model.layers[0].self_attn.q_proj.weight._storage_is_owned()  # mmapped, no copy
    as_f32 = AutoModelForCausalLM.from_pretrained(tmp_path / "bf16", dtype="float32")
    assert as_f32.model.embed_tokens.weight.dtype == peftcpp.float32
    x = ids()
    np.testing.assert_allclose(model(x).logits.numpy(), as_f32(x).logits.numpy(), rtol=1e-5, atol=1e-5)
    model.save_pretrained(tmp_path / "again")
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "again")
    for (k, a), (_, b) in zip(back.state_dict().items(), ref.to(torch.bfloat16).state_dict().items()):
        assert torch.equal(a, b), k


def test_unsupported_model_type_lists_supported(tmp_path):
    tiny_llama(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["model_type"] = "mamba"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"model_type 'mamba' is not supported; supported: .*llama"):
        AutoModelForCausalLM.from_pretrained(tmp_path)


def test_shape_mismatch_names_file_and_tensor(tmp_path):
    tiny_llama(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["intermediate_size"] = 100
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"model.safetensors: tensor 'model.layers.0.mlp.(down|gate|up)_proj.weight' has shape .* but config.json implies"):
        AutoModelForCausalLM.from_pretrained(tmp_path)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        AutoModelForCausalLM.from_pretrained(tmp_path)
    tiny_llama(tmp_path)
    os.remove(tmp_path / "model.safetensors")
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        AutoModelForCausalLM.from_pretrained(tmp_path)


def test_generation_config_is_loaded_and_saved_back(tmp_path):
    ref = tiny_llama(tmp_path / "src")
    ref.generation_config.eos_token_id = [7, 9]
    ref.generation_config.save_pretrained(tmp_path / "src")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "src")
    assert list(model.generation_config.eos_token_id) == [7, 9]
    model.save_pretrained(tmp_path / "out")
    back = transformers.GenerationConfig.from_pretrained(tmp_path / "out")
    assert list(back.eos_token_id) == [7, 9]


def test_left_padded_forward_matches_transformers(tmp_path):
    ref = tiny_llama(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    x = ids(2, 8, seed=3)
    mask = left_padding_mask(x, [0, 3])
    with torch.no_grad():
        expect = ref(torch.tensor(x), attention_mask=torch.tensor(mask)).logits.numpy()
    got = model(x, attention_mask=mask).logits.numpy()
    real = mask.astype(bool)  # padded query rows are undefined in both
    assert np.abs(got[real] - expect[real]).max() / np.abs(expect[real]).max() <= 1e-4


def test_invalid_config_json_names_file_and_line(tmp_path):
    tiny_llama(tmp_path)
    (tmp_path / "config.json").write_text('{\n  "model_type": "llama",\n  oops\n}')
    with pytest.raises(ValueError, match=r"config.json: invalid JSON at line 3"):
        AutoModelForCausalLM.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"config.json: expected a JSON object, got list"):
        AutoModelForCausalLM.from_pretrained(tmp_path)

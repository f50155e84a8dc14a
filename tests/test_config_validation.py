"""config.json from a hostile or careless hand: every wrong field stops the
load with one line naming the file and the field, before anything is
allocated or built (issue 12, items 5 and 6)."""
import json
import math
import os
import time

import pytest

import peftcpp
from peftcpp.models import (AutoConfig, AutoModelForCausalLM, Gemma3TextConfig, GPT2Config, GPT2LMHeadModel,
                            LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Phi3Config,
                            Phi3ForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM,
                            SmolLM3Config, SmolLM3ForCausalLM, T5Config, T5ForConditionalGeneration)
from peftcpp.models import Gemma3ForCausalLM, modeling_utils

from test_cli import run_cli

TINY = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=True)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A saved 3-layer Llama (config.json + model.safetensors)."""
    folder = tmp_path_factory.mktemp("cfg") / "model"
    peftcpp.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(model_type="llama", **TINY)).save_pretrained(folder)
    return folder


def write_config(folder, **changes):
    os.makedirs(folder, exist_ok=True)
    d = dict(TINY, model_type="llama")
    d.update(changes)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(d, f)  # NaN and Infinity are written as JSON's common extension, as Python reads them
    return str(folder)


def copy_model(src, dst, **changes):
    os.makedirs(dst, exist_ok=True)
    os.link(os.path.join(src, "model.safetensors"), os.path.join(dst, "model.safetensors"))
    cfg = json.load(open(os.path.join(src, "config.json")))
    cfg.update(changes)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(cfg, f)
    return str(dst)


# field changes -> (exception type, words the one-line message must hold beside the path)
BAD_FIELDS = {
    "size as a string": (dict(hidden_size="64"), TypeError, ["hidden_size", '"64" (a string)']),
    "size as a boolean": (dict(num_hidden_layers=True), TypeError, ["num_hidden_layers", "true (a boolean)"]),
    "size as a float": (dict(intermediate_size=48.0), TypeError, ["intermediate_size", "48.0"]),
    "negative size": (dict(intermediate_size=-5), ValueError, ["intermediate_size", "-5"]),
    "zero vocabulary": (dict(vocab_size=0), ValueError, ["vocab_size", "from 1"]),
    "null size": (dict(hidden_size=None), TypeError, ["hidden_size", "null"]),
    "absurd size": (dict(vocab_size=10 ** 40), ValueError, ["vocab_size", "2147483647"]),
    "negative eps": (dict(rms_norm_eps=-1), ValueError, ["rms_norm_eps", "> 0"]),
    "zero eps": (dict(rms_norm_eps=0), ValueError, ["rms_norm_eps"]),
    "NaN eps": (dict(rms_norm_eps=math.nan), ValueError, ["rms_norm_eps", "NaN"]),
    "eps as a string": (dict(rms_norm_eps="1e-6"), TypeError, ["rms_norm_eps"]),
    "heads not dividing hidden": (dict(num_attention_heads=5, num_key_value_heads=1), ValueError,
                                  ["num_attention_heads (5) must divide hidden_size (32)"]),
    "kv heads not dividing heads": (dict(num_key_value_heads=3), ValueError,
                                    ["num_key_value_heads (3) must divide num_attention_heads (4)"]),
    "rope_parameters a string": (dict(rope_parameters="linear"), TypeError, ["rope_parameters", "an object"]),
    "rope_scaling a list": (dict(rope_scaling=[2]), TypeError, ["rope_scaling", "an object"]),
    "rope factor missing": (dict(rope_scaling={"rope_type": "linear"}), ValueError, ["rope_scaling", "'factor'"]),
    "rope factor negative": (dict(rope_parameters={"rope_type": "linear", "factor": -2}), ValueError,
                             ["rope_parameters.factor"]),
    "rope type unknown": (dict(rope_parameters={"rope_type": "dynamic", "factor": 2.0}), ValueError,
                          ["rope_parameters.rope_type", "'dynamic' is not supported"]),
    "rope theta zero": (dict(rope_theta=0), ValueError, ["rope_theta"]),
    "activation unknown": (dict(hidden_act="gelu_banana"), ValueError, ["hidden_act", "'gelu_banana'"]),
    "bool flag as a string": (dict(tie_word_embeddings="yes"), TypeError, ["tie_word_embeddings"]),
    "token id as a string": (dict(eos_token_id="2"), TypeError, ["eos_token_id"]),
    "millions of layers": (dict(num_hidden_layers=10 ** 7), ValueError, ["num_hidden_layers", "1048576"]),
    "model_type a list": (dict(model_type=["llama"]), TypeError, ["model_type", "a list"]),
    # found by tools/fuzz_python.py config: head_dim 32 / 32 = 1 reached the rope op
    "odd rotary dimension": (dict(num_attention_heads=32, num_key_value_heads=32), ValueError,
                             ["head_dim gives 1 rotary dimensions (head_dim 1)", "even"]),
    "partial rotary factor leaving one dimension": (dict(partial_rotary_factor=0.125), ValueError,
                                                    ["head_dim gives 1 rotary dimensions"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_bad_field_names_file_and_field(tmp_path, case):
    changes, exc, words = BAD_FIELDS[case]
    folder = write_config(tmp_path / "m", **changes)
    with pytest.raises(exc) as info:
        AutoConfig.from_pretrained(folder)
    msg = str(info.value)
    assert msg.startswith(os.path.join(folder, "config.json") + ": "), msg
    assert "\n" not in msg
    for w in words:
        assert w in msg, (w, msg)


OTHER_ARCHS = {  # model_type, changes, words
    "gpt2 eps": ("gpt2", dict(n_embd=32, n_head=4, n_layer=2, layer_norm_epsilon=-1e-5), ["layer_norm_epsilon"]),
    "gpt2 heads": ("gpt2", dict(n_embd=32, n_head=5, n_layer=2), ["n_head (5) must divide n_embd (32)"]),
    "gpt2 activation": ("gpt2", dict(activation_function="tanh-ish"), ["activation_function", "'tanh-ish'"]),
    "t5 string size": ("t5", dict(d_kv="8"), ["d_kv", '"8" (a string)']),
    "t5 activation": ("t5", dict(feed_forward_proj="gated-banana"), ["feed_forward_proj", "'banana'"]),
    "t5 dropout": ("t5", dict(dropout_rate=1.5), ["dropout_rate", "[0, 1)"]),
    "t5 not encoder-decoder": ("t5", dict(is_encoder_decoder=False), ["is_encoder_decoder false is not supported"]),
    # found by tools/fuzz_python.py config: a common name set T5's own field (num_heads) to null
    "t5 alias null": ("t5", dict(num_key_value_heads=None), ["num_heads must be an integer", "null"]),
    "qwen2 layer_types": ("qwen2", dict(TINY, layer_types=["full_attention"]), ["layer_types", "1 entries"]),
    "smollm3 layer_types": ("smollm3", dict(TINY, layer_types=["full_attention"]), ["layer_types", "1 entries"]),
    "smollm3 no_rope_layers": ("smollm3", dict(TINY, no_rope_layers=[1, 2, 1]), ["no_rope_layers[1]"]),
    "gemma3 text_config": ("gemma3", dict(text_config="small"), ["text_config", '"small" (a string)']),
    "gemma3 nested field": ("gemma3", dict(text_config=dict(TINY, hidden_size="32")), ["text_config.hidden_size"]),
    "gemma3 rope per layer type": ("gemma3_text", dict(TINY, head_dim=8, rope_parameters={"full_attention": "x"}),
                                   ["rope_parameters.full_attention", "an object"]),
    # found by tools/fuzz_python.py config: divisions by log(1) in the RoPE tables
    "phi3 longrope original 1": ("phi3", dict(TINY, original_max_position_embeddings=1, rope_scaling={
        "type": "longrope", "short_factor": [1.0] * 4, "long_factor": [2.0] * 4}), ["original_max_position_embeddings",
                                                                                    "at least 2"]),
    "yarn theta 1": ("llama", dict(TINY, rope_parameters={"rope_type": "yarn", "factor": 2.0, "rope_theta": 1}),
                     ["rope_parameters.rope_theta must be > 1 for yarn"]),
    "gemma3 pad token outside the vocabulary": ("gemma3_text", dict(TINY, head_dim=8, pad_token_id=205),
                                                ["pad_token_id (205) must be a token of the vocabulary"]),
    "no_rope_layers short": ("qwen3", dict(TINY, no_rope_layers=[]), ["no_rope_layers has 0 entries"]),
    "phi3 longrope factors": ("phi3", dict(TINY, rope_scaling={"type": "longrope", "short_factor": [1.0],
                                                               "long_factor": [1.0]}),
                              ["rope_scaling.short_factor", "must have 4 entries"]),
}


@pytest.mark.parametrize("case", sorted(OTHER_ARCHS))
def test_other_architectures_name_file_and_field(tmp_path, case):
    model_type, changes, words = OTHER_ARCHS[case]
    folder = tmp_path / "m"
    os.makedirs(folder)
    with open(folder / "config.json", "w") as f:
        json.dump(dict(changes, model_type=model_type), f)
    with pytest.raises((ValueError, TypeError)) as info:
        AutoConfig.from_pretrained(folder)
    msg = str(info.value)
    assert msg.startswith(str(folder / "config.json") + ": ") and "\n" not in msg, msg
    for w in words:
        assert w in msg, (w, msg)


def test_rms_norm_eps_negative_stops_generate_instead_of_nan_logits(tiny_model, tmp_path):
    bad = copy_model(tiny_model, tmp_path / "bad", rms_norm_eps=-1)
    res = run_cli("generate", "--model", bad, "--prompt", "hi", "-m", "2", "--ignore-chat-template")
    assert res.returncode == 1, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert f"{bad}/config.json: rms_norm_eps must be a finite number > 0, got -1" in lines[0]


@pytest.mark.parametrize("layers", [10 ** 5, 2 ** 20])
def test_layer_count_against_the_checkpoint_fails_at_once(tiny_model, tmp_path, layers):
    bad = copy_model(tiny_model, tmp_path / "bad", num_hidden_layers=layers)
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as info:
        AutoModelForCausalLM.from_pretrained(bad)
    assert time.perf_counter() - t0 < 1.0  # was 33 s and 2.4 GB for 10**5 layers
    msg = str(info.value)
    assert msg.startswith(f"{bad}/model.safetensors: missing tensor 'model.layers.3.") and "\n" not in msg, msg
    assert f"{bad}/config.json has num_hidden_layers={layers}" in msg
    assert "(model.layers.0 to model.layers.2)" in msg


def test_millions_of_layers_fail_at_once_from_the_command_line(tiny_model, tmp_path):
    bad = copy_model(tiny_model, tmp_path / "bad", num_hidden_layers=10 ** 7)
    t0 = time.perf_counter()
    res = run_cli("generate", "--model", bad, "--prompt", "hi")
    assert time.perf_counter() - t0 < 30  # a subprocess (imports included); 10**7 layers never finished before
    assert res.returncode == 1 and "num_hidden_layers" in res.stderr and "Traceback" not in res.stderr


def test_fewer_layers_than_the_checkpoint_name_the_extra_tensor(tiny_model, tmp_path):
    bad = copy_model(tiny_model, tmp_path / "bad", num_hidden_layers=2)
    with pytest.raises(ValueError, match=r"unexpected tensor 'model\.layers\.2\..*num_hidden_layers=2"):
        AutoModelForCausalLM.from_pretrained(bad)


def test_mis_shaped_tensor_named_before_any_conversion(tiny_model, tmp_path, monkeypatch):
    bad = copy_model(tiny_model, tmp_path / "bad", intermediate_size=40)
    converted = []
    real = peftcpp.Tensor._to_raw
    monkeypatch.setattr(peftcpp.Tensor, "_to_raw", lambda self, d: converted.append(1) or real(self, d))
    with pytest.raises(ValueError, match=r"model\.safetensors: tensor 'model\.layers\.0\.mlp\..*' has shape "):
        AutoModelForCausalLM.from_pretrained(bad, dtype="bfloat16")
    assert not converted  # every tensor is checked before the first one is converted


def test_kwarg_overrides_are_checked(tiny_model):
    with pytest.raises(TypeError, match=r"^from_pretrained\(\) argument: rms_norm_eps must be a finite number"):
        AutoModelForCausalLM.from_pretrained(tiny_model, rms_norm_eps="small")


def test_from_config_refuses_a_model_larger_than_memory_before_allocating():
    cfg = LlamaConfig(**dict(TINY, num_hidden_layers=2 ** 20, hidden_size=1024, intermediate_size=4096,
                             num_attention_heads=8, num_key_value_heads=8))
    cfg._source = "/x/config.json"
    before = peftcpp._core.memory_stats()
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as info:
        AutoModelForCausalLM.from_config(cfg)
    assert time.perf_counter() - t0 < 1.0
    msg = str(info.value)
    assert msg.startswith("/x/config.json: the model it describes has ") and "GiB of memory" in msg, msg
    assert "num_hidden_layers=1048576" in msg
    assert peftcpp._core.memory_stats() == before  # nothing was allocated


def test_conversion_larger_than_memory_is_refused_before_converting(tiny_model, monkeypatch):
    monkeypatch.setattr(modeling_utils, "physical_memory", lambda: 1000)
    with pytest.raises(ValueError, match=r"model\.safetensors: converting the weights to bfloat16 takes .* GiB, "
                                         r"more than this machine's"):
        AutoModelForCausalLM.from_pretrained(tiny_model, dtype="bfloat16")
    assert AutoModelForCausalLM.from_pretrained(tiny_model).num_parameters() > 0  # no conversion: mmapped


ARCHS = [
    (LlamaConfig, LlamaForCausalLM, dict(TINY, tie_word_embeddings=False, attention_bias=True, mlp_bias=True)),
    (MistralConfig, MistralForCausalLM, TINY),
    (Qwen2Config, Qwen2ForCausalLM, dict(TINY, tie_word_embeddings=False)),
    (Qwen3Config, Qwen3ForCausalLM, dict(TINY, head_dim=16)),
    (SmolLM3Config, SmolLM3ForCausalLM, TINY),
    (Phi3Config, Phi3ForCausalLM, dict(TINY, attention_bias=True)),
    (Gemma3TextConfig, Gemma3ForCausalLM, dict(TINY, head_dim=8)),
    (GPT2Config, GPT2LMHeadModel, dict(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=40)),
    (GPT2Config, GPT2LMHeadModel, dict(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_inner=20,
                                       tie_word_embeddings=False)),
    (T5Config, T5ForConditionalGeneration, dict(vocab_size=64, d_model=32, d_kv=8, d_ff=40, num_layers=2,
                                                num_decoder_layers=3, num_heads=4)),
    (T5Config, T5ForConditionalGeneration, dict(vocab_size=64, d_model=32, d_kv=8, d_ff=40, num_layers=2,
                                                num_heads=4, feed_forward_proj="gated-gelu",
                                                tie_word_embeddings=False)),
]


@pytest.mark.parametrize("config_class, model_class, kwargs", ARCHS,
                         ids=[f"{a[0].__name__}-{i}" for i, a in enumerate(ARCHS)])
def test_parameter_count_from_the_config_is_exact(config_class, model_class, kwargs):
    cfg = config_class(**kwargs)
    assert cfg.parameter_count() == model_class(cfg).num_parameters()


def test_null_partial_rotary_factor_means_the_whole_head():
    """Found by tools/fuzz_python.py config: partial_rotary_factor null multiplied None."""
    from peftcpp.models import Qwen3Config
    cfg = Qwen3Config(**dict(TINY, head_dim=16, partial_rotary_factor=None))
    model = Qwen3ForCausalLM(cfg)
    assert model([[1, 2]]).logits.shape == (1, 2, TINY["vocab_size"])


def test_null_flags_take_the_architecture_default():
    """Found by tools/fuzz_python.py config: T5 with is_encoder_decoder null ran as a decoder-only model."""
    assert T5Config(is_encoder_decoder=None).is_encoder_decoder is True
    assert GPT2Config(tie_word_embeddings=None).tie_word_embeddings is True
    assert LlamaConfig(tie_word_embeddings=None).tie_word_embeddings is False
    assert T5Config(dropout_rate=None).dropout_rate == 0.1  # found too: nn.Dropout(None) failed
    assert MistralConfig(sliding_window=None).sliding_window is None  # null that means "none" stays null


def test_from_pretrained_refuses_a_model_larger_than_memory_at_its_load_dtype(tiny_model, monkeypatch):
    from peftcpp.models import config_checks
    cfg = LlamaConfig(**TINY)
    need_f32 = cfg.parameter_count() * 4 + TINY["num_hidden_layers"] * config_checks.LAYER_OVERHEAD_BYTES
    monkeypatch.setattr(config_checks, "physical_memory", lambda: need_f32 - 1)
    with pytest.raises(ValueError, match=rf"^{tiny_model}/config.json: the model it describes has .* as float32, "
                                         "more than this machine's"):
        AutoModelForCausalLM.from_pretrained(tiny_model)  # a float32 checkpoint
    assert AutoModelForCausalLM.from_pretrained(tiny_model, dtype="bfloat16") is not None  # half of it fits

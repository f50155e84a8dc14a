"""PEFT LoRA adapter -> GGUF adapter (peftcpp.gguf.export_adapter), checked
against PEFT itself: the update the file describes under llama.cpp's rules
(scale = alpha / rank, Q/K rows permuted for llama) equals PEFT's merged
delta per weight (1e-6 relative), and llama.cpp (llama-cpp-python) applying
the adapter to the base GGUF gives the merged model's logits (1e-2
relative; llama.cpp keeps its KV cache in f16). rsLoRA, rank_pattern and alpha_pattern are exact
too (folded into lora_B)."""
import json
import os

import numpy as np
import pytest

import gguf
import peft
import torch

from peftcpp.gguf.names import unpermute_qk
from peftcpp.gguf import GGUFExportError, convert, export_adapter
from helpers import rel_err
from test_gguf_export import PROMPT, TIED, assert_fails_leaving_nothing, field_value, llama_logits, make_hf_tokenizer, \
    ref_logits, tiny_model, FAMILY

TARGETS = {"llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
           "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"],
           "gemma3": ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj"],
           "gpt2": ["c_attn", "c_proj", "c_fc"],
           "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]}


def make_case(tmp_path, arch, **lora_kw):
    """Base folder + base GGUF, adapter folder, merged transformers model."""
    base_dir = str(tmp_path / "base")
    tok = make_hf_tokenizer(FAMILY[arch], base_dir)
    if arch == "phi3":
        tok.add_special_tokens({"additional_special_tokens": ["<|end|>", "<unk>", "<s>", "</s>"]})
        tok.save_pretrained(base_dir)
    base = tiny_model(arch, len(tok) + 3, TIED[arch])
    base.save_pretrained(base_dir)
    kw = dict(r=4, lora_alpha=8, target_modules=TARGETS[arch], lora_dropout=0.0)
    if arch == "gpt2":
        kw["fan_in_fan_out"] = True
    kw.update(lora_kw)
    pm = peft.get_peft_model(tiny_model(arch, len(tok) + 3, TIED[arch]), peft.LoraConfig(**kw))
    torch.manual_seed(1)
    with torch.no_grad():  # lora_B starts at zero: make the update visible
        for n, p in pm.named_parameters():
            if "lora_" in n:
                p.copy_(0.2 * torch.randn_like(p))
    adapter_dir = str(tmp_path / "adapter")
    pm.save_pretrained(adapter_dir)
    merged = pm.merge_and_unload().eval()
    return base_dir, base, adapter_dir, merged


def deltas_from_file(path, arch, config):
    """{gguf weight name: alpha/r * B @ A} with the llama permutation undone."""
    r = gguf.GGUFReader(path)
    alpha = field_value(r, "adapter.lora.alpha")
    t = {x.name: np.asarray(x.data, dtype=np.float32) for x in r.tensors}
    out = {}
    for name in t:
        if not name.endswith(".lora_a"):
            continue
        w = name[:-len(".lora_a")]
        a, b = t[name], t[w + ".lora_b"]
        d = (alpha / b.shape[1]) * (b @ a)  # numpy shapes: a [r, in], b [out, r]
        if arch == "llama" and (".attn_q." in w or ".attn_k." in w):
            n = config.num_attention_heads if ".attn_q." in w else config.num_key_value_heads
            d = unpermute_qk(d, n)
        out[w] = d
    return r, out


def check_deltas(path, arch, base, merged):
    r, deltas = deltas_from_file(path, arch, base.config)
    assert field_value(r, "general.type") == "adapter"
    assert field_value(r, "adapter.type") == "lora"
    assert field_value(r, "general.architecture") == arch
    assert r.fields["adapter.lora.alpha"].types == [gguf.GGUFValueType.FLOAT32]
    bp, mp = dict(base.named_parameters()), dict(merged.named_parameters())
    from peftcpp.gguf.names import gguf_tensor_name
    n_checked = 0
    for name, p in bp.items():
        delta = (mp[name] - p).detach().numpy()
        if not np.any(delta):
            continue
        g = gguf_tensor_name(name, arch, tied=False)
        d = deltas[g]
        if arch == "gpt2":
            d = d.T  # Conv1D stores [in, out]
        err = rel_err(d, delta)
        assert err < 1e-5, f"{name}: delta relative error {err:.3g}"
        n_checked += 1
    assert n_checked == len(deltas) > 0


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3", "gpt2", "phi3"])
def test_adapter_matches_peft_and_llama_cpp(tmp_path, arch):
    base_dir, base, adapter_dir, merged = make_case(tmp_path, arch)
    out = str(tmp_path / "adapter.gguf")
    export_adapter(adapter_dir, out, base_model=base_dir)
    check_deltas(out, arch, base, merged)
    # lora_a ne = [in, r], lora_b ne = [r, out]
    r = gguf.GGUFReader(out)
    shapes = {t.name: t.shape.tolist() for t in r.tensors}
    for name, ne in shapes.items():
        if name.endswith(".lora_a"):
            assert ne[1] == 4 and shapes[name[:-1] + "b"][0] == 4, name
    if arch in ("llama", "qwen2", "gemma3"):
        h, heads = base.config.hidden_size, base.config.num_attention_heads
        hd = getattr(base.config, "head_dim", None) or h // heads
        assert shapes["blk.0.attn_q.weight.lora_a"] == [h, 4]
        assert shapes["blk.0.attn_q.weight.lora_b"] == [4, heads * hd]

    base_gguf = str(tmp_path / "base.gguf")
    convert(base_dir, base_gguf, outtype="f32", progress=False)
    want = ref_logits(merged)
    got = llama_logits(base_gguf, PROMPT[0], lora_path=out)
    err = rel_err(got, want)
    without = rel_err(llama_logits(base_gguf, PROMPT[0]), want)
    print(f"[adapter {arch}] llama.cpp+lora vs merged {err:.3g}; without the adapter {without:.3g}")
    assert err <= 1e-2, f"{arch}: llama.cpp base+adapter vs PEFT merged: relative error {err:.3g}"
    assert without > 5 * err  # the adapter did change the output


def check_llama_cpp_lora(base_dir, base_gguf, outtype, adapter, merged, what):
    """The base folder converted to `base_gguf` at `outtype`: llama.cpp applying the GGUF
    `adapter` to it gives the PEFT merged model's logits (1e-2 relative)."""
    convert(base_dir, base_gguf, outtype=outtype, progress=False)
    err = rel_err(llama_logits(base_gguf, PROMPT[0], lora_path=adapter), ref_logits(merged))
    print(f"[adapter {what}] llama.cpp+lora vs merged {err:.3g}")
    assert err <= 1e-2, f"relative error {err:.3g}"


def test_adapter_f16_on_f16_base(tmp_path):
    base_dir, base, adapter_dir, merged = make_case(tmp_path, "llama")
    out = str(tmp_path / "adapter.f16.gguf")
    export_adapter(adapter_dir, out, base_model=base_dir, outtype="f16")
    r = gguf.GGUFReader(out)
    assert {t.tensor_type for t in r.tensors} == {gguf.GGMLQuantizationType.F16}
    check_llama_cpp_lora(base_dir, str(tmp_path / "base.f16.gguf"), "f16", out, merged, "f16")


def test_rslora_and_patterns_are_exact(tmp_path):
    base_dir, base, adapter_dir, merged = make_case(
        tmp_path, "llama", use_rslora=True, rank_pattern={"v_proj": 2}, alpha_pattern={"o_proj": 3})
    # base_model_name_or_path pointing at the local base folder is enough
    cfg_path = os.path.join(adapter_dir, "adapter_config.json")
    cfg = json.load(open(cfg_path))
    cfg["base_model_name_or_path"] = base_dir
    json.dump(cfg, open(cfg_path, "w"))
    out = str(tmp_path / "adapter.gguf")
    export_adapter(adapter_dir, out)
    check_deltas(out, "llama", base, merged)
    check_llama_cpp_lora(base_dir, str(tmp_path / "base.gguf"), "f32", out, merged, "rslora")


def test_adapter_errors(tmp_path):
    base_dir, base, adapter_dir, merged = make_case(tmp_path, "qwen2")
    out = str(tmp_path / "a.gguf")
    assert_fails_leaving_nothing(out, "base model's config.json is needed", export_adapter, adapter_dir, out)
    cfg_path = os.path.join(adapter_dir, "adapter_config.json")
    cfg = json.load(open(cfg_path))
    for change, msg in (({"use_dora": True}, "DoRA"), ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
                        ({"bias": "all"}, "bias='all'")):
        json.dump(dict(cfg, **change), open(cfg_path, "w"))
        assert_fails_leaving_nothing(out, msg, export_adapter, adapter_dir, out, base_model=base_dir)
    json.dump(cfg, open(cfg_path, "w"))
    with pytest.raises(FileNotFoundError, match="no-dir"):
        export_adapter(adapter_dir, str(tmp_path / "no-dir" / "a.gguf"), base_model=base_dir)
    # unsupported base architecture
    bad = json.load(open(os.path.join(base_dir, "config.json")))
    bad["model_type"] = "bloom"
    assert_fails_leaving_nothing(out, "model_type 'bloom'", export_adapter, adapter_dir, out, base_model=bad)


def test_tied_lm_head_lora_is_refused(tmp_path):
    base_dir, base, adapter_dir, merged = make_case(tmp_path, "qwen2", target_modules=["q_proj", "lm_head"])
    with pytest.raises(GGUFExportError, match="tied embeddings"):
        export_adapter(adapter_dir, str(tmp_path / "a.gguf"), base_model=base_dir)

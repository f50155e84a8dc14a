"""PEFT LoRA adapter folder -> GGUF LoRA adapter (``llama-cli --lora``,
``Llama(lora_path=...)``).

The file holds ``general.architecture`` (the base model's), ``general.type =
adapter``, ``adapter.type = lora``, ``adapter.lora.alpha`` (FLOAT32) and, per
adapted weight W (GGUF name ``blk.N.attn_q.weight`` ...), the pair
``<name>.lora_a`` (PEFT lora_A [r, in], ne = [in, r]) and ``<name>.lora_b``
(lora_B [out, r], ne = [r, out]).

llama.cpp applies ``W·x + (alpha / r)·B·(A·x)`` with one alpha for the file
and r the tensor's rank. PEFT's scale per module is ``alpha_m / r_m``
(``alpha_m / sqrt(r_m)`` with rsLoRA; per-module r/alpha with
rank_pattern/alpha_pattern). Where a module's PEFT scale differs from
``alpha / r_m``, lora_B is multiplied by the ratio, so every module's update is
exactly PEFT's. Q/K rows of ``llama`` models are permuted like the base
weights (on lora_B, whose rows are W's rows); GPT-2's Conv1D needs nothing
(PEFT's A/B are in Linear orientation; the base weight is transposed).
"""
from __future__ import annotations

import json
import math
import os
import re

import numpy as np

from .. import _core
from .convert import OUTTYPES, CheckpointTensor, gguf_arch, load_config, read_safetensors, tensor_type_for
from .names import GGUFExportError, gguf_tensor_name, permute_qk
from .progress import progress_callback

__all__ = ["export_adapter"]

_KEY_RE = re.compile(r"^(?:base_model\.model\.)?(.+)\.(lora_A|lora_B)(?:\.[^.]+)?\.weight$")


def _base_config(adapter_dir, acfg, base_model):
    if isinstance(base_model, dict):
        return base_model, "<base_model config>"
    if base_model is not None and hasattr(base_model, "config"):
        cfg = base_model.config
        return (cfg.to_dict() if hasattr(cfg, "to_dict") else dict(vars(cfg))), "<base_model>"
    candidate = os.fspath(base_model) if base_model is not None else acfg.get("base_model_name_or_path")
    if candidate and os.path.isfile(os.path.join(candidate, "config.json")):
        return load_config(candidate), os.path.join(candidate, "config.json")
    raise GGUFExportError(
        f"{adapter_dir}: the base model's config.json is needed for the architecture; "
        f"base_model_name_or_path '{acfg.get('base_model_name_or_path')}' is not a local folder - "
        "pass base_model=<folder>")


def _pattern_value(pattern, module, default):
    """PEFT's rank_pattern/alpha_pattern lookup: a key matches when the
    module name ends with it (regex full match on the suffix)."""
    for key, value in (pattern or {}).items():
        if re.match(rf"(.*\.)?{key}$", module):
            return value
    return default


def export_adapter(adapter_dir, out_file, base_model=None, outtype="f32", progress=False):
    """Writes the PEFT LoRA adapter in ``adapter_dir`` as a GGUF adapter.
    ``base_model``: the base model folder (or its config dict) when
    adapter_config.json's base_model_name_or_path is not a local folder."""

    adapter_dir = os.fspath(adapter_dir)
    out_file = os.fspath(out_file)
    if outtype.lower() not in OUTTYPES:
        raise GGUFExportError(f"outtype '{outtype}' is not supported (choose from {', '.join(OUTTYPES)})")
    qtype = OUTTYPES[outtype.lower()]
    out_dir = os.path.dirname(os.path.abspath(out_file))
    if not os.path.isdir(out_dir):
        raise FileNotFoundError(f"cannot write '{out_file}': folder '{out_dir}' does not exist")
    cfg_path = os.path.join(adapter_dir, "adapter_config.json")
    if not os.path.isfile(cfg_path):
        raise GGUFExportError(f"{adapter_dir}: no adapter_config.json (not a PEFT adapter folder)")
    with open(cfg_path, encoding="utf-8") as f:
        acfg = json.load(f)
    if acfg.get("peft_type", "LORA") != "LORA":
        raise GGUFExportError(f"{cfg_path}: peft_type '{acfg.get('peft_type')}' cannot be exported (LORA only)")
    if acfg.get("use_dora"):
        raise GGUFExportError(f"{cfg_path}: DoRA adapters cannot be expressed as a llama.cpp LoRA adapter")
    if acfg.get("bias", "none") != "none":
        raise GGUFExportError(f"{cfg_path}: bias='{acfg['bias']}' adapters train biases, which llama.cpp LoRA "
                              "adapters cannot hold")
    if acfg.get("modules_to_save"):
        raise GGUFExportError(f"{cfg_path}: modules_to_save {acfg['modules_to_save']} are fully trained modules, "
                              "which llama.cpp LoRA adapters cannot hold; merge the adapter and convert the model")
    config, config_src = _base_config(adapter_dir, acfg, base_model)
    arch = gguf_arch(config, config_src)
    tied = bool(config.get("tie_word_embeddings", arch == "gpt2"))
    n_head = int(config.get("num_attention_heads", config.get("n_head", 1)))
    n_kv = int(config.get("num_key_value_heads") or n_head)

    st = os.path.join(adapter_dir, "adapter_model.safetensors")
    if not os.path.isfile(st):
        raise GGUFExportError(f"{adapter_dir}: no adapter_model.safetensors")
    tensors = read_safetensors(st)
    pairs = {}
    for key, t in tensors.items():
        m = _KEY_RE.match(key)
        if "lm_head" in key and tied:
            raise GGUFExportError(f"{st}: LoRA on lm_head of a model with tied embeddings cannot be exported "
                                  "(llama.cpp has no separate output tensor to adapt)")
        if not m:
            raise GGUFExportError(f"{st}: tensor '{key}' is not a LoRA A/B weight (embedding LoRA, biases and "
                                  "other trained tensors are not supported)")
        pairs.setdefault(m.group(1), {})[m.group(2)] = t

    r_default, alpha_default = int(acfg.get("r", 8)), float(acfg.get("lora_alpha", 8))
    alpha = alpha_default  # the file's one alpha; per-module differences go into lora_B
    w = _core.GGUFWriter(out_file)
    w.set("general.architecture", arch, "STRING")
    w.set("general.type", "adapter", "STRING")
    w.set("general.name", os.path.basename(os.path.normpath(adapter_dir)) or "adapter", "STRING")
    w.set("adapter.type", "lora", "STRING")
    w.set("adapter.lora.alpha", alpha, "FLOAT32")
    out = []
    for module in sorted(pairs, key=lambda m: [int(x) if x.isdigit() else x for x in m.split(".")]):
        ab = pairs[module]
        if set(ab) != {"lora_A", "lora_B"}:
            raise GGUFExportError(f"{st}: module '{module}' lacks {'lora_B' if 'lora_A' in ab else 'lora_A'}")
        g = gguf_tensor_name(module + ".weight", arch, tied=False)
        if g is None or g in ("token_embd.weight", "position_embd.weight"):
            raise GGUFExportError(f"{st}: LoRA on '{module}' cannot be exported")
        if g == "output.weight" and tied:
            raise GGUFExportError(f"{st}: LoRA on '{module}' of a model with tied embeddings cannot be exported "
                                  "(llama.cpp has no separate output tensor to adapt)")
        a, b = ab["lora_A"], ab["lora_B"]
        r = a.array.shape[0]
        if a.array.ndim != 2 or b.array.ndim != 2 or b.array.shape[1] != r:
            raise GGUFExportError(f"{st}: module '{module}': lora_A {a.array.shape} and lora_B {b.array.shape} "
                                  "do not form a rank-r pair")
        r_m = int(_pattern_value(acfg.get("rank_pattern"), module, r_default))
        if r_m != r:
            raise GGUFExportError(f"{st}: module '{module}' has rank {r} but adapter_config.json says {r_m}")
        alpha_m = float(_pattern_value(acfg.get("alpha_pattern"), module, alpha_default))
        peft_scale = alpha_m / (math.sqrt(r) if acfg.get("use_rslora") else r)
        ratio = peft_scale / (alpha / r)
        bt = b
        if ratio != 1.0:
            bt = CheckpointTensor(b.float32() * np.float32(ratio), False)
        base = g.split(".")[-2]
        if arch in ("llama", "smollm3") and base in ("attn_q", "attn_k"):
            bt = CheckpointTensor(permute_qk(bt.array, n_head if base == "attn_q" else n_kv), bt.bf16)
        out.append((g + ".lora_a", a))
        out.append((g + ".lora_b", bt))
    if not out:
        raise GGUFExportError(f"{st}: no LoRA weights")
    for name, t in out:
        arr = np.ascontiguousarray(t.array)
        w.add_tensor(name, tensor_type_for(name.replace(".lora_a", "").replace(".lora_b", ""), arr.shape, qtype)
                     if arr.ndim == 2 else "F32", arr, bf16=t.bf16)
    w.write(progress_callback(progress))
    return out_file

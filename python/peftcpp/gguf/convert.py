"""Hugging Face model folder -> GGUF v3 file that llama.cpp loads.

    convert("SmolLM2-135M-Instruct/", "smollm2.f16.gguf", outtype="f16")

What llama.cpp expects, and this writes (the inverse of
:mod:`peftcpp.gguf.import_model`; both take their names from :mod:`peftcpp.gguf.names`):

* metadata: ``general.*``, the architecture's hyper-parameters with the exact
  GGUF types its loader checks, the tokenizer (``peftcpp.gguf.vocab``);
* tensor names ``token_embd``, ``blk.N.attn_q`` ...; shapes as ggml ``ne``
  (numpy shape reversed, done by the writer);
* ``llama``: Q/K rows permuted (llama.cpp rotates adjacent pairs, transformers
  rotates halves); ``gemma3``: +1 on every norm weight (Gemma3RMSNorm
  computes ``x * (1 + w)``); ``gpt2``: Conv1D weights ([in, out]) transposed;
* no ``output.weight`` when the embeddings are tied (llama.cpp reuses
  ``token_embd``); 1-D tensors, norms and biases in F32; 2-D weights in the
  chosen type (q8_0 falls back to f16 for rows not a multiple of 32).

Conversion and quantization run in C++ (``peftcpp._core.GGUFWriter``) while
the file is streamed to a temporary name and renamed into place.
"""
from __future__ import annotations

import json
import os
import re
import struct
import tempfile
import warnings

import numpy as np

from .. import _core
from ..fileio import safetensors_index_shards
from .file_quantization import FILE_TYPES
from .import_model import llama3_rope_factors
from .names import GGUFExportError, gguf_tensor_name, permute_qk
from .progress import progress_callback
from .vocab import vocab_metadata

__all__ = ["convert", "SUPPORTED_ARCHS", "GGUFExportError", "permute_qk", "gguf_arch", "plan_model_tensors",
           "model_metadata", "load_checkpoint", "tensor_type_for",
           "CheckpointTensor", "read_safetensors", "load_config", "OUTTYPES"]

# config.json model_type -> GGUF architecture
_ARCH_OF = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "gemma3_text": "gemma3",
            "gpt2": "gpt2", "phi3": "phi3", "smollm3": "smollm3"}
# llama.cpp's smollm3 is llama with every 4th layer NoPE (a fixed step in its
# loader): same tensors, same Q/K permutation, same hyperparameter keys.
_LLAMA_LIKE = ("llama", "smollm3")
SUPPORTED_ARCHS = tuple(_ARCH_OF)

# --outtype -> tensor type of the matrices
OUTTYPES = {"f32": "F32", "f16": "F16", "bf16": "BF16", "q8_0": "Q8_0"}


def gguf_arch(config, source="<config>"):
    mt = config.get("model_type")
    if mt not in _ARCH_OF:
        raise GGUFExportError(f"{source}: model_type '{mt}' cannot be exported to GGUF "
                              f"(supported: {', '.join(SUPPORTED_ARCHS)})")
    return _ARCH_OF[mt]


# ------------------------------------------------------------ checkpoints
_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I32": np.int32, "I64": np.int64}


class CheckpointTensor:
    """A checkpoint tensor: a numpy view (bfloat16 as uint16 bits)."""
    __slots__ = ("array", "bf16")

    def __init__(self, array, bf16):
        self.array, self.bf16 = array, bf16

    def float32(self):
        if self.bf16:
            return (self.array.astype(np.uint32) << 16).view(np.float32)
        return self.array.astype(np.float32)


def read_safetensors(path):
    # The native reader checks the header and every tensor's byte range first
    # (one-line errors naming the file and the tensor), so the views below
    # cannot disagree with the file.
    _core.load_safetensors(os.fspath(path))
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    mm = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n) if os.path.getsize(path) > 8 + n else None
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info["dtype"]
        if dt not in _ST_DTYPES:
            raise GGUFExportError(f"{path}: tensor '{name}' has dtype {dt} (F32, F16 or BF16 expected)")
        b, e = info["data_offsets"]
        arr = (mm[b:e] if mm is not None else np.zeros(0, np.uint8)).view(_ST_DTYPES[dt]).reshape(info["shape"])
        out[name] = CheckpointTensor(arr, dt == "BF16")
    return out


def load_checkpoint(folder):
    """{name: CheckpointTensor} of a folder's model.safetensors (single or sharded)."""
    single = os.path.join(folder, "model.safetensors")
    if os.path.isfile(single):
        return read_safetensors(single)
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.isfile(index):
        out = {}
        for s in safetensors_index_shards(index):  # never a file outside the model's folder
            out.update(read_safetensors(os.path.join(folder, s)))
        return out
    raise GGUFExportError(f"{folder}: no model.safetensors or model.safetensors.index.json")


_GPT2_CONV1D = ("attn_qkv", "attn_output", "ffn_up", "ffn_down")


# ---------------------------------------------------------------- config
def _rope(config):
    """(theta, scaling dict or None) from either the rope_theta/rope_scaling or
    the rope_parameters (transformers >= 5) spelling."""
    rp = config.get("rope_parameters") or {}
    if "full_attention" in rp:
        rp = rp["full_attention"]
    theta = config.get("rope_theta", rp.get("rope_theta", 10000.0))
    scaling = config.get("rope_scaling") or (rp if rp.get("rope_type", "default") != "default" else None)
    if scaling and scaling.get("rope_type", scaling.get("type")) in (None, "default"):
        scaling = None
    return float(theta), scaling


def _head_dim(config):
    return int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])


def model_metadata(config, arch, source="<config>"):
    """[(key, value, type)] of general.* (except name/file_type) and the
    architecture's hyper-parameters, plus extra tensors the config implies
    ({gguf name: float32 array}, e.g. rope_freqs)."""
    kv = [("general.architecture", arch, "STRING"), ("general.type", "model", "STRING")]
    extra = {}

    def a(key, value, typ="UINT32"):
        kv.append((f"{arch}.{key}", value, typ))

    if arch == "gpt2":
        n_embd = int(config.get("n_embd", config.get("hidden_size")))
        a("context_length", int(config.get("n_ctx", config.get("n_positions", 1024))))
        a("embedding_length", n_embd)
        a("feed_forward_length", int(config.get("n_inner") or 4 * n_embd))
        a("block_count", int(config.get("n_layer", config.get("num_hidden_layers"))))
        a("attention.head_count", int(config.get("n_head", config.get("num_attention_heads"))))
        a("attention.layer_norm_epsilon", float(config.get("layer_norm_epsilon", 1e-5)), "FLOAT32")
        return kv, extra

    hidden, n_head = int(config["hidden_size"]), int(config["num_attention_heads"])
    n_kv = int(config.get("num_key_value_heads") or n_head)
    hd = _head_dim(config)
    theta, scaling = _rope(config)
    a("context_length", int(config.get("max_position_embeddings", 2048)))
    a("embedding_length", hidden)
    a("block_count", int(config["num_hidden_layers"]))
    a("feed_forward_length", int(config["intermediate_size"]))
    a("attention.head_count", n_head)
    a("attention.head_count_kv", n_kv)
    a("attention.layer_norm_rms_epsilon", float(config.get("rms_norm_eps", 1e-6)), "FLOAT32")
    a("rope.freq_base", theta, "FLOAT32")
    sw = config.get("sliding_window")
    if arch in ("llama", "smollm3", "qwen2", "qwen3") and sw and int(sw) < int(config.get("max_position_embeddings", 0)) \
            and config.get("use_sliding_window", True):
        warnings.warn(f"{source}: sliding_window {sw} is not expressible for llama.cpp's {arch} architecture; "
                      f"prompts longer than {sw} tokens will be computed with full attention")
    if arch in ("llama", "smollm3", "qwen3", "gemma3", "phi3"):
        a("attention.key_length", hd)
        a("attention.value_length", hd)
    if arch in _LLAMA_LIKE:
        a("vocab_size", int(config["vocab_size"]))
        a("rope.dimension_count", hd)
    if arch == "phi3":
        a("rope.dimension_count", int(hd * float(config.get("partial_rotary_factor") or 1.0)))
        if config.get("sliding_window"):
            a("attention.sliding_window", int(config["sliding_window"]))
    if arch == "gemma3":
        rp = config.get("rope_parameters") or {}
        local = (rp.get("sliding_attention") or {}).get("rope_theta", config.get("rope_local_base_freq", 10000.0))
        a("rope.freq_base_swa", float(local), "FLOAT32")
        a("attention.sliding_window", int(config.get("sliding_window") or 4096))
        if config.get("final_logit_softcapping"):
            a("final_logit_softcapping", float(config["final_logit_softcapping"]), "FLOAT32")
        if config.get("attn_logit_softcapping"):
            raise GGUFExportError(f"{source}: gemma3 attn_logit_softcapping is not supported by llama.cpp")
        qpas = config.get("query_pre_attn_scalar")
        if qpas is not None and int(qpas) != hd:
            raise GGUFExportError(f"{source}: gemma3 query_pre_attn_scalar {qpas} != head_dim {hd}; llama.cpp "
                                  "scales attention by 1/sqrt(head_dim)")
        types = config.get("layer_types")
        if types:
            want = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(len(types))]
            if list(types) != want:
                raise GGUFExportError(f"{source}: gemma3 layer_types {types} differ from llama.cpp's fixed pattern "
                                      "(every 6th layer global)")
    if scaling is not None:
        kind = scaling.get("rope_type", scaling.get("type"))
        if kind == "linear" and arch != "phi3":
            a("rope.scaling.type", "linear", "STRING")
            a("rope.scaling.factor", float(scaling["factor"]), "FLOAT32")
        elif kind == "llama3" and arch == "llama":
            # Only a hint for readers (llama.cpp uses it for YaRN alone): the
            # factors themselves are the rope_freqs tensor.
            a("rope.scaling.original_context_length", int(scaling["original_max_position_embeddings"]))
            extra["rope_freqs.weight"] = llama3_rope_factors(
                hd, theta, float(scaling["factor"]), float(scaling.get("low_freq_factor", 1.0)),
                float(scaling.get("high_freq_factor", 4.0)), int(scaling["original_max_position_embeddings"]))
        else:
            raise GGUFExportError(f"{source}: rope scaling '{kind}' is not supported for {arch} export")
    return kv, extra


def _expected_shapes(config, arch):
    """{gguf base name (no blk prefix/suffix): numpy shape of .weight} for the
    shape check (after transposes, before permutation; same shapes)."""
    if arch == "gpt2":
        e = int(config.get("n_embd", config.get("hidden_size")))
        ff = int(config.get("n_inner") or 4 * e)
        return {"token_embd": (None, e), "position_embd": (None, e), "output_norm": (e,), "output": (None, e),
                "attn_norm": (e,), "attn_qkv": (3 * e, e), "attn_output": (e, e), "ffn_norm": (e,),
                "ffn_up": (ff, e), "ffn_down": (e, ff)}
    h, n_head = int(config["hidden_size"]), int(config["num_attention_heads"])
    n_kv = int(config.get("num_key_value_heads") or n_head)
    hd, ff = _head_dim(config), int(config["intermediate_size"])
    s = {"token_embd": (None, h), "output_norm": (h,), "output": (None, h), "attn_norm": (h,), "ffn_norm": (h,),
         "attn_q": (n_head * hd, h), "attn_k": (n_kv * hd, h), "attn_v": (n_kv * hd, h), "attn_output": (h, n_head * hd),
         "ffn_gate": (ff, h), "ffn_up": (ff, h), "ffn_down": (h, ff), "attn_q_norm": (hd,), "attn_k_norm": (hd,),
         "post_attention_norm": (h,), "post_ffw_norm": (h,)}
    if arch == "phi3":
        s.update(attn_qkv=((n_head + 2 * n_kv) * hd, h), ffn_up=(2 * ff, h))
    return s


def tensor_type_for(gguf_name, shape, outtype):
    """ggml type name of a tensor: F32 for 1-D, norms, biases and the
    position embeddings; else the outtype (Q8_0 -> F16 for rows not a
    multiple of 32, as llama.cpp's converter does)."""
    if len(shape) == 1 or not gguf_name.endswith(".weight") or gguf_name.endswith("_norm.weight") \
            or gguf_name.startswith("position_embd"):
        return "F32"
    if outtype == "Q8_0" and shape[-1] % 32:
        return "F16"
    return outtype


def plan_model_tensors(tensors, config, arch, source="<model>"):
    """[(gguf name, CheckpointTensor with the data as llama.cpp wants it)] in file order."""
    tied = bool(config.get("tie_word_embeddings", arch == "gpt2"))
    if arch != "gpt2" and "lm_head.weight" not in tensors:
        tied = True
    shapes = _expected_shapes(config, arch)
    n_head = int(config.get("num_attention_heads", config.get("n_head", 1)))
    n_kv = int(config.get("num_key_value_heads") or n_head)
    out, vocab_rows = {}, None
    for hf_name, t in tensors.items():
        g = gguf_tensor_name(hf_name, arch, tied)
        if g is None:
            continue
        base = g.split(".")[-2]
        arr, bf16 = t.array, t.bf16
        if arch == "gpt2" and base in _GPT2_CONV1D and g.endswith(".weight"):
            arr = np.ascontiguousarray(arr.T)  # Conv1D stores [in, out]
        want = shapes.get(base)
        if want is not None:
            want = want if g.endswith(".weight") else (want[0],)
            if len(want) != arr.ndim or any(w is not None and w != d for w, d in zip(want, arr.shape)):
                raise GGUFExportError(f"{source}: tensor '{hf_name}' has shape {tuple(t.array.shape)}; the config "
                                      f"implies {tuple('vocab' if w is None else w for w in want)}")
        if base in ("token_embd", "output"):
            if vocab_rows is not None and arr.shape[0] != vocab_rows:
                raise GGUFExportError(f"{source}: tensor '{hf_name}' has {arr.shape[0]} rows but the embedding "
                                      f"has {vocab_rows}")
            vocab_rows = arr.shape[0]
        if arch in _LLAMA_LIKE and base in ("attn_q", "attn_k"):
            arr = permute_qk(arr, n_head if base == "attn_q" else n_kv)
        if arch == "gemma3" and g.endswith("norm.weight"):
            arr, bf16 = (CheckpointTensor(arr, bf16).float32() + np.float32(1.0)).astype(np.float32), False
        out[g] = CheckpointTensor(np.ascontiguousarray(arr), bf16)
    if "token_embd.weight" not in out:
        raise GGUFExportError(f"{source}: no token embedding tensor found")

    def order(name):
        m = re.match(r"^blk\.(\d+)\.", name)
        return (1, int(m.group(1)), name) if m else ((0 if name != "output_norm.weight" and
                                                       name != "output.weight" else 2), 0, name)
    return sorted(out.items(), key=lambda kv: order(kv[0])), vocab_rows


# ---------------------------------------------------------------- convert
def load_config(folder):
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        raise GGUFExportError(f"{folder}: no config.json (not a Hugging Face model folder)")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def convert(model_or_dir, out_file, outtype="f16", progress=True, tokenizer=None, name=None, pre=None):
    """Writes a Hugging Face model folder (or an in-memory peftcpp model plus
    its ``tokenizer``) as a GGUF v3 file; ``outtype`` in f32, f16, bf16,
    q8_0. Returns ``out_file``."""
    if outtype.lower() not in OUTTYPES:
        raise GGUFExportError(f"outtype '{outtype}' is not supported (choose from {', '.join(OUTTYPES)})")
    if not isinstance(model_or_dir, (str, os.PathLike)):
        if not hasattr(model_or_dir, "save_pretrained"):
            raise TypeError("convert() takes a model folder or a model with save_pretrained()")
        if tokenizer is None:
            raise GGUFExportError("converting an in-memory model needs tokenizer=")
        with tempfile.TemporaryDirectory(prefix="peftcpp-gguf-") as tmp:
            model_or_dir.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            return convert(tmp, out_file, outtype, progress, name=name or getattr(
                getattr(model_or_dir, "config", None), "_name_or_path", None), pre=pre)

    folder = os.fspath(model_or_dir)
    out_file = os.fspath(out_file)
    out_dir = os.path.dirname(os.path.abspath(out_file))
    if not os.path.isdir(out_dir):
        raise FileNotFoundError(f"cannot write '{out_file}': folder '{out_dir}' does not exist")
    config = load_config(folder)
    arch = gguf_arch(config, os.path.join(folder, "config.json"))
    qtype = OUTTYPES[outtype.lower()]
    kv, extra = model_metadata(config, arch, os.path.join(folder, "config.json"))
    plan, vocab_rows = plan_model_tensors(load_checkpoint(folder), config, arch, folder)

    w = _core.GGUFWriter(out_file)
    for key, value, typ in kv[:2]:
        w.set(key, value, typ)
    model_name = name or os.path.basename(os.path.normpath(folder))
    if not model_name or model_name.startswith("peftcpp-gguf-") or model_name.startswith("tmp"):
        model_name = config.get("_name_or_path") or arch
    w.set("general.name", str(model_name), "STRING")
    w.set("general.file_type", FILE_TYPES[qtype], "UINT32")  # each outtype is also a llama file type
    w.set("general.quantization_version", 2, "UINT32")
    for key, value, typ in kv[2:]:
        w.set(key, value, typ)
    for key, value, typ in vocab_metadata(folder, vocab_rows, pre=pre):
        if key == "tokenizer.ggml.tokens" and any(p in str(model_name).lower() for p in ("phi3", "phi-3")):
            missing = [t for t in ("<unk>", "<s>", "</s>", "<|endoftext|>") if t not in value]
            if missing:  # llama.cpp looks these up by text for models named like Phi-3
                raise GGUFExportError(f"{folder}: general.name '{model_name}' makes llama.cpp treat the model as "
                                      f"Phi-3, whose tokens {missing} the tokenizer lacks; pass name=")
        w.set(key, value, typ)
    for g, arr in extra.items():
        w.add_tensor(g, "F32", np.ascontiguousarray(arr, dtype=np.float32))
    for g, t in plan:
        typ = tensor_type_for(g, t.array.shape, qtype)
        w.add_tensor(g, typ, t.array, bf16=t.bf16)
    w.write(progress_callback(progress))
    return out_file

"""GGUF → Hugging Face: import a GGUF file (llama.cpp's format) as a Hugging Face model folder.

    import_gguf("model.Q4_1.gguf", "out_dir")   # → config.json, model.safetensors,
                                                #   tokenizer.json, tokenizer_config.json,
                                                #   generation_config.json

Only reading the file's bytes is native (``peftcpp._core.GGUFFile``); everything
else here is pure Python on a metadata dict and a tensor accessor, so it can be
driven by any GGUF reader (:func:`import_gguf_data`).

What is undone from llama.cpp's ``convert_hf_to_gguf.py``:

* tensor names (``blk.N.attn_q`` → ``model.layers.N.self_attn.q_proj`` ...);
* the Q/K row permutation of the ``llama`` architecture (llama.cpp rotates
  adjacent pairs, transformers rotates halves);
* the ``+1`` the converter adds to Gemma's norm weights;
* the tokenizer: ``tokenizer.ggml.*`` → ``tokenizer.json``: a byte-level
  BPE (``tokenizer.ggml.model == "gpt2"``) with the pre-tokenizer of the
  model family (``tokenizer.ggml.pre``), or a SentencePiece BPE with byte
  fallback (``"llama"``; merges recovered from the scores, or from the file
  order for Gemma).

Supported architectures: llama, qwen2, qwen3, gemma3 (as ``gemma3_text``).

Quantized tensors are dequantized to float32; F32/F16/BF16 tensors keep their
dtype.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile

import numpy as np

from .. import _core
from ..fileio import write_json_atomic
from .import_tokenizer import build_tokenizer, build_tokenizer_config, required_key
from .names import GGUFImportError, hf_tensor_name, unpermute_qk

__all__ = ["import_gguf", "import_gguf_data", "import_gguf_cached", "gguf_model_path", "resolve_pretrained_source",
           "cache_root", "build_config", "plan_tensors", "convert_tensor", "llama3_rope_factors", "SUPPORTED_ARCHS"]

SUPPORTED_ARCHS = ("llama", "qwen2", "qwen3", "gemma3")
_FLOAT_TYPES = {"F32": "F32", "F16": "F16", "BF16": "BF16"}


# ---------------------------------------------------------------- config
def _per_layer(value, key, source):
    """Per-layer arrays (head counts, ff length) are only importable when all equal."""
    if isinstance(value, (list, tuple)):
        if not value or any(v != value[0] for v in value):
            raise GGUFImportError(f"{source}: '{key}' varies per layer ({value}); not supported")
        return value[0]
    return value


def _vocab_rows(tensor_infos, meta, arch):
    for ti in tensor_infos:
        if ti["name"] == "token_embd.weight":
            return int(ti["shape"][0])
    if f"{arch}.vocab_size" in meta:
        return int(meta[f"{arch}.vocab_size"])
    return len(meta.get("tokenizer.ggml.tokens", []))


def llama3_rope_factors(head_dim, theta, factor, low_freq_factor, high_freq_factor, original_context):
    """The per-frequency factors llama.cpp's converter stores as ``rope_freqs``
    for Llama-3.1-style rope scaling."""
    import math

    inv = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    low_wavelen, high_wavelen = original_context / low_freq_factor, original_context / high_freq_factor
    out = []
    for f in inv:
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (original_context / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def _llama3_rope_scaling(freqs, head_dim, theta, meta, arch, source):
    """Llama-3.1-style rope_scaling recovered from the ``rope_freqs`` tensor
    (GGUF keeps only the factors): the factor is their maximum; the other
    parameters are matched against the values Llama 3.x uses."""
    freqs = np.asarray(freqs, dtype=np.float32).reshape(-1)
    factor = float(freqs.max())
    contexts = [int(meta[k]) for k in (f"{arch}.rope.scaling.original_context_length",) if k in meta] + [8192]
    for orig in contexts:
        for low, high in ((1.0, 4.0), (1.0, 2.0)):
            want = llama3_rope_factors(head_dim, theta, factor, low, high, orig)
            if want.shape == freqs.shape and np.allclose(want, freqs, rtol=1e-5, atol=1e-6):
                return {"rope_type": "llama3", "factor": factor, "low_freq_factor": low, "high_freq_factor": high,
                        "original_max_position_embeddings": orig}
    raise GGUFImportError(f"{source}: rope_freqs tensor does not match Llama-3.1-style rope scaling with any "
                          "known parameters; not supported")


def build_config(meta, tensor_infos, source="<gguf>", get_tensor=None):
    """config.json (a dict) of the model described by GGUF metadata
    (``get_tensor`` is needed only for files with a ``rope_freqs`` tensor)."""
    arch = required_key(meta, "general.architecture", source)
    if arch not in SUPPORTED_ARCHS:
        raise GGUFImportError(f"{source}: general.architecture '{arch}' is not supported "
                              f"(supported: {', '.join(SUPPORTED_ARCHS)})")

    def get(key, default=None, required=False):
        full = f"{arch}.{key}"
        if required:
            return _per_layer(required_key(meta, full, source), full, source)
        return _per_layer(meta.get(full, default), full, source)

    hidden = int(get("embedding_length", required=True))
    n_head = int(get("attention.head_count", required=True))
    n_kv = int(get("attention.head_count_kv", n_head))
    names = {ti["name"] for ti in tensor_infos}
    cfg = {
        "architectures": None,
        "model_type": None,
        "vocab_size": _vocab_rows(tensor_infos, meta, arch),
        "hidden_size": hidden,
        "intermediate_size": int(get("feed_forward_length", required=True)),
        "num_hidden_layers": int(get("block_count", required=True)),
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv,
        "max_position_embeddings": int(get("context_length", 2048)),
        "rms_norm_eps": float(get("attention.layer_norm_rms_epsilon", required=True)),
        "rope_theta": float(get("rope.freq_base", 10000.0)),
        "tie_word_embeddings": "output.weight" not in names,
        "hidden_act": "silu",
    }
    head_dim = get("attention.key_length")
    if head_dim is not None:
        cfg["head_dim"] = int(head_dim)
    elif arch != "qwen2":
        cfg["head_dim"] = hidden // n_head
    # rope scaling
    scaling_type = get("rope.scaling.type")
    factor = get("rope.scaling.factor")
    if scaling_type not in (None, "none") and factor:
        rs = {"rope_type": scaling_type, "type": scaling_type, "factor": float(factor)}
        orig = get("rope.scaling.original_context_length")
        if orig:
            rs["original_max_position_embeddings"] = int(orig)
        cfg["rope_scaling"] = rs
    if "rope_freqs.weight" in names:
        if arch != "llama" or get_tensor is None:
            raise GGUFImportError(f"{source}: rope_freqs tensor (Llama-3.1-style rope scaling) is only supported "
                                  "for the llama architecture")
        cfg["rope_scaling"] = _llama3_rope_scaling(get_tensor("rope_freqs.weight"), cfg["head_dim"],
                                                   cfg["rope_theta"], meta, arch, source)
    # special tokens
    for gkey, hkey in (("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id"),
                       ("padding_token_id", "pad_token_id")):
        if f"tokenizer.ggml.{gkey}" in meta:
            cfg[hkey] = int(meta[f"tokenizer.ggml.{gkey}"])

    if arch == "llama":
        cfg.update(architectures=["LlamaForCausalLM"], model_type="llama", attention_bias="blk.0.attn_q.bias" in names,
                   mlp_bias="blk.0.ffn_up.bias" in names)
    elif arch == "qwen2":
        cfg.update(architectures=["Qwen2ForCausalLM"], model_type="qwen2", use_sliding_window=False)
        if head_dim is not None and int(head_dim) != hidden // n_head:
            raise GGUFImportError(f"{source}: qwen2 with key_length {head_dim} != hidden/heads; not supported")
    elif arch == "qwen3":
        cfg.update(architectures=["Qwen3ForCausalLM"], model_type="qwen3", attention_bias="blk.0.attn_q.bias" in names,
                   use_sliding_window=False)
    elif arch == "gemma3":
        cfg.update(architectures=["Gemma3ForCausalLM"], model_type="gemma3_text", hidden_activation="gelu_pytorch_tanh")
        del cfg["hidden_act"]
        cfg["head_dim"] = int(head_dim if head_dim is not None else 256)
        # llama.cpp scales queries by 1/sqrt(head_dim), except Gemma-3-27B (62 layers): 1/sqrt(hidden/heads)
        cfg["query_pre_attn_scalar"] = hidden // n_head if cfg["num_hidden_layers"] == 62 else cfg["head_dim"]
        cfg["rope_local_base_freq"] = float(get("rope.freq_base_swa", 10000.0))
        window = get("attention.sliding_window")
        if window is not None:
            cfg["sliding_window"] = int(window)
        pattern = meta.get(f"{arch}.attention.sliding_window_pattern", 6)
        n_layers = cfg["num_hidden_layers"]
        if isinstance(pattern, (list, tuple)):  # per layer: true = sliding-window layer
            if len(pattern) != n_layers:
                raise GGUFImportError(f"{source}: {arch}.attention.sliding_window_pattern has {len(pattern)} "
                                      f"entries for {n_layers} layers")
            cfg["layer_types"] = ["sliding_attention" if p else "full_attention" for p in pattern]
        else:
            pattern = int(pattern)
            cfg["sliding_window_pattern"] = pattern
            cfg["layer_types"] = ["full_attention" if (i + 1) % pattern == 0 else "sliding_attention"
                                  for i in range(n_layers)]
        softcap = get("final_logit_softcapping")
        cfg["final_logit_softcapping"] = float(softcap) if softcap is not None else None
        cfg["attn_logit_softcapping"] = None
    return cfg


# --------------------------------------------------------------- weights
def _bf16_to_f32(u16):
    return (u16.astype(np.uint32) << 16).view(np.float32)


def _f32_to_bf16(f32):
    u = np.ascontiguousarray(f32, dtype=np.float32).view(np.uint32)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16  # round to nearest even
    return rounded.astype(np.uint16)


def plan_tensors(tensor_infos, config):
    """[(hf_name, gguf_name, row-major shape, safetensors dtype)] for every
    tensor transformers has a parameter for: quantized types become F32,
    F32/F16/BF16 keep their dtype."""
    arch = config["model_type"].replace("gemma3_text", "gemma3")
    plan = []
    for ti in tensor_infos:
        hname = hf_tensor_name(ti["name"], arch)
        if hname is not None:
            plan.append((hname, ti["name"], tuple(int(x) for x in ti["shape"]), _FLOAT_TYPES.get(ti["type"], "F32")))
    return plan


def convert_tensor(gname, shape, dtype, get_tensor, config, source="<gguf>"):
    """The transformers value (numpy) of one GGUF tensor.

    ``get_tensor(name)`` must return a numpy array with the row-major shape:
    float32 for quantized types, float32/float16 for F32/F16 and the raw
    uint16 bit patterns for BF16."""
    arch = config["model_type"].replace("gemma3_text", "gemma3")
    arr = np.asarray(get_tensor(gname))
    if tuple(arr.shape) != shape:
        arr = arr.reshape(shape)
    if dtype == "BF16" and arr.dtype != np.uint16:
        raise GGUFImportError(f"{source}: BF16 tensor '{gname}' must be given as uint16 bit patterns")
    if dtype != "BF16":
        arr = arr.astype(_ST_DTYPES[dtype], copy=False)
    if arch == "llama" and (".attn_q." in gname or ".attn_k." in gname):
        n = config["num_attention_heads"] if ".attn_q." in gname else config["num_key_value_heads"]
        arr = unpermute_qk(arr, n)
    if arch == "gemma3" and gname.endswith("norm.weight"):
        if dtype == "BF16":
            arr = _f32_to_bf16(_bf16_to_f32(arr) - 1.0)
        else:
            arr = (arr.astype(np.float32) - 1.0).astype(arr.dtype)
    return arr


_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}


def write_safetensors(plan, produce, path):
    """Streams a safetensors file through the engine's writer (atomic, peak
    memory one tensor). ``plan``: [(name, shape, dtype)]; ``produce(i)`` →
    the numpy array of ``plan[i]``."""
    def checked(i):
        name, shape, dtype = plan[i]
        arr = np.ascontiguousarray(produce(i), dtype=_ST_DTYPES[dtype])
        if tuple(arr.shape) != tuple(shape):
            raise GGUFImportError(f"tensor '{name}': shape {arr.shape}, expected {tuple(shape)}")
        return arr
    _core.write_safetensors(path, [(name, dtype, list(shape)) for name, shape, dtype in plan], checked,
                            {"format": "pt"})


def import_gguf_data(metadata, tensor_infos, get_tensor, out_dir, source="<gguf>"):
    """Writes the Hugging Face folder of a GGUF model given as its metadata
    dict, its tensor infos (dicts with name, type, shape (row-major)) and
    ``get_tensor(name) -> numpy array`` (see :func:`convert_tensor`).
    Returns ``out_dir``."""
    config = build_config(metadata, tensor_infos, source, get_tensor)
    tokenizer = build_tokenizer(metadata, source)  # fail early, before writing weights
    os.makedirs(out_dir, exist_ok=True)
    plan = plan_tensors(tensor_infos, config)
    if "model.embed_tokens.weight" not in {p[0] for p in plan}:
        raise GGUFImportError(f"{source}: no token_embd.weight tensor")
    matrix_dtypes = [p[3] for p in plan if len(p[2]) == 2]
    dominant = max(set(matrix_dtypes), key=matrix_dtypes.count) if matrix_dtypes else "F32"
    config["torch_dtype"] = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dominant]
    write_safetensors([(h, shape, dt) for h, _, shape, dt in plan],
                      lambda i: convert_tensor(plan[i][1], plan[i][2], plan[i][3], get_tensor, config, source),
                      os.path.join(out_dir, "model.safetensors"))
    config = {k: v for k, v in config.items() if v is not None or k in ("final_logit_softcapping",
                                                                         "attn_logit_softcapping")}
    write_json_atomic(os.path.join(out_dir, "config.json"), config)
    tokenizer.save(os.path.join(out_dir, "tokenizer.json"))
    write_json_atomic(os.path.join(out_dir, "tokenizer_config.json"), build_tokenizer_config(metadata, source))
    gen = {k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if k in config}
    write_json_atomic(os.path.join(out_dir, "generation_config.json"), gen)
    return out_dir


def _gguf_accessor(gf):
    def get(name, _types={ti["name"]: (ti["type"], ti["shape"]) for ti in gf.tensor_infos}):
        gtype, shape = _types[name]
        if gtype == "BF16":
            return np.asarray(gf.raw(name)).view(np.uint16).reshape(shape)
        return gf.tensor(name).numpy()
    return get


def import_gguf(gguf_path, out_dir):
    """Converts the GGUF file ``gguf_path`` to a Hugging Face model folder
    ``out_dir`` (config.json, model.safetensors, tokenizer.json,
    tokenizer_config.json, generation_config.json). Returns ``out_dir``."""
    gguf_path = os.fspath(gguf_path)
    if not os.path.isfile(gguf_path):
        raise FileNotFoundError(f"{gguf_path}: no such file")
    gf = _core.GGUFFile(gguf_path)
    return import_gguf_data(gf.metadata, gf.tensor_infos, _gguf_accessor(gf), os.fspath(out_dir), source=gguf_path)




# ------------------------------------------------------- cached imports
_COMPLETE = ".peftcpp-import-complete"  # written last: a folder without it is unfinished
_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json")


def cache_root():
    """``$PEFTCPP_CACHE``, else ``~/.cache/peftcpp``: where imported GGUF
    models are kept."""
    return os.environ.get("PEFTCPP_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "peftcpp")


def _is_complete(folder):
    return os.path.isfile(os.path.join(folder, _COMPLETE)) and all(
        os.path.isfile(os.path.join(folder, f)) for f in _FILES)


def imported_from(folder):
    """The GGUF file a cached import folder was made from, or None."""
    try:
        with open(os.path.join(folder, _COMPLETE), encoding="utf-8") as f:
            source = json.load(f).get("source")
    except (OSError, ValueError, AttributeError):
        return None
    return source if isinstance(source, str) else None


def import_gguf_cached(gguf_path, target):
    """The Hugging Face folder ``target`` imported from ``gguf_path``, reused
    when already complete. The import goes to a temporary folder renamed
    into place, so an interrupted import is never mistaken for a complete one."""
    target = os.path.abspath(target)
    if _is_complete(target):
        return target
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.tmp-", dir=parent)
    try:
        import_gguf(gguf_path, tmp)
        with open(os.path.join(tmp, _COMPLETE), "w", encoding="utf-8") as f:
            json.dump({"source": os.path.abspath(gguf_path), "size": os.path.getsize(gguf_path)}, f)
        if os.path.isdir(target) and not _is_complete(target):
            shutil.rmtree(target, ignore_errors=True)  # leftover of an older, interrupted layout
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_complete(target):  # not a concurrent import that finished first
                raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def gguf_model_path(gguf_file):
    """The Hugging Face folder imported from any GGUF file, cached by the
    file's path, size and modification time (re-imported when it changes)."""
    gguf_file = os.path.abspath(gguf_file)
    if not os.path.isfile(gguf_file):
        raise FileNotFoundError(f"{gguf_file}: no such GGUF file")
    st = os.stat(gguf_file)
    key = hashlib.sha256(f"{gguf_file}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    name = os.path.basename(gguf_file)[: -len(".gguf")] if gguf_file.endswith(".gguf") else os.path.basename(gguf_file)
    return import_gguf_cached(gguf_file, os.path.join(cache_root(), "gguf", f"{name}-{key}"))


def resolve_pretrained_source(name_or_path, gguf_file=None, what="from_pretrained"):
    """What ``from_pretrained`` should read: the imported folder for a .gguf
    file (or a folder plus ``gguf_file=``, as transformers spells it), else
    ``name_or_path`` itself."""
    if gguf_file is not None:
        base = os.fspath(name_or_path) if name_or_path is not None else ""
        path = os.path.join(base, gguf_file) if base and os.path.isdir(base) else gguf_file
        return gguf_model_path(path)
    if name_or_path is None:
        raise TypeError(f"{what}() needs a model: a folder, a Hugging Face Hub id or a .gguf file (the peftcpp "
                        "command line's default model is peftcpp.app.default_model.default_model_path())")
    name_or_path = os.fspath(name_or_path)
    if name_or_path.endswith(".gguf") and os.path.isfile(name_or_path):
        return gguf_model_path(name_or_path)
    return name_or_path

"""Import a GGUF file (llama.cpp's format) as a Hugging Face model folder.

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

import json
import os
import re
import sys

import numpy as np

from .io import write_json_atomic

__all__ = ["import_gguf", "import_gguf_data", "build_config", "build_tokenizer", "build_tokenizer_config",
           "hf_tensor_name", "plan_tensors", "convert_tensor", "unpermute_qk", "main", "GGUFImportError"]

SUPPORTED_ARCHS = ("llama", "qwen2", "qwen3", "gemma3")

# GGUF token types (gguf-py constants.TokenType)
_TT_NORMAL, _TT_UNKNOWN, _TT_CONTROL, _TT_USER_DEFINED, _TT_UNUSED, _TT_BYTE = 1, 2, 3, 4, 5, 6

_FLOAT_TYPES = {"F32": "F32", "F16": "F16", "BF16": "BF16"}


class GGUFImportError(ValueError):
    """A GGUF file that cannot be imported (unsupported architecture,
    tokenizer, missing metadata ...)."""


# ----------------------------------------------------------------- names
_GLOBAL_NAMES = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}
_BLOCK_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
# Gemma3 has four norms per block; llama.cpp's FFN_PRE_NORM reuses "ffn_norm".
_GEMMA3_BLOCK_NAMES = dict(_BLOCK_NAMES, **{
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
})
_ARCH_BLOCK_TENSORS = {
    "llama": {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "attn_norm", "ffn_norm"},
    "qwen2": {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "attn_norm", "ffn_norm"},
    "qwen3": {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "attn_norm", "ffn_norm",
              "attn_q_norm", "attn_k_norm"},
    "gemma3": {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "attn_norm",
               "post_attention_norm", "ffn_norm", "post_ffw_norm", "attn_q_norm", "attn_k_norm"},
}
_BLK_RE = re.compile(r"^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$")
_GLOBAL_RE = re.compile(r"^([a-z_]+)\.(weight|bias)$")


def hf_tensor_name(gguf_name, arch):
    """The transformers name of a GGUF tensor (``blk.3.attn_q.weight`` →
    ``model.layers.3.self_attn.q_proj.weight``), or None for tensors
    transformers has no parameter for (``rope_freqs``)."""
    m = _BLK_RE.match(gguf_name)
    if m:
        layer, base, suffix = m.groups()
        table = _GEMMA3_BLOCK_NAMES if arch == "gemma3" else _BLOCK_NAMES
        if base not in _ARCH_BLOCK_TENSORS[arch] or base not in table:
            raise GGUFImportError(f"tensor '{gguf_name}' is not part of the {arch} architecture")
        return f"model.layers.{layer}.{table[base]}.{suffix}"
    m = _GLOBAL_RE.match(gguf_name)
    if m and m.group(1) in _GLOBAL_NAMES:
        return f"{_GLOBAL_NAMES[m.group(1)]}.{m.group(2)}"
    if gguf_name == "rope_freqs.weight":
        return None
    raise GGUFImportError(f"tensor '{gguf_name}' is not part of the {arch} architecture")


def unpermute_qk(w, n_head):
    """Inverse of llama.cpp's ``LlamaModel.permute``: within each of the
    ``n_head`` heads, rows ``(i, j)`` (pairs) go back to ``(j, i)`` (halves).
    Works for weights ``[n_head*head_dim, in]`` and biases ``[n_head*head_dim]``."""
    rows = w.shape[0]
    if rows % (2 * n_head):
        raise GGUFImportError(f"cannot undo the Q/K permutation: {rows} rows are not a multiple of 2*{n_head}")
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


# ---------------------------------------------------------------- config
def _req(meta, key, source):
    if key not in meta:
        raise GGUFImportError(f"{source}: metadata key '{key}' is missing")
    return meta[key]


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
    arch = _req(meta, "general.architecture", source)
    if arch not in SUPPORTED_ARCHS:
        raise GGUFImportError(f"{source}: general.architecture '{arch}' is not supported "
                              f"(supported: {', '.join(SUPPORTED_ARCHS)})")

    def get(key, default=None, required=False):
        full = f"{arch}.{key}"
        if required:
            return _per_layer(_req(meta, full, source), full, source)
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
    """Writes a safetensors file atomically, one tensor at a time (peak memory:
    one tensor). ``plan``: [(name, shape, dtype)]; ``produce(i)`` → the
    numpy array of ``plan[i]``."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, dtype in plan:
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(_ST_DTYPES[dtype]).itemsize
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(len(blob).to_bytes(8, "little"))
            f.write(blob)
            for i, (name, shape, dtype) in enumerate(plan):
                arr = np.ascontiguousarray(produce(i), dtype=_ST_DTYPES[dtype])
                if tuple(arr.shape) != tuple(shape):
                    raise GGUFImportError(f"tensor '{name}': shape {arr.shape}, expected {tuple(shape)}")
                f.write(memoryview(arr).cast("B"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# -------------------------------------------------------------- tokenizer
# Split regexes of the byte-level BPE families (as in their tokenizer.json).
_GPT2_RE = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
              r"\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
             r"\s*[\r\n]+|\s+(?!\S)|\s+")

# tokenizer.ggml.pre → (normalizer, pre-tokenizer) spec
_PRE_TOKENIZERS = {
    "gpt-2": ("gpt2", None),
    "gpt2": ("gpt2", None),
    "default": ("gpt2", None),
    "olmo": ("gpt2", None),
    "starcoder": ("digits+gpt2", None),
    "refact": ("digits+gpt2", None),
    "smollm": ("digits+gpt2", None),
    "llama-bpe": ("split:llama3", None),
    "llama3": ("split:llama3", None),
    "smaug-bpe": ("split:llama3", None),
    "dbrx": ("split:llama3", None),
    "qwen2": ("split:qwen2", "NFC"),
}


def _pre_tokenizer(pre, source):
    from tokenizers import Regex, normalizers, pre_tokenizers

    if pre not in _PRE_TOKENIZERS:
        raise GGUFImportError(f"{source}: tokenizer.ggml.pre '{pre}' is not supported "
                              f"(supported: {', '.join(sorted(_PRE_TOKENIZERS))})")
    kind, norm = _PRE_TOKENIZERS[pre]
    if kind == "gpt2":
        pt = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif kind == "digits+gpt2":
        pt = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                      pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    else:
        regex = {"llama3": _LLAMA3_RE, "qwen2": _QWEN2_RE}[kind.split(":")[1]]
        pt = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    normalizer = normalizers.NFC() if norm == "NFC" else None
    return normalizer, pt


def _spm_merges(vocab, rank):
    """BPE merges implied by a SentencePiece vocabulary: every split of a
    piece into two pieces of the vocabulary, best-ranked merged piece first
    (the recovery ``tokenizers``/transformers use for SentencePiece BPE)."""
    merges = []
    for piece, r in rank.items():
        local = [(piece[:k], piece[k:], r) for k in range(1, len(piece))
                 if piece[:k] in vocab and piece[k:] in vocab]
        local.sort(key=lambda x: (vocab[x[0]], vocab[x[1]]))
        merges.extend(local)
    merges.sort(key=lambda x: (x[2], len(x[0]), len(x[1])), reverse=True)
    return [(a, b) for a, b, _ in merges]


def _spm_tokenizer(meta, tokens, types, source):
    """SentencePiece BPE (``tokenizer.ggml.model == "llama"``) as a
    ``tokenizers`` BPE with byte fallback: Llama-style (Metaspace, a prefix
    space) or, for Gemma, spaces replaced by ``▁`` and no prefix space."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    arch = meta.get("general.architecture")
    gemma = arch in ("gemma", "gemma2", "gemma3")
    if gemma:  # Gemma files store pieces made of several spaces as real spaces
        tokens = ["\u2581" * len(t) if t and not t.strip(" ") else t for t in tokens]
    vocab = {}
    for i, tok in enumerate(tokens):
        vocab.setdefault(tok, i)
    if gemma:  # Gemma's scores do not follow its merge order; the file order does
        rank = {t: -i for t, i in vocab.items()}
    else:
        scores = meta.get("tokenizer.ggml.scores")
        if scores is None or len(scores) != len(tokens):
            raise GGUFImportError(f"{source}: SentencePiece tokenizer without one tokenizer.ggml.scores per token")
        rank = {t: float(scores[i]) for t, i in vocab.items()}
    unk = meta.get("tokenizer.ggml.unknown_token_id")
    bpe = BPE(vocab=vocab, merges=_spm_merges(vocab, rank), fuse_unk=True, byte_fallback=True,
              unk_token=tokens[unk] if unk is not None and 0 <= unk < len(tokens) else None)
    tk = Tokenizer(bpe)
    steps = [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
    if gemma:
        tk.normalizer = normalizers.Replace(" ", "\u2581")
        tk.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    else:
        prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", True))
        tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first" if prefix else "never",
                                                    split=False)
        if prefix:
            steps.append(decoders.Strip(content=" ", left=1))
    tk.decoder = decoders.Sequence(steps)
    return tk, vocab


def _bpe_tokenizer(meta, tokens, types, source):
    """Byte-level BPE (``tokenizer.ggml.model == "gpt2"``)."""
    from tokenizers import Tokenizer, decoders
    from tokenizers.models import BPE

    merges = list(meta.get("tokenizer.ggml.merges") or [])
    vocab = {}
    for i, (tok, tt) in enumerate(zip(tokens, types)):
        if tt == _TT_UNUSED:  # [PAD{i}] fillers up to the embedding size
            continue
        vocab.setdefault(tok, i)
    pairs = []
    for m in merges:
        a, sep, b = m.partition(" ")
        if not sep:
            raise GGUFImportError(f"{source}: malformed merge {m!r}")
        pairs.append((a, b))
    bpe = BPE(vocab=vocab, merges=pairs, fuse_unk=False, byte_fallback=False, ignore_merges=False)
    tk = Tokenizer(bpe)
    normalizer, pre = _pre_tokenizer(meta.get("tokenizer.ggml.pre", "default"), source)
    if normalizer is not None:
        tk.normalizer = normalizer
    tk.pre_tokenizer = pre
    tk.decoder = decoders.ByteLevel()
    return tk, vocab


def build_tokenizer(meta, source="<gguf>"):
    """A ``tokenizers.Tokenizer`` rebuilt from ``tokenizer.ggml.*`` metadata:
    byte-level BPE (``tokenizer.ggml.model == "gpt2"``) or SentencePiece BPE
    (``"llama"``)."""
    from tokenizers import AddedToken, processors

    model = meta.get("tokenizer.ggml.model")
    if model is None:
        raise GGUFImportError(f"{source}: no tokenizer.ggml.model metadata")
    if model not in ("gpt2", "llama"):
        raise GGUFImportError(f"{source}: tokenizer.ggml.model '{model}' is not supported (supported: gpt2 = "
                              "byte-level BPE, llama = SentencePiece BPE)")
    tokens = list(_req(meta, "tokenizer.ggml.tokens", source))
    types = list(meta.get("tokenizer.ggml.token_type") or [_TT_NORMAL] * len(tokens))
    if len(types) != len(tokens):
        raise GGUFImportError(f"{source}: {len(tokens)} tokens but {len(types)} token types")
    if model == "gpt2":
        tk, vocab = _bpe_tokenizer(meta, tokens, types, source)
    else:
        tk, vocab = _spm_tokenizer(meta, tokens, types, source)
    # control → special added tokens, user-defined → plain added tokens (matched whole, like llama.cpp);
    # their ids come from the vocab, which holds every token
    control = [AddedToken(t, special=True, normalized=False) for t, tt in zip(tokens, types) if tt == _TT_CONTROL]
    user = [AddedToken(t, special=False, normalized=False) for t, tt in zip(tokens, types) if tt == _TT_USER_DEFINED]
    if control:
        tk.add_special_tokens(control)
    if user:
        tk.add_tokens(user)
    add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", model == "llama"))  # llama.cpp's defaults
    add_eos = bool(meta.get("tokenizer.ggml.add_eos_token", False))
    bos_id, eos_id = meta.get("tokenizer.ggml.bos_token_id"), meta.get("tokenizer.ggml.eos_token_id")
    add_bos = add_bos and bos_id is not None
    add_eos = add_eos and eos_id is not None
    if add_bos or add_eos:
        bos, eos = (tokens[bos_id] if add_bos else None), (tokens[eos_id] if add_eos else None)
        single = ([f"{bos}:0"] if bos else []) + ["$A:0"] + ([f"{eos}:0"] if eos else [])
        pair = single + ([f"{bos}:1"] if bos else []) + ["$B:1"] + ([f"{eos}:1"] if eos else [])
        special = [(t, vocab.get(t, tokens.index(t))) for t in dict.fromkeys(x for x in (bos, eos) if x)]
        tk.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=special)
    elif model == "gpt2":
        tk.post_processor = processors.ByteLevel(trim_offsets=False)
    return tk


def build_tokenizer_config(meta, source="<gguf>"):
    tokens = meta.get("tokenizer.ggml.tokens") or []
    types = meta.get("tokenizer.ggml.token_type") or []

    def tok(key):
        i = meta.get(f"tokenizer.ggml.{key}")
        if i is None or not 0 <= int(i) < len(tokens):
            return None
        return tokens[int(i)]

    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": bool(meta.get("tokenizer.ggml.add_bos_token", meta.get("tokenizer.ggml.model") == "llama")),
        "add_eos_token": bool(meta.get("tokenizer.ggml.add_eos_token", False)),
        "clean_up_tokenization_spaces": False,
        "model_max_length": int(meta.get(f"{meta.get('general.architecture')}.context_length", 0)) or int(1e30),
    }
    for key, name in (("bos_token_id", "bos_token"), ("eos_token_id", "eos_token"),
                      ("padding_token_id", "pad_token"), ("unknown_token_id", "unk_token")):
        cfg[name] = tok(key)
    added = {}
    for i, (t, tt) in enumerate(zip(tokens, types)):
        if tt in (_TT_CONTROL, _TT_USER_DEFINED):
            added[str(i)] = {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                             "single_word": False, "special": tt == _TT_CONTROL}
    cfg["added_tokens_decoder"] = added
    template = meta.get("tokenizer.chat_template")
    if template is not None:
        cfg["chat_template"] = template
    return cfg


# ------------------------------------------------------------------ main
def _write_json(obj, path):
    write_json_atomic(path, obj)


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
    _write_json(config, os.path.join(out_dir, "config.json"))
    tokenizer.save(os.path.join(out_dir, "tokenizer.json"))
    _write_json(build_tokenizer_config(metadata, source), os.path.join(out_dir, "tokenizer_config.json"))
    gen = {k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if k in config}
    _write_json(gen, os.path.join(out_dir, "generation_config.json"))
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
    from . import _core

    gguf_path = os.fspath(gguf_path)
    if not os.path.isfile(gguf_path):
        raise FileNotFoundError(f"{gguf_path}: no such file")
    gf = _core.GGUFFile(gguf_path)
    return import_gguf_data(gf.metadata, gf.tensor_infos, _gguf_accessor(gf), os.fspath(out_dir), source=gguf_path)


def main(argv=None):
    """``peftcpp import-gguf FILE OUT_DIR [--force]`` (the command line owns the parsing)."""
    from .cli import main as cli_main
    return cli_main(["import-gguf", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())

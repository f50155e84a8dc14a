"""One place for the names and tables shared by both directions of the
GGUF conversion (HF → GGUF in :mod:`convert`, GGUF → HF in :mod:`import_model`):
tensor names, the Q/K row permutation, token types and the split regexes of the
byte-level BPE families."""
import re

import numpy as np

__all__ = ["GGUFImportError", "GLOBAL_NAMES", "BLOCK_NAMES", "GEMMA3_BLOCK_NAMES", "ARCH_BLOCK_TENSORS",
           "hf_tensor_name", "gguf_tensor_name", "GGUFExportError", "permute_qk", "unpermute_qk", "TokenType", "GPT2_RE", "LLAMA3_RE", "QWEN2_RE",
           "PRE_TOKENIZERS"]


class GGUFImportError(ValueError):
    """A GGUF file that cannot be imported (unsupported architecture,
    tokenizer, missing metadata ...)."""


class GGUFExportError(ValueError):
    """A model that cannot be written as GGUF (unsupported architecture,
    unexpected tensor, wrong shape ...)."""


class TokenType:
    """llama.cpp's token types (gguf-py ``constants.TokenType``)."""
    NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


# ---------------------------------------------------------- tensor names
GLOBAL_NAMES = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}
BLOCK_NAMES = {
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
GEMMA3_BLOCK_NAMES = dict(BLOCK_NAMES, **{
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
})
ARCH_BLOCK_TENSORS = {
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
        table = GEMMA3_BLOCK_NAMES if arch == "gemma3" else BLOCK_NAMES
        if base not in ARCH_BLOCK_TENSORS[arch] or base not in table:
            raise GGUFImportError(f"tensor '{gguf_name}' is not part of the {arch} architecture")
        return f"model.layers.{layer}.{table[base]}.{suffix}"
    m = _GLOBAL_RE.match(gguf_name)
    if m and m.group(1) in GLOBAL_NAMES:
        return f"{GLOBAL_NAMES[m.group(1)]}.{m.group(2)}"
    if gguf_name == "rope_freqs.weight":
        return None
    raise GGUFImportError(f"tensor '{gguf_name}' is not part of the {arch} architecture")


# HF → GGUF
def _inverse(table, allowed=None):
    return {hf: g for g, hf in table.items() if allowed is None or g in allowed}


_GPT2_BLOCK = {"ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output", "ln_2": "ffn_norm",
               "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}
_PHI3_BLOCK = {"self_attn.qkv_proj": "attn_qkv", "self_attn.o_proj": "attn_output", "mlp.gate_up_proj": "ffn_up",
               "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}


def _block_table(arch):
    if arch == "gpt2":
        return _GPT2_BLOCK
    if arch == "phi3":
        return _PHI3_BLOCK
    if arch == "gemma3":
        return _inverse(GEMMA3_BLOCK_NAMES, ARCH_BLOCK_TENSORS["gemma3"])
    return _inverse(BLOCK_NAMES, ARCH_BLOCK_TENSORS["qwen3" if arch == "qwen3" else "llama"])


_HF_BLOCK_RE = re.compile(r"^(?:model\.layers|transformer\.h|h)\.(\d+)\.(.+)\.(weight|bias)$")
# Buffers some checkpoints carry that are not parameters.
_IGNORED = re.compile(r"(rotary_emb\.inv_freq|\.attn\.bias|\.attn\.masked_bias)$")


def gguf_tensor_name(hf_name, arch, tied):
    """GGUF name of a checkpoint tensor, or None for tensors llama.cpp does
    not take (buffers, a tied lm_head)."""
    if _IGNORED.search(hf_name):
        return None
    m = _HF_BLOCK_RE.match(hf_name)
    if m:
        layer, base, suffix = m.groups()
        g = _block_table(arch).get(base)
        if g is None:
            raise GGUFExportError(f"tensor '{hf_name}' is not part of the {arch} architecture")
        return f"blk.{layer}.{g}.{suffix}"
    name = hf_name
    if arch == "gpt2":
        name = hf_name[len("transformer."):] if hf_name.startswith("transformer.") else hf_name
        table = {"wte.weight": "token_embd.weight", "wpe.weight": "position_embd.weight",
                 "ln_f.weight": "output_norm.weight", "ln_f.bias": "output_norm.bias", "lm_head.weight": "output.weight"}
    else:
        table = {f"{hf}.{s}": f"{g}.{s}" for g, hf in GLOBAL_NAMES.items() for s in ("weight", "bias")}
    g = table.get(name)
    if g is None:
        raise GGUFExportError(f"tensor '{hf_name}' is not part of the {arch} architecture")
    if g == "output.weight" and tied:
        return None
    return g


def permute_qk(w, n_head):
    """llama.cpp's Q/K row order for the ``llama`` architecture: within each
    head, row ``j*hd/2 + i`` (halves) moves to ``2i + j`` (pairs). The inverse
    of :func:`unpermute_qk`; works on any dtype (rows only)."""
    rows = w.shape[0]
    if rows % (2 * n_head):
        raise GGUFExportError(f"cannot permute Q/K: {rows} rows are not a multiple of 2*{n_head}")
    return np.ascontiguousarray(w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


def unpermute_qk(w, n_head):
    """Inverse of llama.cpp's ``LlamaModel.permute``: within each of the
    ``n_head`` heads, rows ``(i, j)`` (pairs) go back to ``(j, i)`` (halves).
    Works for weights ``[n_head*head_dim, in]`` and biases ``[n_head*head_dim]``."""
    rows = w.shape[0]
    if rows % (2 * n_head):
        raise GGUFImportError(f"cannot undo the Q/K permutation: {rows} rows are not a multiple of 2*{n_head}")
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


# ------------------------------------------------------- tokenizer tables
# Split regexes of the byte-level BPE families (as in their tokenizer.json).
GPT2_RE = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
              r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
             r"\s*[\r\n]+|\s+(?!\S)|\s+")

# tokenizer.ggml.pre → (normalizer, pre-tokenizer) spec
PRE_TOKENIZERS = {
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


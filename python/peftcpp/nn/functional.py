"""Functional ops with torch.nn.functional's names and signatures, each a
single call into the C++ engine (forward and backward both native)."""
from .. import _core


def linear(input, weight, bias=None):
    return _core.linear(input, weight, bias)


def lora_linear(input, weight, bias, lora_A, lora_B, scale, dropout=0.0, training=False):
    """y = x·Wᵀ + b + scale·(dropout(x)·Aᵀ)·Bᵀ as one fused op."""
    return _core.lora_linear(input, weight, bias, lora_A, lora_B, float(scale), float(dropout), bool(training))


def embedding(input, weight, padding_idx=None):
    return _core.embedding(input, weight)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    if len(normalized_shape) != 1 or input.shape[-1] != normalized_shape[0]:
        raise ValueError(f"[layer_norm] normalized_shape {tuple(normalized_shape)} must be the last dimension of "
                         f"input {tuple(input.shape)}")
    return _core.layer_norm(input, weight, bias, float(eps))


def rms_norm(input, normalized_shape=None, weight=None, eps=None, offset=0.0):
    if eps is None:
        eps = 1.1920928955078125e-07  # torch: finfo(float32).eps
    return _core.rms_norm(input, weight, float(eps), float(offset))


def gelu(input, approximate="none"):
    return _core.gelu(input, approximate)


def silu(input):
    return _core.silu(input)


def relu(input):
    return _core.relu(input)


def swiglu(gate, up):
    """silu(gate) * up, fused."""
    return _core.swiglu(gate, up)


def softmax(input, dim=-1):
    return _core.softmax(input, dim)


def log_softmax(input, dim=-1):
    return _core.log_softmax(input, dim)


def dropout(input, p=0.5, training=True):
    return _core.dropout(input, float(p), bool(training))


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=True, sliding_window=0, softcap=0.0):
    if dropout_p:
        raise ValueError("[scaled_dot_product_attention] attention dropout is not supported (dropout_p must be 0)")
    return _core.scaled_dot_product_attention(query, key, value, attn_mask, bool(is_causal),
                                              float(scale or 0.0), int(sliding_window or 0), float(softcap or 0.0))


def apply_rotary_emb(x, cos, sin, interleaved=False):
    """Rotates the first 2*cos.shape[-1] features of x [B, H, T, D]."""
    return _core.rope(x, cos, sin, bool(interleaved))


def cross_entropy(input, target, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    if input.ndim != 2:
        raise ValueError(f"[cross_entropy] expected logits of shape [N, C], got {tuple(input.shape)}; "
                         "flatten the batch and sequence dimensions first")
    return _core.cross_entropy(input, target, ignore_index, reduction, float(label_smoothing))


def linear_cross_entropy(hidden, weight, target, ignore_index=-100, reduction="mean", chunk_size=4096,
                         softcap=0.0):
    """cross_entropy(hidden·weightᵀ, target) without materialising the logits."""
    return _core.linear_cross_entropy(hidden, weight, target, ignore_index, reduction, int(chunk_size),
                                      float(softcap))


def mse_loss(input, target, reduction="mean"):
    d = input - target
    sq = d * d
    if reduction == "mean":
        return sq.mean()
    if reduction == "sum":
        return sq.sum()
    return sq


__all__ = [n for n in dir() if not n.startswith("_")]

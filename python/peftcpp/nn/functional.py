"""Functional ops with torch.nn.functional's names and signatures, each a
single call into the C++ engine (forward and backward both native)."""
from .. import _core
from .._functions import as_input
from .._functions import log_softmax as _log_softmax_fn
from .._functions import softmax as _softmax_fn


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


def softmax(input, dim=-1, dtype=None):
    return _softmax_fn(input, dim, dtype)


def log_softmax(input, dim=-1, dtype=None):
    return _log_softmax_fn(input, dim, dtype)


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


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):
    """torch's cross_entropy: logits [N, C] (or [N, C, d1, ...]) against class
    indices [N] ([N, d1, ...]) or class probabilities of the logits' shape."""
    input = as_input(input, "cross_entropy")
    target = as_input(target, "cross_entropy", "target")
    if weight is not None or size_average is not None or reduce is not None:
        raise ValueError("[cross_entropy] weight, size_average and reduce are not supported (use reduction)")
    if input.ndim < 1 or input.ndim == 1 and target.ndim != 0:
        raise ValueError(f"[cross_entropy] expected logits [N, C] or [N, C, d1, ...], got {list(input.shape)}")
    if input.ndim == 1:  # one sample without a batch dimension
        return cross_entropy(input.unsqueeze(0), target.reshape(1), None, None, ignore_index, None, reduction,
                             label_smoothing)
    if target.dtype.is_floating_point:  # class probabilities
        if tuple(target.shape) != tuple(input.shape):
            raise ValueError(f"[cross_entropy] probability targets {list(target.shape)} must have the logits' "
                             f"shape {list(input.shape)}")
        c = input.shape[1]
        if label_smoothing:
            target = target * (1.0 - label_smoothing) + label_smoothing / c
        loss = -(_core.log_softmax(input, 1) * target).sum(1)
        return _reduce(loss, reduction, "cross_entropy")
    if input.ndim > 2:  # [N, C, d1, ...]: classes last, then one row per position
        if tuple(target.shape) != (input.shape[0],) + tuple(input.shape[2:]):
            raise ValueError(f"[cross_entropy] targets {list(target.shape)} do not match logits "
                             f"{list(input.shape)} ([N, d1, ...] expected)")
        dims = [0] + list(range(2, input.ndim)) + [1]
        flat = _core.reshape(_core.contiguous(_core.permute(input, dims)), [-1, input.shape[1]])
        out = _core.cross_entropy(flat, _core.reshape(target, [-1]), ignore_index, reduction, float(label_smoothing))
        return out if reduction != "none" else _core.reshape(out, list(target.shape))
    return _core.cross_entropy(input, target, ignore_index, reduction, float(label_smoothing))


def _reduce(loss, reduction, op):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"[{op}] reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    """mean(max(x, 0) - x*y + log(1 + exp(-|x|))), torch's stable form."""
    input = as_input(input, "binary_cross_entropy_with_logits")
    target = as_input(target, "binary_cross_entropy_with_logits", "target")
    if pos_weight is not None:
        raise ValueError("[binary_cross_entropy_with_logits] pos_weight is not supported")
    if not target.dtype.is_floating_point:
        target = target.float()
    loss = _core.relu(input) - input * target + _core.log(_core.exp(-_core.abs(input)) + 1.0)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def linear_cross_entropy(hidden, weight, target, ignore_index=-100, reduction="mean", chunk_size=4096,
                         softcap=0.0):
    """cross_entropy(hidden·weightᵀ, target) without materialising the logits."""
    return _core.linear_cross_entropy(hidden, weight, target, ignore_index, reduction, int(chunk_size),
                                      float(softcap))


def mse_loss(input, target, reduction="mean"):
    d = as_input(input, "mse_loss") - as_input(target, "mse_loss", "target")
    return _reduce(d * d, reduction, "mse_loss")


__all__ = [n for n in dir() if not n.startswith("_")]

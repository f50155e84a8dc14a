"""What every model's forward and generate() turn their inputs into: token
ids as int64 tensors or numpy arrays, the additive padding mask, default
positions, and the decoder's embeddings + cache + mask preamble."""
import numpy as np

from .. import _core
from .cache import DynamicCache


def as_ids(x):
    """input ids as an int64 peftcpp tensor [B, T] from a tensor, array or list."""
    if isinstance(x, _core.Tensor):
        t = x if x.dtype in (_core.DType.int64, _core.DType.int32) else None
        if t is None:
            raise TypeError(f"input_ids must be integer token ids, got {x.dtype.name}")
        return t if t.ndim == 2 else t.reshape(1, -1)
    a = np.asarray(x, dtype=np.int64)
    if a.ndim == 1:
        a = a[None]
    return _core.from_numpy(np.ascontiguousarray(a), copy=True)


def ids_numpy(x):
    """input ids as an int64 numpy array [B, T] (None stays None)."""
    if x is None:
        return None
    return as_ids(x).numpy().astype(np.int64)


def as_numpy(x, dtype=np.int64):
    """A tensor, array or list as a numpy array of `dtype` (None stays None)."""
    if x is None:
        return None
    if hasattr(x, "numpy"):
        x = x.numpy()
    return np.asarray(x, dtype=dtype)


def padding_mask(attention_mask, total_len):
    """Additive [B, 1, 1, S] mask (0 keep, -inf pad) from a [B, S] 0/1 mask,
    or None when nothing is padded."""
    if attention_mask is None:
        return None
    m = attention_mask.numpy() if hasattr(attention_mask, "numpy") else np.asarray(attention_mask)
    if m.shape[-1] != total_len:
        raise ValueError(f"attention_mask has {m.shape[-1]} positions but the keys have {total_len}")
    if m.all():
        return None
    add = np.where(m[:, None, None, :] > 0, 0.0, -np.inf).astype(np.float32)
    return _core.from_numpy(np.ascontiguousarray(add))


def position_ids_for(attention_mask, past_len, seq_len, batch):
    """Positions of the new tokens when the caller gives none: past_len ..
    past_len+seq_len-1 for every row, as transformers' forward does (padding
    does not shift them; generate() passes mask-derived positions itself)."""
    return np.broadcast_to(np.arange(past_len, past_len + seq_len), (batch, seq_len))


def decoder_inputs(embed, input_ids, inputs_embeds, attention_mask, position_ids, past_key_values, use_cache):
    """What every decoder's forward starts with: the input embeddings, the
    cache (created when use_cache), positions [B, T] as numpy (0..T-1 after
    the cache unless given) and the additive padding mask over all keys.
    Returns (x, position_ids, past_key_values, mask)."""
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("pass exactly one of input_ids or inputs_embeds")
    x = embed(as_ids(input_ids)) if inputs_embeds is None else inputs_embeds  # x: [B, T, C]
    b, t = x.shape[0], x.shape[1]
    if use_cache and past_key_values is None:
        past_key_values = DynamicCache()
    past = past_key_values.get_seq_length() if past_key_values is not None else 0
    if position_ids is None:
        position_ids = position_ids_for(attention_mask, past, t, b)
    else:
        position_ids = position_ids.numpy() if hasattr(position_ids, "numpy") else np.asarray(position_ids)
    return x, position_ids, past_key_values, padding_mask(attention_mask, past + t)  # mask: [B, 1, 1, S]

"""One tensor <-> ggml blocks: float32 arrays to and from the block formats
GGUF stores tensors in (whole-file quantization is ``file_quantization``).

    raw = quantize_tensor(weight, "Q4_K")                 # bytes, as llama-quantize writes them
    w2 = dequantize_tensor(raw, "Q4_K", weight.shape)     # float32 numpy array

Quantization is native (``peftcpp._core.quantize_rows``) and byte-identical
to ggml's reference quantizers (what ``llama-quantize`` runs without an
importance matrix); rows are quantized along the last axis, which is GGUF's
``ne[0]``. Supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K,
Q3_K, Q4_K, Q5_K, Q6_K. Dequantization also reads the other types
``peftcpp._core.gguf_dequantize`` knows. Both lists come from the engine's
ggml type table (``peftcpp._core.ggml_types()``).
"""
from __future__ import annotations

import numpy as np

from .. import _core

__all__ = ["quantize_tensor", "dequantize_tensor", "GGML_TYPES", "QUANTIZABLE_TYPES"]

# name -> _core.GGMLTypeTraits (id, block_size, type_size, quantizable, dequantizable)
GGML_TYPES = {t.name: t for t in _core.ggml_types()}
QUANTIZABLE_TYPES = tuple(name for name, t in GGML_TYPES.items() if t.quantizable)


def _type_name(type_name, op):
    """Canonical ggml type name from a str ('q4_k' -> 'Q4_K') or an enum
    with a ``name`` (gguf.GGMLQuantizationType.Q4_K)."""
    name = type_name if isinstance(type_name, str) else getattr(type_name, "name", None)
    if not isinstance(name, str):
        raise TypeError(f"[{op}] type must be a ggml type name such as 'Q4_K', got {type_name!r}")
    upper = name.upper()
    if upper not in GGML_TYPES:
        raise ValueError(f"[{op}] unknown ggml type {name!r}")
    return upper


def _as_float32(array, op):
    """A float32 numpy array from numpy input or a peftcpp Tensor."""
    if isinstance(array, _core.Tensor):
        array = array.numpy()  # bfloat16 comes back widened to float32
    arr = np.asarray(array)
    if not (np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"[{op}] expected a floating-point array, got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


def _shape_tuple(shape, op):
    try:
        dims = tuple(int(d) for d in shape)
    except TypeError:
        raise TypeError(f"[{op}] shape must be a sequence of ints, got {shape!r}") from None
    if not dims or any(d < 0 for d in dims):
        raise ValueError(f"[{op}] shape must have at least one dimension and no negative sizes, got {dims}")
    return dims


def quantize_tensor(array, type_name, nthreads=None) -> bytes:
    """Quantizes ``array`` (numpy or peftcpp Tensor, shape (..., n)) to ggml
    type ``type_name`` row by row along the last axis and returns the raw
    bytes (rows * n / block_size blocks). ``n`` must be a multiple of the
    type's block size (32, or 256 for the K types). ``nthreads``: None or
    <= 0 uses the engine's thread count; the bytes never depend on it."""
    op = "quantize_tensor"
    name = _type_name(type_name, op)
    if name not in QUANTIZABLE_TYPES:
        raise ValueError(f"[{op}] quantizing to {name} is not supported (supported: {', '.join(QUANTIZABLE_TYPES)})")
    arr = _as_float32(array, op)
    if arr.ndim == 0:
        raise ValueError(f"[{op}] expected an array with at least one dimension, got a scalar")
    block = GGML_TYPES[name].block_size
    n = arr.shape[-1]
    if n % block:
        raise ValueError(f"[{op}] {name} quantizes blocks of {block} values along the last axis: shape "
                         f"{tuple(arr.shape)} has rows of {n}, not a multiple of {block}")
    if arr.size == 0:
        return b""
    rows = np.ascontiguousarray(arr.reshape(-1, n))
    out = _core.quantize_rows(rows, name, 0 if nthreads is None else int(nthreads))
    return out.tobytes()


def dequantize_tensor(data, type_name, shape) -> np.ndarray:
    """Decodes raw ggml bytes of type ``type_name`` (bytes, bytearray,
    memoryview or a uint8 numpy array) into a float32 numpy array of
    ``shape`` (row-major, rows along the last axis as in
    :func:`quantize_tensor`)."""
    op = "dequantize_tensor"
    name = _type_name(type_name, op)
    traits = GGML_TYPES[name]
    block, type_size = traits.block_size, traits.type_size
    if not traits.dequantizable:
        raise ValueError(f"[{op}] dequantizing {name} is not supported")
    dims = _shape_tuple(shape, op)
    if dims[-1] % block:
        raise ValueError(f"[{op}] {name} stores blocks of {block} values along the last axis: shape {dims} has "
                         f"rows of {dims[-1]}, not a multiple of {block}")
    if isinstance(data, np.ndarray):
        raw = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    else:
        raw = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    count = int(np.prod(dims, dtype=np.int64))
    want = count // block * type_size
    if raw.size != want:
        raise ValueError(f"[{op}] {name} data for shape {dims} must be {want} bytes, got {raw.size}")
    if count == 0:
        return np.zeros(dims, dtype=np.float32)
    flat = _core.gguf_dequantize(raw, name).numpy()
    return flat.reshape(dims)

"""Whole-file GGUF quantization, as ``llama-quantize in.gguf out.gguf Q4_K_M``
(no importance matrix) does it: same tensor order, same per-tensor types
(output/attn_v/ffn_down rules and block-size fallbacks), same bytes.

    from peftcpp.gguf import quantize
    quantize("model.f16.gguf", "model.Q4_K_M.gguf", ftype="Q4_K_M")

The work runs in C++ (``peftcpp._core.quantize_gguf``) on ``nthreads`` threads;
the output appears atomically (an error leaves no file behind). One tensor's
quantization is ``tensor_quantization``.
"""
from __future__ import annotations

import os

from .. import _core
from .progress import TensorProgress, progress_callback

__all__ = ["quantize", "tensor_types", "FILE_TYPES"]

# llama.cpp file types this module can write: name -> llama_ftype id, in id
# order (the engine's table, _core.llama_file_types()).
FILE_TYPES = {f.name: f.id for f in _core.llama_file_types()}


def _ftype_arg(ftype):
    if isinstance(ftype, str):
        return ftype.upper()
    if isinstance(ftype, int) and not isinstance(ftype, bool):
        return ftype
    raise TypeError(f"ftype must be a name such as 'Q4_K_M' or a llama_ftype id, got {type(ftype).__name__}")


def quantize(in_file, out_file, ftype="Q4_K_M", nthreads=None, progress=True):
    """Quantizes the model GGUF ``in_file`` (F32/F16/BF16 or already quantized
    tensors) to ``out_file`` with file type ``ftype`` (a name from
    ``FILE_TYPES`` or its id). ``nthreads``: worker threads (None: the
    engine's thread count). ``progress``: show a tqdm bar over the tensors.
    Returns the output path."""
    in_file, out_file = os.fspath(in_file), os.fspath(out_file)
    if not os.path.isfile(in_file):
        raise FileNotFoundError(f"GGUF file not found: {in_file}")
    if os.path.abspath(in_file) == os.path.abspath(out_file):
        raise ValueError(f"quantize: the output must differ from the input ({in_file})")
    nthreads = 0 if nthreads is None else int(nthreads)
    if nthreads < 0:
        raise ValueError(f"nthreads must be positive, got {nthreads}")

    callback = progress_callback(progress, desc=f"quantize {ftype}")
    try:
        _core.quantize_gguf(in_file, out_file, _ftype_arg(ftype), nthreads, callback)
    finally:
        if isinstance(callback, TensorProgress):
            callback.close()
    return out_file


def tensor_types(in_file, ftype="Q4_K_M"):
    """The plan without writing: ``[(tensor_name, type_name), ...]`` in output order."""
    return [tuple(x) for x in _core.gguf_tensor_types(os.fspath(in_file), _ftype_arg(ftype))]

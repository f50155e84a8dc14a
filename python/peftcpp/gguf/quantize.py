"""Whole-file GGUF quantization, as ``llama-quantize in.gguf out.gguf Q4_K_M``
(no importance matrix) does it: same tensor order, same per-tensor types
(output/attn_v/ffn_down rules and block-size fallbacks), same bytes.

    from peftcpp.gguf import quantize
    quantize("model.f16.gguf", "model.Q4_K_M.gguf", ftype="Q4_K_M")

The work runs in C++ (``peftcpp._core.quantize_gguf``) on ``nthreads`` threads;
the output appears atomically (an error leaves no file behind).
"""
from __future__ import annotations

import os

__all__ = ["quantize", "tensor_types", "FILE_TYPES"]

# llama.cpp file types (llama_ftype ids) this module can write.
FILE_TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10,
              "Q3_K_S": 11, "Q3_K_M": 12, "Q3_K_L": 13, "Q4_K_S": 14, "Q4_K_M": 15, "Q5_K_S": 16, "Q5_K_M": 17,
              "Q6_K": 18, "BF16": 32}


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
    from .. import _core

    in_file, out_file = os.fspath(in_file), os.fspath(out_file)
    if not os.path.isfile(in_file):
        raise FileNotFoundError(f"GGUF file not found: {in_file}")
    if os.path.abspath(in_file) == os.path.abspath(out_file):
        raise ValueError(f"quantize: the output must differ from the input ({in_file})")
    nthreads = 0 if nthreads is None else int(nthreads)
    if nthreads < 0:
        raise ValueError(f"nthreads must be positive, got {nthreads}")

    bar = None
    callback = None
    if progress:
        from tqdm.auto import tqdm

        state = {}

        def callback(done, total):
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, unit="tensor", desc=f"quantize {ftype}")
            bar.update(done - state.get("done", 0))
            state["done"] = done
    try:
        _core.quantize_gguf(in_file, out_file, _ftype_arg(ftype), nthreads, callback)
    finally:
        if bar is not None:
            bar.close()
    return out_file


def tensor_types(in_file, ftype="Q4_K_M"):
    """The plan without writing: ``[(tensor_name, type_name), ...]`` in output order."""
    from .. import _core

    return [tuple(x) for x in _core.gguf_tensor_types(os.fspath(in_file), _ftype_arg(ftype))]

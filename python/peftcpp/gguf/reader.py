"""Reading GGUF files: a thin Python face on the native reader
(``peftcpp._core.GGUFFile``: mapped read-only, validated on open).

    with GGUFFile("model.gguf") as f:
        f.metadata["general.architecture"]         # "llama"
        f.tensors[0]                               # TensorInfo(name, type, shape)
        f.tensor("token_embd.weight")              # numpy array (row-major shape)
"""
from __future__ import annotations

import os
from collections import namedtuple

import numpy as np
from .. import _core

__all__ = ["GGUFFile", "TensorInfo"]

TensorInfo = namedtuple("TensorInfo", ["name", "type", "shape"])


class GGUFFile:
    """A GGUF file. ``metadata``: dict key -> value in file order;
    ``metadata_types``: key -> GGUF type name; ``tensors``: list of
    :class:`TensorInfo` (``shape`` row-major, i.e. ggml's ne reversed)."""

    def __init__(self, path):

        self.path = os.fspath(path)
        self._f = _core.GGUFFile(self.path)
        self._infos = {ti["name"]: ti for ti in self._f.tensor_infos}

    @property
    def version(self):
        return self._f.version

    @property
    def alignment(self):
        return self._f.alignment

    @property
    def metadata(self):
        return self._f.metadata

    @property
    def metadata_types(self):
        return self._f.metadata_types

    @property
    def tensors(self):
        return [TensorInfo(ti["name"], ti["type"], tuple(ti["shape"])) for ti in self._infos.values()]

    def __contains__(self, name):
        return name in self._infos

    def __len__(self):
        return len(self._infos)

    def tensor(self, name, dequantize=True):
        """The tensor as a numpy array: float32/float16 as stored (bfloat16
        widened to float32), quantized types dequantized to float32; with
        ``dequantize=False`` quantized tensors come back as their raw bytes."""
        if name not in self._infos:
            raise KeyError(f"{self.path}: no tensor named '{name}'")
        ti = self._infos[name]
        if ti["type"] not in ("F32", "F16", "BF16", "I32", "I64") and not dequantize:
            return np.array(self._f.raw(name))
        return np.array(self._f.tensor(name, True).numpy())  # a copy: outlives the mapping

    def close(self):
        self._f = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        arch = self.metadata.get("general.architecture", "?") if self._f is not None else "closed"
        return f"GGUFFile({self.path!r}, arch={arch!r}, tensors={len(self._infos)})"

"""safetensors files, with the ``safetensors.numpy`` / ``safetensors.torch`` API.

Loading is zero-copy: the file is memory-mapped once, read-only, and every
tensor views its slice of the mapping (the mapping lives as long as any of
them). Saving is atomic: the data goes to a temporary file that is fsynced and
renamed over ``filename``, so an existing file is never left half-written.
"""
import os
from collections.abc import Mapping

import numpy as np

from . import _core
from ._tensor import Tensor

__all__ = ["load_file", "load_file_with_metadata", "save_file"]

def load_file(filename):
    """``{name: Tensor}`` of a safetensors file (read-only views of its mmap;
    ``.clone()`` one before modifying it in place)."""
    return load_file_with_metadata(filename)[0]


def load_file_with_metadata(filename):
    """``({name: Tensor}, {key: str})``: the tensors and the ``__metadata__``."""
    return _core.load_safetensors(os.fspath(filename))


def _as_tensor(name, value):
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        try:
            return _core.from_numpy(np.ascontiguousarray(value), copy=False)
        except TypeError as e:
            raise TypeError(f"[save_file] tensor '{name}': {e}") from None
    raise TypeError(f"[save_file] tensor '{name}' is a {type(value).__name__}, expected a peftcpp Tensor "
                    "or a numpy array")


def save_file(tensors, filename, metadata=None):
    """Writes ``{name: Tensor}`` (numpy arrays are accepted too) and optional
    string metadata to ``filename``, atomically."""
    if not isinstance(tensors, Mapping):
        raise TypeError(f"[save_file] expected a dict of tensors, got {type(tensors).__name__}")
    converted = {}
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"[save_file] tensor names must be str, got {name!r}")
        converted[name] = _as_tensor(name, value)
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise TypeError(f"[save_file] metadata must be a dict of str to str, got {type(metadata).__name__}")
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"[save_file] metadata must map str to str; got {k!r}: {type(v).__name__}")
        metadata = dict(metadata)
    _core.save_safetensors(os.fspath(filename), converted, metadata)


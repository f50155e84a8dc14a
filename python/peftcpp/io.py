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

__all__ = ["load_file", "load_file_with_metadata", "save_file", "write_text_atomic", "write_json_atomic", "read_json_object"]


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


def write_text_atomic(path, text):
    """Writes text to a temporary file beside `path`, fsyncs it and renames
    it over `path`: readers see the old file or the new one, never a part."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json_atomic(path, obj, indent=2, sort_keys=False, ensure_ascii=False, trailing_newline=True):
    """json.dumps(obj) (serialised before the file is touched) written with
    write_text_atomic."""
    import json
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, ensure_ascii=ensure_ascii)
    write_text_atomic(path, text + ("\n" if trailing_newline else ""))


def read_json_object(path):
    """The JSON object in `path`; errors name the file, line and column."""
    import json
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(d).__name__}")
    return d

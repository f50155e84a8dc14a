"""Tokenizers with transformers' API: ``AutoTokenizer.from_pretrained(...)``.

The tokenization itself is the Rust ``tokenizers`` library (``tokenizer.json``);
chat templates are rendered with ``jinja2`` in the same sandboxed environment
transformers uses. Neither transformers nor torch is imported.

    tok = AutoTokenizer.from_pretrained("path/or/repo-id")
    batch = tok(["hi", "hello there"], padding=True, return_tensors="pc")
    ids = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True)

Modules: ``tokenizer`` (the class: construction, vocabulary, decoding, saving, loading) built from
``special_tokens``, ``encoding``, ``padding`` and ``chat_template`` (rendering; its jinja2 environment is
``template_env``); ``batch_encoding`` (call results), ``files`` (finding and reading tokenizer files),
``auto`` (``AutoTokenizer``).
"""
from .auto import AutoTokenizer
from .batch_encoding import BatchEncoding
from .chat_template import render_chat  # noqa: F401 - names of the former tokenization module
from .files import (CHAT_TEMPLATE_DIR, CHAT_TEMPLATE_FILE, CHAT_TEMPLATE_JSON_FILE,  # noqa: F401
                    SPECIAL_TOKENS_MAP_FILE, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE)
from .padding import LARGE_INTEGER, VERY_LARGE_INTEGER  # noqa: F401
from .special_tokens import SPECIAL_TOKENS_ATTRIBUTES  # noqa: F401
from .tokenizer import PreTrainedTokenizer, PreTrainedTokenizerFast

__all__ = ["AutoTokenizer", "PreTrainedTokenizer", "PreTrainedTokenizerFast", "BatchEncoding"]

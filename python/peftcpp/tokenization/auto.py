"""``AutoTokenizer``: transformers' entry point, returning a :class:`PreTrainedTokenizer`."""
from __future__ import annotations

from .tokenizer import PreTrainedTokenizer

__all__ = ["AutoTokenizer"]


class AutoTokenizer:
    """``AutoTokenizer.from_pretrained(path_or_repo_id, **kwargs)`` → :class:`PreTrainedTokenizer`."""

    def __init__(self):
        raise EnvironmentError("AutoTokenizer is designed to be instantiated using "
                               "`AutoTokenizer.from_pretrained(pretrained_model_name_or_path)`.")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path=None, *args, **kwargs):
        return PreTrainedTokenizer.from_pretrained(pretrained_model_name_or_path, **kwargs)

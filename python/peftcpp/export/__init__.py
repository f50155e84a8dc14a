"""Exporting fine-tuned models: fuse (adapter merged into the base, saved as
a Hugging Face folder), and the check that an exported GGUF file still
answers as base + adapter (gguf_agreement)."""
from .agreement import gguf_agreement
from .fuse import fuse

__all__ = ["fuse", "gguf_agreement"]

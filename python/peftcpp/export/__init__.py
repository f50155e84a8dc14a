"""Exporting fine-tuned models: fuse (adapter merged into the base, saved as
a Hugging Face folder)."""
from .fuse import fuse

__all__ = ["fuse"]

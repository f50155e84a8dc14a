"""Optimizers (AdamW, SGD), gradient clipping and learning-rate schedules,
with torch's and transformers' APIs."""
from . import lr_scheduler
from .lr_scheduler import *  # noqa: F401,F403 - the schedules, as torch.optim.lr_scheduler and transformers name them
from .optimizer import SGD, AdamW, Optimizer, clip_grad_norm_

__all__ = ["Optimizer", "AdamW", "SGD", "clip_grad_norm_", "lr_scheduler", *lr_scheduler.__all__]

"""Optimizers (AdamW, SGD), gradient clipping and learning-rate schedules,
with torch's and transformers' APIs."""
from . import lr_scheduler
from .lr_scheduler import (
    LambdaLR,
    get_constant_schedule,
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
    get_scheduler,
)
from .optimizer import SGD, AdamW, Optimizer, clip_grad_norm_

__all__ = [
    "Optimizer",
    "AdamW",
    "SGD",
    "clip_grad_norm_",
    "lr_scheduler",
    "LambdaLR",
    "get_constant_schedule",
    "get_constant_schedule_with_warmup",
    "get_linear_schedule_with_warmup",
    "get_cosine_schedule_with_warmup",
    "get_scheduler",
]

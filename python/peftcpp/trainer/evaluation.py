"""What Trainer.evaluate() and Trainer.predict() hand the user, with
transformers' names: EvalPrediction (the argument of compute_metrics),
PredictionOutput / EvalLoopOutput, the batches' predictions and labels
gathered into numpy arrays (rows of different widths padded with -100, as
transformers' nested_concat), and the metric names' prefix rule."""
import numbers
from typing import NamedTuple, Optional

import numpy as np

__all__ = ["EvalPrediction", "EvalLoopOutput", "PredictionOutput", "nested_concat", "nested_numpify",
           "prefixed_metrics"]


class EvalPrediction:
    """``predictions`` and ``label_ids`` (numpy arrays, or tuples of them);
    unpacks as ``predictions, labels = eval_pred``."""

    def __init__(self, predictions, label_ids, inputs=None, losses=None):
        self.predictions = predictions
        self.label_ids = label_ids
        self.inputs = inputs
        self.losses = losses
        self.elements = (self.predictions, self.label_ids)
        if self.inputs is not None:
            self.elements += (self.inputs,)
        if self.losses is not None:
            self.elements += (self.losses,)

    def __iter__(self):
        return iter(self.elements)

    def __getitem__(self, idx):
        if idx < 0 or idx >= len(self.elements):
            raise IndexError("tuple index out of range")
        return self.elements[idx]


class EvalLoopOutput(NamedTuple):
    predictions: object
    label_ids: object
    metrics: Optional[dict]
    num_samples: Optional[int]


class PredictionOutput(NamedTuple):
    predictions: object
    label_ids: object
    metrics: Optional[dict]


def nested_numpify(x):
    """Tensors (peftcpp or anything with .numpy()), lists and tuples of them → numpy."""
    if isinstance(x, (list, tuple)) and x and not isinstance(x[0], numbers.Number):
        return type(x)(nested_numpify(t) for t in x)
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        return np.asarray(x.numpy())
    return np.asarray(x)


def _pad_and_concatenate(a, b, padding_index=-100):
    """Rows of a then b; when their second dimensions differ (a causal LM's
    sequence lengths), the narrower is padded with padding_index."""
    if a.ndim == 1 or a.shape[1:] == b.shape[1:]:
        return np.concatenate([a, b], axis=0)
    shape = (a.shape[0] + b.shape[0], max(a.shape[1], b.shape[1])) + a.shape[2:]
    out = np.full(shape, padding_index, dtype=np.result_type(a, b))
    out[:a.shape[0], :a.shape[1]] = a
    out[a.shape[0]:, :b.shape[1]] = b
    return out


def nested_concat(gathered, new, padding_index=-100):
    """transformers' nested_concat on numpy arrays (and tuples of them)."""
    if gathered is None:
        return new
    if isinstance(new, (list, tuple)):
        return type(new)(nested_concat(g, n, padding_index) for g, n in zip(gathered, new))
    return _pad_and_concatenate(gathered, new, padding_index)


def prefixed_metrics(metrics, prefix):
    """Every key starts with ``<prefix>_`` (transformers' rule); numpy
    scalars become Python numbers so the log and trainer_state.json hold
    plain JSON."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, np.generic) or (isinstance(v, np.ndarray) and v.ndim == 0):
            v = v.item()
        out[k if k.startswith(f"{prefix}_") else f"{prefix}_{k}"] = v
    return out

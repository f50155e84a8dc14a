"""Language-model losses from the final hidden states, with the output
projection fused in (F.linear_cross_entropy never builds the logits), and
the sequence-classification losses of transformers' problem types."""
import numpy as np

from .. import _core
from ..nn import functional as F
from .model_inputs import as_ids


def causal_lm_loss(hidden, weight, labels, softcap=0.0, ignore_index=-100):
    """Mean next-token cross-entropy over non-ignored labels: position t
    predicts labels[t + 1]."""
    b, t, c = hidden.shape  # hidden: [B, T, C], weight: [V, C], labels: [B, T]
    lab = labels.numpy() if hasattr(labels, "numpy") else np.asarray(labels)
    shifted = np.full((b, t), ignore_index, dtype=np.int64)  # shifted: [B, T], last position ignored
    shifted[:, :-1] = lab[:, 1:]
    return F.linear_cross_entropy(hidden.reshape(b * t, c), weight, _core.from_numpy(shifted.reshape(-1)),
                                  ignore_index=ignore_index, softcap=softcap)  # scalar


def seq2seq_lm_loss(hidden, weight, labels, ignore_index=-100):
    """Mean cross-entropy of the decoder's outputs against labels at the same
    positions (the decoder inputs are the labels shifted right)."""
    b, t, c = hidden.shape  # hidden: [B, T, C], weight: [V, C]
    lab = as_ids(labels)  # lab: [B, T]
    if tuple(lab.shape) != (b, t):
        raise ValueError(f"labels have shape {tuple(lab.shape)} but the decoder produced {(b, t)} positions")
    return F.linear_cross_entropy(hidden.reshape(b * t, c), weight, lab.reshape(-1), ignore_index=ignore_index)


def _labels_numpy(labels):
    return labels.numpy() if hasattr(labels, "numpy") else np.asarray(labels)


def infer_problem_type(config, labels):
    """transformers' rule, which also sets config.problem_type: one label is
    regression; integer labels single-label; anything else multi-label."""
    if config.problem_type is None:
        if config.num_labels == 1:
            config.problem_type = "regression"
        elif _labels_numpy(labels).dtype.kind in "iu":
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    return config.problem_type


def _as_float(arr):
    return _core.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def sequence_classification_loss(logits, labels, config, ignore_index=-100):
    """The loss of transformers' ForSequenceClassificationLoss on pooled
    logits [B, L]: MSE (regression), cross-entropy over the labels
    (single_label_classification, ignore_index skipped) or binary
    cross-entropy with logits (multi_label_classification), each a mean."""
    problem = infer_problem_type(config, labels)
    lab = _labels_numpy(labels)
    b, n = logits.shape  # logits: [B, L]
    if problem == "regression":
        if n == 1:  # transformers squeezes both sides
            if lab.size != b:
                raise ValueError(f"labels have shape {lab.shape} but a regression head with num_labels=1 needs "
                                 f"one value per row ({b})")
            d = logits.reshape(b) - _as_float(lab.reshape(b))
        else:
            if lab.shape != (b, n):
                raise ValueError(f"labels have shape {lab.shape} but the logits have {(b, n)} (regression with "
                                 f"num_labels={n})")
            d = logits - _as_float(lab)
        return (d * d).mean()
    if problem == "single_label_classification":
        if lab.dtype.kind not in "iu":
            raise TypeError(f"single_label_classification needs integer class labels, got dtype {lab.dtype}")
        flat = lab.reshape(-1).astype(np.int64)
        if flat.size != b:
            raise ValueError(f"labels have shape {lab.shape} but there are {b} rows of logits (one class id per "
                             "row)")
        bad = (flat != ignore_index) & ((flat < 0) | (flat >= n))
        if bad.any():
            raise ValueError(f"label {int(flat[bad][0])} is out of range for num_labels={n}")
        return F.cross_entropy(logits, _core.from_numpy(np.ascontiguousarray(flat)), ignore_index=ignore_index)
    if lab.shape != (b, n):
        raise ValueError(f"labels have shape {lab.shape} but the logits have {(b, n)} (multi_label_classification: "
                         "one 0/1 target per label)")
    y = _as_float(lab)
    # torch's stable form: max(x, 0) - x*y + log(1 + exp(-|x|))
    return (_core.relu(logits) - logits * y + _core.log(_core.exp(_core.neg(_core.abs(logits))) + 1.0)).mean()

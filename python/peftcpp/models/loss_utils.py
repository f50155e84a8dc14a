"""Language-model losses from the final hidden states, with the output
projection fused in (F.linear_cross_entropy never builds the logits)."""
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

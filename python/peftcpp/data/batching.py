"""Batches of similar token lengths, their padding cost, and padding a batch (the one padder: the trainer's
collators use it).

``length_grouped_batches`` works like transformers' ``LengthGroupedSampler``: shuffle the indices, cut them into
mega-batches of ``mega_batch_mult * batch_size``, sort each mega-batch by length (longest first) and cut it into
batches, then shuffle the batch order. Sequences in a batch have similar lengths, so little compute goes to
padding, while the order stays random from epoch to epoch (pass a different seed per epoch).
"""
from __future__ import annotations

import numpy as np

from .tokenize import IGNORE_INDEX

__all__ = ["length_grouped_batches", "random_batches", "padding_fraction", "cut_batches", "padded_width", "pad_rows",
           "pad_batch", "as_id_list"]


def _check(lengths, batch_size):
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if lengths.size and lengths.min() < 0:
        raise ValueError("lengths must be non-negative")
    return lengths, int(batch_size)


def length_grouped_batches(lengths, batch_size, seed=0, shuffle=True, mega_batch_mult=50, drop_last=False):
    """Lists of indices into ``lengths``, each batch holding sequences of similar length.

    shuffle=False: all indices sorted by length (longest first, ties by index) and cut in order (deterministic,
    for evaluation). drop_last drops a final incomplete batch.
    """
    lengths, batch_size = _check(lengths, batch_size)
    n = lengths.size
    if n == 0:
        return []
    if not shuffle:
        order = np.lexsort((np.arange(n), -lengths))
        batches = [order[i:i + batch_size].tolist() for i in range(0, n, batch_size)]
    else:
        rng = np.random.default_rng(seed)
        perm = rng.permutation(n)
        mega = max(1, int(mega_batch_mult)) * batch_size
        batches = []
        for s in range(0, n, mega):
            chunk = perm[s:s + mega]
            chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
            batches.extend(chunk[i:i + batch_size].tolist() for i in range(0, chunk.size, batch_size))
        # an incomplete batch can only be the last one of the last mega-batch
        if drop_last and len(batches[-1]) < batch_size:
            batches.pop()
        batches = [batches[i] for i in rng.permutation(len(batches))]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def cut_batches(order, batch_size, drop_last=False):
    """``order`` (indices) cut into consecutive batches of ``batch_size``; ``drop_last`` drops a short last one."""
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def random_batches(n, batch_size, seed=0, drop_last=False):
    """Plain shuffled batches of ``range(n)`` (the baseline ``padding_fraction`` is compared with)."""
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    perm = np.random.default_rng(seed).permutation(int(n))
    return [b.tolist() for b in cut_batches(perm, int(batch_size), drop_last)]


def padded_width(lengths, max_length=None, pad_to_multiple_of=None):
    """The width a batch of these lengths is padded to: the longest (at most ``max_length``), rounded up to a
    multiple of ``pad_to_multiple_of``."""
    width = int(max(lengths)) if len(lengths) else 0
    if max_length is not None:
        width = min(width, int(max_length))
    if pad_to_multiple_of:
        m = int(pad_to_multiple_of)
        width = -(-width // m) * m
    return width


def padding_fraction(lengths, batches, pad_to_multiple_of=None):
    """Fraction of positions in the padded batches that are padding (0.0 = no waste)."""
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    total = pad = 0
    for batch in batches:
        if len(batch) == 0:
            continue
        ls = lengths[np.asarray(batch, dtype=np.int64)]
        width = padded_width(ls, pad_to_multiple_of=pad_to_multiple_of)
        total += width * len(batch)
        pad += width * len(batch) - int(ls.sum())
    return pad / total if total else 0.0


def as_id_list(x):
    """A row of ids (list, numpy array or tensor) as a Python list."""
    if hasattr(x, "tolist"):
        x = x.tolist()
    return list(x)


def pad_rows(rows, value, width, padding_side="right"):
    """Rows of ids (each at most ``width`` long) as one ``(len(rows), width)`` int64 array filled with ``value``."""
    out = np.full((len(rows), int(width)), value, dtype=np.int64)
    for r, row in enumerate(rows):
        n = len(row)
        out[r, slice(0, n) if padding_side == "right" else slice(width - n, width)] = row
    return out


def _example_rows(i, item, label_pad_token_id, max_length):
    if "input_ids" not in item:
        raise KeyError(f"example {i} has no 'input_ids' (keys: {sorted(item)})")
    ids = as_id_list(item["input_ids"])
    mask = item.get("attention_mask")
    mask = [1] * len(ids) if mask is None else as_id_list(mask)
    labels = item.get("labels")
    # without labels every attended token is a target
    labels = [t if m == 1 else label_pad_token_id for t, m in zip(ids, mask)] if labels is None \
        else as_id_list(labels)
    if len(labels) != len(ids) or len(mask) != len(ids):
        raise ValueError(f"example {i}: labels/attention_mask length ({len(labels)}/{len(mask)}) differs from "
                         f"input_ids ({len(ids)})")
    if max_length is not None:
        ids, labels, mask = ids[:int(max_length)], labels[:int(max_length)], mask[:int(max_length)]
    return ids, labels, mask


def pad_batch(items, pad_token_id=0, pad_to_multiple_of=None, max_length=None, padding_side="right",
              label_pad_token_id=IGNORE_INDEX):
    """Pad a list of examples into numpy int64 arrays ``input_ids``, ``labels``, ``attention_mask`` (B x W).

    Items are dicts with ``input_ids`` and optionally ``labels`` (default: the input ids where the attention mask
    is 1) and ``attention_mask``. Padding positions get label -100 and attention 0, so they are never training
    targets, whatever ``pad_token_id`` is (it may equal the end-of-turn token). ``max_length`` truncates longer
    rows; the width is the longest row rounded up to ``pad_to_multiple_of``.
    """
    if not items:
        raise ValueError("pad_batch needs at least one example")
    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
    pad_token_id = 0 if pad_token_id is None else int(pad_token_id)
    rows = [_example_rows(i, item, int(label_pad_token_id), max_length) for i, item in enumerate(items)]
    width = padded_width([len(r[0]) for r in rows], max_length, pad_to_multiple_of)
    ids, labels, mask = zip(*rows)
    return {"input_ids": pad_rows(ids, pad_token_id, width, padding_side),
            "attention_mask": pad_rows(mask, 0, width, padding_side),
            "labels": pad_rows(labels, int(label_pad_token_id), width, padding_side)}

"""Batches of similar token lengths, their padding cost, and padding a batch.

``length_grouped_batches`` works like transformers' ``LengthGroupedSampler``: shuffle the indices, cut them into
mega-batches of ``mega_batch_mult * batch_size``, sort each mega-batch by length (longest first) and cut it into
batches, then shuffle the batch order. Sequences in a batch have similar lengths, so little compute goes to
padding, while the order stays random from epoch to epoch (pass a different seed per epoch).
"""
from __future__ import annotations

import numpy as np

from .tokenize import IGNORE_INDEX

__all__ = ["length_grouped_batches", "random_batches", "padding_fraction", "pad_batch"]


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


def random_batches(n, batch_size, seed=0, drop_last=False):
    """Plain shuffled batches of ``range(n)`` (the baseline ``padding_fraction`` is compared with)."""
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    perm = np.random.default_rng(seed).permutation(int(n))
    batches = [perm[i:i + batch_size].tolist() for i in range(0, int(n), int(batch_size))]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def _padded_len(length, pad_to_multiple_of):
    if pad_to_multiple_of:
        m = int(pad_to_multiple_of)
        return -(-length // m) * m
    return length


def padding_fraction(lengths, batches, pad_to_multiple_of=None):
    """Fraction of positions in the padded batches that are padding (0.0 = no waste)."""
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    total = pad = 0
    for batch in batches:
        if len(batch) == 0:
            continue
        ls = lengths[np.asarray(batch, dtype=np.int64)]
        width = _padded_len(int(ls.max()), pad_to_multiple_of)
        total += width * len(batch)
        pad += width * len(batch) - int(ls.sum())
    return pad / total if total else 0.0


def pad_batch(items, pad_token_id=0, pad_to_multiple_of=None, max_length=None, padding_side="right"):
    """Pad a list of examples into numpy int64 arrays ``input_ids``, ``labels``, ``attention_mask`` (B x W).

    Items are dicts with ``input_ids`` and optionally ``labels`` (default: a copy of ``input_ids``) and
    ``attention_mask``. Padding positions get label -100 and attention 0, so they are never training targets,
    whatever ``pad_token_id`` is (it may equal the end-of-turn token). ``max_length`` truncates longer rows.
    """
    if not items:
        raise ValueError("pad_batch needs at least one example")
    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
    pad_token_id = 0 if pad_token_id is None else int(pad_token_id)
    rows = []
    for item in items:
        ids = list(item["input_ids"])
        labels = item.get("labels")
        labels = list(ids) if labels is None else list(labels)
        mask = item.get("attention_mask")
        mask = [1] * len(ids) if mask is None else list(mask)
        if len(labels) != len(ids) or len(mask) != len(ids):
            raise ValueError(f"labels/attention_mask length ({len(labels)}/{len(mask)}) differs from input_ids "
                             f"({len(ids)})")
        if max_length is not None:
            ids, labels, mask = ids[:max_length], labels[:max_length], mask[:max_length]
        rows.append((ids, labels, mask))
    width = _padded_len(max(len(r[0]) for r in rows), pad_to_multiple_of)
    if max_length is not None:
        width = min(width, int(max_length))
    b = len(rows)
    input_ids = np.full((b, width), pad_token_id, dtype=np.int64)
    labels = np.full((b, width), IGNORE_INDEX, dtype=np.int64)
    attention_mask = np.zeros((b, width), dtype=np.int64)
    for r, (ids, lab, mask) in enumerate(rows):
        n = len(ids)
        sl = slice(0, n) if padding_side == "right" else slice(width - n, width)
        input_ids[r, sl] = ids
        labels[r, sl] = lab
        attention_mask[r, sl] = mask
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}

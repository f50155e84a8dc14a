"""Training data: JSONL datasets (validation, merging), chat-template tokenization with loss masks, and
length-grouped batching.

    ds = load_dataset("data/", tokenizer, max_seq_length=1024)   # {"train": ..., "validation": ..., "test": ...}
    ds["train"][0]   # {"input_ids": [...], "labels": [... -100 on non-assistant tokens ...], "attention_mask": [...]}
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

from .batching import length_grouped_batches, pad_batch, padding_fraction, random_batches
from .dataset import (DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_MESSAGES, DatasetError, DatasetFileNotFoundError,
                      JsonlSplit, detect_format, merge_datasets, read_dataset, read_jsonl, validate_example)
from .tokenize import IGNORE_INDEX, encode_example, tokenize_example

__all__ = ["DEFAULT_MAX_LINE_BYTES", "DEFAULT_MAX_MESSAGES", "DatasetError", "DatasetFileNotFoundError", "JsonlSplit",
           "TokenizedDataset", "DatasetDict", "IGNORE_INDEX", "load_dataset", "read_dataset", "read_jsonl",
           "validate_example", "detect_format", "merge_datasets", "tokenize_example", "encode_example",
           "length_grouped_batches", "random_batches", "padding_fraction", "pad_batch"]

# folder file split -> Hugging Face split name
SPLIT_NAMES = {"train": "train", "valid": "validation", "test": "test"}


class TokenizedDataset(Sequence):
    """A list-like dataset of tokenized examples (dicts of Python lists), with the raw examples alongside.

    ``ds[i]`` -> {"input_ids", "labels", "attention_mask"}; ``ds["input_ids"]`` -> that column (as in
    ``datasets.Dataset``); ``ds.raw[i]`` -> the JSON object the example came from; ``ds.lengths`` -> token counts.
    """

    def __init__(self, items, raw=None, path=None, format=None, line_numbers=None, num_truncated=0,
                 num_skipped=0, num_dropped=0, max_seq_length=None):
        self._items = list(items)
        self.raw = list(raw) if raw is not None else [None] * len(self._items)
        self.path = path
        self.format = format
        self.line_numbers = list(line_numbers) if line_numbers is not None else []
        self.num_truncated = num_truncated
        self.num_skipped = num_skipped
        self.num_dropped = num_dropped
        self.max_seq_length = max_seq_length

    @property
    def column_names(self):
        return ["input_ids", "labels", "attention_mask"]

    @property
    def lengths(self):
        return [len(item["input_ids"]) for item in self._items]

    @property
    def num_trained_tokens(self):
        return sum(sum(1 for v in item["labels"] if v != IGNORE_INDEX) for item in self._items)

    def __len__(self):
        return len(self._items)

    def __getitem__(self, index):
        if isinstance(index, str):
            if index not in self.column_names:
                raise KeyError(f"No column {index!r}; columns: {self.column_names}")
            return [item[index] for item in self._items]
        if isinstance(index, slice):
            return [self._items[i] for i in range(*index.indices(len(self._items)))]
        return self._items[index]

    def __iter__(self):
        return iter(self._items)

    def __repr__(self):
        return (f"TokenizedDataset(num_rows={len(self)}, format={self.format!r}, path={self.path!r}, "
                f"truncated={self.num_truncated}, skipped={self.num_skipped})")


class DatasetDict(dict):
    """{'train': TokenizedDataset, 'validation': ..., 'test': ...}, like ``datasets.DatasetDict``."""

    def __repr__(self):
        inner = ",\n".join(f"    {k}: {v!r}" for k, v in self.items())
        return "DatasetDict({\n" + inner + "\n})"


def _tokenize_split(split, tokenizer, max_seq_length, mask_prompt, name):
    items, raw, lines = [], [], []
    truncated = dropped = 0
    for obj, lineno in zip(split.examples, split.line_numbers):
        item, length = tokenize_example(obj, tokenizer, max_seq_length, mask_prompt=mask_prompt,
                                        return_truncated=True)
        if max_seq_length is not None and length > max_seq_length:
            truncated += 1
        if all(v == IGNORE_INDEX for v in item["labels"]):
            dropped += 1  # nothing to learn from: would give a 0/0 loss
            continue
        items.append(item)
        raw.append(obj)
        lines.append(lineno)
    total = len(split.examples)
    if truncated:
        warnings.warn(f"{name}: {truncated} of {total} examples truncated to {max_seq_length} tokens "
                      f"({split.path}); raise max_seq_length to keep them whole", stacklevel=3)
    if dropped:
        warnings.warn(f"{name}: dropped {dropped} of {total} examples with no trainable token left "
                      f"(after truncation to {max_seq_length} tokens) in {split.path}", stacklevel=3)
    if not items:
        raise DatasetError(f"{name}: no usable example in {split.path} (all {total} have no trainable token"
                           f"{' after truncation to %d tokens' % max_seq_length if max_seq_length else ''})")
    return TokenizedDataset(items, raw=raw, path=split.path, format=split.format, line_numbers=lines,
                            num_truncated=truncated, num_skipped=split.num_skipped, num_dropped=dropped,
                            max_seq_length=max_seq_length)


def load_dataset(path, tokenizer, max_seq_length=2048, mask_prompt=True, skip_invalid=False,
                 max_line_bytes=DEFAULT_MAX_LINE_BYTES, max_messages=DEFAULT_MAX_MESSAGES):
    """Validate and tokenize a dataset folder (train.jsonl, valid.jsonl, optional test.jsonl) or one .jsonl file.

    Returns a :class:`DatasetDict` with "train", "validation" (and "test" when present) — a single file gives only
    "train". Bad lines raise :class:`DatasetError` listing file:line: problem (``skip_invalid=True`` skips them
    with a warning). Sequences longer than ``max_seq_length`` are truncated and counted in a warning.
    With ``mask_prompt`` (default) only assistant tokens (completion tokens) are training targets.
    Lines over ``max_line_bytes`` bytes and chats with more than ``max_messages`` messages are invalid lines.
    """
    if max_seq_length is not None and int(max_seq_length) < 1:
        raise ValueError(f"max_seq_length must be >= 1, got {max_seq_length}")
    splits = read_dataset(path, skip_invalid=skip_invalid, max_line_bytes=max_line_bytes, max_messages=max_messages)
    out = DatasetDict()
    for key, split in splits.items():
        out[SPLIT_NAMES[key]] = _tokenize_split(split, tokenizer, max_seq_length, mask_prompt, SPLIT_NAMES[key])
    return out

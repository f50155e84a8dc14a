"""Batch collators: lists of ``{"input_ids", "labels"?, "attention_mask"?}``
dicts → padded int64 numpy arrays the models take."""
import numpy as np

from ..data.batching import as_id_list, pad_batch, pad_rows, padded_width

__all__ = ["DataCollatorForCausalLM", "DataCollatorForLanguageModeling", "DataCollatorForSeq2Seq",
           "DataCollatorWithPadding", "default_data_collator"]


def _pad_id(tokenizer, pad_token_id):
    if pad_token_id is not None:
        return int(pad_token_id)
    if tokenizer is not None:
        for name in ("pad_token_id", "eos_token_id"):
            v = getattr(tokenizer, name, None)
            if v is not None:
                return int(v)
    return 0


class DataCollatorForCausalLM:
    """Pads ``input_ids`` with the pad token, ``attention_mask`` with 0 and
    ``labels`` with ``label_pad_token_id`` (-100). Without ``labels`` in the
    features the labels are the input ids with padding masked (-100); given
    labels (e.g. prompt tokens already -100) are kept. Sequences longer than
    ``max_length`` are truncated. ``padding_side`` is "right" (default) or
    "left"."""

    def __init__(self, tokenizer=None, pad_token_id=None, label_pad_token_id=-100, max_length=None,
                 pad_to_multiple_of=None, padding_side="right", return_tensors="np"):
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        self.tokenizer = tokenizer
        self.pad_token_id = _pad_id(tokenizer, pad_token_id)
        self.label_pad_token_id = int(label_pad_token_id)
        self.max_length = max_length
        self.pad_to_multiple_of = pad_to_multiple_of
        self.padding_side = padding_side

    def __call__(self, features):
        if not features:
            raise ValueError("DataCollatorForCausalLM: empty batch")
        return pad_batch(features, self.pad_token_id, pad_to_multiple_of=self.pad_to_multiple_of,
                         max_length=self.max_length, padding_side=self.padding_side,
                         label_pad_token_id=self.label_pad_token_id)


class DataCollatorForLanguageModeling(DataCollatorForCausalLM):
    """transformers' ``DataCollatorForLanguageModeling(tokenizer, mlm=False)``:
    pads, and the labels are the input ids with every pad-token position set
    to -100 (given labels are ignored, as transformers does)."""

    def __init__(self, tokenizer=None, mlm=False, mlm_probability=0.15, pad_to_multiple_of=None,
                 return_tensors="np", pad_token_id=None, **_):
        if mlm:
            raise NotImplementedError("DataCollatorForLanguageModeling: masked LM (mlm=True) is not supported; "
                                      "use mlm=False for causal LM")
        super().__init__(tokenizer, pad_token_id=pad_token_id, pad_to_multiple_of=pad_to_multiple_of)
        self.mlm = False

    def __call__(self, features):
        feats = [{k: v for k, v in f.items() if k != "labels"} for f in features]
        batch = super().__call__(feats)
        labels = batch["input_ids"].copy()
        labels[batch["input_ids"] == self.pad_token_id] = self.label_pad_token_id
        labels[batch["attention_mask"] == 0] = self.label_pad_token_id
        batch["labels"] = labels
        return batch


class DataCollatorForSeq2Seq:
    """transformers' ``DataCollatorForSeq2Seq``: pads the encoder inputs with
    the tokenizer, the labels with ``label_pad_token_id`` on the tokenizer's
    padding side, and adds ``decoder_input_ids`` (labels shifted right) when
    ``model`` can make them."""

    def __init__(self, tokenizer, model=None, padding=True, max_length=None, pad_to_multiple_of=None,
                 label_pad_token_id=-100, return_tensors="np"):
        if tokenizer is None:
            raise ValueError("DataCollatorForSeq2Seq needs the tokenizer (it pads the encoder inputs)")
        self.tokenizer, self.model, self.padding = tokenizer, model, padding
        self.max_length, self.pad_to_multiple_of = max_length, pad_to_multiple_of
        self.label_pad_token_id = int(label_pad_token_id)

    def __call__(self, features):
        if not features:
            raise ValueError("DataCollatorForSeq2Seq: empty batch")
        labels = [as_id_list(f["labels"]) for f in features] if "labels" in features[0] else None
        rest = [{k: v for k, v in f.items() if k != "labels"} for f in features]
        batch = dict(self.tokenizer.pad(rest, padding=self.padding, max_length=self.max_length,
                                        pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="np"))
        batch = {k: np.asarray(v, dtype=np.int64) for k, v in batch.items()}
        if labels is not None:
            width = padded_width([len(x) for x in labels], pad_to_multiple_of=self.pad_to_multiple_of)
            side = "left" if getattr(self.tokenizer, "padding_side", "right") == "left" else "right"
            out = pad_rows(labels, self.label_pad_token_id, width, side)
            batch["labels"] = out
            make = getattr(self.model, "prepare_decoder_input_ids_from_labels", None)
            if make is not None:
                dec = make(labels=out)
                batch["decoder_input_ids"] = np.asarray(dec.numpy() if hasattr(dec, "numpy") else dec,
                                                        dtype=np.int64)
        return batch


class DataCollatorWithPadding:
    """transformers' ``DataCollatorWithPadding``: pads the inputs with
    ``tokenizer.pad`` and passes the other keys through, ``label`` /
    ``label_ids`` renamed ``labels`` (a classifier's one label per row:
    int64 class ids, float32 for regression or multi-label rows). Without a
    tokenizer (a peftcpp extension) the rows are right-padded with
    ``pad_token_id``."""

    def __init__(self, tokenizer=None, padding=True, max_length=None, pad_to_multiple_of=None, return_tensors="pt",
                 pad_token_id=None):
        if tokenizer is None and pad_token_id is None:
            raise ValueError("DataCollatorWithPadding needs the tokenizer (or a pad_token_id) to pad the inputs")
        self.tokenizer, self.padding, self.max_length = tokenizer, padding, max_length
        self.pad_to_multiple_of, self.return_tensors = pad_to_multiple_of, return_tensors
        self.pad_token_id = pad_token_id

    def __call__(self, features):
        if not features:
            raise ValueError("DataCollatorWithPadding: empty batch")
        if self.tokenizer is not None:
            batch = dict(self.tokenizer.pad(list(features), padding=self.padding, max_length=self.max_length,
                                            pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="np"))
        else:
            batch = self._pad_without_tokenizer(features)
        for old in ("label", "label_ids"):
            if old in batch:
                batch["labels"] = batch.pop(old)
        out = {}
        for k, v in batch.items():
            a = np.asarray(v)
            out[k] = a.astype(np.float32) if a.dtype.kind == "f" else (a.astype(np.int64) if a.dtype.kind in "iub"
                                                                        else a)
        return out

    def _pad_without_tokenizer(self, features):
        ids = [as_id_list(f["input_ids"]) for f in features]
        width = padded_width([len(x) for x in ids], self.max_length, self.pad_to_multiple_of)
        ids = [x[:width] for x in ids]
        batch = {"input_ids": pad_rows(ids, int(self.pad_token_id), width, "right"),
                 "attention_mask": pad_rows([[1] * len(x) for x in ids], 0, width, "right")}
        for k in features[0]:
            if k not in ("input_ids", "attention_mask"):
                batch[k] = [f[k] for f in features]
        return batch


def default_data_collator(features):
    """Stacks equal-length features into int64 arrays (transformers'
    ``default_data_collator``); different lengths → pads like
    DataCollatorForCausalLM."""
    lens = {len(as_id_list(f["input_ids"])) for f in features}
    if len(lens) != 1:
        return DataCollatorForCausalLM()(features)
    out = {}
    for k in features[0]:
        try:
            out[k] = np.asarray([as_id_list(f[k]) for f in features], dtype=np.int64)
        except (TypeError, ValueError):
            continue
    if "labels" not in out and "input_ids" in out:
        out["labels"] = out["input_ids"].copy()
    return out

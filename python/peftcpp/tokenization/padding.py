"""Padding and truncation: transformers' strategy rules (``padding=True`` / ``"max_length"``,
``max_length`` alone truncates, ``model_max_length`` as the default length) and ``tokenizer.pad``."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .batch_encoding import BatchEncoding, to_py

__all__ = ["LARGE_INTEGER", "VERY_LARGE_INTEGER", "PaddingMixin", "padding_truncation_strategies"]

VERY_LARGE_INTEGER = int(1e30)  # transformers' "no limit" model_max_length
LARGE_INTEGER = int(1e20)


_PADDING_STRATEGIES = ("longest", "max_length", "do_not_pad")
_TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second", "do_not_truncate")


def _strategy_name(value, when_true, when_false):
    """True / False / None / a strategy enum or name -> the strategy name."""
    if value is True:
        return when_true
    if value is False or value is None:
        return when_false
    return getattr(value, "value", value)


def padding_truncation_strategies(tokenizer, padding=False, truncation=None, max_length=None,
                                  pad_to_multiple_of=None):
    """(padding, truncation, max_length) as strategy names and a length, checked against the tokenizer's
    ``model_max_length`` and pad token."""
    if max_length is not None and padding is False and truncation is None:
        truncation = "longest_first"  # transformers: max_length alone activates truncation
    padding = _strategy_name(padding, "longest", "do_not_pad")
    if padding not in _PADDING_STRATEGIES:
        raise ValueError(f"padding must be True/False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}")
    truncation = _strategy_name(truncation, "longest_first", "do_not_truncate")
    if truncation not in _TRUNCATION_STRATEGIES:
        raise ValueError(f"Unknown truncation strategy {truncation!r}")
    if max_length is None:
        if padding == "max_length":
            if tokenizer.model_max_length > LARGE_INTEGER:
                padding = "do_not_pad"
            else:
                max_length = tokenizer.model_max_length
        if truncation != "do_not_truncate":
            if tokenizer.model_max_length > LARGE_INTEGER:
                truncation = "do_not_truncate"
            else:
                max_length = tokenizer.model_max_length
    if padding != "do_not_pad" and (tokenizer.pad_token is None or tokenizer.pad_token_id is None):
        raise ValueError("Asking to pad but the tokenizer does not have a padding token. Please select a token to "
                         "use as `pad_token` (`tokenizer.pad_token = tokenizer.eos_token` e.g.) or add a new pad "
                         "token via `tokenizer.add_special_tokens({'pad_token': '[PAD]'})`.")
    if (truncation != "do_not_truncate" and padding != "do_not_pad" and pad_to_multiple_of is not None
            and max_length is not None and max_length % pad_to_multiple_of != 0):
        raise ValueError(f"Truncation and padding are both activated but truncation length ({max_length}) is not "
                         f"a multiple of pad_to_multiple_of ({pad_to_multiple_of}).")
    return padding, truncation, max_length


def _infer_tensor_type(first):
    """numpy or peftcpp tensors in, the same kind out."""
    probe = first[0] if isinstance(first, (list, tuple)) and first else first
    if isinstance(first, np.ndarray) or isinstance(probe, np.ndarray):
        return "np"
    if hasattr(first, "numpy") or hasattr(probe, "numpy"):
        return "pc"
    return None


class PaddingMixin:
    """``pad`` for a tokenizer with ``model_input_names``, ``pad_token_id``, ``padding_side`` and
    ``model_max_length``."""

    @property
    def pad_token_type_id(self):
        return 0

    def pad(self, encoded_inputs, padding=True, max_length=None, pad_to_multiple_of=None, padding_side=None,
            return_attention_mask=None, return_tensors=None, verbose=True):
        """Pad one encoding or a batch (dict of lists, or list of dicts: usable as a collate function)."""
        if isinstance(encoded_inputs, (list, tuple)) and encoded_inputs and isinstance(encoded_inputs[0], Mapping):
            encoded_inputs = {k: [ex[k] for ex in encoded_inputs] for k in encoded_inputs[0].keys()}
        main = self.model_input_names[0]
        if main not in encoded_inputs:
            raise ValueError(f"You should supply an encoding or a list of encodings to this method that includes "
                             f"{main}, but you provided {list(encoded_inputs.keys())}")
        encoded_inputs = dict(encoded_inputs)
        if return_tensors is None:
            return_tensors = _infer_tensor_type(encoded_inputs[main])
        encoded_inputs = {k: to_py(v) for k, v in encoded_inputs.items()}
        required = encoded_inputs[main]
        if not required:
            if return_attention_mask:
                encoded_inputs["attention_mask"] = []
            return BatchEncoding(encoded_inputs)
        padding, _, max_length = padding_truncation_strategies(self, padding, None, max_length, None) if padding \
            else ("do_not_pad", None, max_length)
        if not isinstance(required[0], (list, tuple)):
            return BatchEncoding(self._pad_one(encoded_inputs, max_length, padding, pad_to_multiple_of,
                                               padding_side, return_attention_mask), tensor_type=return_tensors)
        n = len(required)
        if any(len(v) != n for v in encoded_inputs.values()):
            raise ValueError("Some items in the output dictionary have a different batch size than others.")
        if padding == "longest":
            max_length = max(len(r) for r in required)
            padding = "max_length"
        out = {}
        for i in range(n):
            one = self._pad_one({k: v[i] for k, v in encoded_inputs.items()}, max_length, padding,
                                pad_to_multiple_of, padding_side, return_attention_mask)
            for k, v in one.items():
                out.setdefault(k, []).append(v)
        return BatchEncoding(out, tensor_type=return_tensors)

    def _pad_one(self, inputs, max_length, padding, pad_to_multiple_of, padding_side, return_attention_mask):
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        main = self.model_input_names[0]
        ids = list(inputs[main])
        if padding == "longest":
            max_length = len(ids)
        if max_length is not None and pad_to_multiple_of is not None and max_length % pad_to_multiple_of:
            max_length = (max_length // pad_to_multiple_of + 1) * pad_to_multiple_of
        if return_attention_mask and "attention_mask" not in inputs:
            inputs["attention_mask"] = [1] * len(ids)
        if padding != "do_not_pad" and max_length is not None and len(ids) != max_length:
            diff = max_length - len(ids)
            side = padding_side if padding_side is not None else self.padding_side
            if side not in ("left", "right"):
                raise ValueError(f"Invalid padding side: {side}")
            fills = {main: self.pad_token_id, "attention_mask": 0, "token_type_ids": self.pad_token_type_id,
                     "special_tokens_mask": 1}
            for key, fill in fills.items():
                if key in inputs and (key != "attention_mask" or return_attention_mask):
                    pad = [fill] * diff
                    inputs[key] = list(inputs[key]) + pad if side == "right" else pad + list(inputs[key])
        return inputs

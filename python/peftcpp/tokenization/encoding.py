"""Encoding texts: ``tokenizer(text, ...)``, ``encode`` and ``tokenize`` on the ``tokenizers`` backend, with
transformers' input checks, padding/truncation settings and output keys."""
from __future__ import annotations

from .batch_encoding import BatchEncoding
from .padding import padding_truncation_strategies

__all__ = ["EncodingMixin"]

# BatchEncoding key -> tokenizers.Encoding attribute
_OPTIONAL_OUTPUTS = (("token_type_ids", "type_ids"), ("attention_mask", "attention_mask"),
                     ("special_tokens_mask", "special_tokens_mask"), ("offset_mapping", "offsets"))


def _valid_text(t):
    if isinstance(t, str):
        return True
    if isinstance(t, (list, tuple)):
        if not t or isinstance(t[0], str):
            return True
        if isinstance(t[0], (list, tuple)):
            return not t[0] or isinstance(t[0][0], str)
    return False


def _backend_inputs(text, text_pair, is_split_into_words):
    """(inputs for ``encode_batch``, whether ``text`` is a batch)."""
    for t in (text, text_pair):
        if t is not None and not _valid_text(t):
            raise ValueError("text input must be of type `str` (single example), `list[str]` (batch or single "
                             "pretokenized example) or `list[list[str]]` (batch of pretokenized examples).")
    if is_split_into_words:
        batched = isinstance(text, (list, tuple)) and bool(text) and isinstance(text[0], (list, tuple))
    else:
        batched = isinstance(text, (list, tuple))
    if not batched:
        return ([(text, text_pair)] if text_pair else [text]), False
    if isinstance(text_pair, str):
        raise TypeError("when tokenizing batches of text, `text_pair` must be a list or tuple with the same "
                        "length as `text`.")
    if text_pair is not None and len(text) != len(text_pair):
        raise ValueError(f"batch length of `text`: {len(text)} does not match batch length of `text_pair`: "
                         f"{len(text_pair)}.")
    return (list(zip(text, text_pair)) if text_pair is not None else list(text)), True


def _collect(encodings, wanted, return_overflowing_tokens, return_length):
    """(BatchEncoding data, the encodings in row order): one row per encoding and, when asked, per overflow."""
    data = {"input_ids": []}
    for key, _ in _OPTIONAL_OUTPUTS:
        if key in wanted:
            data[key] = []
    if return_length:
        data["length"] = []
    flat, mapping = [], []
    for i, enc in enumerate(encodings):
        group = [enc] + (list(enc.overflowing) if return_overflowing_tokens else [])
        for e in group:
            flat.append(e)
            mapping.append(i)
            data["input_ids"].append(e.ids)
            for key, attr in _OPTIONAL_OUTPUTS:
                if key in wanted:
                    data[key].append(getattr(e, attr))
            if return_length:
                data["length"].append(len(e.ids))
    if return_overflowing_tokens:
        data["overflow_to_sample_mapping"] = mapping
    return data, flat


class EncodingMixin:
    """``__call__`` / ``encode`` / ``tokenize`` of a tokenizer with ``backend_tokenizer``, the padding and
    truncation settings, ``split_special_tokens`` and ``model_input_names``."""

    def _configure_backend(self, padding, truncation, max_length, stride, pad_to_multiple_of, padding_side):
        backend = self.backend_tokenizer
        if truncation == "do_not_truncate":
            backend.no_truncation()
        else:
            backend.enable_truncation(max_length, stride=stride, strategy=truncation, direction=self.truncation_side)
        if padding == "do_not_pad":
            backend.no_padding()
        else:
            side = padding_side if padding_side is not None else self.padding_side
            backend.enable_padding(direction=side, pad_id=self.pad_token_id, pad_type_id=0,
                                   pad_token=self.pad_token, pad_to_multiple_of=pad_to_multiple_of,
                                   length=max_length if padding == "max_length" else None)

    def __call__(self, text=None, text_pair=None, text_target=None, text_pair_target=None, add_special_tokens=True,
                 padding=False, truncation=None, max_length=None, stride=0, is_split_into_words=False,
                 pad_to_multiple_of=None, padding_side=None, return_tensors=None, return_token_type_ids=None,
                 return_attention_mask=None, return_overflowing_tokens=False, return_special_tokens_mask=False,
                 return_offsets_mapping=False, return_length=False, split_special_tokens=None, **kwargs):
        """Tokenize a text or a batch of texts (optionally pairs) into a ``BatchEncoding``."""
        if text is None and text_target is None:
            raise ValueError("You need to specify either `text` or `text_target`.")
        padding, truncation, max_length = padding_truncation_strategies(self, padding, truncation, max_length,
                                                                        pad_to_multiple_of)
        common = dict(add_special_tokens=add_special_tokens, padding=padding, truncation=truncation,
                      max_length=max_length, stride=stride, is_split_into_words=is_split_into_words,
                      pad_to_multiple_of=pad_to_multiple_of, padding_side=padding_side,
                      return_tensors=return_tensors, return_token_type_ids=return_token_type_ids,
                      return_attention_mask=return_attention_mask,
                      return_overflowing_tokens=return_overflowing_tokens,
                      return_special_tokens_mask=return_special_tokens_mask,
                      return_offsets_mapping=return_offsets_mapping, return_length=return_length,
                      split_special_tokens=split_special_tokens)
        out = self._encode(text, text_pair, **common) if text is not None else None
        if text_target is not None:
            target = self._encode(text_target, text_pair_target, **common)
            if out is None:
                return target
            out["labels"] = target["input_ids"]
        return out

    def _encode(self, text, text_pair, add_special_tokens, padding, truncation, max_length, stride,
                is_split_into_words, pad_to_multiple_of, padding_side, return_tensors, return_token_type_ids,
                return_attention_mask, return_overflowing_tokens, return_special_tokens_mask,
                return_offsets_mapping, return_length, split_special_tokens):
        inputs, batched = _backend_inputs(text, text_pair, is_split_into_words)
        self._configure_backend(padding, truncation, max_length, stride, pad_to_multiple_of, padding_side)
        backend = self.backend_tokenizer
        split = self.split_special_tokens if split_special_tokens is None else split_special_tokens
        backend.encode_special_tokens = bool(split)
        try:
            encodings = backend.encode_batch(inputs, add_special_tokens=add_special_tokens,
                                             is_pretokenized=is_split_into_words)
        finally:
            backend.encode_special_tokens = self.split_special_tokens
        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        wanted = {key for key, on in (("token_type_ids", return_token_type_ids),
                                      ("attention_mask", return_attention_mask),
                                      ("special_tokens_mask", return_special_tokens_mask),
                                      ("offset_mapping", return_offsets_mapping)) if on}
        data, flat = _collect(encodings, wanted, return_overflowing_tokens, return_length)
        if not batched and return_tensors is None and not return_overflowing_tokens:
            data = {k: (v[0] if v and isinstance(v[0], list) else v) for k, v in data.items()}
        return BatchEncoding(data, flat, tensor_type=return_tensors)

    def encode(self, text, text_pair=None, add_special_tokens=True, padding=False, truncation=None, max_length=None,
               stride=0, padding_side=None, return_tensors=None, **kwargs):
        """Token ids of one text (a list of ints, or a [1, n] tensor with return_tensors)."""
        return self(text, text_pair=text_pair, add_special_tokens=add_special_tokens, padding=padding,
                    truncation=truncation, max_length=max_length, stride=stride, padding_side=padding_side,
                    return_tensors=return_tensors, **kwargs)["input_ids"]

    def tokenize(self, text, pair=None, add_special_tokens=False, **kwargs):
        return self(text, text_pair=pair, add_special_tokens=add_special_tokens, **kwargs).tokens()

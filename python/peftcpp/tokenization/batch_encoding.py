"""``BatchEncoding``: what a tokenizer call returns, and its conversion to numpy arrays or peftcpp tensors."""
from __future__ import annotations

import numpy as np

__all__ = ["BatchEncoding", "to_py"]


def to_py(obj):
    """numpy arrays / peftcpp tensors / numpy scalars -> python lists and ints."""
    if hasattr(obj, "numpy") and not isinstance(obj, np.ndarray):
        obj = obj.numpy()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (list, tuple)):
        return [to_py(o) for o in obj]
    return obj


def _as_numpy(value):
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple, np.ndarray)):
        if len({len(v) for v in value}) > 1:
            raise ValueError("Unable to create tensor: the sequences have different lengths; activate padding "
                             "(padding=True) and/or truncation to get a rectangular batch.")
    arr = np.asarray(value)
    if arr.size == 0 or arr.dtype.kind in "iub":
        arr = arr.astype(np.int64)
    return arr


def _normalize_tensor_type(tensor_type):
    if tensor_type is None:
        return None
    t = getattr(tensor_type, "value", tensor_type)
    if t in ("np", "numpy"):
        return "np"
    # "pt" is what every transformers script writes; peftcpp's tensors play
    # torch's part here, so the user's code runs unchanged.
    if t in ("pc", "peftcpp", "pt"):
        return "pc"
    if t in ("tf", "jax", "mlx"):
        raise ValueError(f"return_tensors={t!r} is not supported: peftcpp does not use tf/jax/mlx tensors. Use "
                         "return_tensors='pt' or 'pc' (peftcpp int64 tensors) or 'np' (numpy arrays).")
    raise ValueError(f"Unknown return_tensors={tensor_type!r}; use None, 'np', 'pt' or 'pc' (peftcpp tensors).")


class BatchEncoding(dict):
    """The output of a tokenizer call: a dict (input_ids, attention_mask, ...) with attribute access."""

    def __init__(self, data=None, encodings=None, tensor_type=None, prepend_batch_axis=False):
        super().__init__(data or {})
        self._encodings = encodings
        self.convert_to_tensors(tensor_type, prepend_batch_axis=prepend_batch_axis)

    def __getattr__(self, item):
        if item.startswith("__"):
            raise AttributeError(item)
        try:
            return self[item]
        except KeyError:
            raise AttributeError(f"BatchEncoding has no key or attribute {item!r}") from None

    def __getitem__(self, item):
        if isinstance(item, str):
            return super().__getitem__(item)
        if isinstance(item, int) and self._encodings is not None:
            return self._encodings[item]
        raise KeyError(f"Invalid key {item!r}: use a string key (e.g. 'input_ids') or an int for the encodings.")

    def __getstate__(self):
        return {"data": dict(self), "encodings": self._encodings}

    def __setstate__(self, state):
        self.update(state["data"])
        self._encodings = state["encodings"]

    def to(self, device):
        """transformers' ``.to(model.device)``: peftcpp computes on the CPU, so
        "cpu" (or a model's ``device``) keeps the batch as it is."""
        if str(device).split(":")[0] != "cpu":
            raise ValueError(f"BatchEncoding.to({device!r}): peftcpp runs on the CPU only; use 'cpu' or model.device")
        return self

    @property
    def encodings(self):
        """The ``tokenizers.Encoding`` objects behind each sequence (None after ``pad``)."""
        return self._encodings

    @property
    def is_fast(self):
        return self._encodings is not None

    def tokens(self, batch_index=0):
        if self._encodings is None:
            raise ValueError("tokens() needs the encodings of a tokenizer call")
        return self._encodings[batch_index].tokens

    def word_ids(self, batch_index=0):
        if self._encodings is None:
            raise ValueError("word_ids() needs the encodings of a tokenizer call")
        return self._encodings[batch_index].word_ids

    def char_to_token(self, batch_or_char_index, char_index=None, sequence_index=0):
        if self._encodings is None:
            raise ValueError("char_to_token() needs the encodings of a tokenizer call")
        if char_index is None:
            batch_index, char_index = 0, batch_or_char_index
        else:
            batch_index = batch_or_char_index
        return self._encodings[batch_index].char_to_token(char_index, sequence_index)

    def convert_to_tensors(self, tensor_type=None, prepend_batch_axis=False):
        tensor_type = _normalize_tensor_type(tensor_type)
        if tensor_type is None:
            return self
        for key, value in list(self.items()):
            if prepend_batch_axis:
                value = [value]
            arr = _as_numpy(to_py(value) if not isinstance(value, np.ndarray) else value)
            if tensor_type == "pc":
                from .. import _tensor  # imported lazily: tokenizing does not need the engine

                arr = _tensor.tensor(np.ascontiguousarray(arr))
            self[key] = arr
        return self

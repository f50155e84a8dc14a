"""Model outputs with transformers' field names: attribute, key and index
access. `logits` is computed on first access when the loss was taken from
the hidden states (the fused cross-entropy never builds the logits)."""


class ModelOutput:
    _fields = ()

    def __init__(self, **kwargs):
        for f in self._fields:
            object.__setattr__(self, f, kwargs.pop(f, None))
        for k, v in kwargs.items():
            object.__setattr__(self, k, v)

    def _present(self):
        return [f for f in self._fields if getattr(self, f) is not None]

    def __getitem__(self, key):
        if isinstance(key, str):
            return getattr(self, key)
        return tuple(getattr(self, f) for f in self._present())[key]

    def __iter__(self):
        return iter(tuple(getattr(self, f) for f in self._present()))

    def keys(self):
        return self._present()

    def to_tuple(self):
        return tuple(self)


class BaseModelOutputWithPast(ModelOutput):
    _fields = ("last_hidden_state", "past_key_values", "hidden_states")


class CausalLMOutputWithPast(ModelOutput):
    _fields = ("loss", "logits", "past_key_values", "hidden_states")

    def __init__(self, logits_fn=None, **kwargs):
        super().__init__(**kwargs)
        object.__setattr__(self, "_logits_fn", logits_fn)

    def __getattribute__(self, name):
        if name == "logits":
            value = object.__getattribute__(self, "logits")
            fn = object.__getattribute__(self, "_logits_fn")
            if value is None and fn is not None:
                value = fn()
                object.__setattr__(self, "logits", value)
                object.__setattr__(self, "_logits_fn", None)
            return value
        return object.__getattribute__(self, name)

    def _present(self):
        return [f for f in self._fields if getattr(self, f) is not None]


class SequenceClassifierOutputWithPast(ModelOutput):
    _fields = ("loss", "logits", "past_key_values", "hidden_states")

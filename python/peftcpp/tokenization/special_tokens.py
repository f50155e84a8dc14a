"""Special tokens: the named ones (bos_token, eos_token, pad_token, ... and model-specific ``*_token``
keys of a config), the extra ones, their ``*_id`` attributes, and adding them to the backend vocabulary."""
from __future__ import annotations

from tokenizers import AddedToken

__all__ = ["SPECIAL_TOKENS_ATTRIBUTES", "SpecialTokensMixin", "token_str", "to_added_token"]

SPECIAL_TOKENS_ATTRIBUTES = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                             "mask_token"]


def token_str(value):
    """A special token from a config: a string, an AddedToken, or its JSON dict."""
    if value is None:
        return None
    if isinstance(value, AddedToken):
        return value.content
    if isinstance(value, dict):
        return value.get("content")
    return str(value)


def to_added_token(value, special=True):
    if isinstance(value, AddedToken):
        return value
    if isinstance(value, dict):
        kw = {k: v for k, v in value.items() if k in ("single_word", "lstrip", "rstrip", "normalized", "special")}
        kw.setdefault("special", special)
        return AddedToken(value["content"], **kw)
    return AddedToken(str(value), special=special, normalized=False)


class SpecialTokensMixin:
    """Special-token attributes of a tokenizer with ``backend_tokenizer``, ``convert_tokens_to_ids`` and
    ``convert_ids_to_tokens``."""

    def __init__(self, config):
        """Take the special tokens out of ``config`` (a tokenizer_config dict, changed in place) and add the
        ones the backend does not know as special tokens."""
        if "additional_special_tokens" in config and not config.get("extra_special_tokens"):
            config["extra_special_tokens"] = config.pop("additional_special_tokens")
        config.pop("additional_special_tokens", None)

        self._special_attrs = list(SPECIAL_TOKENS_ATTRIBUTES)
        self._special = dict.fromkeys(self._special_attrs)
        self._extra_special = []
        to_add = []
        for key in SPECIAL_TOKENS_ATTRIBUTES:
            value = config.pop(key, None)
            if value is not None:
                self._special[key] = token_str(value)
                to_add.append(value)
        extra = config.pop("extra_special_tokens", None)
        model_specific = {}
        if isinstance(extra, dict):
            model_specific.update(extra)
        elif extra:
            for tok in extra:
                self._extra_special.append(token_str(tok))
                to_add.append(tok)
        for key in list(config):
            if key.endswith("_token") and isinstance(config[key], (str, dict, AddedToken)):
                model_specific[key] = config.pop(key)
        for key, value in model_specific.items():
            if key not in self._special_attrs:
                self._special_attrs.append(key)
            self._special[key] = token_str(value)
            to_add.append(value)
        self._add_missing(to_add)

    def _add_missing(self, tokens):
        backend = self.backend_tokenizer
        existing = {t.content for t in backend.get_added_tokens_decoder().values()}
        new = []
        for value in tokens:
            tok = to_added_token(value, special=True)
            if tok.content not in existing:
                tok.special = True
                new.append(tok)
                existing.add(tok.content)
        if new:
            backend.add_tokens(new)

    def __getattr__(self, key):
        if key.startswith("_"):
            raise AttributeError(key)
        special = self.__dict__.get("_special", {})
        base = key[:-3] if key.endswith("_id") else key
        if base in special:
            value = special[base]
            if key == base or value is None:
                return value
            return self.convert_tokens_to_ids(value)
        raise AttributeError(f"{type(self).__name__} has no attribute {key!r}")

    def __setattr__(self, key, value):
        special = self.__dict__.get("_special")
        if special is not None:
            base = key[:-3] if key.endswith("_id") else key
            if base in special or base in SPECIAL_TOKENS_ATTRIBUTES:
                if key != base and value is not None:
                    value = self.convert_ids_to_tokens(int(value))
                special[base] = token_str(value)
                return
        object.__setattr__(self, key, value)

    @property
    def special_tokens_map(self):
        """Named special tokens (bos_token, eos_token, ...) that are set, as strings."""
        return {k: self._special[k] for k in self._special_attrs if self._special.get(k) is not None}

    @property
    def extra_special_tokens(self):
        return list(self._extra_special)

    @extra_special_tokens.setter
    def extra_special_tokens(self, tokens):
        self._extra_special = [token_str(t) for t in (tokens or [])]

    additional_special_tokens = extra_special_tokens

    @property
    def extra_special_tokens_ids(self):
        return self.convert_tokens_to_ids(self._extra_special)

    additional_special_tokens_ids = extra_special_tokens_ids

    @property
    def all_special_tokens(self):
        seen, out = set(), []
        for tok in [self._special.get(k) for k in self._special_attrs] + self._extra_special:
            if tok is not None and tok not in seen:
                seen.add(tok)
                out.append(tok)
        return out

    @property
    def all_special_ids(self):
        return self.convert_tokens_to_ids(self.all_special_tokens)

    def add_tokens(self, new_tokens, special_tokens=False):
        if not new_tokens:
            return 0
        if not isinstance(new_tokens, (list, tuple)):
            new_tokens = [new_tokens]
        if special_tokens:
            return self.backend_tokenizer.add_special_tokens(list(new_tokens))
        return self.backend_tokenizer.add_tokens(list(new_tokens))

    def add_special_tokens(self, special_tokens_dict, replace_extra_special_tokens=True):
        """Set named special tokens ({'pad_token': '<pad>'}, 'extra_special_tokens': [...]), adding new ones."""
        if not special_tokens_dict:
            return 0
        d = dict(special_tokens_dict)
        if "additional_special_tokens" in d and not d.get("extra_special_tokens"):
            d["extra_special_tokens"] = d.pop("additional_special_tokens")
        added = []
        for key, value in d.items():
            if key == "extra_special_tokens":
                toks = [to_added_token(t) for t in value]
                names = [t.content for t in toks]
                if replace_extra_special_tokens:
                    self._extra_special = names
                else:
                    self._extra_special += [n for n in names if n not in self._extra_special]
                added += toks
            elif key in self._special_attrs:
                tok = to_added_token(value)
                self._special[key] = tok.content
                added.append(tok)
            else:
                raise ValueError(f"Key {key} is not a valid special token. Valid keys are: "
                                 f"{self._special_attrs + ['extra_special_tokens']}")
        for tok in added:
            tok.special = True
        return self.backend_tokenizer.add_special_tokens(added)

"""Tokenizers with transformers' API: ``AutoTokenizer.from_pretrained(...)``.

The tokenization itself is the Rust ``tokenizers`` library (``tokenizer.json``);
chat templates are rendered with ``jinja2`` in the same sandboxed environment
transformers uses. Neither transformers nor torch is imported.

    tok = AutoTokenizer.from_pretrained("path/or/repo-id")
    batch = tok(["hi", "hello there"], padding=True, return_tensors="pc")
    ids = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True)
"""
from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache

import numpy as np
from tokenizers import AddedToken, Tokenizer

from .fileio import write_json_atomic, write_text_atomic

__all__ = ["AutoTokenizer", "PreTrainedTokenizer", "PreTrainedTokenizerFast", "BatchEncoding"]

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
CHAT_TEMPLATE_JSON_FILE = "chat_template.json"
CHAT_TEMPLATE_DIR = "additional_chat_templates"

VERY_LARGE_INTEGER = int(1e30)  # transformers' "no limit" model_max_length
LARGE_INTEGER = int(1e20)

SPECIAL_TOKENS_ATTRIBUTES = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                             "mask_token"]

# tokenizer_config.json keys that are bookkeeping, not settings
_CONFIG_DROP = {"tokenizer_class", "added_tokens_decoder", "auto_map", "name_or_path", "tokenizer_file",
                "special_tokens_map_file", "init_inputs", "processor_class", "files_loaded", "backend",
                "is_local", "local_files_only", "slow_tokenizer_class", "device_map"}


def _env_true(name):
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _token_str(value):
    """A special token from a config: a string, an AddedToken, or its JSON dict."""
    if value is None:
        return None
    if isinstance(value, AddedToken):
        return value.content
    if isinstance(value, dict):
        return value.get("content")
    return str(value)


def _to_added_token(value, special=True):
    if isinstance(value, AddedToken):
        return value
    if isinstance(value, dict):
        kw = {k: v for k, v in value.items() if k in ("single_word", "lstrip", "rstrip", "normalized", "special")}
        kw.setdefault("special", special)
        return AddedToken(value["content"], **kw)
    return AddedToken(str(value), special=special, normalized=False)


def _to_py(obj):
    """numpy arrays / peftcpp tensors / numpy scalars -> python lists and ints."""
    if hasattr(obj, "numpy") and not isinstance(obj, np.ndarray):
        obj = obj.numpy()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (list, tuple)):
        return [_to_py(o) for o in obj]
    return obj


# --------------------------------------------------------------------------------------------------------------------
# BatchEncoding


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
            arr = _as_numpy(_to_py(value) if not isinstance(value, np.ndarray) else value)
            if tensor_type == "pc":
                from . import _tensor  # imported lazily: tokenizing does not need the engine

                arr = _tensor.tensor(np.ascontiguousarray(arr))
            self[key] = arr
        return self


# --------------------------------------------------------------------------------------------------------------------
# Chat templates (rendered like transformers.utils.chat_template_utils)


@lru_cache(maxsize=32)
def _compile_template(chat_template):
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationTracker(jinja2.ext.Extension):
        """``{% generation %}...{% endgeneration %}``: records the character spans of assistant text."""

        tags = {"generation"}

        def __init__(self, environment):
            super().__init__(environment)
            environment.extend(track_generation=self.track)
            self._blocks = None
            self._spans = None

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_mark"), [], [], body).set_lineno(lineno)

        def _mark(self, caller):
            text = caller()
            if self._blocks is not None:
                start = len("".join(self._blocks))
                self._spans.append((start, start + len(text)))
            return text

        @contextmanager
        def track(self, blocks, spans):
            self._blocks, self._spans = blocks, spans
            try:
                yield
            finally:
                self._blocks = self._spans = None

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        # Unlike jinja's own filter: no HTML escaping, and indent/separators/sort_keys are honoured.
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    class SafeDict:
        def __call__(self, *args, **kwargs):
            return dict(*args, **kwargs)

        def fromkeys(self, *args, **kwargs):
            return dict.fromkeys(*args, **kwargs)

    class SafeNamespace(jinja2.utils.Namespace):
        def __init__(*args, **kwargs):  # noqa: N805 - same signature trick as jinja's Namespace
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for name in attrs:
                SafeNamespace._check(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name, value):
            SafeNamespace._check(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check(name):
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(
                    f"Chat templates cannot store underscore-prefixed attributes on a namespace, got {name!r}.")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.globals["dict"] = SafeDict()
    env.globals["namespace"] = SafeNamespace
    return env.from_string(chat_template)


_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
_CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "


def _plain(value):
    """Rebuild template inputs from plain JSON types (the sandbox must not see rich objects)."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, np.generic):
        return _plain(value.item())
    if callable(getattr(value, "model_dump", None)):
        return _plain(value.model_dump())
    return f"<{type(value).__name__}>"


def _alias_reasoning(chat):
    out = []
    for message in chat:
        if isinstance(message, dict):
            reasoning = next((message[k] for k in _REASONING_FIELDS if message.get(k) is not None), None)
            if reasoning is not None:
                message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        out.append(message)
    return out


def render_chat(conversations, chat_template, tools=None, documents=None, add_generation_prompt=False,
                continue_final_message=False, track_generation=False, **template_kwargs):
    """Render each conversation; returns (texts, generation character spans per conversation)."""
    compiled = _compile_template(chat_template)
    if tools is not None:
        for tool in tools:
            if not isinstance(tool, dict):
                raise ValueError("Tools must be JSON schemas (dicts); peftcpp does not convert Python functions.")
    if documents is not None:
        for document in documents:
            if not isinstance(document, dict):
                raise TypeError("Documents should be a list of dicts with 'title' and 'text' keys!")
    tools, documents, template_kwargs = _plain(tools), _plain(documents), _plain(template_kwargs)

    rendered, all_spans = [], []
    for chat in conversations:
        if hasattr(chat, "messages"):
            chat = chat.messages
        chat = _plain(list(chat))
        for message in chat:
            if not isinstance(message, dict):
                raise TypeError(f"Chat messages should be dicts, but got {message!r}.")
        chat = _alias_reasoning(chat)
        final_message = None
        if continue_final_message:
            if not chat:
                raise ValueError("continue_final_message is set but the conversation is empty!")
            field = continue_final_message if isinstance(continue_final_message, str) else "content"
            final_message = chat[-1].get(field)
            if final_message is None:
                raise ValueError(f'continue_final_message is set but the final message has no "{field}" to continue!')
            fields = [field]
            if field in _REASONING_FIELDS:
                fields = [f for f in _REASONING_FIELDS if chat[-1].get(f) == final_message]
            if not any(f in chat_template for f in fields):
                raise ValueError(f'continue_final_message is set to "{field}" but this is not an accepted field in '
                                 "the chat_template")
            if isinstance(final_message, (list, tuple)):
                for block in reversed(final_message):
                    if "text" in block:
                        final_message = block["text"]
                        block["text"] = block["text"] + _CONTINUE_TAG
                        break
                else:
                    raise ValueError("continue_final_message is set but we could not find any text to continue in "
                                     "the final message!")
            else:
                for f in fields:
                    chat[-1][f] = chat[-1][f] + _CONTINUE_TAG
        variables = dict(template_kwargs, messages=chat, tools=tools, documents=documents,
                         add_generation_prompt=add_generation_prompt)
        spans = []
        if track_generation:
            blocks = []
            with compiled.environment.track_generation(blocks, spans):
                for block in compiled.generate(**variables):
                    blocks.append(block)
            text = "".join(blocks)
        else:
            text = compiled.render(**variables)
        if continue_final_message:
            tag = _CONTINUE_TAG.strip()
            if final_message.strip() not in text or tag not in text:
                raise ValueError(
                    "continue_final_message is set but the final message does not appear in the chat after applying "
                    "the chat template! This can happen if the chat template deletes portions of the final message. "
                    f"Final message to continue: {final_message.strip()}\nRendered chat:\n{text}")
            loc = text.rindex(tag)
            text = text[:loc] if text[loc:loc + len(_CONTINUE_TAG)] == _CONTINUE_TAG else text[:loc].rstrip()
        rendered.append(text)
        all_spans.append(spans)
    return rendered, all_spans


# --------------------------------------------------------------------------------------------------------------------
# The tokenizer


class PreTrainedTokenizer:
    """transformers' ``PreTrainedTokenizerFast`` API on a ``tokenizers.Tokenizer`` backend."""

    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, tokenizer_object, name_or_path="", **config):
        if not isinstance(tokenizer_object, Tokenizer):
            raise TypeError("tokenizer_object must be a tokenizers.Tokenizer")
        self._tokenizer = tokenizer_object
        self.name_or_path = str(name_or_path)
        config = dict(config)
        for key in _CONFIG_DROP:
            config.pop(key, None)
        # tokenizer.json's post-processor decides bos/eos insertion: config flags would double-add.
        config.pop("add_bos_token", None)
        config.pop("add_eos_token", None)

        # padding / truncation stored in tokenizer.json become defaults, as in transformers
        if self._tokenizer.padding is not None:
            config.setdefault("pad_token", self._tokenizer.padding.get("pad_token"))
            config.setdefault("padding_side", self._tokenizer.padding.get("direction", "right"))
        if self._tokenizer.truncation is not None:
            config.setdefault("truncation_side", self._tokenizer.truncation.get("direction", "right"))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()

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
                self._special[key] = _token_str(value)
                to_add.append(value)
        extra = config.pop("extra_special_tokens", None)
        model_specific = {}
        if isinstance(extra, dict):
            model_specific.update(extra)
        elif extra:
            for tok in extra:
                self._extra_special.append(_token_str(tok))
                to_add.append(tok)
        for key in list(config):
            if key.endswith("_token") and isinstance(config[key], (str, dict, AddedToken)):
                model_specific[key] = config.pop(key)
        for key, value in model_specific.items():
            if key not in self._special_attrs:
                self._special_attrs.append(key)
            self._special[key] = _token_str(value)
            to_add.append(value)

        mml = config.pop("model_max_length", config.pop("max_len", None))
        self.model_max_length = int(mml) if mml is not None else VERY_LARGE_INTEGER
        self.padding_side = config.pop("padding_side", "right")
        self.truncation_side = config.pop("truncation_side", "right")
        for side in (self.padding_side, self.truncation_side):
            if side not in ("left", "right"):
                raise ValueError(f"padding_side / truncation_side must be 'left' or 'right', got {side!r}")
        if "model_input_names" in config:
            self.model_input_names = list(config.pop("model_input_names"))
        self.clean_up_tokenization_spaces = bool(config.pop("clean_up_tokenization_spaces", False))
        self.split_special_tokens = bool(config.pop("split_special_tokens", False))
        chat_template = config.pop("chat_template", None)
        if isinstance(chat_template, (list, tuple)):
            chat_template = {t["name"]: t["template"] for t in chat_template}
        self.chat_template = chat_template
        self.init_kwargs = config  # the remaining settings, written back by save_pretrained
        self._tokenizer.encode_special_tokens = self.split_special_tokens

        # special tokens missing from the backend's added tokens are added as special tokens
        existing = {t.content for t in self._tokenizer.get_added_tokens_decoder().values()}
        new = []
        for value in to_add:
            tok = _to_added_token(value, special=True)
            if tok.content not in existing:
                tok.special = True
                new.append(tok)
                existing.add(tok.content)
        if new:
            self._tokenizer.add_tokens(new)

    # ---------------------------------------------------------------- special tokens

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
                special[base] = _token_str(value)
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
        self._extra_special = [_token_str(t) for t in (tokens or [])]

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

    @property
    def pad_token_type_id(self):
        return 0

    def add_tokens(self, new_tokens, special_tokens=False):
        if not new_tokens:
            return 0
        if not isinstance(new_tokens, (list, tuple)):
            new_tokens = [new_tokens]
        if special_tokens:
            return self._tokenizer.add_special_tokens(list(new_tokens))
        return self._tokenizer.add_tokens(list(new_tokens))

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
                toks = [_to_added_token(t) for t in value]
                names = [t.content for t in toks]
                if replace_extra_special_tokens:
                    self._extra_special = names
                else:
                    self._extra_special += [n for n in names if n not in self._extra_special]
                added += toks
            elif key in self._special_attrs:
                tok = _to_added_token(value)
                self._special[key] = tok.content
                added.append(tok)
            else:
                raise ValueError(f"Key {key} is not a valid special token. Valid keys are: "
                                 f"{self._special_attrs + ['extra_special_tokens']}")
        for tok in added:
            tok.special = True
        return self._tokenizer.add_special_tokens(added)

    # ---------------------------------------------------------------- vocabulary

    @property
    def backend_tokenizer(self):
        return self._tokenizer

    @property
    def is_fast(self):
        return True

    @property
    def vocab_size(self):
        """Size of the base vocabulary (without added tokens)."""
        return self._tokenizer.get_vocab_size(with_added_tokens=False)

    def __len__(self):
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def __bool__(self):
        return True

    def get_vocab(self):
        return self._tokenizer.get_vocab(with_added_tokens=True)

    @property
    def vocab(self):
        return self.get_vocab()

    @property
    def added_tokens_decoder(self):
        return self._tokenizer.get_added_tokens_decoder()

    @property
    def added_tokens_encoder(self):
        return {t.content: i for i, t in sorted(self.added_tokens_decoder.items())}

    def get_added_vocab(self):
        return self.added_tokens_encoder

    @property
    def add_bos_token(self):
        """Whether encoding with add_special_tokens=True starts with bos (decided by tokenizer.json)."""
        bos = self.bos_token_id
        ids = self._tokenizer.encode("a", add_special_tokens=True).ids
        return bos is not None and bool(ids) and ids[0] == bos

    @property
    def add_eos_token(self):
        eos = self.eos_token_id
        ids = self._tokenizer.encode("a", add_special_tokens=True).ids
        return eos is not None and bool(ids) and ids[-1] == eos

    def num_special_tokens_to_add(self, pair=False):
        return self._tokenizer.num_special_tokens_to_add(pair)

    def convert_tokens_to_ids(self, tokens):
        if tokens is None:
            return None
        if isinstance(tokens, str):
            idx = self._tokenizer.token_to_id(tokens)
            return idx if idx is not None else self.unk_token_id
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def convert_ids_to_tokens(self, ids, skip_special_tokens=False):
        ids = _to_py(ids)
        if isinstance(ids, int):
            return self._tokenizer.id_to_token(ids)
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._tokenizer.id_to_token(int(i)) for i in ids if int(i) not in skip]

    def convert_tokens_to_string(self, tokens):
        dec = self._tokenizer.decoder
        return dec.decode(tokens) if dec is not None else " ".join(tokens)

    # ---------------------------------------------------------------- encoding

    def _strategies(self, padding=False, truncation=None, max_length=None, pad_to_multiple_of=None):
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"  # transformers: max_length alone activates truncation
        if padding is True:
            padding = "longest"
        elif padding is False or padding is None:
            padding = "do_not_pad"
        padding = getattr(padding, "value", padding)
        if padding not in ("longest", "max_length", "do_not_pad"):
            raise ValueError(f"padding must be True/False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}")
        if truncation is True:
            truncation = "longest_first"
        elif truncation is False or truncation is None:
            truncation = "do_not_truncate"
        truncation = getattr(truncation, "value", truncation)
        if truncation not in ("longest_first", "only_first", "only_second", "do_not_truncate"):
            raise ValueError(f"Unknown truncation strategy {truncation!r}")
        if max_length is None:
            if padding == "max_length":
                if self.model_max_length > LARGE_INTEGER:
                    padding = "do_not_pad"
                else:
                    max_length = self.model_max_length
            if truncation != "do_not_truncate":
                if self.model_max_length > LARGE_INTEGER:
                    truncation = "do_not_truncate"
                else:
                    max_length = self.model_max_length
        if padding != "do_not_pad" and (self.pad_token is None or self.pad_token_id is None):
            raise ValueError("Asking to pad but the tokenizer does not have a padding token. Please select a token to "
                             "use as `pad_token` (`tokenizer.pad_token = tokenizer.eos_token` e.g.) or add a new pad "
                             "token via `tokenizer.add_special_tokens({'pad_token': '[PAD]'})`.")
        if (truncation != "do_not_truncate" and padding != "do_not_pad" and pad_to_multiple_of is not None
                and max_length is not None and max_length % pad_to_multiple_of != 0):
            raise ValueError(f"Truncation and padding are both activated but truncation length ({max_length}) is not "
                             f"a multiple of pad_to_multiple_of ({pad_to_multiple_of}).")
        return padding, truncation, max_length

    def _configure_backend(self, padding, truncation, max_length, stride, pad_to_multiple_of, padding_side):
        if truncation == "do_not_truncate":
            self._tokenizer.no_truncation()
        else:
            self._tokenizer.enable_truncation(max_length, stride=stride, strategy=truncation,
                                              direction=self.truncation_side)
        if padding == "do_not_pad":
            self._tokenizer.no_padding()
        else:
            side = padding_side if padding_side is not None else self.padding_side
            self._tokenizer.enable_padding(direction=side, pad_id=self.pad_token_id, pad_type_id=0,
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
        padding, truncation, max_length = self._strategies(padding, truncation, max_length, pad_to_multiple_of)
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
        def valid(t):
            if isinstance(t, str):
                return True
            if isinstance(t, (list, tuple)):
                if not t or isinstance(t[0], str):
                    return True
                if isinstance(t[0], (list, tuple)):
                    return not t[0] or isinstance(t[0][0], str)
            return False

        for t in (text, text_pair):
            if t is not None and not valid(t):
                raise ValueError("text input must be of type `str` (single example), `list[str]` (batch or single "
                                 "pretokenized example) or `list[list[str]]` (batch of pretokenized examples).")
        if is_split_into_words:
            batched = isinstance(text, (list, tuple)) and bool(text) and isinstance(text[0], (list, tuple))
        else:
            batched = isinstance(text, (list, tuple))
        if batched:
            if isinstance(text_pair, str):
                raise TypeError("when tokenizing batches of text, `text_pair` must be a list or tuple with the same "
                                "length as `text`.")
            if text_pair is not None and len(text) != len(text_pair):
                raise ValueError(f"batch length of `text`: {len(text)} does not match batch length of `text_pair`: "
                                 f"{len(text_pair)}.")
            inputs = list(zip(text, text_pair)) if text_pair is not None else list(text)
        else:
            inputs = [(text, text_pair)] if text_pair else [text]

        self._configure_backend(padding, truncation, max_length, stride, pad_to_multiple_of, padding_side)
        split = self.split_special_tokens if split_special_tokens is None else split_special_tokens
        self._tokenizer.encode_special_tokens = bool(split)
        try:
            encodings = self._tokenizer.encode_batch(inputs, add_special_tokens=add_special_tokens,
                                                     is_pretokenized=is_split_into_words)
        finally:
            self._tokenizer.encode_special_tokens = self.split_special_tokens
        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names

        data = {"input_ids": []}
        if return_token_type_ids:
            data["token_type_ids"] = []
        if return_attention_mask:
            data["attention_mask"] = []
        if return_special_tokens_mask:
            data["special_tokens_mask"] = []
        if return_offsets_mapping:
            data["offset_mapping"] = []
        if return_length:
            data["length"] = []
        flat, mapping = [], []
        for i, enc in enumerate(encodings):
            group = [enc] + (list(enc.overflowing) if return_overflowing_tokens else [])
            for e in group:
                flat.append(e)
                mapping.append(i)
                data["input_ids"].append(e.ids)
                if return_token_type_ids:
                    data["token_type_ids"].append(e.type_ids)
                if return_attention_mask:
                    data["attention_mask"].append(e.attention_mask)
                if return_special_tokens_mask:
                    data["special_tokens_mask"].append(e.special_tokens_mask)
                if return_offsets_mapping:
                    data["offset_mapping"].append(e.offsets)
                if return_length:
                    data["length"].append(len(e.ids))
        if return_overflowing_tokens:
            data["overflow_to_sample_mapping"] = mapping
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
            first = encoded_inputs[main]
            probe = first[0] if isinstance(first, (list, tuple)) and first else first
            if isinstance(first, np.ndarray) or isinstance(probe, np.ndarray):
                return_tensors = "np"
            elif hasattr(first, "numpy") or hasattr(probe, "numpy"):
                return_tensors = "pc"
        encoded_inputs = {k: _to_py(v) for k, v in encoded_inputs.items()}
        required = encoded_inputs[main]
        if not required:
            if return_attention_mask:
                encoded_inputs["attention_mask"] = []
            return BatchEncoding(encoded_inputs)
        padding, _, max_length = self._strategies(padding, None, max_length, None) if padding else (
            "do_not_pad", None, max_length)
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

    # ---------------------------------------------------------------- decoding

    def decode(self, token_ids, skip_special_tokens=False, clean_up_tokenization_spaces=None, **kwargs):
        """Text of one sequence of ids (or a list of texts for a batch)."""
        token_ids = _to_py(token_ids)
        if isinstance(token_ids, dict):
            token_ids = token_ids["input_ids"]
        if isinstance(token_ids, (list, tuple)) and token_ids and isinstance(token_ids[0], (list, tuple)):
            return [self._decode(seq, skip_special_tokens, clean_up_tokenization_spaces) for seq in token_ids]
        return self._decode(token_ids, skip_special_tokens, clean_up_tokenization_spaces)

    def _decode(self, ids, skip_special_tokens, clean_up_tokenization_spaces):
        if isinstance(ids, int):
            ids = [ids]
        text = self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)
        clean = self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None else \
            clean_up_tokenization_spaces
        # transformers skips the (WordPiece-oriented) clean-up for BPE models: it corrupts their output
        if clean and type(self._tokenizer.model).__name__ != "BPE":
            for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                         (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
                text = text.replace(a, b)
        return text

    def batch_decode(self, sequences, skip_special_tokens=False, clean_up_tokenization_spaces=None, **kwargs):
        out = self.decode(sequences, skip_special_tokens=skip_special_tokens,
                          clean_up_tokenization_spaces=clean_up_tokenization_spaces)
        return [out] if isinstance(out, str) else out

    # ---------------------------------------------------------------- chat templates

    def get_chat_template(self, chat_template=None, tools=None):
        if isinstance(self.chat_template, dict):
            templates = self.chat_template
            if chat_template is not None and chat_template in templates:
                return templates[chat_template]
            if chat_template is None:
                if tools is not None and "tool_use" in templates:
                    return templates["tool_use"]
                if "default" in templates:
                    return templates["default"]
                raise ValueError("This model has multiple chat templates with no default specified! Please either "
                                 "pass a chat template or the name of the template you wish to use to the "
                                 f"`chat_template` argument. Available template names are {sorted(templates)}.")
            return chat_template
        if chat_template is None:
            if self.chat_template is None:
                raise ValueError(
                    "Cannot use chat template functions because tokenizer.chat_template is not set and no template "
                    f"argument was passed! (tokenizer: {self.name_or_path or 'unnamed'}) Set "
                    "tokenizer.chat_template to a Jinja template string, or pass chat_template=... "
                    "(see https://huggingface.co/docs/transformers/main/en/chat_templating).")
            return self.chat_template
        return chat_template

    def apply_chat_template(self, conversation, tools=None, documents=None, chat_template=None,
                            add_generation_prompt=False, continue_final_message=False, tokenize=True, padding=False,
                            truncation=False, max_length=None, return_tensors=None, return_dict=False,
                            return_assistant_tokens_mask=False, tokenizer_kwargs=None, **kwargs):
        """Render a conversation (list of {"role", "content"} dicts, or a batch of them) with the chat template.

        Returns the text (tokenize=False), the token ids (default), or with return_dict=True a BatchEncoding
        (input_ids, attention_mask and, with return_assistant_tokens_mask=True, assistant_masks: 1 on the tokens
        inside the template's {% generation %} blocks). Extra kwargs are template variables.
        Note: transformers 5 defaults to return_dict=True; peftcpp keeps the list-of-ids default.
        """
        if kwargs.pop("sanitize_control_tokens", False):
            raise NotImplementedError("sanitize_control_tokens=True is not supported by peftcpp's tokenizer")
        if not tokenize:
            return_dict = False
        if return_assistant_tokens_mask and not (return_dict and tokenize):
            raise ValueError("`return_assistant_tokens_mask=True` requires `return_dict=True` and `tokenize=True`")
        template = self.get_chat_template(chat_template, tools)
        if isinstance(conversation, (list, tuple)) and len(conversation) == 0:
            raise ValueError("Cannot apply chat template to an empty conversation. Provide at least one message.")
        if isinstance(conversation, (list, tuple)) and (isinstance(conversation[0], (list, tuple))
                                                        or hasattr(conversation[0], "messages")):
            conversations, batched = list(conversation), True
        else:
            conversations, batched = [conversation], False
        conversations = [[{k: v for k, v in m.items() if v is not None} if isinstance(m, Mapping) else m
                          for m in getattr(c, "messages", c)] for c in conversations]
        if continue_final_message:
            if add_generation_prompt:
                raise ValueError("continue_final_message and add_generation_prompt are not compatible. Use "
                                 "continue_final_message when you want the model to continue the final message, "
                                 "and add_generation_prompt when you want to add a header that will prompt it to "
                                 "start a new assistant message instead.")
            if return_assistant_tokens_mask:
                raise ValueError("continue_final_message is not compatible with return_assistant_tokens_mask.")
        template_kwargs = {**self.special_tokens_map, **kwargs}
        rendered, spans = render_chat(conversations, template, tools=tools, documents=documents,
                                      add_generation_prompt=add_generation_prompt,
                                      continue_final_message=continue_final_message,
                                      track_generation=return_assistant_tokens_mask, **template_kwargs)
        if not batched:
            rendered = rendered[0]
        if not tokenize:
            return rendered
        out = self(rendered, padding=padding, truncation=truncation, max_length=max_length,
                   add_special_tokens=False, return_tensors=return_tensors, **(tokenizer_kwargs or {}))
        if not return_dict:
            return out["input_ids"]
        if return_assistant_tokens_mask:
            masks = []
            for i, enc in enumerate(out.encodings):
                mask = [0] * len(enc.ids)
                for start, end in spans[i]:
                    s = enc.char_to_token(start)
                    e = enc.char_to_token(end - 1)
                    if s is None:
                        break
                    for t in range(s, e + 1 if e is not None else len(mask)):
                        mask[t] = 1
                masks.append(mask)
            if not batched and not return_tensors:
                masks = masks[0]
            out["assistant_masks"] = masks
            if return_tensors:
                out.convert_to_tensors(return_tensors)
        return out

    # ---------------------------------------------------------------- saving

    def save_pretrained(self, save_directory, **kwargs):
        """Write tokenizer.json, tokenizer_config.json (with the chat template) and special_tokens_map.json."""
        save_directory = str(save_directory)
        if os.path.isfile(save_directory):
            raise ValueError(f"Provided path ({save_directory}) should be a directory, not a file")
        os.makedirs(save_directory, exist_ok=True)

        config = copy.deepcopy(self.init_kwargs)
        config.update(self.special_tokens_map)
        if self._extra_special:
            config["additional_special_tokens"] = list(self._extra_special)
        config["model_max_length"] = self.model_max_length
        config["padding_side"] = self.padding_side
        config["truncation_side"] = self.truncation_side
        config["clean_up_tokenization_spaces"] = self.clean_up_tokenization_spaces
        config["split_special_tokens"] = self.split_special_tokens
        if self.model_input_names != PreTrainedTokenizer.model_input_names:
            config["model_input_names"] = list(self.model_input_names)
        if isinstance(self.chat_template, dict):
            config["chat_template"] = [{"name": k, "template": v} for k, v in self.chat_template.items()]
        elif self.chat_template is not None:
            config["chat_template"] = self.chat_template
        config["added_tokens_decoder"] = {
            str(i): {"content": t.content, "lstrip": t.lstrip, "normalized": t.normalized, "rstrip": t.rstrip,
                     "single_word": t.single_word, "special": t.special}
            for i, t in sorted(self.added_tokens_decoder.items())}
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        files = []
        path = os.path.join(save_directory, TOKENIZER_CONFIG_FILE)
        write_json_atomic(path, config, sort_keys=True)
        files.append(path)

        special_map = dict(self.special_tokens_map)
        if self._extra_special:
            special_map["additional_special_tokens"] = list(self._extra_special)
        path = os.path.join(save_directory, SPECIAL_TOKENS_MAP_FILE)
        write_json_atomic(path, special_map, sort_keys=True)
        files.append(path)

        path = os.path.join(save_directory, TOKENIZER_FILE)
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        write_text_atomic(path, self._tokenizer.to_str(pretty=True))
        files.append(path)
        return tuple(files)

    def __repr__(self):
        return (f"{type(self).__name__}(name_or_path='{self.name_or_path}', vocab_size={self.vocab_size}, "
                f"model_max_length={self.model_max_length}, padding_side='{self.padding_side}', "
                f"truncation_side='{self.truncation_side}', special_tokens={self.special_tokens_map})")

    # ---------------------------------------------------------------- loading

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path=None, **kwargs):
        """Load from a folder with tokenizer.json, or a Hugging Face Hub repo id (cached; honours HF_HUB_OFFLINE),
        or a .gguf file (or folder + gguf_file=).

        Keyword arguments: cache_dir, revision, subfolder, token (else HF_TOKEN), local_files_only,
        force_download; anything else overrides tokenizer_config.json (e.g. padding_side="left").
        """
        from .gguf.import_model import resolve_pretrained_source
        pretrained_model_name_or_path = resolve_pretrained_source(pretrained_model_name_or_path,
                                                                  kwargs.pop("gguf_file", None))
        folder = _resolve_folder(pretrained_model_name_or_path, kwargs)
        for k in ("trust_remote_code", "use_fast", "_from_auto", "legacy", "proxies"):
            kwargs.pop(k, None)
        tokenizer_path = os.path.join(folder, TOKENIZER_FILE)
        if not os.path.isfile(tokenizer_path):
            present = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
            raise OSError(f"Can't load tokenizer from '{folder}': no {TOKENIZER_FILE} there (peftcpp needs a fast "
                          f"tokenizer file; it looked for {TOKENIZER_FILE}, {TOKENIZER_CONFIG_FILE}, "
                          f"{SPECIAL_TOKENS_MAP_FILE}, {CHAT_TEMPLATE_FILE}). Files found: {present}")
        config = {}
        config_path = os.path.join(folder, TOKENIZER_CONFIG_FILE)
        if os.path.isfile(config_path):
            with open(config_path, encoding="utf-8") as f:
                config = json.load(f)
        # like transformers: special_tokens_map.json only matters for configs without added_tokens_decoder
        special_map_path = os.path.join(folder, SPECIAL_TOKENS_MAP_FILE)
        if "added_tokens_decoder" not in config and os.path.isfile(special_map_path):
            with open(special_map_path, encoding="utf-8") as f:
                special_map = json.load(f)
            for key, value in special_map.items():
                if key in ("additional_special_tokens", "extra_special_tokens") and isinstance(value, list):
                    existing = list(config.get("extra_special_tokens") or config.get("additional_special_tokens")
                                    or [])
                    names = {_token_str(t) for t in existing}
                    existing += [t for t in value if _token_str(t) not in names]
                    config.pop("additional_special_tokens", None)
                    config["extra_special_tokens"] = existing
                else:
                    config[key] = value
        # chat templates: chat_template.jinja (+ additional_chat_templates/) > config key > chat_template.json
        templates = {}
        jinja_path = os.path.join(folder, CHAT_TEMPLATE_FILE)
        if os.path.isfile(jinja_path):
            with open(jinja_path, encoding="utf-8") as f:
                templates["default"] = f.read()
        extra_dir = os.path.join(folder, CHAT_TEMPLATE_DIR)
        if os.path.isdir(extra_dir):
            for name in sorted(os.listdir(extra_dir)):
                if name.endswith(".jinja"):
                    with open(os.path.join(extra_dir, name), encoding="utf-8") as f:
                        templates[name[:-len(".jinja")]] = f.read()
        if len(templates) == 1 and "default" in templates:
            config["chat_template"] = templates["default"]
        elif templates:
            config["chat_template"] = templates
        elif config.get("chat_template") is None:
            json_path = os.path.join(folder, CHAT_TEMPLATE_JSON_FILE)
            if os.path.isfile(json_path):
                with open(json_path, encoding="utf-8") as f:
                    config["chat_template"] = json.load(f).get("chat_template")
        if "additional_special_tokens" in kwargs and not kwargs.get("extra_special_tokens"):
            kwargs["extra_special_tokens"] = kwargs.pop("additional_special_tokens")
        config.update(kwargs)
        return cls(Tokenizer.from_file(tokenizer_path), name_or_path=pretrained_model_name_or_path, **config)


PreTrainedTokenizerFast = PreTrainedTokenizer


def _resolve_folder(name, kwargs):
    """A local folder as is; otherwise download (or find in the cache) the tokenizer files of a Hub repo."""
    subfolder = kwargs.pop("subfolder", None) or ""
    cache_dir = kwargs.pop("cache_dir", None)
    revision = kwargs.pop("revision", None)
    token = kwargs.pop("token", None) or kwargs.pop("use_auth_token", None) or os.environ.get("HF_TOKEN")
    local_only = bool(kwargs.pop("local_files_only", False))
    force = bool(kwargs.pop("force_download", False))
    name = str(name)
    if os.path.isdir(name):
        return os.path.join(name, subfolder) if subfolder else name
    if os.path.isfile(name):
        raise OSError(f"'{name}' is a file; pass the folder that holds {TOKENIZER_FILE}.")
    offline = local_only or _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")
    if name.count("/") > 1 or name.startswith((".", "/")) or not name:
        raise OSError(f"'{name}' is neither a local folder nor a valid Hugging Face Hub repo id.")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:  # pragma: no cover - huggingface_hub ships with tokenizers
        raise OSError(f"'{name}' is not a local folder and huggingface_hub is not installed to download it.") from e
    prefix = f"{subfolder.strip('/')}/" if subfolder else ""
    patterns = [prefix + p for p in (TOKENIZER_FILE, TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE,
                                      CHAT_TEMPLATE_FILE, CHAT_TEMPLATE_JSON_FILE, f"{CHAT_TEMPLATE_DIR}/*.jinja")]
    try:
        path = snapshot_download(name, revision=revision, cache_dir=cache_dir, token=token,
                                 local_files_only=offline, force_download=force, allow_patterns=patterns)
    except Exception as e:  # noqa: BLE001 - re-raised with a clear message
        if offline:
            raise OSError(f"Can't load tokenizer for '{name}': offline mode (HF_HUB_OFFLINE / local_files_only) "
                          f"and it is not in the local Hugging Face cache"
                          f"{' ' + str(cache_dir) if cache_dir else ''}. Download it once while online, or "
                          f"pass a local folder with {TOKENIZER_FILE}. ({type(e).__name__})") from e
        raise OSError(f"Can't load tokenizer for '{name}' from the Hugging Face Hub: {type(e).__name__}: {e}. "
                      f"Check the repo id, your network, and `token=` / HF_TOKEN for gated or private repos.") from e
    return os.path.join(path, subfolder) if subfolder else path


class AutoTokenizer:
    """``AutoTokenizer.from_pretrained(path_or_repo_id, **kwargs)`` → :class:`PreTrainedTokenizer`."""

    def __init__(self):
        raise EnvironmentError("AutoTokenizer is designed to be instantiated using "
                               "`AutoTokenizer.from_pretrained(pretrained_model_name_or_path)`.")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path=None, *args, **kwargs):
        return PreTrainedTokenizer.from_pretrained(pretrained_model_name_or_path, **kwargs)

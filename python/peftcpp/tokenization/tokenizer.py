"""``PreTrainedTokenizer``: transformers' ``PreTrainedTokenizerFast`` API on a ``tokenizers.Tokenizer``.

The class is put together from mixins, one concern each: special tokens (``special_tokens.py``),
encoding (``encoding.py``), padding (``padding.py``) and chat templates (``chat_template.py``); this module
holds construction, the vocabulary, decoding, saving and loading.
"""
from __future__ import annotations

import copy
import os

from tokenizers import Tokenizer

from ..fileio import write_json_atomic, write_text_atomic
from ..gguf.import_model import resolve_pretrained_source
from .batch_encoding import to_py
from .chat_template import ChatTemplateMixin
from .encoding import EncodingMixin
from .files import CHAT_TEMPLATE_SOURCES, SPECIAL_TOKENS_MAP_FILE, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE, \
    read_tokenizer_config, resolve_folder
from .padding import VERY_LARGE_INTEGER, PaddingMixin
from .special_tokens import SpecialTokensMixin

__all__ = ["PreTrainedTokenizer", "PreTrainedTokenizerFast"]

# tokenizer_config.json keys that are bookkeeping, not settings
_CONFIG_DROP = {"tokenizer_class", "added_tokens_decoder", "auto_map", "name_or_path", "tokenizer_file",
                "special_tokens_map_file", "init_inputs", "processor_class", "files_loaded", "backend",
                "is_local", "local_files_only", "slow_tokenizer_class", "device_map"}

# transformers' (WordPiece-oriented) clean-up of spaces before punctuation and contractions
_CLEAN_UP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
             (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


class PreTrainedTokenizer(SpecialTokensMixin, EncodingMixin, PaddingMixin, ChatTemplateMixin):
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

        SpecialTokensMixin.__init__(self, config)

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
        self.chat_template_sources = dict(config.pop(CHAT_TEMPLATE_SOURCES, None) or {})
        self.init_kwargs = config  # the remaining settings, written back by save_pretrained
        self._tokenizer.encode_special_tokens = self.split_special_tokens

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
        ids = to_py(ids)
        if isinstance(ids, int):
            return self._tokenizer.id_to_token(ids)
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._tokenizer.id_to_token(int(i)) for i in ids if int(i) not in skip]

    def convert_tokens_to_string(self, tokens):
        dec = self._tokenizer.decoder
        return dec.decode(tokens) if dec is not None else " ".join(tokens)

    # ---------------------------------------------------------------- decoding

    def decode(self, token_ids, skip_special_tokens=False, clean_up_tokenization_spaces=None, **kwargs):
        """Text of one sequence of ids (or a list of texts for a batch)."""
        token_ids = to_py(token_ids)
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
            for a, b in _CLEAN_UP:
                text = text.replace(a, b)
        return text

    def batch_decode(self, sequences, skip_special_tokens=False, clean_up_tokenization_spaces=None, **kwargs):
        out = self.decode(sequences, skip_special_tokens=skip_special_tokens,
                          clean_up_tokenization_spaces=clean_up_tokenization_spaces)
        return [out] if isinstance(out, str) else out

    # ---------------------------------------------------------------- saving

    def _saved_config(self):
        """tokenizer_config.json as transformers writes it for a fast tokenizer."""
        config = copy.deepcopy(self.init_kwargs)
        config.update(self.special_tokens_map)
        if self.extra_special_tokens:
            config["additional_special_tokens"] = self.extra_special_tokens
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
        return config

    def save_pretrained(self, save_directory, **kwargs):
        """Write tokenizer.json, tokenizer_config.json (with the chat template) and special_tokens_map.json."""
        save_directory = str(save_directory)
        if os.path.isfile(save_directory):
            raise ValueError(f"Provided path ({save_directory}) should be a directory, not a file")
        os.makedirs(save_directory, exist_ok=True)

        files = []
        path = os.path.join(save_directory, TOKENIZER_CONFIG_FILE)
        write_json_atomic(path, self._saved_config(), sort_keys=True)
        files.append(path)

        special_map = dict(self.special_tokens_map)
        if self.extra_special_tokens:
            special_map["additional_special_tokens"] = self.extra_special_tokens
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
        pretrained_model_name_or_path = resolve_pretrained_source(pretrained_model_name_or_path,
                                                                  kwargs.pop("gguf_file", None))
        folder = resolve_folder(pretrained_model_name_or_path, kwargs)
        for k in ("trust_remote_code", "use_fast", "_from_auto", "legacy", "proxies"):
            kwargs.pop(k, None)
        config = read_tokenizer_config(folder)
        if "chat_template" in kwargs:  # the caller's template: no file to name
            config.pop(CHAT_TEMPLATE_SOURCES, None)
        if "additional_special_tokens" in kwargs and not kwargs.get("extra_special_tokens"):
            kwargs["extra_special_tokens"] = kwargs.pop("additional_special_tokens")
        config.update(kwargs)
        backend = Tokenizer.from_file(os.path.join(folder, TOKENIZER_FILE))
        return cls(backend, name_or_path=pretrained_model_name_or_path, **config)


PreTrainedTokenizerFast = PreTrainedTokenizer

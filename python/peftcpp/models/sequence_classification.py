"""Sequence classification on a decoder backbone (transformers'
GenericForSequenceClassification / GPT2ForSequenceClassification): a `score`
head (Linear, no bias) read at each row's last non-padding token, and the
loss of config.problem_type. Each architecture file subclasses
ForSequenceClassification with its backbone; models/auto.py maps model_type
to it for AutoModelForSequenceClassification."""
import os
import sys
import warnings

import numpy as np

from .. import _core
from .. import nn
from ..nn import Parameter
from .._tensor import float32
from .loss_utils import sequence_classification_loss
from .model_inputs import ids_numpy
from .modeling_utils import PreTrainedModel
from .outputs import SequenceClassifierOutputWithPast

# from_pretrained keywords that set the labels (applied to the config before the model is built)
LABEL_KWARGS = ("num_labels", "id2label", "label2id", "problem_type")
HEAD = "score.weight"


def last_non_pad_positions(config, input_ids, batch, where):
    """[B] index of each row's last token that is not config.pad_token_id
    (right or left padding; transformers takes the rightmost non-pad token,
    0 for a row of padding only), or -1 when there is nothing to find it by."""
    pad = getattr(config, "pad_token_id", None)
    if isinstance(pad, list):  # a list of pad ids is not something transformers handles either
        pad = pad[0] if pad else None
    if pad is None:
        if batch != 1:
            raise ValueError(f"{where}: Cannot handle batch sizes > 1 if no padding token is defined "
                             "(config.pad_token_id is None; set it, e.g. model.config.pad_token_id = "
                             "tokenizer.pad_token_id)")
        return np.full(batch, -1, dtype=np.int64)
    if input_ids is None:
        _warn_once(f"{where} will not detect padding tokens in `inputs_embeds`. Results may be unexpected if using "
                   "padding tokens in conjunction with `inputs_embeds.`")
        return np.full(batch, -1, dtype=np.int64)
    ids = ids_numpy(input_ids)  # ids: [B, T]
    non_pad = (ids != pad).astype(np.int64)
    return (np.arange(ids.shape[-1], dtype=np.int64) * non_pad).argmax(-1)  # [B]


_WARNED = set()


def _caller_level():
    """The stacklevel of the first frame outside peftcpp (the user's call),
    whichever loader led here."""
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith("peftcpp."):
        frame, level = frame.f_back, level + 1
    return level


def _warn_once(message):
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, stacklevel=_caller_level())


class ForSequenceClassification(PreTrainedModel):
    """Backbone (`model_class`, kept under `base_model_prefix`) + score head.
    Subclasses set config_class and model_class (and base_model_prefix when
    the backbone is not called "model")."""
    model_class = None
    _tied_weights_keys = []  # no output embedding to tie
    # what a causal LM checkpoint has and a classifier does not use
    lm_only_keys = ("lm_head.weight", "lm_head.bias")

    def __init__(self, config):
        super().__init__(config)
        config.set_labels()  # checks problem_type against num_labels
        if config.id2label is None:
            config.num_labels = 2  # transformers' default, written to config.json from now on
        self.num_labels = config.num_labels
        setattr(self, self.base_model_prefix, self.model_class(config))
        self.score = nn.Linear(config.hidden_size, self.num_labels, bias=False)
        if not nn.empty_weights_enabled():
            self.init_score()

    @property
    def backbone(self):
        return getattr(self, self.base_model_prefix)

    def init_score(self, dtype=None):
        """transformers' _init_weights for a Linear: N(0, initializer_range)."""
        w = _core.randn([self.num_labels, self.config.hidden_size], 0.0,
                        float(getattr(self.config, "initializer_range", None) or 0.02))
        if dtype is not None and dtype != float32:
            w = w._to_raw(dtype)
        self.score.weight = Parameter(w, requires_grad=w.dtype == float32)

    def get_input_embeddings(self):
        return getattr(self.backbone, "embed_tokens", None)

    def get_output_embeddings(self):
        return None

    # ------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, name_or_path, *args, config=None, ignore_mismatched_sizes=False, **kwargs):
        """As PreTrainedModel.from_pretrained; num_labels / id2label /
        label2id / problem_type set the config's labels. A causal LM
        checkpoint loads too: its lm_head is not used and `score` is newly
        initialised (with a warning, as transformers does)."""
        labels = {k: kwargs.pop(k) for k in LABEL_KWARGS if k in kwargs}
        if config is None:
            config = cls.config_class.from_pretrained(
                name_or_path, **{k: kwargs[k] for k in ("token", "revision", "cache_dir") if k in kwargs})
        if labels:
            config.set_labels(**labels)
        config._ignore_mismatched_sizes = bool(ignore_mismatched_sizes)  # "_": never written to config.json
        try:
            return super().from_pretrained(name_or_path, *args, config=config, **kwargs)
        finally:
            del config._ignore_mismatched_sizes

    def checkpoint_tensors(self, tensors, origin):
        """The checkpoint's tensors under this model's names (an architecture
        whose files nest the backbone differently renames them)."""
        return tensors, origin

    def load_tensors(self, tensors, origin, dtype):
        tensors, origin = self.checkpoint_tensors(tensors, origin)
        where = ", ".join(sorted({os.path.dirname(f) for f in origin.values()}))  # the checkpoint's folder
        unused = [k for k in tensors if k in self.lm_only_keys]
        head = tensors.get(HEAD)
        mismatched = head is not None and tuple(head.shape) != tuple(self.score.weight.shape) \
            and getattr(self.config, "_ignore_mismatched_sizes", False)
        skip = set(unused) | ({HEAD} if mismatched else set())
        fresh = HEAD not in tensors or mismatched
        self.place_tensors(tensors, origin, dtype, filled={HEAD} if fresh else set(), skip=skip)
        if unused:
            warnings.warn(f"Some weights of the model checkpoint at {where} were not used when initializing "
                          f"{type(self).__name__}: {unused} (the language-model head of a causal LM checkpoint)",
                          stacklevel=_caller_level())
        if fresh:
            load_dtype = dtype or next((t.dtype for k, t in tensors.items() if k not in skip
                                        and t.dtype.is_floating_point), float32)
            self.init_score(load_dtype)
            shapes = f" (checkpoint {tuple(head.shape)}, model {tuple(self.score.weight.shape)})" if mismatched \
                else ""
            warnings.warn(f"Some weights of {type(self).__name__} were not initialized from the model checkpoint at "
                          f"{where} and are newly initialized: ['{HEAD}']{shapes}. You should probably TRAIN this "
                          "model on a down-stream task to be able to use it for predictions and inference.",
                          stacklevel=_caller_level())

    # ------------------------------------------------------------- saving
    def save_pretrained(self, save_directory, *args, **kwargs):
        self.config.architectures = [self.saved_architecture()]
        super().save_pretrained(save_directory, *args, **kwargs)

    def saved_architecture(self):
        return type(self).__name__

    # ------------------------------------------------------------ forward
    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, labels=None, use_cache=None, **kwargs):
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                            past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache)
        h = out.last_hidden_state  # h: [B, T, C]
        b, t, c = h.shape
        last = last_non_pad_positions(self.config, input_ids, b, type(self).__name__)  # last: [B]
        rows = np.arange(b, dtype=np.int64) * t + np.where(last < 0, last + t, last)
        pooled = _core.index_select(h.reshape(b * t, c), 0, _core.from_numpy(rows))  # pooled: [B, C]
        logits = self.score(pooled)  # logits: [B, L]
        loss = None if labels is None else sequence_classification_loss(logits, labels, self.config)
        return SequenceClassifierOutputWithPast(loss=loss, logits=logits, past_key_values=out.past_key_values)

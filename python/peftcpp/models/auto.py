"""AutoConfig / AutoModelForCausalLM / AutoModelForSeq2SeqLM /
AutoModelForSequenceClassification: pick the architecture from
config.json's model_type."""

from ..gguf.import_model import resolve_pretrained_source
from ..hub import resolve_file
from ..fileio import read_json_object
from .config_checks import show
from .configuration import CONFIG_NAME, config_from_file

_REGISTRY = {}
_SEQ2SEQ_REGISTRY = {}
_SEQ_CLS_REGISTRY = {}


def register(model_type, config_class, model_class):
    _REGISTRY[model_type] = (config_class, model_class)


def register_seq2seq(model_type, config_class, model_class):
    """An encoder-decoder: AutoConfig and AutoModelForSeq2SeqLM know it,
    AutoModelForCausalLM refers to the latter."""
    _REGISTRY.setdefault(model_type, (config_class, None))
    _SEQ2SEQ_REGISTRY[model_type] = (config_class, model_class)


def register_for_sequence_classification(model_type, model_class):
    """The class AutoModelForSequenceClassification builds for model_type."""
    _SEQ_CLS_REGISTRY[model_type] = model_class


def _entry(model_type, where):
    if model_type not in _REGISTRY:
        raise ValueError(f"{where}: model_type '{model_type}' is not supported; supported: "
                         f"{', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[model_type]


def _read_config(name_or_path, **hub):
    path = resolve_file(name_or_path, CONFIG_NAME, **hub)
    d = read_json_object(path)
    if "model_type" not in d:
        raise ValueError(f"{path}: no model_type")
    if not isinstance(d["model_type"], str):
        raise TypeError(f"{path}: model_type must be a string, got {show(d['model_type'])}")
    return path, d


class AutoConfig:
    @staticmethod
    def from_pretrained(name_or_path=None, gguf_file=None, **kwargs):
        name_or_path = resolve_pretrained_source(name_or_path, gguf_file)
        hub = {k: kwargs.pop(k) for k in ("token", "revision", "cache_dir") if k in kwargs}
        path, d = _read_config(name_or_path, **hub)
        config_class, _ = _entry(d["model_type"], path)
        d.update(kwargs)
        return config_from_file(config_class, d, path)


class AutoModelForCausalLM:
    @staticmethod
    def from_pretrained(name_or_path=None, *args, gguf_file=None, **kwargs):
        """A folder, a hub repo id, or a .gguf file (or folder + gguf_file=)."""
        name_or_path = resolve_pretrained_source(name_or_path, gguf_file)
        hub = {k: kwargs[k] for k in ("token", "revision", "cache_dir") if k in kwargs}
        path, d = _read_config(name_or_path, **hub)
        config_class, model_class = _entry(d["model_type"], path)
        if model_class is None:
            raise ValueError(f"{path}: model_type '{d['model_type']}' is an encoder-decoder; load it with "
                             "AutoModelForSeq2SeqLM")
        config = config_from_file(config_class, d, path)
        return model_class.from_pretrained(name_or_path, *args, config=config, **kwargs)

    @staticmethod
    def from_config(config):
        _, model_class = _entry(config.model_type, "config")
        if model_class is None:
            raise ValueError(f"model_type '{config.model_type}' is an encoder-decoder; use AutoModelForSeq2SeqLM")
        return model_class(config)


class AutoModelForSeq2SeqLM:
    @staticmethod
    def from_pretrained(name_or_path, *args, **kwargs):
        hub = {k: kwargs[k] for k in ("token", "revision", "cache_dir") if k in kwargs}
        path, d = _read_config(name_or_path, **hub)
        if d["model_type"] not in _SEQ2SEQ_REGISTRY:
            raise ValueError(f"{path}: model_type '{d['model_type']}' is not a supported sequence-to-sequence model; "
                             f"supported: {', '.join(sorted(_SEQ2SEQ_REGISTRY))}")
        config_class, model_class = _SEQ2SEQ_REGISTRY[d["model_type"]]
        return model_class.from_pretrained(name_or_path, *args, config=config_from_file(config_class, d, path),
                                           **kwargs)

    @staticmethod
    def from_config(config):
        if config.model_type not in _SEQ2SEQ_REGISTRY:
            raise ValueError(f"model_type '{config.model_type}' is not a supported sequence-to-sequence model")
        return _SEQ2SEQ_REGISTRY[config.model_type][1](config)


def _seq_cls_class(model_type, where):
    if model_type not in _SEQ_CLS_REGISTRY:
        raise ValueError(f"{where}: model_type '{model_type}' has no sequence classification model in peftcpp; "
                         f"supported: {', '.join(sorted(_SEQ_CLS_REGISTRY))}")
    return _SEQ_CLS_REGISTRY[model_type]


class AutoModelForSequenceClassification:
    """<Arch>ForSequenceClassification by model_type: a checkpoint saved by
    transformers' AutoModelForSequenceClassification, or a causal LM's (its
    backbone; `score` newly initialised). num_labels / id2label / label2id /
    problem_type set the labels."""

    @staticmethod
    def from_pretrained(name_or_path=None, *args, gguf_file=None, **kwargs):
        name_or_path = resolve_pretrained_source(name_or_path, gguf_file)
        hub = {k: kwargs[k] for k in ("token", "revision", "cache_dir") if k in kwargs}
        path, d = _read_config(name_or_path, **hub)
        _entry(d["model_type"], path)
        model_class = _seq_cls_class(d["model_type"], path)
        config = config_from_file(model_class.config_class, d, path)
        return model_class.from_pretrained(name_or_path, *args, config=config, **kwargs)

    @staticmethod
    def from_config(config, **kwargs):
        """A randomly initialised classifier; kwargs set the labels (num_labels=...)."""
        model_class = _seq_cls_class(config.model_type, "config")
        if kwargs:
            config.set_labels(**kwargs)
        return model_class(config)

"""Model configuration read from a Hugging Face config.json, with
transformers' attribute names and per-architecture defaults."""
import copy
import json
import os
import warnings

from ..hub import resolve_file
from ..fileio import read_json_object, write_text_atomic
from .config_checks import CONFIG_NAME, FIELD_RULES, ConfigFieldError, ConfigFieldTypeError, check_fields, \
    check_heads, check_rope, show

PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")
LABEL_FIELDS = ("num_labels", "id2label", "label2id", "problem_type")


def config_from_file(config_class, d, path):
    """config_class built from the dict `d` read from `path`; a wrong field
    names that file."""
    try:
        config = config_class.from_dict(d)
    except ConfigFieldError as e:
        raise e.located(path) from None
    config._source = os.fspath(path)  # for later messages; "_" keeps it out of to_dict()
    return config


def attribute_alias(target):
    """transformers' attribute_map: a common name (hidden_size, ...) that reads
    and writes an architecture's own one (d_model, n_embd, ...)."""
    return property(lambda self: getattr(self, target), lambda self, v: setattr(self, target, v))


class PretrainedConfig:
    """Attribute bag over config.json. Subclasses set `model_type` and
    `defaults`; unknown keys are kept so a saved config round-trips."""

    model_type = ""
    defaults = {}
    rope_types = ("default", "linear", "llama3", "yarn")  # the RoPE scalings rope.py implements
    # A classifier's labels (transformers' names). Class defaults, so a config
    # that never had labels writes none; num_labels is len(id2label).
    id2label = None
    label2id = None
    problem_type = None

    def __init__(self, **kwargs):
        values = dict(copy.deepcopy(self.defaults))
        values.update(kwargs)
        check_fields(values)  # types and ranges first: nothing below may see "64" or -5
        for k, v in kwargs.items():  # a flag or dropout written as null: the architecture's default
            rule = FIELD_RULES.get(k)
            if v is None and getattr(rule, "null_is_default", False) and self.defaults.get(k) is not None:
                values[k] = self.defaults[k]
        self.check_sizes(values)
        self.set_labels(**{k: values.pop(k) for k in LABEL_FIELDS if k in values})
        for k, v in values.items():
            setattr(self, k, v)
        if not getattr(self, "head_dim", None) and getattr(self, "num_attention_heads", None):
            self.head_dim = self.hidden_size // self.num_attention_heads
        if getattr(self, "num_key_value_heads", None) is None and hasattr(self, "num_attention_heads"):
            self.num_key_value_heads = self.num_attention_heads
        self.model_type = self.model_type or values.get("model_type", "")
        self.standardize_rope()
        self.check_settings("rope_parameters" if values.get("rope_parameters") is not None else "rope_scaling")

    @property
    def num_labels(self):
        return len(self.id2label) if self.id2label is not None else 2

    @num_labels.setter
    def num_labels(self, n):
        self.set_labels(num_labels=n)

    def set_labels(self, num_labels=None, id2label=None, label2id=None, problem_type=None):
        """transformers' rules: id2label's keys become ints (JSON writes them
        as strings) and it wins over a num_labels that disagrees; num_labels
        alone names the labels LABEL_0, LABEL_1, ..."""
        if num_labels is not None:
            check_fields({"num_labels": num_labels})
        if id2label is not None:
            check_fields({"id2label": id2label})
            try:
                id2label = {int(k): v for k, v in id2label.items()}
            except (TypeError, ValueError):
                raise ConfigFieldTypeError("id2label", f"keys must be label ids (integers), got "
                                           f"{show(list(id2label))}") from None
            if num_labels is not None and num_labels != len(id2label):
                warnings.warn(f"You passed `num_labels={num_labels}` which is incompatible to the `id2label` map "
                              f"of length `{len(id2label)}`.", stacklevel=3)
            self.id2label = id2label
            if label2id is None and "label2id" not in self.__dict__:
                label2id = {v: k for k, v in id2label.items()}
        elif num_labels is not None and (self.id2label is None or len(self.id2label) != num_labels):
            self.id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
            label2id = label2id or {v: k for k, v in self.id2label.items()}
        if label2id is not None:
            check_fields({"label2id": label2id})
            self.label2id = dict(label2id)
        if problem_type is not None:
            if problem_type not in PROBLEM_TYPES:
                raise ConfigFieldError("problem_type", f"must be one of {', '.join(PROBLEM_TYPES)}, got "
                                       f"{show(problem_type)}")
            self.problem_type = problem_type
        if self.problem_type == "single_label_classification" and self.num_labels == 1:
            raise ConfigFieldError("problem_type", '"single_label_classification" requires num_labels > 1; for '
                                   'binary classification use num_labels=2, or problem_type="regression" for a '
                                   "single-output regression head")

    def check_sizes(self, values):
        """Relations between sizes the modules rely on (fields already typed)."""
        check_heads(values, explicit_head_dim=values.get("head_dim"))

    def check_settings(self, rope_field):
        """What the architecture's modules need of the settings, once they are
        attributes (rope_field: the key the RoPE parameters came from)."""
        self.check_rope_parameters(rope_field)

    def check_rope_parameters(self, field):
        rp = getattr(self, "rope_parameters", None)
        if rp is not None:
            check_rope(rp, field, self.rope_types, self.rotary_dim(rp))
            self.check_rotary_dim(rp)

    def check_rotary_dim(self, rp):
        """RoPE turns pairs of dimensions: the rotated part of a head must be even, and not empty."""
        dim = self.rotary_dim(rp)
        if dim is not None and (dim < 2 or dim % 2):
            factor = rp.get("partial_rotary_factor", getattr(self, "partial_rotary_factor", None) or 1.0)
            parts = f"head_dim {self.head_dim}" + (f" x partial_rotary_factor {factor}" if factor != 1.0 else "")
            raise ConfigFieldError("head_dim", f"gives {dim} rotary dimensions ({parts}); RoPE needs an even "
                                   "number, at least 2")

    def rotary_dim(self, rp):
        head_dim = getattr(self, "head_dim", None)
        factor = rp.get("partial_rotary_factor", getattr(self, "partial_rotary_factor", None) or 1.0)
        return int(head_dim * factor) if head_dim else None  # as rope.py computes it

    def parameter_count(self):
        """The number of parameters the model of this config has (tied weights
        once), from the sizes alone; None when the architecture does not say."""
        return None

    def standardize_rope(self):
        """transformers ≥5 writes `rope_parameters`; older files have
        `rope_theta` and `rope_scaling`. Both become `rope_parameters`."""
        rp = getattr(self, "rope_parameters", None)
        if rp is None:
            rp = dict(getattr(self, "rope_scaling", None) or {})
            if "type" in rp and "rope_type" not in rp:
                rp["rope_type"] = rp.pop("type")
            rp.setdefault("rope_type", "default")
            rp.setdefault("rope_theta", getattr(self, "rope_theta", 10000.0))
            self.rope_parameters = rp

    def get(self, key, default=None):
        return getattr(self, key, default)

    def to_dict(self):
        out = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        out["model_type"] = self.model_type
        return out

    def to_json_string(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def save_pretrained(self, save_directory):
        os.makedirs(save_directory, exist_ok=True)
        write_text_atomic(os.path.join(save_directory, CONFIG_NAME), self.to_json_string())

    @classmethod
    def from_dict(cls, d):
        return cls(**d)

    @classmethod
    def from_pretrained(cls, name_or_path, **kwargs):
        path = resolve_file(name_or_path, CONFIG_NAME, **kwargs)
        return cls.from_json_file(path)

    @classmethod
    def from_json_file(cls, path):
        return config_from_file(cls, read_json_object(path), path)

    def __repr__(self):
        return f"{type(self).__name__} {self.to_json_string()}"

"""PeftConfigMixin / PeftConfig: the fields every method's config has, as
typed dataclass fields with help text (PEFT's names); configs read and write
adapter_config.json as PEFT does (sorted keys, indent 2). A method's config
subclasses PeftConfig; PeftConfig.from_pretrained picks it by peft_type from
the method registry."""
import dataclasses
import enum
import json
import os
import warnings
from dataclasses import field
from typing import Optional, Union

from ..fileio import read_json_object, write_json_atomic
from ..hub import resolve_file
from .utils.constants import CONFIG_NAME, PEFT_FORMAT_VERSION, SAFETENSORS_WEIGHTS_NAME
from .utils.peft_types import PEFT_TYPE_TO_CONFIG_MAPPING, PeftType, TaskType

__all__ = ["PeftConfigMixin", "PeftConfig", "PeftType", "TaskType", "CONFIG_NAME", "SAFETENSORS_WEIGHTS_NAME",
           "PEFT_FORMAT_VERSION"]


def _plain(v):
    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, (set, frozenset)):
        return sorted(_plain(x) for x in v)
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


@dataclasses.dataclass
class PeftConfigMixin:
    """Serialisation (adapter_config.json) and the fields of any adapter config."""
    task_type: Optional[Union[TaskType, str]] = field(
        default=None, metadata={"help": "The task the model is adapted for (TaskType: CAUSAL_LM, SEQ_2_SEQ_LM, ...); "
                                        "it picks the PeftModel subclass."})
    peft_type: Optional[Union[PeftType, str]] = field(
        default=None, metadata={"help": "The fine-tuning method; each method's config sets it."})
    auto_mapping: Optional[dict] = field(
        default=None, metadata={"help": "Base model class and library, written when no task_type is set."})
    base_model_name_or_path: Optional[str] = field(
        default=None, metadata={"help": "Name or path of the base model the adapter is trained on."})
    revision: Optional[str] = field(default=None, metadata={"help": "Revision of the base model."})
    inference_mode: bool = field(
        default=False, metadata={"help": "Adapter weights frozen (True when loaded for inference)."})
    peft_version: Optional[str] = field(
        default=None, metadata={"help": "PEFT release whose format this follows; filled in when left empty."})

    def __post_init__(self):
        if self.task_type is not None:
            try:
                self.task_type = TaskType(self.task_type)
            except ValueError:
                raise ValueError(f"Invalid task type: '{self.task_type}'. Must be one of the following task types: "
                                 f"{', '.join(t.value for t in TaskType)}.") from None
        if self.peft_version is None:
            self.peft_version = PEFT_FORMAT_VERSION

    def to_dict(self):
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json_string(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def save_pretrained(self, save_directory, **kwargs):
        if os.path.isfile(save_directory):
            raise AssertionError(f"Provided path ({save_directory}) should be a directory, not a file")
        os.makedirs(save_directory, exist_ok=True)
        d = self.to_dict()
        d.update(kwargs)
        write_json_atomic(os.path.join(save_directory, CONFIG_NAME), d, sort_keys=True, ensure_ascii=True,
                          trailing_newline=False)

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        if cls in (PeftConfig, PeftConfigMixin):  # the method's own config class, by peft_type
            pt = d.get("peft_type")
            if pt not in PEFT_TYPE_TO_CONFIG_MAPPING:
                raise ValueError(f"adapter config has peft_type {pt!r}; peftcpp supports "
                                 f"{', '.join(PEFT_TYPE_TO_CONFIG_MAPPING)}")
            return PEFT_TYPE_TO_CONFIG_MAPPING[pt].from_dict(d)
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in d.items() if k in names}
        unknown = sorted(k for k in d if k not in names)
        if unknown:
            warnings.warn(f"Unexpected keyword arguments {unknown} for class {cls.__name__}, these are ignored "
                          "(a config written by a newer PEFT version?)")
        return cls(**known)

    @classmethod
    def from_json_file(cls, path):
        return read_json_object(path)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, subfolder=None, **kwargs):
        path = os.fspath(pretrained_model_name_or_path)
        if subfolder:
            path = os.path.join(path, subfolder)
        file = os.path.join(path, CONFIG_NAME)
        if not os.path.isfile(file):
            file = resolve_file(pretrained_model_name_or_path, CONFIG_NAME, **kwargs)
        d = cls.from_json_file(file)
        return cls.from_dict(d)

    @property
    def is_prompt_learning(self):
        return False


@dataclasses.dataclass
class PeftConfig(PeftConfigMixin):
    """Base class of the methods' configs (LoraConfig, ...)."""

"""PeftConfig and TaskType with Hugging Face PEFT's names; configs read and
write adapter_config.json as PEFT does (sorted keys, indent 2)."""
import dataclasses
import enum
import json
import os
import warnings

CONFIG_NAME = "adapter_config.json"
SAFETENSORS_WEIGHTS_NAME = "adapter_model.safetensors"
# adapter_config.json's peft_version: the PEFT release whose on-disk format this follows
PEFT_FORMAT_VERSION = "0.21.2"


class TaskType(str, enum.Enum):
    SEQ_CLS = "SEQ_CLS"
    SEQ_2_SEQ_LM = "SEQ_2_SEQ_LM"
    CAUSAL_LM = "CAUSAL_LM"
    TOKEN_CLS = "TOKEN_CLS"
    QUESTION_ANS = "QUESTION_ANS"
    FEATURE_EXTRACTION = "FEATURE_EXTRACTION"

    def __str__(self):
        return self.value


class PeftType(str, enum.Enum):
    LORA = "LORA"

    def __str__(self):
        return self.value


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
class PeftConfig:
    """Fields every PEFT config has."""
    task_type: object = None
    peft_type: object = None
    auto_mapping: object = None
    base_model_name_or_path: object = None
    revision: object = None
    inference_mode: bool = False
    peft_version: object = None

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
        from ..fileio import write_json_atomic
        write_json_atomic(os.path.join(save_directory, CONFIG_NAME), d, sort_keys=True, ensure_ascii=True,
                          trailing_newline=False)

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        if cls is PeftConfig:
            from .mapping import PEFT_TYPE_TO_CONFIG
            pt = d.get("peft_type")
            if pt not in PEFT_TYPE_TO_CONFIG:
                raise ValueError(f"adapter config has peft_type {pt!r}; peftcpp supports "
                                 f"{', '.join(PEFT_TYPE_TO_CONFIG)}")
            return PEFT_TYPE_TO_CONFIG[pt].from_dict(d)
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in d.items() if k in names}
        unknown = sorted(k for k in d if k not in names)
        if unknown:
            warnings.warn(f"Unexpected keyword arguments {unknown} for class {cls.__name__}, these are ignored "
                          "(a config written by a newer PEFT version?)")
        return cls(**known)

    @classmethod
    def from_json_file(cls, path):
        from ..fileio import read_json_object
        return read_json_object(path)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, subfolder=None, **kwargs):
        path = os.fspath(pretrained_model_name_or_path)
        if subfolder:
            path = os.path.join(path, subfolder)
        file = os.path.join(path, CONFIG_NAME)
        if not os.path.isfile(file):
            from ..hub import resolve_file
            file = resolve_file(pretrained_model_name_or_path, CONFIG_NAME, **kwargs)
        d = cls.from_json_file(file)
        return cls.from_dict(d)

    @property
    def is_prompt_learning(self):
        return False

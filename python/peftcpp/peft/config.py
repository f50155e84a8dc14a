"""PeftConfigMixin / PeftConfig: the fields every method's config has, as
typed dataclass fields with help text (PEFT's names); configs read and write
adapter_config.json as PEFT does (sorted keys, indent 2). A method's config
subclasses PeftConfig; PeftConfig.from_pretrained picks it by peft_type from
the method registry."""
import dataclasses
import enum
import json
import os
import re
import typing
import warnings
from dataclasses import field
from typing import Literal, Optional, Union

from ..fileio import read_json_object, write_json_atomic
from ..hub import resolve_file
from ..models.config_checks import ConfigFieldError, is_int, is_number, show
from .utils.constants import CONFIG_NAME, PEFT_FORMAT_VERSION, SAFETENSORS_WEIGHTS_NAME
from .utils.peft_types import PEFT_TYPE_TO_CONFIG_MAPPING, PeftType, TaskType

__all__ = ["PeftConfigMixin", "PeftConfig", "PeftType", "TaskType", "CONFIG_NAME", "SAFETENSORS_WEIGHTS_NAME",
           "PEFT_FORMAT_VERSION", "AdapterConfigError", "AdapterConfigTypeError", "UnsupportedAdapterOption"]


class AdapterConfigError(ConfigFieldError):
    """A wrong adapter config field: "<adapter_config.json or the class>: <field> <what is wrong>"."""


class AdapterConfigTypeError(AdapterConfigError, TypeError):
    """An adapter config field of the wrong type."""


class UnsupportedAdapterOption(AdapterConfigError, NotImplementedError):
    """A PEFT option peftcpp does not implement, turned on."""


def _type_name(tp):
    """How an annotation reads in a message: Optional[Union[list, str]] -> 'a list, a string or null'."""
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "an object", type(None): "null"}
    if typing.get_origin(tp) is Union:
        args = [a for a in typing.get_args(tp) if a not in (TaskType, PeftType) and not (a is int and float in
                                                                                       typing.get_args(tp))]
        parts = [_type_name(a) for a in args]
        return ", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 1 else parts[0]
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _matches(value, tp):
    """Whether a value fits a field's annotation (as JSON gives it: lists may already be sets)."""
    origin = typing.get_origin(tp)
    if origin is Union:
        return any(_matches(value, a) for a in typing.get_args(tp))
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in typing.get_args(tp))
    if tp is int:
        return is_int(value)  # JSON true is not a rank
    if tp is float:
        return is_number(value)
    if tp is list:
        return isinstance(value, (list, tuple, set, frozenset))
    if tp is type(None):
        return value is None
    return isinstance(value, tp)


# Checks beyond the annotation, named in a field's metadata ("check"): value -> what is wrong, or None.
MAX_RANK = 2 ** 31 - 1  # an int64 dimension; memory and the weights file bound it further


def is_rank(v):
    return is_int(v) and 1 <= v <= MAX_RANK


def is_finite(v):
    return is_number(v) and v == v and abs(v) != float("inf")


def positive_int(v):
    return None if is_rank(v) else f"must be an integer from 1 to {MAX_RANK}, got {show(v)}"


def finite_number(v):
    return None if is_finite(v) else f"must be a finite number, got {show(v)}"


def dropout(v):
    return None if 0 <= v < 1 else f"must be in [0, 1), got {show(v)}"


def _exponential(parsed, in_repeat=False):
    """Whether a parsed regex repeats, without bound, something that itself repeats without bound or
    branches ("(a+)+", "(a|aa)*"): Python's matcher may then take exponential time on a short name."""
    try:
        from re import _constants as c  # noqa: PLC0415 - the parser's node names
    except ImportError:  # pragma: no cover - another Python's layout: no check
        return False
    for op, av in parsed:
        if op in (c.MAX_REPEAT, c.MIN_REPEAT):
            unbounded = av[1] == c.MAXREPEAT
            if (unbounded and in_repeat) or _exponential(av[2], in_repeat or unbounded):
                return True
        elif op is c.BRANCH:
            if in_repeat or any(_exponential(b, in_repeat) for b in av[1]):
                return True
        elif op is c.SUBPATTERN and _exponential(av[-1], in_repeat):
            return True
        elif op in (c.ASSERT, c.ASSERT_NOT) and _exponential(av[1], in_repeat):
            return True
    return False


def _regex_problem(pattern, used_as=None):
    text = pattern if used_as is None else used_as(pattern)
    where = "" if used_as is None else " where peftcpp uses it"
    try:
        compiled = re.compile(text)
        from re import _parser  # noqa: PLC0415
        exponential = _exponential(_parser.parse(text, compiled.flags))
    except (re.error, RecursionError, OverflowError) as e:
        return f"{show(pattern)} is not a valid regular expression{where} ({e})"
    except ImportError:  # pragma: no cover
        exponential = False
    if exponential:
        return (f"{show(pattern)} repeats a repetition or an alternative: matching it may take exponential "
                "time; write it without nesting")
    return None


def names_or_regex(v):
    """target_modules / exclude_modules: a regex (matched against the whole
    module name), or a list of module names."""
    if isinstance(v, str):
        return _regex_problem(v)
    for item in v:
        if not isinstance(item, str):
            return f"must hold strings only, got {show(item)}"
    return None


def regex_parts(used_as):
    """layers_pattern / modules_to_save: names (one or a list) that are put
    into a regex (`used_as`); each must make a valid one."""
    def check(v):
        for item in [v] if isinstance(v, str) else v:
            if not isinstance(item, str):
                return f"must hold strings only, got {show(item)}"
            problem = _regex_problem(item, used_as)
            if problem:
                return f"entry {problem}"
        return None
    return check


def layer_indices(v):
    items = v if isinstance(v, (list, tuple, set, frozenset)) else [v]
    for i in items:
        if not is_int(i) or i < 0:
            return f"must be layer indices (integers >= 0), got {show(i)}"
    return None


def pattern_map(value_ok, what):
    """rank_pattern / alpha_pattern: {module name or regex: value}."""
    def check(d):
        for k, v in d.items():
            problem = _regex_problem(k, lambda key: rf"(.*\.)?({key})$")  # as get_pattern_key matches it
            if problem:
                return f"key {problem}"
            if not value_ok(v):
                return f"entry {k!r} must be {what}, got {show(v)}"
        return None
    return check


def check_config_fields(config):
    """Every dataclass field against its annotation and its metadata's
    "check"; raises AdapterConfigError naming the field (the source is the
    class, located at the file by the loaders)."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if not _matches(value, f.type):
            raise AdapterConfigTypeError(f.name, f"must be {_type_name(f.type)}, got {show(value)}",
                                         type(config).__name__)
        check = f.metadata.get("check")
        problem = check(value) if check is not None and value is not None else None
        if problem:
            raise AdapterConfigError(f.name, problem, type(config).__name__)


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
        check_config_fields(self)
        if self.task_type is not None:
            try:
                self.task_type = TaskType(self.task_type)
            except ValueError:
                raise AdapterConfigError("task_type", f"{show(self.task_type)} is not valid (Invalid task type: "
                                         f"must be one of {', '.join(t.value for t in TaskType)})",
                                         type(self).__name__) from None
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
            if not isinstance(pt, str) or pt not in PEFT_TYPE_TO_CONFIG_MAPPING:
                raise AdapterConfigError("peft_type", f"{show(pt)} is not supported (peftcpp supports "
                                         f"{', '.join(PEFT_TYPE_TO_CONFIG_MAPPING)})", cls.__name__)
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
        try:
            config = cls.from_dict(d)
        except AdapterConfigError as e:
            raise e.located(file) from None
        config._source = os.fspath(file)  # for later messages (rank checks); not a field, never saved
        return config

    @property
    def is_prompt_learning(self):
        return False


@dataclasses.dataclass
class PeftConfig(PeftConfigMixin):
    """Base class of the methods' configs (LoraConfig, ...)."""

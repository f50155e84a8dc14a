"""get_peft_model (PEFT's signature), get_peft_config, and PEFT's names for
the method registry's tables."""
from ..nn import Module
from .peft_model import MODEL_TYPE_TO_PEFT_MODEL_MAPPING, PeftModel
from .utils.peft_types import (
    PEFT_TYPE_TO_CONFIG_MAPPING,
    PEFT_TYPE_TO_PREFIX_MAPPING,
    PEFT_TYPE_TO_TUNER_MAPPING,
    register_peft_method,
)

__all__ = ["get_peft_model", "get_peft_config", "PEFT_TYPE_TO_CONFIG_MAPPING", "PEFT_TYPE_TO_TUNER_MAPPING",
           "PEFT_TYPE_TO_PREFIX_MAPPING", "register_peft_method"]


def get_peft_config(config_dict):
    """The registered method's config built from a dict with a peft_type."""
    return PEFT_TYPE_TO_CONFIG_MAPPING[config_dict["peft_type"]](**config_dict)


def get_peft_model(model, peft_config, adapter_name="default", mixed=False, autocast_adapter_dtype=True,
                   revision=None, low_cpu_mem_usage=False):
    """Wraps the matched layers of `model` (in place) with the config's method
    and returns the PeftModel (PeftModelForCausalLM etc. by task_type)."""
    if not isinstance(model, Module):
        raise TypeError(f"get_peft_model needs a peftcpp.nn.Module, got {type(model).__name__}")
    if not isinstance(peft_config, tuple(PEFT_TYPE_TO_CONFIG_MAPPING.values())):
        supported = ", ".join(c.__name__ for c in PEFT_TYPE_TO_CONFIG_MAPPING.values())
        raise TypeError(f"peftcpp supports {supported}, got {type(peft_config).__name__}")
    if peft_config.base_model_name_or_path is None:
        peft_config.base_model_name_or_path = model.__dict__.get("name_or_path") or None
    if revision is not None:
        peft_config.revision = revision
    cls = MODEL_TYPE_TO_PEFT_MODEL_MAPPING.get(peft_config.task_type, PeftModel)
    return cls(model, peft_config, adapter_name=adapter_name)

"""get_peft_model (PEFT's signature)."""
from .config import PeftType
from .peft_model import MODEL_TYPE_TO_PEFT_MODEL_MAPPING, PeftModel
from .tuners.lora.config import LoraConfig

PEFT_TYPE_TO_CONFIG = {"LORA": LoraConfig, PeftType.LORA: LoraConfig}


def get_peft_model(model, peft_config, adapter_name="default", mixed=False, autocast_adapter_dtype=True,
                   revision=None, low_cpu_mem_usage=False):
    """Wraps the matched layers of `model` (in place) with LoRA and returns
    the PeftModel (PeftModelForCausalLM etc. by task_type)."""
    from ..nn import Module
    if not isinstance(model, Module):
        raise TypeError(f"get_peft_model needs a peftcpp.nn.Module, got {type(model).__name__}")
    if not isinstance(peft_config, LoraConfig):
        raise TypeError(f"peftcpp supports LoraConfig, got {type(peft_config).__name__}")
    if peft_config.base_model_name_or_path is None:
        peft_config.base_model_name_or_path = model.__dict__.get("name_or_path") or None
    if revision is not None:
        peft_config.revision = revision
    cls = MODEL_TYPE_TO_PEFT_MODEL_MAPPING.get(peft_config.task_type, PeftModel)
    return cls(model, peft_config, adapter_name=adapter_name)

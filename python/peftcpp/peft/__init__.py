"""Hugging Face PEFT's API over the peftcpp engine: LoraConfig,
get_peft_model, PeftModel; adapters on disk exactly as PEFT writes them.

Layout as PEFT's: utils/peft_types.py (method registry), config.py
(PeftConfig), tuners/tuners_utils.py (BaseTuner, BaseTunerLayer),
tuners/target_selection.py (which modules are wrapped), tuners/<method>/
(one folder per method), peft_model.py, mapping.py (get_peft_model)."""
from .config import PeftConfig, PeftConfigMixin, PeftType, TaskType
from .mapping import (
    PEFT_TYPE_TO_CONFIG_MAPPING,
    PEFT_TYPE_TO_PREFIX_MAPPING,
    PEFT_TYPE_TO_TUNER_MAPPING,
    get_peft_config,
    get_peft_model,
)
from .peft_model import (
    PeftModel,
    PeftModelForCausalLM,
    PeftModelForFeatureExtraction,
    PeftModelForQuestionAnswering,
    PeftModelForSeq2SeqLM,
    PeftModelForSequenceClassification,
    PeftModelForTokenClassification,
)
from .tuners import BaseTuner, BaseTunerLayer
from .tuners.lora import LoraConfig, LoraLayer, LoraModel
from .utils import get_peft_model_state_dict, register_peft_method, set_peft_model_state_dict

__all__ = ["PeftConfig", "PeftConfigMixin", "PeftType", "TaskType", "LoraConfig", "LoraModel", "LoraLayer",
           "BaseTuner", "BaseTunerLayer", "get_peft_model", "get_peft_config", "register_peft_method",
           "PEFT_TYPE_TO_CONFIG_MAPPING", "PEFT_TYPE_TO_TUNER_MAPPING", "PEFT_TYPE_TO_PREFIX_MAPPING",
           "PeftModel", "PeftModelForCausalLM", "PeftModelForSeq2SeqLM", "PeftModelForSequenceClassification",
           "PeftModelForTokenClassification", "PeftModelForQuestionAnswering", "PeftModelForFeatureExtraction",
           "get_peft_model_state_dict", "set_peft_model_state_dict"]

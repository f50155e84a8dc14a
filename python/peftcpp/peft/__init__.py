"""Hugging Face PEFT's API over the peftcpp engine: LoraConfig,
get_peft_model, PeftModel; adapters on disk exactly as PEFT writes them."""
from .config import PeftConfig, PeftType, TaskType
from .mapping import get_peft_model
from .peft_model import (
    PeftModel,
    PeftModelForCausalLM,
    PeftModelForFeatureExtraction,
    PeftModelForQuestionAnswering,
    PeftModelForSeq2SeqLM,
    PeftModelForSequenceClassification,
    PeftModelForTokenClassification,
)
from .tuners.lora import LoraConfig, LoraLayer, LoraModel
from .utils import get_peft_model_state_dict, set_peft_model_state_dict

__all__ = ["PeftConfig", "PeftType", "TaskType", "LoraConfig", "LoraModel", "LoraLayer", "get_peft_model",
           "PeftModel", "PeftModelForCausalLM", "PeftModelForSeq2SeqLM", "PeftModelForSequenceClassification",
           "PeftModelForTokenClassification", "PeftModelForQuestionAnswering", "PeftModelForFeatureExtraction",
           "get_peft_model_state_dict", "set_peft_model_state_dict"]

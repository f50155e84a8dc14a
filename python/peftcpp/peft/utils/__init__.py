from .other import ModulesToSaveWrapper, get_pattern_key
from .peft_types import PeftType, TaskType, register_peft_method
from .save_and_load import get_peft_model_state_dict, set_peft_model_state_dict

__all__ = ["ModulesToSaveWrapper", "get_pattern_key", "PeftType", "TaskType", "register_peft_method",
           "get_peft_model_state_dict", "set_peft_model_state_dict"]

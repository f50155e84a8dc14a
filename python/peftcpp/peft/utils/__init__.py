from .other import ModulesToSaveWrapper, get_pattern_key
from .save_and_load import get_peft_model_state_dict, set_peft_model_state_dict

__all__ = ["ModulesToSaveWrapper", "get_pattern_key", "get_peft_model_state_dict", "set_peft_model_state_dict"]

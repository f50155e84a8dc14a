"""The PEFT methods. Importing a method's package registers it
(utils.peft_types.register_peft_method); a new method is one folder here
(config.py, layer.py, model.py, __init__.py with the register call) and
one import line below."""
from .lora import LoraConfig, LoraModel
from .target_selection import check_target_module_exists, find_blocks, last_blocks_linear_targets
from .tuners_utils import BaseTuner, BaseTunerLayer

__all__ = ["LoraConfig", "LoraModel", "BaseTuner", "BaseTunerLayer", "check_target_module_exists", "find_blocks",
           "last_blocks_linear_targets"]

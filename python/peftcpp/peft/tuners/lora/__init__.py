"""LoRA (Hu et al. 2021) as a PEFT method: config, layers, tuner, and the
one call that registers them."""
from ...utils.peft_types import register_peft_method
from .config import LoraConfig
from .layer import Embedding, Linear, LoraLayer
from .model import LoraModel

register_peft_method(name="lora", config_cls=LoraConfig, model_cls=LoraModel)

__all__ = ["LoraConfig", "LoraLayer", "Linear", "Embedding", "LoraModel"]

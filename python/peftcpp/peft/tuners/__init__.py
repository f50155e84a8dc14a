from .lora import LoraConfig, LoraModel

__all__ = ["LoraConfig", "LoraModel"]

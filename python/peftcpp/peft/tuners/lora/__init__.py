from .config import LoraConfig
from .layer import Embedding, Linear, LoraLayer
from .model import LoraModel

__all__ = ["LoraConfig", "LoraLayer", "Linear", "Embedding", "LoraModel"]

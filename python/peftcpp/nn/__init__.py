"""peftcpp.nn: torch.nn's Module system over the native engine."""
from . import functional, init  # noqa: F401
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from .module import Module
from .modules import (
    Conv1D,
    GELU,
    Dropout,
    Embedding,
    Identity,
    LayerNorm,
    Linear,
    LogSoftmax,
    ModuleDict,
    ModuleList,
    ParameterDict,
    ReLU,
    RMSNorm,
    Sequential,
    SiLU,
    Softmax,
    Tanh,
    empty_weights_enabled,
    init_empty_weights,
)
from .parameter import Parameter
from . import utils  # noqa: F401

__all__ = ["Module", "Parameter", "Linear", "Embedding", "LayerNorm", "RMSNorm", "Dropout", "GELU", "SiLU", "ReLU",
           "Tanh", "Identity", "init_empty_weights", "empty_weights_enabled", "ModuleList", "ModuleDict", "ParameterDict",
           "Conv1D", "Sequential", "Softmax", "LogSoftmax", "CrossEntropyLoss", "MSELoss", "BCEWithLogitsLoss",
           "functional", "init", "utils"]

"""Causal language models written on the engine, one file per
architecture, with transformers' module and parameter names."""
from .auto import AutoConfig, AutoModelForCausalLM, register
from .cache import DynamicCache
from .configuration import PretrainedConfig
from .generation import GenerationConfig, GenerationMixin
from .llama import LlamaConfig, LlamaForCausalLM
from .modeling_utils import PreTrainedModel

register("llama", LlamaConfig, LlamaForCausalLM)

__all__ = ["AutoConfig", "AutoModelForCausalLM", "DynamicCache", "GenerationConfig", "GenerationMixin",
           "LlamaConfig", "LlamaForCausalLM", "PretrainedConfig", "PreTrainedModel", "register"]

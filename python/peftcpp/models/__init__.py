"""Language models written on the engine, one file per architecture, with
transformers' module and parameter names. Shared by all of them:
configuration (PretrainedConfig), modeling_utils (PreTrainedModel: load and
save), model_inputs (ids, masks, positions), loss_utils, activations, rope,
cache, outputs, and generation/ (GenerationMixin, imports no architecture).
Mistral, Qwen2, Qwen3, SmolLM3, Phi-3 and Gemma 3 reuse the Llama modules
through the architecture flags of their config class."""
from .auto import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, register, register_seq2seq
from .cache import DynamicCache
from .configuration import PretrainedConfig
from .generation import GenerationConfig, GenerationMixin
from .llama import LlamaConfig, LlamaForCausalLM
from .mistral import MistralConfig, MistralForCausalLM
from .phi3 import Phi3Config, Phi3ForCausalLM
from .qwen2 import Qwen2Config, Qwen2ForCausalLM
from .qwen3 import Qwen3Config, Qwen3ForCausalLM
from .smollm3 import SmolLM3Config, SmolLM3ForCausalLM
from .gemma3 import Gemma3Config, Gemma3ForCausalLM, Gemma3ForConditionalGenerationText, Gemma3TextConfig
from .gpt2 import GPT2Config, GPT2LMHeadModel
from .modeling_utils import PreTrainedModel
from .t5 import T5Config, T5EncoderModel, T5ForConditionalGeneration, T5Model

register("llama", LlamaConfig, LlamaForCausalLM)
register("mistral", MistralConfig, MistralForCausalLM)
register("qwen2", Qwen2Config, Qwen2ForCausalLM)
register("qwen3", Qwen3Config, Qwen3ForCausalLM)
register("smollm3", SmolLM3Config, SmolLM3ForCausalLM)
register("phi3", Phi3Config, Phi3ForCausalLM)
register("gemma3_text", Gemma3TextConfig, Gemma3ForCausalLM)
register("gemma3", Gemma3Config, Gemma3ForConditionalGenerationText)
register("gpt2", GPT2Config, GPT2LMHeadModel)
register_seq2seq("t5", T5Config, T5ForConditionalGeneration)

__all__ = ["AutoConfig", "AutoModelForCausalLM", "AutoModelForSeq2SeqLM", "T5Config", "T5EncoderModel",
           "T5ForConditionalGeneration", "T5Model", "DynamicCache", "GenerationConfig", "GenerationMixin",
           "Gemma3ForCausalLM", "Gemma3TextConfig", "GPT2Config", "GPT2LMHeadModel", "LlamaConfig", "LlamaForCausalLM",
           "MistralConfig", "MistralForCausalLM", "Phi3Config", "Phi3ForCausalLM", "Qwen2Config", "Qwen2ForCausalLM",
           "Qwen3Config", "Qwen3ForCausalLM", "SmolLM3Config", "SmolLM3ForCausalLM",
           "PretrainedConfig", "PreTrainedModel", "register"]

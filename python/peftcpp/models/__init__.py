"""Language models written on the engine, one file per architecture, with
transformers' module and parameter names. Shared by all of them:
configuration (PretrainedConfig), modeling_utils (PreTrainedModel: load and
save), model_inputs (ids, masks, positions), loss_utils, activations, rope,
cache, outputs, and generation/ (GenerationMixin, imports no architecture).
Mistral, Qwen2, Qwen3, SmolLM3, Phi-3 and Gemma 3 reuse the Llama modules
through the architecture flags of their config class."""
from .auto import (AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification,
                   register, register_for_sequence_classification, register_seq2seq)
from .cache import DynamicCache
from .configuration import PretrainedConfig
from .generation import GenerationConfig, GenerationMixin
from .llama import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification
from .mistral import MistralConfig, MistralForCausalLM, MistralForSequenceClassification
from .phi3 import Phi3Config, Phi3ForCausalLM, Phi3ForSequenceClassification
from .qwen2 import Qwen2Config, Qwen2ForCausalLM, Qwen2ForSequenceClassification
from .qwen3 import Qwen3Config, Qwen3ForCausalLM, Qwen3ForSequenceClassification
from .smollm3 import SmolLM3Config, SmolLM3ForCausalLM, SmolLM3ForSequenceClassification
from .gemma3 import (Gemma3Config, Gemma3ForCausalLM, Gemma3ForConditionalGenerationText,
                     Gemma3ForSequenceClassification, Gemma3TextConfig, Gemma3TextForSequenceClassification)
from .gpt2 import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel
from .outputs import SequenceClassifierOutputWithPast
from .sequence_classification import ForSequenceClassification
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
for _model_type, _cls in (("llama", LlamaForSequenceClassification), ("mistral", MistralForSequenceClassification),
                          ("qwen2", Qwen2ForSequenceClassification), ("qwen3", Qwen3ForSequenceClassification),
                          ("smollm3", SmolLM3ForSequenceClassification), ("phi3", Phi3ForSequenceClassification),
                          ("gemma3_text", Gemma3TextForSequenceClassification),
                          ("gemma3", Gemma3ForSequenceClassification), ("gpt2", GPT2ForSequenceClassification)):
    register_for_sequence_classification(_model_type, _cls)

__all__ = ["AutoConfig", "AutoModelForCausalLM", "AutoModelForSeq2SeqLM", "AutoModelForSequenceClassification",
           "ForSequenceClassification", "SequenceClassifierOutputWithPast", "LlamaForSequenceClassification",
           "MistralForSequenceClassification", "Phi3ForSequenceClassification", "Qwen2ForSequenceClassification",
           "Qwen3ForSequenceClassification", "SmolLM3ForSequenceClassification", "Gemma3ForSequenceClassification",
           "Gemma3TextForSequenceClassification", "GPT2ForSequenceClassification",
           "register_for_sequence_classification", "T5Config", "T5EncoderModel",
           "T5ForConditionalGeneration", "T5Model", "DynamicCache", "GenerationConfig", "GenerationMixin",
           "Gemma3ForCausalLM", "Gemma3TextConfig", "GPT2Config", "GPT2LMHeadModel", "LlamaConfig", "LlamaForCausalLM",
           "MistralConfig", "MistralForCausalLM", "Phi3Config", "Phi3ForCausalLM", "Qwen2Config", "Qwen2ForCausalLM",
           "Qwen3Config", "Qwen3ForCausalLM", "SmolLM3Config", "SmolLM3ForCausalLM",
           "PretrainedConfig", "PreTrainedModel", "register"]

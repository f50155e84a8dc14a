"""Mistral: Llama with a sliding attention window on every layer
(config.sliding_window, when set) and no q/k/v bias. Names as
transformers' Mistral."""
from .llama import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification


class MistralConfig(LlamaConfig):
    model_type = "mistral"
    defaults = dict(LlamaConfig.defaults, vocab_size=32000, hidden_size=4096, intermediate_size=14336,
                    num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                    max_position_embeddings=4096 * 32, rms_norm_eps=1e-6, sliding_window=4096)
    qkv_bias = False
    sliding_layers = "all"


class MistralForCausalLM(LlamaForCausalLM):
    config_class = MistralConfig


class MistralForSequenceClassification(LlamaForSequenceClassification):
    config_class = MistralConfig

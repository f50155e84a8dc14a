"""Mistral: Llama with a sliding attention window on every layer
(config.sliding_window, when set). Names as transformers' Mistral."""
from .llama import LlamaAttention, LlamaConfig, LlamaDecoderLayer, LlamaForCausalLM, LlamaModel


class MistralConfig(LlamaConfig):
    model_type = "mistral"
    defaults = dict(LlamaConfig.defaults, vocab_size=32000, hidden_size=4096, intermediate_size=14336,
                    num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                    max_position_embeddings=4096 * 32, rms_norm_eps=1e-6, sliding_window=4096)


class MistralAttention(LlamaAttention):
    qkv_bias = False

    def __init__(self, config, layer_idx):
        super().__init__(config, layer_idx)
        self.sliding_window = int(getattr(config, "sliding_window", None) or 0)


class MistralDecoderLayer(LlamaDecoderLayer):
    attention_class = MistralAttention


class MistralModel(LlamaModel):
    layer_class = MistralDecoderLayer


class MistralForCausalLM(LlamaForCausalLM):
    config_class = MistralConfig
    model_class = MistralModel

"""Qwen3: Llama with RMSNorm on each head's queries and keys (q_norm,
k_norm over head_dim, before RoPE), an explicit head_dim, attention_bias
from the config and Qwen2's optional sliding window. Names as
transformers' Qwen3."""
from .llama import LlamaConfig, LlamaForCausalLM
from .qwen2 import sliding_layer_types


class Qwen3Config(LlamaConfig):
    model_type = "qwen3"
    defaults = dict(LlamaConfig.defaults, vocab_size=151936, hidden_size=4096, intermediate_size=22016,
                    num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32, head_dim=128,
                    max_position_embeddings=32768, use_sliding_window=False, sliding_window=4096,
                    max_window_layers=28, layer_types=None, bos_token_id=None, eos_token_id=None)
    qk_norm = True
    sliding_layers = "layer_types"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        sliding_layer_types(self)


class Qwen3ForCausalLM(LlamaForCausalLM):
    config_class = Qwen3Config

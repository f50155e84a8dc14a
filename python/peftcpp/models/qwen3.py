"""Qwen3: Qwen2 with RMSNorm on each head's queries and keys (q_norm,
k_norm over head_dim, before RoPE), an explicit head_dim and
attention_bias from the config for every projection; the same optional
sliding window. Names as transformers' Qwen3."""
from .llama import LlamaForCausalLM, LlamaForSequenceClassification
from .qwen2 import Qwen2Config


class Qwen3Config(Qwen2Config):
    model_type = "qwen3"
    defaults = dict(Qwen2Config.defaults, head_dim=128)
    qkv_bias = None
    o_proj_bias = None
    qk_norm = True


class Qwen3ForCausalLM(LlamaForCausalLM):
    config_class = Qwen3Config


class Qwen3ForSequenceClassification(LlamaForSequenceClassification):
    config_class = Qwen3Config

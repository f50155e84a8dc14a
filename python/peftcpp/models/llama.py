"""Llama (SmolLM/SmolLM2, Llama 3.x, and the base of mistral, qwen2, qwen3
and smollm3): module and parameter names as in transformers, so checkpoint
keys and PEFT adapter keys map one to one."""
import numpy as np

from .. import _core
from .. import nn
from ..nn import functional as F
from ..utils import checkpoint
from .configuration import PretrainedConfig
from .generation import GenerationMixin
from .modeling_utils import PreTrainedModel, causal_lm_loss, decoder_inputs
from .outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from .rope import RotaryEmbedding


class LlamaConfig(PretrainedConfig):
    model_type = "llama"
    defaults = dict(
        vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=None, head_dim=None, hidden_act="silu", max_position_embeddings=2048,
        rms_norm_eps=1e-6, tie_word_embeddings=False, rope_theta=10000.0, rope_scaling=None, attention_bias=False,
        mlp_bias=False, bos_token_id=1, eos_token_id=2, pad_token_id=None,
    )


def as_ids(x):
    """input ids as an int64 peftcpp tensor [B, T] from a tensor, array or list."""
    if isinstance(x, _core.Tensor):
        t = x if x.dtype in (_core.DType.int64, _core.DType.int32) else None
        if t is None:
            raise TypeError(f"input_ids must be integer token ids, got {x.dtype.name}")
        return t if t.ndim == 2 else t.reshape(1, -1)
    a = np.asarray(x, dtype=np.int64)
    if a.ndim == 1:
        a = a[None]
    return _core.from_numpy(np.ascontiguousarray(a), copy=True)


ACT_GATED = {"silu": F.swiglu, "swish": F.swiglu,
             "gelu_pytorch_tanh": lambda g, u: _core.gelu_mul(g, u, "tanh"),
             "gelu_new": lambda g, u: _core.gelu_mul(g, u, "tanh"),
             "gelu": lambda g, u: _core.gelu_mul(g, u, "none")}


def gated_act(name):
    if name not in ACT_GATED:
        raise ValueError(f"activation '{name}' is not supported (supported: {', '.join(sorted(ACT_GATED))})")
    return ACT_GATED[name]


class LlamaRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(_core.full([hidden_size], 1.0, _core.DType.float32))
        self.variance_epsilon = eps

    def forward(self, x):
        return F.rms_norm(x, None, self.weight, self.variance_epsilon)


class LlamaMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        bias = getattr(config, "mlp_bias", False)
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=bias)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=bias)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=bias)
        self.act = gated_act(getattr(config, "hidden_act", "silu"))

    def forward(self, x):
        return self.down_proj(self.act(self.gate_proj(x), self.up_proj(x)))


class LlamaAttention(nn.Module):
    qkv_bias = None  # None: follow config.attention_bias
    qk_norm = False

    def __init__(self, config, layer_idx):
        super().__init__()
        self.config, self.layer_idx = config, layer_idx
        self.head_dim = config.head_dim
        self.num_heads, self.num_kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.scaling = self.head_dim ** -0.5
        self.sliding_window = 0
        qkv_bias = getattr(config, "attention_bias", False) if self.qkv_bias is None else self.qkv_bias
        o_bias = getattr(config, "attention_bias", False)
        h, d = config.hidden_size, self.head_dim
        self.q_proj = nn.Linear(h, self.num_heads * d, bias=qkv_bias)
        self.k_proj = nn.Linear(h, self.num_kv_heads * d, bias=qkv_bias)
        self.v_proj = nn.Linear(h, self.num_kv_heads * d, bias=qkv_bias)
        self.o_proj = nn.Linear(self.num_heads * d, h, bias=o_bias)
        if self.qk_norm:
            self.q_norm = LlamaRMSNorm(d, eps=config.rms_norm_eps)
            self.k_norm = LlamaRMSNorm(d, eps=config.rms_norm_eps)
        self.use_rope = True
        self.softcap = 0.0

    def forward(self, x, cos, sin, mask=None, cache=None):
        b, t, _ = x.shape
        d = self.head_dim
        q = self.q_proj(x).reshape(b, t, self.num_heads, d)
        k = self.k_proj(x).reshape(b, t, self.num_kv_heads, d)
        v = self.v_proj(x).reshape(b, t, self.num_kv_heads, d).transpose(1, 2)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        if self.use_rope:
            q, k = F.apply_rotary_emb(q, cos, sin), F.apply_rotary_emb(k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        o = F.scaled_dot_product_attention(q, k, v, mask, is_causal=True, scale=self.scaling,
                                           sliding_window=self.sliding_window, softcap=self.softcap)
        return self.o_proj(o.transpose(1, 2).reshape(b, t, self.num_heads * d))


class LlamaDecoderLayer(nn.Module):
    attention_class = LlamaAttention
    mlp_class = LlamaMLP

    def __init__(self, config, layer_idx):
        super().__init__()
        self.self_attn = self.attention_class(config, layer_idx)
        self.mlp = self.mlp_class(config)
        self.input_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(self, x, cos, sin, mask=None, cache=None):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    layer_class = LlamaDecoderLayer

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.padding_idx = getattr(config, "pad_token_id", None)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([self.layer_class(config, i) for i in range(config.num_hidden_layers)])
        self.norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        object.__setattr__(self, "rotary_emb", RotaryEmbedding(config))
        self.gradient_checkpointing = False

    def embed(self, input_ids):
        return self.embed_tokens(input_ids)

    def rope_tables(self, position_ids, layer):
        return self.rotary_emb(position_ids)

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, use_cache=None, **kwargs):
        x, position_ids, past_key_values, mask = decoder_inputs(
            self.embed, input_ids, inputs_embeds, attention_mask, position_ids, past_key_values, use_cache)
        tables = {}
        for layer in self.layers:
            key = self.rope_key(layer)
            if key not in tables:
                tables[key] = self.rope_tables(position_ids, layer)
            cos, sin = tables[key]
            if self.gradient_checkpointing and self.training and past_key_values is None:
                x = checkpoint(layer, x, cos, sin, mask, None)
            else:
                x = layer(x, cos, sin, mask, past_key_values)
        x = self.norm(x)
        return BaseModelOutputWithPast(last_hidden_state=x, past_key_values=past_key_values)

    def rope_key(self, layer):
        return 0


class LlamaForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = LlamaConfig
    model_class = LlamaModel

    def __init__(self, config):
        super().__init__(config)
        self.model = self.model_class(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if getattr(config, "tie_word_embeddings", False):
            self.tie_weights()

    def final_softcap(self):
        return float(getattr(self.config, "final_logit_softcapping", None) or 0.0)

    def logits_from_hidden(self, h):
        logits = F.linear(h, self.lm_head.weight, self.lm_head.bias)
        cap = self.final_softcap()
        if cap:
            logits = (logits * (1.0 / cap)).tanh() * cap
        return logits

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, labels=None, use_cache=None, logits_to_keep=0, **kwargs):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache)
        h = out.last_hidden_state
        if logits_to_keep:
            h_keep = h[:, -logits_to_keep:]
        else:
            h_keep = h
        if labels is None:
            return CausalLMOutputWithPast(logits=self.logits_from_hidden(h_keep), past_key_values=out.past_key_values)
        if self.lm_head.bias is not None:
            raise ValueError("labels with a biased lm_head are not supported by the fused loss")
        loss = causal_lm_loss(h, self.lm_head.weight, as_ids(labels), softcap=self.final_softcap())
        return CausalLMOutputWithPast(loss=loss, past_key_values=out.past_key_values,
                                      logits_fn=lambda: self.logits_from_hidden(h_keep))

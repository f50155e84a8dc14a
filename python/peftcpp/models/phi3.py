"""Phi-3 / Phi-3.5 / Phi-4-mini: Llama with fused projections
(self_attn.qkv_proj = [q; k; v], mlp.gate_up_proj = [gate; up]), partial
rotary embeddings (partial_rotary_factor), an optional sliding window on
every layer, and "longrope" scaling (short factors up to
original_max_position_embeddings, long factors beyond, as transformers
switches them per forward). Names as transformers' Phi3."""
import math

import numpy as np

from .. import _core
from .. import nn
from ..nn import functional as F
from .activations import gated_act
from .config_checks import ConfigFieldError
from .llama import LlamaAttention, LlamaConfig, LlamaDecoderLayer, LlamaForCausalLM, LlamaModel, \
    LlamaForSequenceClassification
from .model_inputs import as_ids
from .rope import RotaryEmbedding


class Phi3Config(LlamaConfig):
    model_type = "phi3"
    defaults = dict(LlamaConfig.defaults, vocab_size=32064, hidden_size=3072, intermediate_size=8192,
                    num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=None, resid_pdrop=0.0,
                    embd_pdrop=0.0, attention_dropout=0.0, max_position_embeddings=4096,
                    original_max_position_embeddings=4096, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=32000,
                    pad_token_id=32000, sliding_window=None)
    sliding_layers = "all"
    qkv_bias = o_proj_bias = False  # fused projections without biases
    rope_types = LlamaConfig.rope_types + ("longrope",)

    def mlp_projection_bias(self):
        return False

    def check_rope_parameters(self, field):
        super().check_rope_parameters(field)
        rp = self.rope_parameters
        if rp.get("rope_type") == "longrope" and rp.get("attention_factor") is None:
            original = self.original_max_position_embeddings or rp.get("original_max_position_embeddings") or \
                self.max_position_embeddings
            factor = rp.get("factor") or self.max_position_embeddings / original
            if factor > 1 and original < 2:  # the attention factor divides by log(original)
                raise ConfigFieldError("original_max_position_embeddings", f"must be at least 2 for longrope "
                                       f"scaling without attention_factor, got {original}")

    def standardize_rope(self):
        super().standardize_rope()
        rp = self.rope_parameters
        if rp.get("rope_type") in ("su", "yarn"):  # older Phi-3 files; transformers reads them as longrope
            rp["rope_type"] = "longrope"
        rp.setdefault("partial_rotary_factor", getattr(self, "partial_rotary_factor", None) or 1.0)


def _rotary_dim(config, rp):
    return int(config.head_dim * rp.get("partial_rotary_factor", getattr(config, "partial_rotary_factor", None) or 1.0))


class LongRopeRotaryEmbedding(RotaryEmbedding):
    """transformers' longrope: inv_freq = 1 / (ext_factor * base^(2i/dim)),
    ext_factor = short_factor when the positions fit in
    original_max_position_embeddings, long_factor otherwise; cos/sin
    scaled by attention_factor."""

    def __init__(self, config):
        rp = config.rope_parameters
        dim = _rotary_dim(config, rp)
        base = float(rp.get("rope_theta", getattr(config, "rope_theta", 10000.0)))
        original = getattr(config, "original_max_position_embeddings", None) or \
            rp.get("original_max_position_embeddings") or config.max_position_embeddings
        self.original_max_position_embeddings = int(original)
        factor = rp.get("factor") or config.max_position_embeddings / original
        attention_factor = rp.get("attention_factor")
        if attention_factor is None:
            attention_factor = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
        self.attention_scaling = float(attention_factor)
        shape = np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / np.float32(dim)
        powers = np.float32(base) ** shape
        tables = {}
        for key in ("short_factor", "long_factor"):
            ext = rp.get(key)
            if ext is None or len(ext) != dim // 2:
                raise ValueError(f"longrope: rope_parameters['{key}'] must be a list of {dim // 2} numbers "
                                 f"(rotary dim {dim} / 2), got {None if ext is None else len(ext)}")
            tables[key] = (np.float32(1.0) / (np.asarray(ext, dtype=np.float32) * powers)).astype(np.float32)
        self.short_inv_freq, self.long_inv_freq = tables["short_factor"], tables["long_factor"]
        self.inv_freq = self.short_inv_freq

    def __call__(self, position_ids):
        seq_len = int(np.max(position_ids)) + 1
        self.inv_freq = self.long_inv_freq if seq_len > self.original_max_position_embeddings else self.short_inv_freq
        return super().__call__(position_ids)


class Phi3Attention(LlamaAttention):
    def __init__(self, config, layer_idx):
        nn.Module.__init__(self)
        self.config, self.layer_idx = config, layer_idx
        self.head_dim = d = config.head_dim
        self.num_heads, self.num_kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.scaling = d ** -0.5
        self.sliding_window = config.layer_sliding_window(layer_idx)
        self.use_rope, self.qk_norm = True, False
        self.softcap = 0.0
        op_size = (self.num_heads + 2 * self.num_kv_heads) * d
        self.o_proj = nn.Linear(self.num_heads * d, config.hidden_size, bias=False)
        self.qkv_proj = nn.Linear(config.hidden_size, op_size, bias=False)

    def forward(self, x, cos, sin, mask=None, cache=None):
        # x: [B, T, C]; cos, sin: [B, T, R/2] (R = rotary dims <= D); mask: [B, 1, 1, S] or None
        b, t, _ = x.shape
        d, hq, hkv = self.head_dim, self.num_heads, self.num_kv_heads
        qkv = self.qkv_proj(x)  # qkv: [B, T, (H + 2*Hkv)*D]
        q = qkv.narrow(-1, 0, hq * d).reshape(b, t, hq, d).transpose(1, 2)  # q: [B, H, T, D]
        k = qkv.narrow(-1, hq * d, hkv * d).reshape(b, t, hkv, d).transpose(1, 2)  # k: [B, Hkv, T, D]
        v = qkv.narrow(-1, (hq + hkv) * d, hkv * d).reshape(b, t, hkv, d).transpose(1, 2)  # v: [B, Hkv, T, D]
        q, k = F.apply_rotary_emb(q, cos, sin), F.apply_rotary_emb(k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)  # k, v: [B, Hkv, S, D]
        o = F.scaled_dot_product_attention(q, k, v, mask, is_causal=True, scale=self.scaling,
                                           sliding_window=self.sliding_window)  # o: [B, H, T, D]
        return self.o_proj(o.transpose(1, 2).reshape(b, t, hq * d))  # [B, T, H*D] -> [B, T, C]


class Phi3MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.intermediate_size = config.intermediate_size
        self.gate_up_proj = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.act = gated_act(getattr(config, "hidden_act", "silu"))

    def forward(self, x):
        # x: [B, T, C] -> gate_up: [B, T, 2*I] -> act(gate) * up: [B, T, I] -> [B, T, C]
        gate_up = self.gate_up_proj(x)
        n = self.intermediate_size
        return self.down_proj(self.act(gate_up.narrow(-1, 0, n), gate_up.narrow(-1, n, n)))


class Phi3DecoderLayer(LlamaDecoderLayer):
    attention_class = Phi3Attention
    mlp_class = Phi3MLP

    def __init__(self, config, layer_idx):
        super().__init__(config, layer_idx)
        self.resid_pdrop = float(getattr(config, "resid_pdrop", 0.0) or 0.0)

    def forward(self, x, cos, sin, mask=None, cache=None):
        # x: [B, T, C], pre-norm residual blocks with residual dropout
        a = self.self_attn(self.input_layernorm(x), cos, sin, mask, cache)
        if self.resid_pdrop and self.training:
            a = F.dropout(a, self.resid_pdrop, True)
        x = x + a
        m = self.mlp(self.post_attention_layernorm(x))
        if self.resid_pdrop and self.training:
            m = F.dropout(m, self.resid_pdrop, True)
        return x + m


class Phi3Model(LlamaModel):
    layer_class = Phi3DecoderLayer

    def rotary_embedding(self, config):
        if config.rope_parameters.get("rope_type") == "longrope":
            return LongRopeRotaryEmbedding(config)
        return super().rotary_embedding(config)


class Phi3ForCausalLM(LlamaForCausalLM):
    config_class = Phi3Config
    model_class = Phi3Model

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, labels=None, use_cache=None, logits_to_keep=0, **kwargs):
        if (isinstance(self.model.rotary_emb, LongRopeRotaryEmbedding) and past_key_values is not None
                and input_ids is not None and position_ids is None):
            input_ids = self._longrope_restart(as_ids(input_ids).numpy(), past_key_values)
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                               past_key_values=past_key_values, inputs_embeds=inputs_embeds, labels=labels,
                               use_cache=use_cache, logits_to_keep=logits_to_keep, **kwargs)

    def _longrope_restart(self, ids, cache):
        """As transformers' Phi3 generation: when the sequence grows past
        original_max_position_embeddings, the cached keys (rotated with the
        short factors) are dropped and the whole sequence is run again
        with the long factors. The cache remembers the ids it has seen
        (cache.longrope_ids, an attribute only this model sets)."""
        seen = getattr(cache, "longrope_ids", None)
        past = cache.get_seq_length()
        if seen is None or seen.shape != (ids.shape[0], past):
            seen = None if past else ids[:, :0]  # unknown history (e.g. filled from embeddings): no restart
        original = self.model.rotary_emb.original_max_position_embeddings
        if seen is not None and 0 < past <= original < past + ids.shape[1]:
            ids = np.concatenate([seen, ids], axis=1)
            cache.reset()
            seen = ids[:, :0]
        cache.longrope_ids = None if seen is None else np.concatenate([seen, ids], axis=1)
        return _core.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))


class Phi3ForSequenceClassification(LlamaForSequenceClassification):
    config_class = Phi3Config
    model_class = Phi3Model

"""Llama (SmolLM/SmolLM2, Llama 3.x) and the family built on it: module and
parameter names as in transformers, so checkpoint keys and PEFT adapter
keys map one to one. Mistral, Qwen2, Qwen3, SmolLM3, Phi-3 and Gemma 3
differ from Llama by the architecture flags of their config class (see
LlamaConfig); the modules below read them."""
from .. import nn
from ..nn import functional as F
from ..utils import checkpoint
from .activations import ACT_GATED, gated_act
from .config_checks import ConfigFieldError, check_layer_list
from .configuration import PretrainedConfig
from .generation import GenerationMixin
from .loss_utils import causal_lm_loss
from .model_inputs import as_ids, decoder_inputs
from .modeling_utils import PreTrainedModel
from .outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from .rope import RotaryEmbedding
from .sequence_classification import ForSequenceClassification

SLIDING_ATTENTION = "sliding_attention"


class LlamaConfig(PretrainedConfig):
    model_type = "llama"
    defaults = dict(
        vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=None, head_dim=None, hidden_act="silu", max_position_embeddings=2048,
        rms_norm_eps=1e-6, tie_word_embeddings=False, rope_theta=10000.0, rope_scaling=None, attention_bias=False,
        mlp_bias=False, bos_token_id=1, eos_token_id=2, pad_token_id=None,
    )

    # Architecture flags of the family. Class attributes, so they are never
    # written to config.json; each architecture's config class sets its own.
    qkv_bias = None  # bias on q/k/v_proj; None: config.attention_bias
    o_proj_bias = None  # bias on o_proj; None: config.attention_bias
    qk_norm = False  # RMSNorm over each head's queries and keys, before RoPE (Qwen3, Gemma 3)
    rms_norm_offset = 0.0  # 1.0: norms scale by (1 + weight), weights start at 0 (Gemma)
    sliding_layers = None  # which layers use config.sliding_window: None, "all" or "layer_types"
    norms_per_layer = 2  # RMSNorms of hidden_size in each decoder layer (Gemma 3: 4)

    def projection_biases(self):
        """(bias of q/k/v_proj, bias of o_proj)."""
        bias = getattr(self, "attention_bias", False)
        return (bias if self.qkv_bias is None else self.qkv_bias,
                bias if self.o_proj_bias is None else self.o_proj_bias)

    def layer_sliding_window(self, layer_idx):
        """Attention window of a layer, 0 for full attention. "layer_types":
        the layers marked sliding_attention, when use_sliding_window allows."""
        window = int(getattr(self, "sliding_window", None) or 0)
        if self.sliding_layers == "all":
            return window
        if self.sliding_layers == "layer_types" and getattr(self, "use_sliding_window", True) \
                and self.layer_types[layer_idx] == SLIDING_ATTENTION:
            return window
        return 0

    def layer_uses_rope(self, layer_idx):
        """False for SmolLM3's NoPE layers (no_rope_layers[i] == 0)."""
        no_rope_layers = getattr(self, "no_rope_layers", None)
        return True if no_rope_layers is None else bool(no_rope_layers[layer_idx])

    def check_settings(self, rope_field):
        super().check_settings(rope_field)
        check_layer_list("no_rope_layers", getattr(self, "no_rope_layers", None), self.num_hidden_layers)
        act = self.mlp_activation()
        if act not in ACT_GATED:
            field = "hidden_activation" if getattr(self, "hidden_activation", None) else "hidden_act"
            raise ConfigFieldError(field, f"{act!r} is not supported (supported: {', '.join(sorted(ACT_GATED))})")

    def mlp_activation(self):
        return getattr(self, "hidden_act", "silu")

    def mlp_projection_bias(self):
        return getattr(self, "mlp_bias", False)

    def parameter_count(self):
        h, inter, n = self.hidden_size, self.intermediate_size, self.num_hidden_layers
        d, heads, kv = self.head_dim, self.num_attention_heads, self.num_key_value_heads
        qkv_bias, o_bias = self.projection_biases()
        attn = 2 * h * heads * d + 2 * h * kv * d + bool(qkv_bias) * (heads + 2 * kv) * d + bool(o_bias) * h
        attn += 2 * d if self.qk_norm else 0
        mlp = 3 * h * inter + bool(self.mlp_projection_bias()) * (2 * inter + h)
        embed = self.vocab_size * h
        head = 0 if getattr(self, "tie_word_embeddings", False) else embed
        return embed + head + n * (attn + mlp + self.norms_per_layer * h) + h


def rms_norm(config, dim):
    """The family's RMSNorm over `dim` features, with the config's eps and offset."""
    return nn.RMSNorm(dim, eps=config.rms_norm_eps, offset=config.rms_norm_offset)


class LlamaMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        bias = config.mlp_projection_bias()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=bias)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=bias)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=bias)
        self.act = gated_act(config.mlp_activation())

    def forward(self, x):
        # x: [B, T, C] -> gate, up: [B, T, I] -> act(gate) * up: [B, T, I] -> [B, T, C]
        return self.down_proj(self.act(self.gate_proj(x), self.up_proj(x)))


class LlamaAttention(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.config, self.layer_idx = config, layer_idx
        self.head_dim = config.head_dim
        self.num_heads, self.num_kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.scaling = self.head_dim ** -0.5
        self.sliding_window = config.layer_sliding_window(layer_idx)
        self.use_rope = config.layer_uses_rope(layer_idx)
        self.softcap = 0.0
        qkv_bias, o_bias = config.projection_biases()
        h, d = config.hidden_size, self.head_dim
        self.q_proj = nn.Linear(h, self.num_heads * d, bias=qkv_bias)
        self.k_proj = nn.Linear(h, self.num_kv_heads * d, bias=qkv_bias)
        self.v_proj = nn.Linear(h, self.num_kv_heads * d, bias=qkv_bias)
        self.o_proj = nn.Linear(self.num_heads * d, h, bias=o_bias)
        self.qk_norm = config.qk_norm
        if self.qk_norm:
            self.q_norm = rms_norm(config, d)
            self.k_norm = rms_norm(config, d)

    def forward(self, x, cos, sin, mask=None, cache=None):
        # x: [B, T, C]; cos, sin: [B, T, R/2]; mask: [B, 1, 1, S] or None; S = past + T keys
        b, t, _ = x.shape
        d = self.head_dim
        q = self.q_proj(x).reshape(b, t, self.num_heads, d)  # q: [B, T, H, D]
        k = self.k_proj(x).reshape(b, t, self.num_kv_heads, d)  # k: [B, T, Hkv, D]
        v = self.v_proj(x).reshape(b, t, self.num_kv_heads, d).transpose(1, 2)  # v: [B, Hkv, T, D]
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)  # over D, per head
        q, k = q.transpose(1, 2), k.transpose(1, 2)  # q: [B, H, T, D], k: [B, Hkv, T, D]
        if self.use_rope:
            q, k = F.apply_rotary_emb(q, cos, sin), F.apply_rotary_emb(k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)  # k, v: [B, Hkv, S, D]
        o = F.scaled_dot_product_attention(q, k, v, mask, is_causal=True, scale=self.scaling,
                                           sliding_window=self.sliding_window, softcap=self.softcap)  # o: [B, H, T, D]
        return self.o_proj(o.transpose(1, 2).reshape(b, t, self.num_heads * d))  # [B, T, H*D] -> [B, T, C]


class LlamaDecoderLayer(nn.Module):
    attention_class = LlamaAttention
    mlp_class = LlamaMLP

    def __init__(self, config, layer_idx):
        super().__init__()
        self.self_attn = self.attention_class(config, layer_idx)
        self.mlp = self.mlp_class(config)
        self.input_layernorm = rms_norm(config, config.hidden_size)
        self.post_attention_layernorm = rms_norm(config, config.hidden_size)

    def forward(self, x, cos, sin, mask=None, cache=None):
        # x: [B, T, C], pre-norm residual blocks
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    layer_class = LlamaDecoderLayer

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.padding_idx = getattr(config, "pad_token_id", None)
        self.embed_tokens = self.input_embedding(config)
        self.layers = nn.ModuleList([self.layer_class(config, i) for i in range(config.num_hidden_layers)])
        self.norm = rms_norm(config, config.hidden_size)
        object.__setattr__(self, "rotary_emb", self.rotary_embedding(config))  # tables, not a submodule
        self.gradient_checkpointing = False

    def input_embedding(self, config):
        return nn.Embedding(config.vocab_size, config.hidden_size)

    def rotary_embedding(self, config):
        return RotaryEmbedding(config)

    def embed(self, input_ids):
        return self.embed_tokens(input_ids)

    def rope_tables(self, position_ids, layer):
        return self.rotary_emb(position_ids)

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, use_cache=None, **kwargs):
        # x: [B, T, C]; position_ids: [B, T]; mask: [B, 1, 1, S] or None
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
        logits = F.linear(h, self.lm_head.weight, self.lm_head.bias)  # h: [B, T, C] -> logits: [B, T, V]
        cap = self.final_softcap()
        if cap:
            logits = (logits * (1.0 / cap)).tanh() * cap
        return logits

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, labels=None, use_cache=None, logits_to_keep=0, **kwargs):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache)
        h = out.last_hidden_state  # h: [B, T, C]
        if logits_to_keep:
            h_keep = h[:, -logits_to_keep:]  # h_keep: [B, K, C]
        else:
            h_keep = h
        if labels is None:
            return CausalLMOutputWithPast(logits=self.logits_from_hidden(h_keep), past_key_values=out.past_key_values)
        if self.lm_head.bias is not None:
            raise ValueError("labels with a biased lm_head are not supported by the fused loss")
        loss = causal_lm_loss(h, self.lm_head.weight, as_ids(labels), softcap=self.final_softcap())  # labels: [B, T]
        return CausalLMOutputWithPast(loss=loss, past_key_values=out.past_key_values,
                                      logits_fn=lambda: self.logits_from_hidden(h_keep))


class LlamaForSequenceClassification(ForSequenceClassification):
    config_class = LlamaConfig
    model_class = LlamaModel

"""GPT-2 (GPT2LMHeadModel): module and parameter names as in transformers
(transformer.wte/wpe/h.N/ln_f, Conv1D projections stored [in, out]), so
checkpoint keys and PEFT adapter keys map one to one. Learned absolute
positions, pre-LayerNorm blocks, tanh-approximated GELU, tied lm_head."""
import numpy as np

from .. import _core
from .. import nn
from ..nn import Conv1D, functional as F  # Conv1D lives in nn (transformers.pytorch_utils)
from ..utils import checkpoint
from .config_checks import ConfigFieldError
from .configuration import PretrainedConfig, attribute_alias
from .generation import GenerationMixin
from .loss_utils import causal_lm_loss
from .model_inputs import as_ids, decoder_inputs
from .modeling_utils import PreTrainedModel
from .outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from .sequence_classification import ForSequenceClassification

_ALIASES = {"hidden_size": "n_embd", "num_hidden_layers": "n_layer", "num_attention_heads": "n_head",
            "max_position_embeddings": "n_positions"}
# activation_function -> F.gelu's approximation, or another activation
_GELU_APPROX = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu_fast": "tanh", "gelu": "none"}
_OTHER_ACTS = ("relu", "silu", "swish")


class GPT2Config(PretrainedConfig):
    """config.json spells n_embd, n_layer, n_head, n_positions; transformers'
    common names (hidden_size, ...) read and write the same values."""
    model_type = "gpt2"
    defaults = dict(
        vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12, n_inner=None,
        activation_function="gelu_new", layer_norm_epsilon=1e-5, scale_attn_weights=True,
        scale_attn_by_inverse_layer_idx=False, reorder_and_upcast_attn=False, add_cross_attention=False,
        bos_token_id=50256, eos_token_id=50256, pad_token_id=None, tie_word_embeddings=True,
    )

    def __init__(self, **kwargs):
        for common, own in _ALIASES.items():
            if common in kwargs:
                kwargs.setdefault(own, kwargs.pop(common))
        super().__init__(**kwargs)
        if self.add_cross_attention:
            raise ConfigFieldError("add_cross_attention", "true (encoder-decoder use) is not supported")
        if self.n_embd % self.n_head:
            raise ConfigFieldError("n_head", f"({self.n_head}) must divide n_embd ({self.n_embd})")
        act = self.activation_function
        if act not in _GELU_APPROX and act not in _OTHER_ACTS:
            raise ConfigFieldError("activation_function", f"{act!r} is not supported (supported: "
                                   f"{', '.join(list(_GELU_APPROX) + list(_OTHER_ACTS))})")

    def parameter_count(self):
        e, v, n = self.n_embd, self.vocab_size, self.n_layer
        inner = self.n_inner if self.n_inner is not None else 4 * e
        block = 4 * e + (3 * e * e + 3 * e) + (e * e + e) + (e * inner + inner) + (inner * e + e)
        head = 0 if getattr(self, "tie_word_embeddings", True) else v * e
        return v * e + self.n_positions * e + n * block + 2 * e + head

    def standardize_rope(self):
        pass  # learned positions: no RoPE

    def to_dict(self):
        out = super().to_dict()
        for k in ("head_dim", "num_key_value_heads"):  # derived, not part of a GPT-2 config
            out.pop(k, None)
        return out


for _common, _own in _ALIASES.items():
    setattr(GPT2Config, _common, attribute_alias(_own))


class GPT2Attention(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.layer_idx = layer_idx
        self.embed_dim = config.n_embd
        self.num_heads = config.n_head
        self.head_dim = self.embed_dim // self.num_heads
        self.scaling = self.head_dim ** -0.5 if config.scale_attn_weights else 1.0
        if config.scale_attn_by_inverse_layer_idx:
            self.scaling /= float(layer_idx + 1)
        self.c_attn = Conv1D(3 * self.embed_dim, self.embed_dim)
        self.c_proj = Conv1D(self.embed_dim, self.embed_dim)

    def forward(self, x, mask=None, cache=None):
        # x: [B, T, C]; mask: [B, 1, 1, S] or None; S = past + T keys
        b, t, c = x.shape
        h, d = self.num_heads, self.head_dim
        qkv = self.c_attn(x).reshape(b, t, 3, h, d)  # qkv: [B, T, 3, H, D]
        q, k, v = (_core.select(qkv, 2, i).transpose(1, 2) for i in range(3))  # q, k, v: [B, H, T, D]
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)  # k, v: [B, H, S, D]
        o = F.scaled_dot_product_attention(q, k, v, mask, is_causal=True, scale=self.scaling)  # o: [B, H, T, D]
        return self.c_proj(o.transpose(1, 2).reshape(b, t, c))  # [B, T, C]


class GPT2MLP(nn.Module):
    def __init__(self, inner, config):
        super().__init__()
        self.c_fc = Conv1D(inner, config.n_embd)
        self.c_proj = Conv1D(config.n_embd, inner)
        act = config.activation_function  # checked by GPT2Config
        if act in _GELU_APPROX:
            self.act = lambda y, a=_GELU_APPROX[act]: F.gelu(y, a)
        else:
            self.act = F.relu if act == "relu" else F.silu

    def forward(self, x):
        return self.c_proj(self.act(self.c_fc(x)))  # x: [B, T, C] -> [B, T, inner] -> [B, T, C]


class GPT2Block(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        inner = config.n_inner if config.n_inner is not None else 4 * config.n_embd
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = GPT2Attention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = GPT2MLP(inner, config)

    def forward(self, x, mask=None, cache=None):
        # x: [B, T, C], pre-LayerNorm residual blocks
        x = x + self.attn(self.ln_1(x), mask, cache)
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embed_dim = config.n_embd
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.h = nn.ModuleList([GPT2Block(config, i) for i in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.gradient_checkpointing = False

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, use_cache=None, **kwargs):
        # x: [B, T, C]; position_ids: [B, T]; mask: [B, 1, 1, S] or None
        x, position_ids, past_key_values, mask = decoder_inputs(
            self.wte, input_ids, inputs_embeds, attention_mask, position_ids, past_key_values, use_cache)
        b, t = x.shape[0], x.shape[1]
        pos = np.ascontiguousarray(np.broadcast_to(position_ids, (b, t)), dtype=np.int64)
        if pos.size and (pos.max() >= self.config.n_positions or pos.min() < 0):
            raise ValueError(f"gpt2: positions up to {int(pos.max())} but the model has n_positions="
                             f"{self.config.n_positions}")
        x = x + self.wpe(_core.from_numpy(pos))
        for block in self.h:
            if self.gradient_checkpointing and self.training and past_key_values is None:
                x = checkpoint(block, x, mask, None)
            else:
                x = block(x, mask, past_key_values)
        x = self.ln_f(x)
        return BaseModelOutputWithPast(last_hidden_state=x, past_key_values=past_key_values)


class GPT2LMHeadModel(PreTrainedModel, GenerationMixin):
    config_class = GPT2Config
    base_model_prefix = "transformer"
    _tied_weights_keys = ["lm_head.weight"]
    block_lists = {"h": "n_layer"}

    def __init__(self, config):
        super().__init__(config)
        self.transformer = GPT2Model(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if getattr(config, "tie_word_embeddings", True):
            self.tie_weights()

    def get_input_embeddings(self):
        return self.transformer.wte

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, labels=None, use_cache=None, logits_to_keep=0, **kwargs):
        out = self.transformer(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                               past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache)
        h = out.last_hidden_state  # h: [B, T, C]
        h_keep = h[:, -logits_to_keep:] if logits_to_keep else h  # h_keep: [B, K, C] -> logits: [B, K, V]
        if labels is None:
            return CausalLMOutputWithPast(logits=F.linear(h_keep, self.lm_head.weight),
                                          past_key_values=out.past_key_values)
        loss = causal_lm_loss(h, self.lm_head.weight, as_ids(labels))  # labels: [B, T]
        return CausalLMOutputWithPast(loss=loss, past_key_values=out.past_key_values,
                                      logits_fn=lambda: F.linear(h_keep, self.lm_head.weight))


class GPT2ForSequenceClassification(ForSequenceClassification):
    config_class = GPT2Config
    model_class = GPT2Model
    base_model_prefix = "transformer"
    block_lists = {"h": "n_layer"}

    def get_input_embeddings(self):
        return self.transformer.wte

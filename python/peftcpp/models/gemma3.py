"""Gemma 3 text models (Gemma3ForCausalLM, model_type "gemma3_text"), and
the text part of multimodal "gemma3" checkpoints: module and parameter
names as in transformers, so checkpoint keys and PEFT adapter keys map one
to one.

Differences from Llama: embeddings scaled by sqrt(hidden_size) (rounded to
the embedding's dtype, as transformers does), RMSNorm scaling by (1 + w),
q/k norms, a norm before and after both the attention and the MLP, attention
scale query_pre_attn_scalar**-0.5, sliding-window and full-attention layers
with their own RoPE parameters, and optional tanh soft-capping of the final
logits (attn_logit_softcapping is read but, as in transformers' Gemma 3,
not applied)."""
import copy

import numpy as np

from .. import nn
from ..nn import functional as F
from .._tensor import bfloat16, float16
from .config_checks import ConfigFieldError, ConfigFieldTypeError, check_layer_list, check_rope, is_int, show
from .llama import SLIDING_ATTENTION, LlamaAttention, LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification, \
    LlamaMLP, LlamaModel, rms_norm
from .configuration import LABEL_FIELDS
from .rope import RotaryEmbedding

LAYER_TYPES = (SLIDING_ATTENTION, "full_attention")
_DEFAULT_THETA = {"full_attention": 1_000_000.0, "sliding_attention": 10_000.0}


class Gemma3TextConfig(LlamaConfig):
    """Own defaults (not Llama's); the Llama family's flags say: q/k norms,
    (1 + w) norms, sliding window on the sliding_attention layers."""
    model_type = "gemma3_text"
    defaults = dict(
        vocab_size=262_208, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26, num_attention_heads=8,
        num_key_value_heads=4, head_dim=256, hidden_activation="gelu_pytorch_tanh", max_position_embeddings=131_072,
        rms_norm_eps=1e-6, pad_token_id=0, eos_token_id=1, bos_token_id=2, tie_word_embeddings=True,
        attention_bias=False, query_pre_attn_scalar=256, sliding_window=4096, layer_types=None,
        final_logit_softcapping=None, attn_logit_softcapping=None, use_bidirectional_attention=False,
    )
    qk_norm = True
    rms_norm_offset = 1.0
    sliding_layers = "layer_types"
    norms_per_layer = 4

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if getattr(self, "use_bidirectional_attention", False):
            raise ConfigFieldError("use_bidirectional_attention", "true (embedding models) is not supported")
        if self.layer_types is None:
            pattern = int(getattr(self, "sliding_window_pattern", None) or 6)
            self.layer_types = ["sliding_attention" if (i + 1) % pattern else "full_attention"
                                for i in range(self.num_hidden_layers)]
        bad = sorted(set(self.layer_types) - set(LAYER_TYPES))
        if bad:
            raise ConfigFieldError("layer_types", f"has unknown entries {bad} (supported: {', '.join(LAYER_TYPES)})")
        check_layer_list("layer_types", self.layer_types, self.num_hidden_layers)

    def check_settings(self, rope_field):
        super().check_settings(rope_field)
        pad, vocab = self.pad_token_id, self.vocab_size
        if is_int(pad) and not -vocab <= pad < vocab:  # the embedding zeroes that row
            raise ConfigFieldError("pad_token_id", f"({pad}) must be a token of the vocabulary (vocab_size {vocab}): "
                                   "Gemma's embedding keeps its row at zero")

    def check_rope_parameters(self, field):
        for layer_type, rp in self.rope_parameters.items():
            check_rope(rp, f"{field}.{layer_type}", self.rope_types)
            self.check_rotary_dim(rp)

    def mlp_activation(self):
        return getattr(self, "hidden_activation", None) or "gelu_pytorch_tanh"

    def mlp_projection_bias(self):
        return False

    def standardize_rope(self):
        """rope_parameters keyed by layer type (transformers ≥5); older files
        have rope_theta (full attention), rope_local_base_freq (sliding) and
        rope_scaling (full attention only)."""
        rp = getattr(self, "rope_parameters", None)
        rp = copy.deepcopy(rp) if isinstance(rp, dict) else None
        if rp is not None and not any(k in rp for k in LAYER_TYPES):
            rp = {"full_attention": rp}  # a flat dict: the global layers' parameters
        rp = rp or {}
        for t in LAYER_TYPES:
            if rp.get(t) is not None and not isinstance(rp[t], dict):
                raise ConfigFieldTypeError(f"rope_parameters.{t}", f"must be an object, got {show(rp[t])}")
        full = dict(rp.get("full_attention") or {})
        scaling = getattr(self, "rope_scaling", None)
        if scaling:
            full.update({k: v for k, v in scaling.items() if k not in full})
        if "type" in full and "rope_type" not in full:
            full["rope_type"] = full.pop("type")
        full.setdefault("rope_type", "default")
        full.setdefault("rope_theta", getattr(self, "rope_theta", None) or _DEFAULT_THETA["full_attention"])
        local = dict(rp.get("sliding_attention") or {})
        if "type" in local and "rope_type" not in local:
            local["rope_type"] = local.pop("type")
        local.setdefault("rope_type", "default")
        local.setdefault("rope_theta", getattr(self, "rope_local_base_freq", None)
                         or _DEFAULT_THETA["sliding_attention"])
        self.rope_parameters = {"sliding_attention": local, "full_attention": full}


class Gemma3Config(Gemma3TextConfig):
    """A multimodal "gemma3" config.json: only its text_config is used (the
    vision tower is not built; its weights are skipped on load)."""
    model_type = "gemma3_text"

    @classmethod
    def from_dict(cls, d):
        text = d.get("text_config")
        if not isinstance(text, dict) or not text:
            raise ConfigFieldTypeError("text_config", f"must be an object with the language model's settings, got "
                                       f"{show(text)}")
        text = dict(text)
        text.pop("model_type", None)
        for k in ("tie_word_embeddings", "eos_token_id", "bos_token_id", "pad_token_id") + LABEL_FIELDS:
            if k not in text and d.get(k) is not None:
                text[k] = d[k]
        try:
            return Gemma3TextConfig(**text)
        except ConfigFieldError as e:
            raise e.nested("text_config") from None


def _round_to(value, dtype):
    """value as the weight's dtype would hold it (transformers multiplies by
    embed_scale.to(weight.dtype))."""
    if dtype == float16:
        return float(np.float16(value))
    if dtype == bfloat16:
        bits = np.array([value], dtype=np.float32).view(np.uint32).astype(np.uint64)
        bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16  # round to nearest even
        return float(bits.astype(np.uint32).view(np.float32)[0])
    return float(np.float32(value))


class Gemma3TextScaledWordEmbedding(nn.Embedding):
    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, embed_scale=1.0):
        super().__init__(num_embeddings, embedding_dim, padding_idx)
        self.scalar_embed_scale = embed_scale

    def forward(self, ids):
        # ids: [B, T] -> [B, T, C]
        return F.embedding(ids, self.weight) * _round_to(self.scalar_embed_scale, self.weight.dtype)


class Gemma3Attention(LlamaAttention):
    def __init__(self, config, layer_idx):
        super().__init__(config, layer_idx)
        self.layer_type = config.layer_types[layer_idx]
        self.scaling = float(config.query_pre_attn_scalar) ** -0.5
        # transformers' Gemma 3 keeps attn_logit_softcapping in the config but never applies it (released
        # Gemma 3 checkpoints set it to null); Gemma 2 applies it. Same outputs as transformers: not applied.
        self.softcap = 0.0


class Gemma3DecoderLayer(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        h = config.hidden_size
        self.self_attn = Gemma3Attention(config, layer_idx)
        self.mlp = LlamaMLP(config)
        self.input_layernorm = rms_norm(config, h)
        self.post_attention_layernorm = rms_norm(config, h)
        self.pre_feedforward_layernorm = rms_norm(config, h)
        self.post_feedforward_layernorm = rms_norm(config, h)

    def forward(self, x, cos, sin, mask=None, cache=None):
        # x: [B, T, C]; each sublayer normed before and after, then added
        x = x + self.post_attention_layernorm(self.self_attn(self.input_layernorm(x), cos, sin, mask, cache))
        return x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))


class Gemma3TextModel(LlamaModel):
    layer_class = Gemma3DecoderLayer

    def input_embedding(self, config):
        return Gemma3TextScaledWordEmbedding(config.vocab_size, config.hidden_size, self.padding_idx,
                                             embed_scale=config.hidden_size ** 0.5)

    def rotary_embedding(self, config):
        """One table per layer type, each with its own RoPE parameters."""
        return {t: RotaryEmbedding(config, config.rope_parameters[t]) for t in sorted(set(config.layer_types))}

    def rope_key(self, layer):
        return layer.self_attn.layer_type

    def rope_tables(self, position_ids, layer):
        return self.rotary_emb[layer.self_attn.layer_type](position_ids)


class Gemma3ForCausalLM(LlamaForCausalLM):
    config_class = Gemma3TextConfig
    model_class = Gemma3TextModel


class Gemma3ForConditionalGenerationText(Gemma3ForCausalLM):
    """Loads the language model of a multimodal "gemma3" checkpoint as a
    Gemma3ForCausalLM (keys model.language_model.* or the older
    language_model.model.*); vision tower and projector weights are skipped."""
    config_class = Gemma3Config
    skip_checkpoint_prefixes = ("model.vision_tower.", "model.multi_modal_projector.", "vision_tower.",
                                "multi_modal_projector.")

    @staticmethod
    def _rename(k):
        for old, new in (("model.language_model.", "model."), ("language_model.model.", "model."),
                         ("language_model.lm_head.", "lm_head.")):
            if k.startswith(old):
                return new + k[len(old):]
        return k

    def load_tensors(self, tensors, origin, dtype):
        super().load_tensors(*text_model_tensors(self, tensors, origin), dtype)


def text_model_tensors(model, tensors, origin):
    """A multimodal checkpoint's language-model tensors under the text
    model's names, and their files (vision parts dropped)."""
    text, where = {}, {}
    for k, v in tensors.items():
        if k.startswith(model.skip_checkpoint_prefixes):
            continue
        n = model._rename(k)
        text[n], where[n] = v, origin[k]
    return text, where


class Gemma3TextForSequenceClassification(LlamaForSequenceClassification):
    config_class = Gemma3TextConfig
    model_class = Gemma3TextModel


class Gemma3ForSequenceClassification(Gemma3TextForSequenceClassification):
    """The classifier of a multimodal "gemma3" checkpoint (keys
    model.language_model.*, score.weight), loaded and saved as its text
    model: Gemma3TextForSequenceClassification."""
    config_class = Gemma3Config
    skip_checkpoint_prefixes = Gemma3ForConditionalGenerationText.skip_checkpoint_prefixes
    _rename = staticmethod(Gemma3ForConditionalGenerationText._rename)

    def checkpoint_tensors(self, tensors, origin):
        return text_model_tensors(self, tensors, origin)

    def saved_architecture(self):
        return "Gemma3TextForSequenceClassification"

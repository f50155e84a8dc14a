"""T5 / T5 v1.1 / FLAN-T5 encoder-decoder on the engine, with transformers'
module and parameter names (shared.weight, encoder.block.N.layer.0.SelfAttention.q.weight, ...),
so checkpoints and PEFT adapters map one to one.

T5 specifics: RMS norm (nn.RMSNorm: no mean subtraction, no bias), no 1/sqrt(d) attention scaling, a
bucketed relative position bias held by the first layer of each stack
(bidirectional in the encoder, causal in the decoder) and shared by all
layers, ReLU (T5) or gated-gelu_new (v1.1 / FLAN-T5) feed-forward, the decoder
output rescaled by d_model**-0.5 when the head is tied (original T5).
The bias is an additive float mask of the engine's attention op, so its
gradient reaches relative_attention_bias."""
import math

import numpy as np

from .. import _core
from .. import nn
from ..nn import functional as F
from ..utils import checkpoint
from .activations import ACT2FN, ACT_GATED, gated_act
from .cache import EncoderDecoderCache
from .config_checks import ConfigFieldError
from .configuration import PretrainedConfig, attribute_alias
from .generation import GenerationMixin
from .loss_utils import seq2seq_lm_loss
from .model_inputs import as_ids, ids_numpy, padding_mask
from .modeling_utils import PreTrainedModel
from .outputs import CausalLMOutputWithPast, ModelOutput


_ALIASES = {"hidden_size": "d_model", "num_attention_heads": "num_heads", "num_key_value_heads": "num_heads",
            "num_hidden_layers": "num_layers", "head_dim": "d_kv"}


class T5Config(PretrainedConfig):
    model_type = "t5"
    defaults = dict(
        vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=None, num_heads=8,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.1,
        layer_norm_epsilon=1e-6, initializer_factor=1.0, feed_forward_proj="relu", is_encoder_decoder=True,
        use_cache=True, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, tie_word_embeddings=True,
    )
    hidden_size = attribute_alias("d_model")
    num_attention_heads = attribute_alias("num_heads")
    num_key_value_heads = attribute_alias("num_heads")
    num_hidden_layers = attribute_alias("num_layers")
    head_dim = attribute_alias("d_kv")

    def __init__(self, **kwargs):
        for common, own in _ALIASES.items():  # transformers' common names, checked as T5's own
            if common in kwargs:
                kwargs.setdefault(own, kwargs.pop(common))
        super().__init__(**kwargs)
        if not self.is_encoder_decoder:
            raise ConfigFieldError("is_encoder_decoder", "false is not supported: T5 is an encoder-decoder")
        if self.num_decoder_layers is None:
            self.num_decoder_layers = self.num_layers
        act = str(self.feed_forward_proj).split("-")
        if (len(act) > 1 and act[0] != "gated") or len(act) > 2:
            raise ConfigFieldError("feed_forward_proj", f"{self.feed_forward_proj!r} is not valid: use "
                                   "'gated-{ACT}' or '{ACT}', e.g. 'gated-gelu' or 'relu'")
        self.dense_act_fn = "gelu_new" if self.feed_forward_proj == "gated-gelu" else act[-1]
        self.is_gated_act = act[0] == "gated"
        table = ACT_GATED if self.is_gated_act else ACT2FN
        if self.dense_act_fn not in table:
            raise ConfigFieldError("feed_forward_proj", f"{self.feed_forward_proj!r}: activation "
                                   f"{self.dense_act_fn!r} is not supported (supported: {', '.join(sorted(table))})")
        # Original T5 rescales the decoder output before its tied head; v1.1 / FLAN-T5
        # (tie_word_embeddings false in their config.json) do not. transformers >= 5 writes
        # the choice as scale_decoder_outputs.
        if "scale_decoder_outputs" not in kwargs:
            self.scale_decoder_outputs = kwargs.get("tie_word_embeddings", True) is not False

    def standardize_rope(self):
        pass  # relative position buckets, no RoPE

    def parameter_count(self):
        """T5ForConditionalGeneration's (the encoder-only model has fewer)."""
        d, v, heads = self.d_model, self.vocab_size, self.num_heads
        attn = 4 * d * heads * self.d_kv + d  # q, k, v, o and the layer norm
        ff = (3 if self.is_gated_act else 2) * d * self.d_ff + d
        bias = self.relative_attention_num_buckets * heads  # the first block of each stack
        encoder = self.num_layers * (attn + ff) + bias + d
        decoder = self.num_decoder_layers * (2 * attn + ff) + bias + d
        head = 0 if getattr(self, "tie_word_embeddings", True) is not False else v * d
        return v * d + encoder + decoder + head


# ---------------------------------------------------------------- outputs

class BaseModelOutput(ModelOutput):
    _fields = ("last_hidden_state", "hidden_states", "attentions")


class Seq2SeqModelOutput(ModelOutput):
    _fields = ("last_hidden_state", "past_key_values", "encoder_last_hidden_state")


class Seq2SeqLMOutput(CausalLMOutputWithPast):
    """Lazy logits like CausalLMOutputWithPast (the fused loss never builds them)."""
    _fields = ("loss", "logits", "past_key_values", "encoder_last_hidden_state")


# ------------------------------------------------------------ position bias

def relative_position_bucket(relative_position, bidirectional=True, num_buckets=32, max_distance=128):
    """transformers' T5Attention._relative_position_bucket in numpy (int64, any shape)."""
    rp = np.asarray(relative_position, dtype=np.int64)
    buckets = np.zeros_like(rp)
    if bidirectional:
        num_buckets //= 2
        buckets += (rp > 0).astype(np.int64) * num_buckets
        rp = np.abs(rp)
    else:
        rp = -np.minimum(rp, 0)
    max_exact = num_buckets // 2
    is_small = rp < max_exact
    with np.errstate(divide="ignore"):
        # float32 as torch computes it, so boundary cases bucket the same
        large = (np.log(rp.astype(np.float32) / np.float32(max_exact)) / np.float32(math.log(max_distance / max_exact))
                 * np.float32(num_buckets - max_exact))
    large = max_exact + np.where(is_small, 0, large).astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    return buckets + np.where(is_small, rp, large)


# ------------------------------------------------------------------ layers

class T5DenseActDense(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.wi = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.dropout = nn.Dropout(config.dropout_rate)
        self.act = ACT2FN[config.dense_act_fn]  # checked by T5Config

    def forward(self, x):
        return self.wo(self.dropout(self.act(self.wi(x))))  # x: [B, T, C] -> [B, T, F] -> [B, T, C]


class T5DenseGatedActDense(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.wi_0 = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wi_1 = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.dropout = nn.Dropout(config.dropout_rate)
        self.act = gated_act(config.dense_act_fn)  # act(gate) * up, fused

    def forward(self, x):
        # x: [B, T, C] -> gate, up: [B, T, F] -> act(gate) * up: [B, T, F] -> [B, T, C]
        return self.wo(self.dropout(self.act(self.wi_0(x), self.wi_1(x))))


class T5LayerFF(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.DenseReluDense = T5DenseGatedActDense(config) if config.is_gated_act else T5DenseActDense(config)
        self.layer_norm = nn.RMSNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x):
        return x + self.dropout(self.DenseReluDense(self.layer_norm(x)))  # x: [B, T, C]


class T5Attention(nn.Module):
    def __init__(self, config, has_relative_attention_bias=False, is_decoder=False, layer_idx=0):
        super().__init__()
        self.is_decoder = is_decoder
        self.has_relative_attention_bias = has_relative_attention_bias
        self.relative_attention_num_buckets = config.relative_attention_num_buckets
        self.relative_attention_max_distance = config.relative_attention_max_distance
        self.n_heads, self.key_value_proj_dim = config.num_heads, config.d_kv
        self.inner_dim = self.n_heads * self.key_value_proj_dim
        self.layer_idx = layer_idx
        self.q = nn.Linear(config.d_model, self.inner_dim, bias=False)
        self.k = nn.Linear(config.d_model, self.inner_dim, bias=False)
        self.v = nn.Linear(config.d_model, self.inner_dim, bias=False)
        self.o = nn.Linear(self.inner_dim, config.d_model, bias=False)
        if has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(self.relative_attention_num_buckets, self.n_heads)

    def compute_bias(self, query_length, key_length, past=0):
        """[1, H, T, S] bias for queries past..past+T-1 over keys 0..S-1."""
        ctx = np.arange(query_length, dtype=np.int64)[:, None] + past
        mem = np.arange(key_length, dtype=np.int64)[None, :]
        buckets = relative_position_bucket(mem - ctx, bidirectional=not self.is_decoder,
                                           num_buckets=self.relative_attention_num_buckets,
                                           max_distance=self.relative_attention_max_distance)
        values = F.embedding(_core.from_numpy(np.ascontiguousarray(buckets)), self.relative_attention_bias.weight)
        return values.permute(2, 0, 1).unsqueeze(0)

    def _heads(self, x):
        b, t, _ = x.shape  # x: [B, T, H*D] -> [B, H, T, D]
        return x.reshape(b, t, self.n_heads, self.key_value_proj_dim).transpose(1, 2)

    def forward(self, x, bias=None, key_value_states=None, cache=None, is_causal=False):
        # x: [B, T, C]; bias: [1 or B, H, T, S] or None; key_value_states: [B, S, C] (cross-attention)
        b, t, _ = x.shape
        q = self._heads(self.q(x))  # q: [B, H, T, D]
        if key_value_states is not None:  # cross-attention: keys/values once per encoder output
            kv = cache.cross.get(self.layer_idx) if cache is not None else None
            if kv is None:
                kv = (self._heads(self.k(key_value_states)), self._heads(self.v(key_value_states)))
                if cache is not None:
                    cache.cross[self.layer_idx] = (kv[0].detach(), kv[1].detach())
            k, v = kv  # k, v: [B, H, S, D], S encoder positions
        else:
            k, v = self._heads(self.k(x)), self._heads(self.v(x))  # k, v: [B, H, T, D]
            if cache is not None:
                k, v = cache.self_attention_cache.update(k, v, self.layer_idx)  # k, v: [B, H, S, D], S = past + T
        o = F.scaled_dot_product_attention(q, k, v, bias, is_causal=is_causal, scale=1.0)  # o: [B, H, T, D]
        return self.o(o.transpose(1, 2).reshape(b, t, self.inner_dim))  # [B, T, H*D] -> [B, T, C]


class T5LayerSelfAttention(nn.Module):
    def __init__(self, config, has_relative_attention_bias=False, is_decoder=False, layer_idx=0):
        super().__init__()
        self.SelfAttention = T5Attention(config, has_relative_attention_bias, is_decoder, layer_idx)
        self.layer_norm = nn.RMSNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x, bias=None, cache=None, is_causal=False):
        # x: [B, T, C]; bias: [1 or B, H, T, S]
        return x + self.dropout(self.SelfAttention(self.layer_norm(x), bias, cache=cache, is_causal=is_causal))


class T5LayerCrossAttention(nn.Module):
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.EncDecAttention = T5Attention(config, False, True, layer_idx)
        self.layer_norm = nn.RMSNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x, key_value_states, bias=None, cache=None):
        # x: [B, T, C]; key_value_states: [B, S, C], the encoder output; bias: [B, 1, 1, S] or None
        return x + self.dropout(self.EncDecAttention(self.layer_norm(x), bias, key_value_states, cache))


class T5Block(nn.Module):
    def __init__(self, config, has_relative_attention_bias=False, is_decoder=False, layer_idx=0):
        super().__init__()
        self.is_decoder = is_decoder
        self.layer = nn.ModuleList([T5LayerSelfAttention(config, has_relative_attention_bias, is_decoder, layer_idx)])
        if is_decoder:
            self.layer.append(T5LayerCrossAttention(config, layer_idx))
        self.layer.append(T5LayerFF(config))

    def forward(self, x, bias=None, encoder_hidden_states=None, cross_bias=None, cache=None):
        # x: [B, T, C]: self-attention, cross-attention (decoder), feed-forward, each residual
        x = self.layer[0](x, bias, cache, is_causal=self.is_decoder)
        if self.is_decoder and encoder_hidden_states is not None:
            x = self.layer[1](x, encoder_hidden_states, cross_bias, cache)
        return self.layer[-1](x)


class T5Stack(nn.Module):
    def __init__(self, config, embed_tokens, is_decoder=False):
        super().__init__()
        self.config = config
        self.is_decoder = is_decoder
        self.embed_tokens = embed_tokens
        n = config.num_decoder_layers if is_decoder else config.num_layers
        self.block = nn.ModuleList([T5Block(config, i == 0, is_decoder, i) for i in range(n)])
        self.final_layer_norm = nn.RMSNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)
        self.gradient_checkpointing = False

    def forward(self, input_ids=None, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None,
                inputs_embeds=None, past_key_values=None, **kwargs):
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("T5 stack: pass exactly one of input_ids or inputs_embeds")
        x = self.embed_tokens(as_ids(input_ids)) if inputs_embeds is None else inputs_embeds  # x: [B, T, C]
        t = x.shape[1]
        cache = past_key_values if self.is_decoder else None
        past = cache.get_seq_length() if cache is not None else 0
        # one bias for all layers: relative positions (layer 0's table) + padding of the keys
        bias = self.block[0].layer[0].SelfAttention.compute_bias(t, past + t, past)  # bias: [1, H, T, S]
        pad = padding_mask(attention_mask, past + t)  # pad: [B, 1, 1, S] or None
        if pad is not None:
            bias = bias + pad
        cross = None
        if self.is_decoder and encoder_hidden_states is not None:
            cross = padding_mask(encoder_attention_mask, encoder_hidden_states.shape[1])  # [B, 1, 1, S_enc]
        x = self.dropout(x)
        for block in self.block:
            if self.gradient_checkpointing and self.training and cache is None:
                x = checkpoint(block, x, bias, encoder_hidden_states, cross, None)
            else:
                x = block(x, bias, encoder_hidden_states, cross, cache)
        x = self.dropout(self.final_layer_norm(x))
        return BaseModelOutput(last_hidden_state=x)


# ------------------------------------------------------------------ models

class T5PreTrainedModel(PreTrainedModel):
    config_class = T5Config
    base_model_prefix = "transformer"
    _tied_weights_keys = ["encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"]
    block_lists = {"encoder.block": "num_layers", "decoder.block": "num_decoder_layers"}
    _keys_to_ignore_on_load_unexpected = [r"^decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias"]

    def get_input_embeddings(self):
        return self.shared

    def get_output_embeddings(self):
        return dict(self.named_children()).get("lm_head")  # T5Model and T5EncoderModel have none

    def _stacks(self):
        children = dict(self.named_children())
        return [children[k] for k in ("encoder", "decoder") if k in children]

    def tie_weights(self):
        for s in self._stacks():
            s.embed_tokens = self.shared
        head = self.get_output_embeddings()
        if head is not None:
            head.register_parameter("weight", self.shared.weight)

    def load_tensors(self, tensors, origin, dtype):
        """The embedding lives in shared.weight; the head is tied to it unless
        the checkpoint holds a different lm_head.weight (FLAN-T5, T5 v1.1), as
        transformers decides."""
        head = self.get_output_embeddings()
        untied = head is not None and "lm_head.weight" in tensors and (
            "shared.weight" not in tensors
            or not np.array_equal(tensors["lm_head.weight"].numpy(), tensors["shared.weight"].numpy()))
        self.tie_weights()
        aliases = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"} | (
            set() if untied else {"lm_head.weight"})
        if "shared.weight" not in tensors:  # a few exports keep only the stacks' copies
            for k in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
                if k in tensors:
                    tensors = dict(tensors, **{"shared.weight": tensors[k]})
                    origin = dict(origin, **{"shared.weight": origin[k]})
                    break
        self.place_tensors(tensors, origin, dtype, filled=aliases, skip=aliases)
        if untied:
            for s in self._stacks():
                s.embed_tokens = self.shared
        else:
            self.tie_weights()

    def ignore_unexpected_key(self, key):
        if key.startswith("decoder.") and "decoder" not in dict(self.named_children()):
            return True  # T5EncoderModel from a full checkpoint
        return super().ignore_unexpected_key(key) or (key == "lm_head.weight" and self.get_output_embeddings() is None)

    def weights_to_save(self, sd):
        """transformers' layout: the embedding once as shared.weight, the head
        only when it is not tied to it."""
        sd.pop("encoder.embed_tokens.weight", None)
        sd.pop("decoder.embed_tokens.weight", None)
        head = self.get_output_embeddings()
        if head is not None and head.weight is self.shared.weight:
            sd.pop("lm_head.weight", None)
        return sd

    def _shift_right(self, labels):
        start = getattr(self.config, "decoder_start_token_id", None)
        pad = getattr(self.config, "pad_token_id", None)
        if start is None:
            raise ValueError("config.decoder_start_token_id has to be defined to make decoder_input_ids from labels "
                             "(T5 uses the pad token id)")
        if pad is None:
            raise ValueError("config.pad_token_id has to be defined to make decoder_input_ids from labels")
        lab = ids_numpy(labels)
        out = np.empty_like(lab)
        out[:, 1:] = lab[:, :-1]
        out[:, 0] = start
        out[out == -100] = pad
        return _core.from_numpy(np.ascontiguousarray(out))

    prepare_decoder_input_ids_from_labels = _shift_right  # transformers' hook for DataCollatorForSeq2Seq

    def _encode(self, input_ids, attention_mask, inputs_embeds, encoder_outputs):
        if encoder_outputs is None:
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds)
        if not isinstance(encoder_outputs, ModelOutput):
            encoder_outputs = BaseModelOutput(last_hidden_state=encoder_outputs[0])
        return encoder_outputs


class T5Model(T5PreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = T5Stack(config, self.shared, is_decoder=False)
        self.decoder = T5Stack(config, self.shared, is_decoder=True)

    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                encoder_outputs=None, past_key_values=None, inputs_embeds=None, decoder_inputs_embeds=None,
                use_cache=None, **kwargs):
        enc = self._encode(input_ids, attention_mask, inputs_embeds, encoder_outputs)
        if use_cache and past_key_values is None:
            past_key_values = EncoderDecoderCache()
        dec = self.decoder(input_ids=decoder_input_ids, attention_mask=decoder_attention_mask,
                           inputs_embeds=decoder_inputs_embeds, past_key_values=past_key_values,
                           encoder_hidden_states=enc.last_hidden_state, encoder_attention_mask=attention_mask)
        return Seq2SeqModelOutput(last_hidden_state=dec.last_hidden_state, past_key_values=past_key_values,
                                  encoder_last_hidden_state=enc.last_hidden_state)


class T5EncoderModel(T5PreTrainedModel):
    block_lists = {"encoder.block": "num_layers"}

    def __init__(self, config):
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = T5Stack(config, self.shared, is_decoder=False)

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, **kwargs):
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds)


class T5ForConditionalGeneration(T5PreTrainedModel, GenerationMixin):
    """generate() is GenerationMixin's encoder-decoder path (config.is_encoder_decoder):
    the encoder once, then the decoder token by token from decoder_start_token_id,
    cross-attention keys cached; returns the decoder ids, start token included."""

    def __init__(self, config):
        super().__init__(config)
        self.model_dim = config.d_model
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = T5Stack(config, self.shared, is_decoder=False)
        self.decoder = T5Stack(config, self.shared, is_decoder=True)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if getattr(config, "tie_word_embeddings", True) is not False:
            self.tie_weights()  # fresh models tie as transformers does; loading decides from the checkpoint

    def get_encoder(self):
        return self.encoder

    def get_decoder(self):
        return self.decoder

    def _decoder_scale(self):
        return self.model_dim ** -0.5 if getattr(self.config, "scale_decoder_outputs", False) else 1.0

    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                encoder_outputs=None, past_key_values=None, inputs_embeds=None, decoder_inputs_embeds=None,
                labels=None, use_cache=None, logits_to_keep=0, **kwargs):
        enc = self._encode(input_ids, attention_mask, inputs_embeds, encoder_outputs)
        if labels is not None and decoder_input_ids is None and decoder_inputs_embeds is None:
            decoder_input_ids = self._shift_right(labels)
        if use_cache and past_key_values is None:
            past_key_values = EncoderDecoderCache()
        dec = self.decoder(input_ids=decoder_input_ids, attention_mask=decoder_attention_mask,
                           inputs_embeds=decoder_inputs_embeds, past_key_values=past_key_values,
                           encoder_hidden_states=enc.last_hidden_state, encoder_attention_mask=attention_mask)
        h = dec.last_hidden_state  # h: [B, T, C], T decoder positions
        s = self._decoder_scale()
        if s != 1.0:
            h = h * s
        h_keep = h[:, -logits_to_keep:] if logits_to_keep else h  # h_keep: [B, K, C] -> logits: [B, K, V]
        head = self.lm_head
        if labels is None:
            return Seq2SeqLMOutput(logits=head(h_keep), past_key_values=past_key_values,
                                   encoder_last_hidden_state=enc.last_hidden_state)
        loss = seq2seq_lm_loss(h, head.weight, labels)  # labels: [B, T]
        return Seq2SeqLMOutput(loss=loss, past_key_values=past_key_values,
                               encoder_last_hidden_state=enc.last_hidden_state, logits_fn=lambda: head(h_keep))


__all__ = ["T5Config", "T5Model", "T5EncoderModel", "T5ForConditionalGeneration", "EncoderDecoderCache",
           "Seq2SeqLMOutput", "Seq2SeqModelOutput", "BaseModelOutput", "relative_position_bucket"]

"""GenerationMixin.generate: transformers' decoding on the engine with a
KV cache: greedy or sampling (temperature, top-k, top-p), repetition
penalty, eos and stop strings, streaming, batched prompts (left padding),
for decoder-only models and (config.is_encoder_decoder) encoder-decoders.

Semantics follow transformers 5.x `generate`:
- parameters: explicit kwargs > `generation_config=` > `model.generation_config`
  (generation_config.json next to the weights, else the model config's
  bos/eos/pad) > global defaults (max_length 20, top_k 50, ...);
- logits processors in transformers' order: repetition penalty (over the
  whole sequence, prompt and padding included), min length, then when
  sampling Temperature, TopK, TopP (min_tokens_to_keep=1);
- finished rows (eos, stop string) get `pad_token_id` (default: the first
  eos id) until every row is finished or the length limit is reached;
- streamers: an object with put()/end() receives the prompt ids [B, T]
  first, then each step's new ids [B] (as transformers' TextStreamer);
  a plain callable receives each step's new ids as a list (one per row).
Each step runs the model on one new token per row with the KV cache; per
step Python work is O(B·V) (no re-scan of the sequence).

The loop is shared; what differs is the prompt it continues and the
model inputs of each step: the decoder-only prompt is the input ids (with
their padding mask and positions), the encoder-decoder prompt is the
decoder start token, and its steps see the encoder output, computed once.
"""
import copy

import numpy as np

from ... import _core
from ..._tensor import no_grad, rand
from ..cache import DynamicCache, EncoderDecoderCache
from ..model_inputs import as_ids, as_numpy, ids_numpy
from ..outputs import ModelOutput
from .configuration_utils import (GENERATION_CONFIG_SLOT, GENERATION_FIELDS, GLOBAL_DEFAULTS, GenerationConfig,
                                   load_generation_config)
from .logits_process import process_logits, softmax
from .stopping_criteria import eos_list, stop_string_hit

# generate() arguments of encoder-decoder models beside input_ids / attention_mask
ENCODER_DECODER_INPUTS = ("inputs_embeds", "decoder_input_ids", "encoder_outputs")


def sample(scores, rng):
    """One token per row from softmax(scores [B, V]); tokens at -inf are never drawn."""
    p = softmax(scores.astype(np.float64))
    cdf = np.cumsum(p, axis=-1)
    u = rng.random(scores.shape[0]) * cdf[:, -1]
    idx = np.array([np.searchsorted(cdf[b], u[b], side="right") for b in range(scores.shape[0])])
    for b in range(scores.shape[0]):  # rounding at the top end: the last token with mass
        if idx[b] >= scores.shape[-1] or p[b, idx[b]] == 0:
            idx[b] = np.flatnonzero(p[b] > 0)[-1]
    return idx.astype(np.int64)


def length_budget(cfg, T0, has_default_max_length, max_positions=None):
    """New tokens generate() may add after T0 given ones, as transformers
    reads max_new_tokens / max_length (a default max_length counts from the
    prompt and is capped by the model's positions); sets cfg.min_length from
    min_new_tokens the same way."""
    if cfg.max_new_tokens is not None:
        max_length = int(cfg.max_new_tokens) + T0
    elif has_default_max_length:
        max_length = int(cfg.max_length) + T0
        if max_positions:
            max_length = min(max_length, int(max_positions))
    else:
        max_length = int(cfg.max_length)
    if cfg.min_new_tokens is not None:
        cfg.min_length = int(cfg.min_new_tokens) + T0
    else:
        cfg.min_length = cfg.min_length or 0
    return max(0, max_length - T0)


def decode_step(logits, cfg, present, cur, eos, rng, done, pad, out, put, streamer):
    """One new token per row from the last logits [B, V]: logits processors,
    greedy or sampled choice, finished rows padded (as transformers, only when
    eos is a criterion). Writes out[:, cur], marks `present`, streams the
    tokens and updates `done`, in place. Returns the tokens [B]."""
    scores = process_logits(logits, cfg, present, cur, eos)
    nxt = sample(scores, rng) if cfg.do_sample else scores.argmax(axis=-1).astype(np.int64)
    if eos:
        nxt = np.where(done, pad, nxt)
    out[:, cur] = nxt
    if present is not None:
        present[np.arange(len(nxt)), nxt] = True
    if put is not None:
        put(_core.from_numpy(np.ascontiguousarray(nxt)))
    elif streamer is not None:
        streamer(nxt.tolist())
    if eos:
        done |= np.isin(nxt, eos)
    return nxt


def sampling_rng(cfg):
    """numpy generator for sampling: cfg.seed, else a seed drawn from
    peftcpp's generator (so peftcpp.manual_seed makes sampling reproducible)."""
    seed = cfg.seed
    if seed is None and cfg.do_sample:
        seed = int(np.asarray(rand(2).numpy(), dtype=np.float64).dot([2.0 ** 31, 2.0 ** 10]))
    return np.random.default_rng(seed)


def stop_strings_of(cfg, tokenizer):
    stop_strings = cfg.stop_strings
    if isinstance(stop_strings, str):
        stop_strings = [stop_strings]
    if stop_strings and tokenizer is None:
        raise ValueError("stop_strings needs the tokenizer: generate(..., tokenizer=tokenizer)")
    return stop_strings


class GenerationMixin:
    @property
    def generation_config(self):
        gc = self.__dict__.get(GENERATION_CONFIG_SLOT)
        if gc is None:
            gc = load_generation_config(getattr(self, "name_or_path", "") or None, getattr(self, "config", None))
            self.__dict__[GENERATION_CONFIG_SLOT] = gc
        return gc

    @generation_config.setter
    def generation_config(self, value):
        self.__dict__[GENERATION_CONFIG_SLOT] = value

    def _prepare_generation_config(self, generation_config, kwargs):
        user_max_length = kwargs.get("max_length") is not None or (
            generation_config is not None and generation_config.max_length is not None)
        cfg = copy.deepcopy(generation_config) if generation_config is not None else GenerationConfig()
        for k, v in self.generation_config.to_dict().items():
            if getattr(cfg, k, None) is None:
                setattr(cfg, k, v)
        for k, v in GLOBAL_DEFAULTS.items():
            if getattr(cfg, k, None) is None:
                setattr(cfg, k, v)
        unknown = [k for k in kwargs if k not in GENERATION_FIELDS and not hasattr(cfg, k)]
        if unknown:
            raise ValueError(f"generate() got unknown argument(s) {', '.join(sorted(unknown))}")
        cfg.update(**kwargs)
        has_default_max_length = not user_max_length and self.generation_config.max_length is None
        return cfg, has_default_max_length

    def generate(self, input_ids=None, attention_mask=None, generation_config=None, streamer=None, tokenizer=None,
                 inputs=None, **kwargs):
        """Returns int64 token ids [B, prompt + new] (prompt included, as
        transformers does; for an encoder-decoder the decoder's ids, start
        token included). `streamer`: an object with put()/end() (gets the
        prompt ids, then each step's new ids) or a callable (gets each step's
        new ids as a list, one per row). `seed`: numpy seed for sampling (by
        default drawn from peftcpp's generator, so peftcpp.manual_seed makes
        sampling reproducible). Encoder-decoders also take inputs_embeds,
        encoder_outputs and decoder_input_ids."""
        if input_ids is None:
            input_ids = inputs
        encoder_decoder = bool(getattr(self.config, "is_encoder_decoder", False))
        extra = {k: kwargs.pop(k) for k in ENCODER_DECODER_INPUTS if k in kwargs} if encoder_decoder else {}
        if input_ids is None and not encoder_decoder:
            raise ValueError("generate() needs input_ids")
        cfg, has_default_max_length = self._prepare_generation_config(generation_config, kwargs)
        if cfg.num_beams and cfg.num_beams > 1:
            raise NotImplementedError("beam search (num_beams > 1) is not supported")
        if cfg.return_dict_in_generate or cfg.output_scores:
            raise NotImplementedError("return_dict_in_generate / output_scores are not supported; generate() "
                                      "returns the token ids")
        eos = eos_list(cfg.eos_token_id)
        pad = cfg.pad_token_id
        if pad is None and eos:
            pad = eos[0]
        nrs = int(cfg.num_return_sequences or 1)
        if encoder_decoder:
            prompt, state = self._prepare_encoder_decoder_inputs(cfg, input_ids, attention_mask, pad, nrs, **extra)
            max_positions = None  # relative positions (T5): no cap
        else:
            prompt, state = self._prepare_decoder_only_inputs(cfg, input_ids, attention_mask, eos, pad, nrs)
            max_positions = getattr(self.config, "max_position_embeddings", None)
        B, T0 = prompt.shape  # prompt: [B, T0], the ids the new tokens follow
        if B == 0 or T0 == 0:  # nothing to continue from: there would be no logits to pick a token from
            raise ValueError(f"generate(): the prompt is empty (input_ids of shape {tuple(prompt.shape)}); give at "
                             "least one token, e.g. the bos token")
        budget = length_budget(cfg, T0, has_default_max_length, max_positions)
        stop_strings = stop_strings_of(cfg, tokenizer)
        window = (max(len(s) for s in stop_strings) + 1) if stop_strings else 0
        rng = sampling_rng(cfg)

        penalize = cfg.repetition_penalty is not None and cfg.repetition_penalty != 1.0
        present = None  # present: [B, V] bool, the tokens of each row so far
        out = np.empty((B, T0 + budget), dtype=np.int64)
        out[:, :T0] = prompt
        was_training = self.training
        self.eval()
        cache = EncoderDecoderCache() if encoder_decoder else DynamicCache()
        done = np.zeros(B, dtype=bool)
        cur = T0
        put = getattr(streamer, "put", None) if streamer is not None else None
        try:
            if put is not None:
                put(_core.from_numpy(np.ascontiguousarray(prompt)))
            with no_grad():
                while cur < T0 + budget:
                    step_ids = out[:, :cur] if cur == T0 else out[:, cur - 1:cur]  # step_ids: [B, T0], then [B, 1]
                    res = self(**self.prepare_inputs_for_generation(step_ids, cur, T0, state),
                               past_key_values=cache, use_cache=True, logits_to_keep=1)
                    logits = res.logits.numpy()[:, -1, :]  # logits: [B, V]
                    if penalize and present is None:
                        present = np.zeros((B, logits.shape[-1]), dtype=bool)
                        np.put_along_axis(present, prompt, True, axis=1)
                    decode_step(logits, cfg, present, cur, eos, rng, done, pad, out, put, streamer)
                    cur += 1
                    if stop_strings:
                        for b in range(B):
                            if not done[b]:
                                seq = out[b, max(int(state["start"][b]), cur - window):cur].tolist()
                                done[b] = stop_string_hit(tokenizer, seq, stop_strings, window)
                    if done.all():
                        break
        finally:
            if streamer is not None and hasattr(streamer, "end"):
                streamer.end()
            self.train(was_training)
        return _core.from_numpy(np.ascontiguousarray(out[:, :cur]))

    # ------------------------------------------------ decoder-only models
    def _prepare_decoder_only_inputs(self, cfg, input_ids, attention_mask, eos, pad, nrs):
        """The prompt [B, T0] (rows repeated num_return_sequences times) and
        its padding: mask [B, T0] (None when nothing is padded) and the
        first real token of each row (left padding)."""
        ids = as_ids(input_ids).numpy().astype(np.int64)
        mask = as_numpy(attention_mask)
        if mask is None and pad is not None and pad not in eos and (ids == pad).any():
            mask = (ids != pad).astype(np.int64)  # as transformers: infer the mask from padding
        if mask is not None and mask.shape != ids.shape:
            raise ValueError(f"attention_mask shape {mask.shape} does not match input_ids {ids.shape}")
        if mask is not None and ids.shape[0] > 1 and (mask[:, -1] == 0).any():
            raise ValueError("batched generation needs left padding (tokenizer.padding_side = 'left')")
        if nrs > 1:
            if not cfg.do_sample:
                raise ValueError("num_return_sequences > 1 needs do_sample=True (or beam search)")
            ids = np.repeat(ids, nrs, axis=0)
            mask = None if mask is None else np.repeat(mask, nrs, axis=0)
        if mask is not None and mask.all():
            mask = None
        if mask is None:
            return ids, dict(mask=None, start=np.zeros(ids.shape[0], dtype=np.int64))
        return ids, dict(mask=mask, start=ids.shape[1] - mask.sum(axis=1))

    def prepare_inputs_for_generation(self, step_ids, cur, T0, state):
        """Model inputs of the step that predicts token `cur`: step_ids [B, T0]
        at the first step, then the last token [B, 1]. Positions count real
        tokens only (left padding), as transformers' generate derives them."""
        if getattr(self.config, "is_encoder_decoder", False):
            return self._encoder_decoder_step_inputs(step_ids, cur, T0, state)
        ids = _core.from_numpy(np.ascontiguousarray(step_ids))
        mask = state["mask"]
        if mask is None:
            pos = None if cur == T0 else np.full((step_ids.shape[0], 1), cur - 1, dtype=np.int64)
            return dict(input_ids=ids, attention_mask=None, position_ids=pos)
        full = np.ones((mask.shape[0], cur), dtype=np.int64)  # full: [B, cur], the keys after this step
        full[:, :T0] = mask
        if cur == T0:
            pos = np.where(mask > 0, np.cumsum(mask, axis=-1) - 1, 1)  # pos: [B, T0]
        else:
            pos = (mask.sum(axis=1) - 1 + (cur - T0))[:, None]  # pos: [B, 1]
        return dict(input_ids=ids, attention_mask=full, position_ids=np.ascontiguousarray(pos))

    # ----------------------------------------------- encoder-decoder models
    def _prepare_encoder_decoder_inputs(self, cfg, input_ids, attention_mask, pad, nrs, inputs_embeds=None,
                                        decoder_input_ids=None, encoder_outputs=None):
        """The decoder prompt [B, 1] (decoder_start_token_id, or the given
        decoder_input_ids) and what the encoder runs on at the first step."""
        if getattr(cfg, "stop_strings", None):
            raise NotImplementedError("stop_strings are not supported for encoder-decoder generation")
        ids = ids_numpy(input_ids)
        mask = as_numpy(attention_mask)  # as transformers 5: no mask inferred from pad tokens for encoder-decoders
        if encoder_outputs is not None:
            enc_h = encoder_outputs[0] if not isinstance(encoder_outputs, ModelOutput) \
                else encoder_outputs.last_hidden_state
            B = enc_h.shape[0]
        else:
            if ids is None and inputs_embeds is None:
                raise ValueError("generate() needs input_ids, inputs_embeds or encoder_outputs")
            B = ids.shape[0] if ids is not None else inputs_embeds.shape[0]
            if ids is not None and (ids.ndim != 2 or 0 in ids.shape):
                raise ValueError(f"generate(): the encoder input is empty (input_ids of shape {tuple(ids.shape)}); "
                                 "give at least one token")
            enc_h = None
        if nrs > 1 and not cfg.do_sample:
            raise ValueError("num_return_sequences > 1 needs do_sample=True (or beam search)")
        start = getattr(cfg, "decoder_start_token_id", None)
        if start is None:
            start = getattr(self.config, "decoder_start_token_id", None)
        if start is None:
            start = cfg.bos_token_id if cfg.bos_token_id is not None else pad
        if start is None:
            raise ValueError("generate() needs decoder_start_token_id (T5 uses the pad token id)")
        dec = ids_numpy(decoder_input_ids) if decoder_input_ids is not None else np.full((B, 1), int(start), np.int64)
        if dec.shape[0] != B:
            raise ValueError(f"decoder_input_ids has {dec.shape[0]} rows but the inputs have {B}")
        cross_mask = None if mask is None else np.repeat(mask, nrs, axis=0)  # each row repeated, as the encoder output
        if cross_mask is not None and cross_mask.all():
            cross_mask = None
        state = dict(ids=ids, mask=mask, inputs_embeds=inputs_embeds, encoder_hidden=enc_h, repeat=nrs,
                     cross_mask=cross_mask, start=np.zeros(B * nrs, dtype=np.int64))
        return np.repeat(dec, nrs, axis=0) if nrs > 1 else dec, state

    def _encoder_decoder_step_inputs(self, step_ids, cur, T0, state):
        if cur == T0:  # the encoder once, its output repeated num_return_sequences times per row
            enc_h = state["encoder_hidden"]
            if enc_h is None:
                ids = None if state["ids"] is None else _core.from_numpy(np.ascontiguousarray(state["ids"]))
                enc_h = self.get_encoder()(input_ids=ids, attention_mask=state["mask"],
                                           inputs_embeds=state["inputs_embeds"]).last_hidden_state
            if state["repeat"] > 1:
                rep = _core.from_numpy(np.repeat(np.arange(enc_h.shape[0], dtype=np.int64), state["repeat"]))
                enc_h = enc_h.index_select(0, rep)
            state["encoder_hidden"] = enc_h  # enc_h: [B, S, C]
        return dict(encoder_outputs=(state["encoder_hidden"],), attention_mask=state["cross_mask"],
                    decoder_input_ids=_core.from_numpy(np.ascontiguousarray(step_ids)))

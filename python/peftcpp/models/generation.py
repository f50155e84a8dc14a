"""GenerationMixin.generate: transformers' decoding on the engine with a
KV cache: greedy or sampling (temperature, top-k, top-p), repetition
penalty, eos and stop strings, streaming, batched prompts (left padding).

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
"""
import copy
import json
import os

import numpy as np

from .. import _core
from .._tensor import no_grad
from .cache import DynamicCache

GENERATION_CONFIG_NAME = "generation_config.json"

# transformers' GenerationConfig._get_default_generation_params (the ones we use)
GLOBAL_DEFAULTS = dict(max_length=20, min_length=0, do_sample=False, use_cache=True, num_beams=1, temperature=1.0,
                       top_k=50, top_p=1.0, repetition_penalty=1.0, num_return_sequences=1,
                       output_scores=False, return_dict_in_generate=False)

_FIELDS = ("max_new_tokens", "max_length", "min_new_tokens", "min_length", "do_sample", "temperature", "top_k",
           "top_p", "repetition_penalty", "eos_token_id", "pad_token_id", "bos_token_id", "stop_strings", "seed",
           "num_beams", "num_return_sequences", "use_cache", "output_scores", "return_dict_in_generate")


class GenerationConfig:
    """transformers' GenerationConfig: unset values are None and are filled
    from the model's generation config, then from GLOBAL_DEFAULTS."""

    def __init__(self, **kwargs):
        for k in _FIELDS:
            setattr(self, k, kwargs.pop(k, None))
        for k, v in kwargs.items():
            setattr(self, k, v)

    @classmethod
    def from_dict(cls, d):
        return cls(**{k: v for k, v in d.items() if not k.startswith("_") and k != "transformers_version"})

    @classmethod
    def from_model_config(cls, config):
        """bos/eos/pad (and any generation parameter) from a model config."""
        d = config.to_dict() if hasattr(config, "to_dict") else dict(config or {})
        return cls(**{k: d[k] for k in _FIELDS if d.get(k) is not None})

    @classmethod
    def from_pretrained(cls, name_or_path, config_file_name=GENERATION_CONFIG_NAME, **hub_kwargs):
        from ..hub import resolve_file
        path = resolve_file(name_or_path, config_file_name, **hub_kwargs)
        from ..fileio import read_json_object
        return cls.from_dict(read_json_object(path))

    def to_dict(self):
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_") and v is not None}

    def save_pretrained(self, save_directory, config_file_name=GENERATION_CONFIG_NAME):
        os.makedirs(save_directory, exist_ok=True)
        from ..fileio import write_json_atomic
        write_json_atomic(os.path.join(save_directory, config_file_name), self.to_dict(), sort_keys=True,
                          ensure_ascii=True)

    def update(self, **kwargs):
        for k, v in kwargs.items():
            setattr(self, k, v)
        return self

    def __repr__(self):
        return f"GenerationConfig {json.dumps(self.to_dict(), sort_keys=True, default=str)}"


def _load_generation_config(name_or_path, config=None, **hub_kwargs):
    """The model's default GenerationConfig: generation_config.json from the
    model folder / hub repo when it has one, else from the model config.
    PreTrainedModel.from_pretrained can call this and assign the result to
    `model.generation_config`; otherwise generate() loads it lazily."""
    if name_or_path:
        from ..hub import resolve_file
        path = resolve_file(name_or_path, GENERATION_CONFIG_NAME, required=False, **hub_kwargs)
        if path is not None:
            return GenerationConfig.from_pretrained(os.path.dirname(path))
    return GenerationConfig.from_model_config(config) if config is not None else GenerationConfig()


def _eos_list(eos):
    if eos is None:
        return []
    if isinstance(eos, (list, tuple, set, np.ndarray)):
        out = []
        for e in eos:
            if int(e) not in out:
                out.append(int(e))
        return out
    return [int(eos)]


def _softmax(scores):
    s = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=-1, keepdims=True)


def repetition_penalty(scores, present, penalty):
    """transformers' RepetitionPenaltyLogitsProcessor: scores of tokens present
    in the sequence ([B, V] bool) are divided by the penalty (multiplied when
    negative)."""
    pen = np.where(scores < 0, scores * np.float32(penalty), scores / np.float32(penalty)).astype(scores.dtype)
    return np.where(present, pen, scores)


def temperature_warp(scores, temperature):
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"`temperature` (={temperature}) has to be a strictly positive float when sampling")
    return (scores / np.float32(temperature)).astype(scores.dtype)


def top_k_warp(scores, top_k, min_tokens_to_keep=1):
    """transformers' TopKLogitsWarper: -inf below the k-th largest score (ties kept)."""
    if not isinstance(top_k, (int, np.integer)) or top_k <= 0:
        raise ValueError(f"`top_k` has to be a strictly positive integer, but is {top_k}")
    k = min(max(int(top_k), min_tokens_to_keep), scores.shape[-1])
    kth = np.partition(scores, -k, axis=-1)[:, -k][:, None]
    return np.where(scores < kth, -np.inf, scores).astype(scores.dtype)


def top_p_warp(scores, top_p, min_tokens_to_keep=1):
    """transformers' TopPLogitsWarper: sorts ascending, removes the tokens whose
    cumulative probability is <= 1 - top_p, always keeps the most likely."""
    top_p = float(top_p)
    if top_p < 0 or top_p > 1.0:
        raise ValueError(f"`top_p` has to be a float > 0 and < 1, but is {top_p}")
    order = np.argsort(scores, axis=-1, kind="stable")
    sorted_scores = np.take_along_axis(scores, order, axis=-1)
    cum = np.cumsum(_softmax(sorted_scores), axis=-1)
    remove_sorted = cum <= (1 - top_p)
    remove_sorted[:, -min_tokens_to_keep:] = False
    remove = np.zeros_like(remove_sorted)
    np.put_along_axis(remove, order, remove_sorted, axis=-1)
    return np.where(remove, -np.inf, scores).astype(scores.dtype)


def process_logits(scores, cfg, present=None, cur_len=None, eos=()):
    """scores [B, V] float32 → processed scores, in transformers' order:
    repetition penalty, min length, then (sampling only) temperature,
    top-k, top-p. `present`: [B, V] bool, the tokens in each sequence."""
    scores = np.array(scores, dtype=np.float32)
    if cfg.repetition_penalty is not None and cfg.repetition_penalty != 1.0:
        if not cfg.repetition_penalty > 0:
            raise ValueError(f"`repetition_penalty` has to be a strictly positive float, but is "
                             f"{cfg.repetition_penalty}")
        if present is not None:
            scores = repetition_penalty(scores, present, cfg.repetition_penalty)
    if cfg.min_length and cur_len is not None and cur_len < cfg.min_length and eos:
        scores[:, list(eos)] = -np.inf
    if not cfg.do_sample:
        return scores
    if cfg.temperature is not None and cfg.temperature != 1.0:
        scores = temperature_warp(scores, cfg.temperature)
    if cfg.top_k is not None and cfg.top_k != 0:
        scores = top_k_warp(scores, cfg.top_k)
    if cfg.top_p is not None and cfg.top_p < 1.0:
        scores = top_p_warp(scores, cfg.top_p)
    return scores


def _sample(scores, rng):
    """One token per row from softmax(scores); tokens at -inf are never drawn."""
    p = _softmax(scores.astype(np.float64))
    cdf = np.cumsum(p, axis=-1)
    u = rng.random(scores.shape[0]) * cdf[:, -1]
    idx = np.array([np.searchsorted(cdf[b], u[b], side="right") for b in range(scores.shape[0])])
    for b in range(scores.shape[0]):  # rounding at the top end: the last token with mass
        if idx[b] >= scores.shape[-1] or p[b, idx[b]] == 0:
            idx[b] = np.flatnonzero(p[b] > 0)[-1]
    return idx.astype(np.int64)


def _stop_string_hit(tokenizer, seq, stop_strings, window):
    """transformers' StopStringCriteria: a stop string occurs in the text and
    overlaps the final token. Only the last `window` tokens are decoded."""
    tail = seq[-window:]
    text = tokenizer.decode(tail)
    prev = tokenizer.decode(tail[:-1]) if len(tail) > 1 else ""
    n = 0
    while n < min(len(prev), len(text)) and prev[n] == text[n]:
        n += 1  # the final token's text starts at n
    for s in stop_strings:
        start = text.find(s, max(0, n - len(s) + 1))
        if start >= 0:
            return True
    return False


def _as_np(x, dtype=np.int64):
    if x is None:
        return None
    if hasattr(x, "numpy"):
        x = x.numpy()
    return np.asarray(x, dtype=dtype)



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
    tokens and updates `done`, in place. Returns the tokens."""
    scores = process_logits(logits, cfg, present, cur, eos)
    nxt = _sample(scores, rng) if cfg.do_sample else scores.argmax(axis=-1).astype(np.int64)
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

class GenerationMixin:
    @property
    def generation_config(self):
        gc = self.__dict__.get("_generation_config")
        if gc is None:
            gc = _load_generation_config(getattr(self, "name_or_path", "") or None, getattr(self, "config", None))
            self.__dict__["_generation_config"] = gc
        return gc

    @generation_config.setter
    def generation_config(self, value):
        self.__dict__["_generation_config"] = value

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
        unknown = [k for k in kwargs if k not in _FIELDS and not hasattr(cfg, k)]
        if unknown:
            raise ValueError(f"generate() got unknown argument(s) {', '.join(sorted(unknown))}")
        cfg.update(**kwargs)
        has_default_max_length = not user_max_length and self.generation_config.max_length is None
        return cfg, has_default_max_length

    def generate(self, input_ids=None, attention_mask=None, generation_config=None, streamer=None, tokenizer=None,
                 inputs=None, **kwargs):
        """Returns int64 token ids [B, prompt + new] (prompt included, as
        transformers does). `streamer`: an object with put()/end() (gets the
        prompt ids, then each step's new ids) or a callable (gets each step's
        new ids as a list, one per row). `seed`: numpy seed for sampling (by
        default drawn from peftcpp's generator, so peftcpp.manual_seed makes
        sampling reproducible)."""
        from .llama import as_ids
        if input_ids is None:
            input_ids = inputs
        if input_ids is None:
            raise ValueError("generate() needs input_ids")
        cfg, has_default_max_length = self._prepare_generation_config(generation_config, kwargs)
        if cfg.num_beams and cfg.num_beams > 1:
            raise NotImplementedError("beam search (num_beams > 1) is not supported")
        if cfg.return_dict_in_generate or cfg.output_scores:
            raise NotImplementedError("return_dict_in_generate / output_scores are not supported; generate() "
                                      "returns the token ids")
        eos = _eos_list(cfg.eos_token_id)
        pad = cfg.pad_token_id
        if pad is None and eos:
            pad = eos[0]
        ids = as_ids(input_ids).numpy().astype(np.int64)
        mask = _as_np(attention_mask)
        if mask is None and pad is not None and pad not in eos and (ids == pad).any():
            mask = (ids != pad).astype(np.int64)  # as transformers: infer the mask from padding
        if mask is not None and mask.shape != ids.shape:
            raise ValueError(f"attention_mask shape {mask.shape} does not match input_ids {ids.shape}")
        if mask is not None and ids.shape[0] > 1 and (mask[:, -1] == 0).any():
            raise ValueError("batched generation needs left padding (tokenizer.padding_side = 'left')")
        nrs = int(cfg.num_return_sequences or 1)
        if nrs > 1:
            if not cfg.do_sample:
                raise ValueError("num_return_sequences > 1 needs do_sample=True (or beam search)")
            ids = np.repeat(ids, nrs, axis=0)
            mask = None if mask is None else np.repeat(mask, nrs, axis=0)
        B, T0 = ids.shape
        budget = length_budget(cfg, T0, has_default_max_length,
                               getattr(self.config, "max_position_embeddings", None))
        stop_strings = cfg.stop_strings
        if isinstance(stop_strings, str):
            stop_strings = [stop_strings]
        if stop_strings and tokenizer is None:
            raise ValueError("stop_strings needs the tokenizer: generate(..., tokenizer=tokenizer)")
        window = (max(len(s) for s in stop_strings) + 1) if stop_strings else 0
        seed = cfg.seed
        if seed is None and cfg.do_sample:
            from .._tensor import rand
            seed = int(np.asarray(rand(2).numpy(), dtype=np.float64).dot([2.0 ** 31, 2.0 ** 10]))
        rng = np.random.default_rng(seed)

        penalize = cfg.repetition_penalty is not None and cfg.repetition_penalty != 1.0
        present = None
        out = np.empty((B, T0 + budget), dtype=np.int64)
        out[:, :T0] = ids
        if mask is not None and mask.all():
            mask = None
        if mask is not None:
            full_mask = np.ones((B, T0 + budget), dtype=np.int64)
            full_mask[:, :T0] = mask
            start = T0 - mask.sum(axis=1)  # first real token per row (left padding)
            pos_last = mask.sum(axis=1) - 1
        else:
            full_mask, start, pos_last = None, np.zeros(B, dtype=np.int64), np.full(B, T0 - 1)
        was_training = self.training
        self.eval()
        cache = DynamicCache()
        done = np.zeros(B, dtype=bool)
        cur = T0
        put = getattr(streamer, "put", None) if streamer is not None else None
        try:
            if put is not None:
                put(_core.from_numpy(np.ascontiguousarray(ids)))
            with no_grad():
                while cur < T0 + budget:
                    if cur == T0:
                        step_ids, pos = ids, None
                        if full_mask is not None:
                            pos = np.where(mask > 0, np.cumsum(mask, axis=-1) - 1, 1)
                    else:
                        step_ids, pos = out[:, cur - 1:cur], (pos_last[:, None])
                    res = self(input_ids=_core.from_numpy(np.ascontiguousarray(step_ids)),
                               attention_mask=None if full_mask is None else full_mask[:, :cur],
                               position_ids=None if pos is None else np.ascontiguousarray(pos),
                               past_key_values=cache, use_cache=True, logits_to_keep=1)
                    logits = res.logits.numpy()[:, -1, :]
                    if penalize and present is None:
                        present = np.zeros((B, logits.shape[-1]), dtype=bool)
                        np.put_along_axis(present, ids, True, axis=1)
                    decode_step(logits, cfg, present, cur, eos, rng, done, pad, out, put, streamer)
                    cur += 1
                    pos_last = pos_last + 1
                    if stop_strings:
                        for b in range(B):
                            if not done[b]:
                                seq = out[b, max(int(start[b]), cur - window):cur].tolist()
                                done[b] = _stop_string_hit(tokenizer, seq, stop_strings, window)
                    if done.all():
                        break
        finally:
            if streamer is not None and hasattr(streamer, "end"):
                streamer.end()
            self.train(was_training)
        return _core.from_numpy(np.ascontiguousarray(out[:, :cur]))

"""GenerationMixin.generate: transformers' decoding on the engine with a
KV cache: greedy or sampling (temperature, top-k, top-p), repetition
penalty, eos and stop strings, streaming, batched prompts (left padding)."""
import numpy as np

from .. import _core
from .._tensor import no_grad
from .cache import DynamicCache


class GenerationConfig:
    def __init__(self, **kwargs):
        self.max_new_tokens = kwargs.pop("max_new_tokens", None)
        self.max_length = kwargs.pop("max_length", None)
        self.do_sample = kwargs.pop("do_sample", False)
        self.temperature = kwargs.pop("temperature", 1.0)
        self.top_k = kwargs.pop("top_k", 50)
        self.top_p = kwargs.pop("top_p", 1.0)
        self.repetition_penalty = kwargs.pop("repetition_penalty", 1.0)
        self.eos_token_id = kwargs.pop("eos_token_id", None)
        self.pad_token_id = kwargs.pop("pad_token_id", None)
        self.stop_strings = kwargs.pop("stop_strings", None)
        self.seed = kwargs.pop("seed", None)
        for k, v in kwargs.items():
            setattr(self, k, v)


def _eos_set(eos):
    if eos is None:
        return set()
    if isinstance(eos, (list, tuple, set)):
        return {int(e) for e in eos}
    return {int(eos)}


def process_logits(scores, generated, cfg):
    """scores [B, V] float64 numpy → processed scores, in transformers'
    order: repetition penalty, then temperature, top-k, top-p."""
    if cfg.repetition_penalty and cfg.repetition_penalty != 1.0:
        for b in range(scores.shape[0]):
            ids = np.unique(generated[b])
            s = scores[b, ids]
            scores[b, ids] = np.where(s < 0, s * cfg.repetition_penalty, s / cfg.repetition_penalty)
    if not cfg.do_sample:
        return scores
    if cfg.temperature is not None and cfg.temperature != 1.0:
        if cfg.temperature <= 0:
            raise ValueError(f"temperature must be > 0 when sampling, got {cfg.temperature}")
        scores = scores / cfg.temperature
    if cfg.top_k and cfg.top_k > 0 and cfg.top_k < scores.shape[-1]:
        kth = np.sort(scores, axis=-1)[:, -cfg.top_k][:, None]
        scores = np.where(scores < kth, -np.inf, scores)
    if cfg.top_p is not None and cfg.top_p < 1.0:
        order = np.argsort(scores, axis=-1)  # ascending, as transformers' TopPLogitsWarper
        sorted_scores = np.take_along_axis(scores, order, axis=-1)
        probs = np.exp(sorted_scores - sorted_scores.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)
        cum = np.cumsum(probs, axis=-1)
        remove_sorted = cum <= (1 - cfg.top_p)
        remove_sorted[:, -1] = False  # keep at least one token
        remove = np.zeros_like(remove_sorted)
        np.put_along_axis(remove, order, remove_sorted, axis=-1)
        scores = np.where(remove, -np.inf, scores)
    return scores


class GenerationMixin:
    def generate(self, input_ids=None, attention_mask=None, generation_config=None, streamer=None, tokenizer=None,
                 **kwargs):
        """Returns int64 token ids [B, prompt + new] (prompt included, as
        transformers does). `streamer` is a callable receiving each new
        token id list (one per batch row) or an object with put()/end()."""
        from .llama import as_ids
        cfg = generation_config or GenerationConfig()
        for k, v in kwargs.items():
            setattr(cfg, k, v)
        gc = getattr(self, "generation_defaults", {}) or {}
        eos = _eos_set(cfg.eos_token_id if cfg.eos_token_id is not None else
                       gc.get("eos_token_id", getattr(self.config, "eos_token_id", None)))
        pad = cfg.pad_token_id
        if pad is None:
            pad = getattr(self.config, "pad_token_id", None)
        if pad is None:
            pad = min(eos) if eos else 0
        ids = as_ids(input_ids).numpy().astype(np.int64)
        B, T0 = ids.shape
        if cfg.max_new_tokens is None:
            cfg.max_new_tokens = (cfg.max_length - T0) if cfg.max_length else 20
        mask = None if attention_mask is None else np.asarray(
            attention_mask.numpy() if hasattr(attention_mask, "numpy") else attention_mask, dtype=np.int64)
        if mask is not None and mask.shape != ids.shape:
            raise ValueError(f"attention_mask shape {mask.shape} does not match input_ids {ids.shape}")
        if mask is not None and B > 1 and (mask[:, -1] == 0).any():
            raise ValueError("batched generation needs left padding (tokenizer.padding_side = 'left')")
        stop_strings = cfg.stop_strings
        if isinstance(stop_strings, str):
            stop_strings = [stop_strings]
        if stop_strings and tokenizer is None:
            raise ValueError("stop_strings needs the tokenizer: generate(..., tokenizer=tokenizer)")
        rng = np.random.default_rng(cfg.seed)
        was_training = self.training
        self.eval()
        cache = DynamicCache()
        out = ids.copy()
        done = np.zeros(B, dtype=bool)
        step_ids = ids
        step_mask = mask
        try:
            with no_grad():
                for _ in range(cfg.max_new_tokens):
                    res = self(input_ids=_core.from_numpy(np.ascontiguousarray(step_ids)),
                               attention_mask=None if step_mask is None else _core.from_numpy(step_mask),
                               past_key_values=cache, use_cache=True, logits_to_keep=1)
                    scores = res.logits.numpy()[:, -1, :].astype(np.float64)
                    scores = process_logits(scores, out, cfg)
                    if cfg.do_sample:
                        p = np.exp(scores - scores.max(axis=-1, keepdims=True))
                        p /= p.sum(axis=-1, keepdims=True)
                        nxt = np.array([rng.choice(p.shape[-1], p=p[b]) for b in range(B)], dtype=np.int64)
                    else:
                        nxt = scores.argmax(axis=-1).astype(np.int64)
                    nxt = np.where(done, pad, nxt)
                    out = np.concatenate([out, nxt[:, None]], axis=1)
                    if streamer is not None:
                        if hasattr(streamer, "put"):
                            streamer.put(nxt.tolist())
                        else:
                            streamer(nxt.tolist())
                    done |= np.isin(nxt, list(eos)) if eos else False
                    if stop_strings:
                        for b in range(B):
                            if not done[b]:
                                text = tokenizer.decode(out[b, T0:].tolist())
                                done[b] = any(s in text for s in stop_strings)
                    if done.all():
                        break
                    step_ids = nxt[:, None]
                    if step_mask is not None:
                        step_mask = np.concatenate([step_mask, np.ones((B, 1), dtype=np.int64)], axis=1)
        finally:
            if streamer is not None and hasattr(streamer, "end"):
                streamer.end()
            self.train(was_training)
        return _core.from_numpy(np.ascontiguousarray(out))

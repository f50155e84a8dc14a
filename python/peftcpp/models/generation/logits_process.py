"""transformers' logits processors and warpers on numpy scores [B, V]:
repetition penalty, min length, temperature, top-k, top-p."""
import numpy as np


def softmax(scores):
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
    kth = np.partition(scores, -k, axis=-1)[:, -k][:, None]  # kth: [B, 1]
    return np.where(scores < kth, -np.inf, scores).astype(scores.dtype)


def top_p_warp(scores, top_p, min_tokens_to_keep=1):
    """transformers' TopPLogitsWarper: sorts ascending, removes the tokens whose
    cumulative probability is <= 1 - top_p, always keeps the most likely."""
    top_p = float(top_p)
    if top_p < 0 or top_p > 1.0:
        raise ValueError(f"`top_p` has to be a float > 0 and < 1, but is {top_p}")
    order = np.argsort(scores, axis=-1, kind="stable")  # order: [B, V], ascending
    sorted_scores = np.take_along_axis(scores, order, axis=-1)
    cum = np.cumsum(softmax(sorted_scores), axis=-1)
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

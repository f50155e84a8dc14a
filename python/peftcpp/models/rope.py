"""Rotary position embeddings: inverse frequencies for transformers'
rope types, and cos/sin tables for given positions."""
import math

import numpy as np

from .. import _core


def inv_freq_for(config, rope_parameters=None, dim=None):
    """(inv_freq [dim/2] float64, attention_scaling) as transformers'
    ROPE_INIT_FUNCTIONS compute them."""
    rp = dict(rope_parameters or config.rope_parameters)
    rope_type = rp.get("rope_type", rp.get("type", "default"))
    base = float(rp.get("rope_theta", getattr(config, "rope_theta", 10000.0)))
    if dim is None:
        factor = rp.get("partial_rotary_factor", getattr(config, "partial_rotary_factor", None) or 1.0)
        dim = int(config.head_dim * factor)
    inv = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.int64).astype(np.float64) / dim))
    scaling = 1.0
    if rope_type == "default":
        pass
    elif rope_type == "linear":
        inv = inv / float(rp["factor"])
    elif rope_type == "llama3":
        factor = float(rp["factor"])
        low, high = float(rp["low_freq_factor"]), float(rp["high_freq_factor"])
        old_ctx = float(rp["original_max_position_embeddings"])
        low_wl, high_wl = old_ctx / low, old_ctx / high
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > low_wl, inv / factor, inv)
        smooth = (old_ctx / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wl) & ~(wavelen > low_wl)
        inv = np.where(medium, smoothed, scaled)
    elif rope_type == "yarn":
        factor = float(rp["factor"])
        old_ctx = float(rp.get("original_max_position_embeddings") or config.max_position_embeddings)

        def get_mscale(scale, mscale=1.0):
            return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0

        if rp.get("mscale") and rp.get("mscale_all_dim"):
            scaling = get_mscale(factor, rp["mscale"]) / get_mscale(factor, rp["mscale_all_dim"])
        else:
            scaling = rp.get("attention_factor") or get_mscale(factor)
        beta_fast, beta_slow = float(rp.get("beta_fast") or 32), float(rp.get("beta_slow") or 1)

        def corr_dim(rot):
            return (dim * math.log(old_ctx / (rot * 2 * math.pi))) / (2 * math.log(base))

        lo, hi = corr_dim(beta_fast), corr_dim(beta_slow)
        if rp.get("truncate", True):
            lo, hi = math.floor(lo), math.ceil(hi)
        lo, hi = max(lo, 0), min(hi, dim - 1)
        if lo == hi:
            hi += 0.001
        ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - lo) / (hi - lo), 0, 1)
        extrapolation = 1 - ramp
        inv = (inv / factor) * (1 - extrapolation) + inv * extrapolation
    else:
        raise ValueError(f"rope type '{rope_type}' is not supported (supported: default, linear, llama3, yarn)")
    return inv, scaling


class RotaryEmbedding:
    """cos/sin tables [.., T, dim/2] for positions, float32, as the engine's
    rope op takes them (half-rotation layout)."""

    def __init__(self, config, rope_parameters=None, dim=None):
        self.inv_freq, self.attention_scaling = inv_freq_for(config, rope_parameters, dim)

    def __call__(self, position_ids):
        """position_ids: numpy int array [T] or [B, T]."""
        pos = np.asarray(position_ids, dtype=np.float64)
        # float32 products, as transformers computes them (inv_freq.float() @ pos.float())
        ang = pos[..., None].astype(np.float32) * self.inv_freq.astype(np.float32)
        cos = (np.cos(ang) * self.attention_scaling).astype(np.float32)
        sin = (np.sin(ang) * self.attention_scaling).astype(np.float32)
        return _core.from_numpy(np.ascontiguousarray(cos)), _core.from_numpy(np.ascontiguousarray(sin))

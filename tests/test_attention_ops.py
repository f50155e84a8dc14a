"""softmax / log_softmax, rope and scaled_dot_product_attention against PyTorch.

References run in float64 (the float32 torch leaves are cast inside the graph),
so the errors measured are those of the float32 peftcpp kernels."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import peftcpp
from peftcpp import _core
from helpers import BWD_RTOL, FWD_RTOL, assert_close, pair


def upstream(rng, shape):
    """A random upstream gradient as (peftcpp, torch) tensors."""
    g = rng.standard_normal(shape).astype(np.float32)
    return peftcpp.tensor(g), torch.tensor(g)


def random_pairs(rng, *shapes):
    """Standard normal float32 inputs of these shapes (drawn in this order), each as
    (peftcpp, torch) leaves with gradients."""
    return [pair(rng.standard_normal(shape).astype(np.float32)) for shape in shapes]


def check_forward_backward(rng, out, ref, grads):
    """peftcpp's `out` against the float64 torch `ref` (FWD_RTOL), then the same random
    upstream gradient through both: the gradients of grads = [(peftcpp leaf, torch leaf,
    name)] match (BWD_RTOL)."""
    assert_close(out, ref, FWD_RTOL, "forward")
    gp, gt = upstream(rng, tuple(ref.shape))
    out.backward(gp)
    ref.backward(gt.double())
    for p, t, name in grads:
        assert_close(p.grad, t.grad, BWD_RTOL, name)


# ---------------------------------------------------------------- softmax

@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dim", [-1, 0, 1, 2])
def test_softmax_matches_torch(rng, log, dim):
    x = rng.standard_normal((3, 5, 70)).astype(np.float32) * 3  # 70 > one 64-column block
    px, tx = pair(x)
    pf, tf = (_core.log_softmax, torch.log_softmax) if log else (_core.softmax, torch.softmax)
    out = pf(px, dim)
    ref = tf(tx.double(), dim)
    check_forward_backward(rng, out, ref, [(px, tx, "dx")])


def test_softmax_default_dim_and_stability(rng):
    # Offsets of 1e4 overflow a naive exp; the max-shifted kernel must not.
    x = (rng.standard_normal((4, 9)) * 5 + 1e4).astype(np.float32)
    px, tx = pair(x)
    out = _core.softmax(px)
    lout = _core.log_softmax(px)
    assert np.isfinite(out.numpy()).all() and np.isfinite(lout.numpy()).all()
    assert_close(out, torch.softmax(tx.double(), -1), FWD_RTOL, "softmax")
    assert_close(lout, torch.log_softmax(tx.double(), -1), FWD_RTOL, "log_softmax")
    np.testing.assert_allclose(out.numpy().sum(-1), 1.0, rtol=1e-5)


def test_softmax_all_neginf_row_is_zero_not_nan():
    x = np.array([[0.0, 1.0, 2.0], [-np.inf, -np.inf, -np.inf]], dtype=np.float32)
    out = _core.softmax(peftcpp.tensor(x)).numpy()
    assert not np.isnan(out).any()
    np.testing.assert_array_equal(out[1], 0.0)
    np.testing.assert_allclose(out[0], torch.softmax(torch.tensor(x[0]), -1).numpy(), rtol=1e-6)


def test_softmax_bad_dim_raises():
    with pytest.raises(IndexError, match=r"\[softmax\]"):
        _core.softmax(peftcpp.zeros(2, 3), 2)


# ---------------------------------------------------------------- rope

def rope_cos_sin(T, R, B=None, base=10000.0, offset=0):
    """cos/sin [T, R/2] (or [B, T, R/2] with per-batch positions)."""
    inv = 1.0 / base ** (np.arange(0, R, 2, dtype=np.float64) / R)
    if B is None:
        pos = np.arange(offset, offset + T, dtype=np.float64)[:, None]
    else:
        pos = (np.arange(T)[None, :] + 3 * np.arange(B)[:, None]).astype(np.float64)[..., None]
    ang = pos * inv
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rotate_every_two(x):
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def rope_ref(x, cos, sin, interleaved):
    """transformers' apply_rotary_pos_emb (partial rotary as in GPT-NeoX/Phi),
    or its GPT-J interleaved counterpart. cos/sin: [T, R/2] or [B, T, R/2]."""
    cos = torch.as_tensor(cos, dtype=torch.float64)
    sin = torch.as_tensor(sin, dtype=torch.float64)
    if interleaved:
        cos, sin = cos.repeat_interleave(2, -1), sin.repeat_interleave(2, -1)
    else:
        cos, sin = torch.cat((cos, cos), -1), torch.cat((sin, sin), -1)
    if cos.dim() == 3:  # [B, T, R] -> [B, 1, T, R], as unsqueeze_dim=1
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    R = cos.shape[-1]
    x_rot, x_pass = x[..., :R], x[..., R:]
    rot = rotate_every_two(x_rot) if interleaved else rotate_half(x_rot)
    return torch.cat((x_rot * cos + rot * sin, x_pass), dim=-1)


@pytest.mark.parametrize("interleaved", [False, True])
@pytest.mark.parametrize("R", [10, 6])  # full and partial rotary (D = 10)
@pytest.mark.parametrize("batched", [False, True])
def test_rope_matches_transformers(rng, interleaved, R, batched):
    B, H, T, D = 2, 3, 7, 10
    x = rng.standard_normal((B, H, T, D)).astype(np.float32)
    cos, sin = rope_cos_sin(T, R, B if batched else None)
    px, tx = pair(x)
    out = _core.rope(px, peftcpp.tensor(cos), peftcpp.tensor(sin), interleaved=interleaved)
    ref = rope_ref(tx.double(), cos, sin, interleaved)
    if R < D:  # pass-through dims are copied bit for bit
        np.testing.assert_array_equal(out.numpy()[..., R:], x[..., R:])
    check_forward_backward(rng, out, ref, [(px, tx, "dx")])


def test_rope_layouts_differ_and_preserve_norm(rng):
    # The two layouts pair different dims, so they must give different results;
    # each is a rotation, so it keeps the norm of the rotated part.
    x = rng.standard_normal((1, 2, 5, 8)).astype(np.float32)
    cos, sin = rope_cos_sin(5, 8, offset=1)
    args = (peftcpp.tensor(x), peftcpp.tensor(cos), peftcpp.tensor(sin))
    a = _core.rope(*args, interleaved=False).numpy()
    b = _core.rope(*args, interleaved=True).numpy()
    assert np.abs(a - b).max() > 1e-2
    np.testing.assert_allclose(np.linalg.norm(a, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(b, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5)


@pytest.mark.parametrize("perm", [[0, 2, 1, 3], [0, 3, 1, 2]])
def test_rope_strided_input(rng, perm):
    # The usual call site: a [B, T, H, D] projection viewed as [B, H, T, D]
    # (unit last stride); also a layout whose last dim is strided.
    B, H, T, D, R = 2, 3, 7, 10, 8
    src_shape = [0] * 4
    for i, p in enumerate(perm):
        src_shape[p] = (B, H, T, D)[i]
    x = rng.standard_normal(src_shape).astype(np.float32)
    cos, sin = rope_cos_sin(T, R)
    px, tx = pair(x)
    pv = _core.permute(px, perm)
    assert tuple(pv.shape) == (B, H, T, D) and not pv.is_contiguous()
    out = _core.rope(pv, peftcpp.tensor(cos), peftcpp.tensor(sin))
    ref = rope_ref(tx.double().permute(*perm), cos, sin, False)
    check_forward_backward(rng, out, ref, [(px, tx, "dx")])


def test_rope_cos_sin_get_no_grad(rng):
    x = peftcpp.tensor(rng.standard_normal((1, 1, 4, 4)).astype(np.float32), requires_grad=True)
    cos, sin = rope_cos_sin(4, 4)
    c = peftcpp.tensor(cos, requires_grad=True)
    s = peftcpp.tensor(sin, requires_grad=True)
    _core.sum(_core.rope(x, c, s)).backward()
    assert x.grad is not None and c.grad is None and s.grad is None


@pytest.mark.parametrize("xs,cs,what", [
    ((2, 7, 10), (7, 5), "4-D"),           # wrong rank
    ((2, 3, 7, 10), (6, 5), "do not match"),  # T mismatch
    ((2, 3, 7, 10), (3, 7, 5), "do not match"),  # batch mismatch
    ((2, 3, 7, 10), (7, 6), "rotate 12 dims"),  # R > D
])
def test_rope_bad_shapes_raise(xs, cs, what):
    x, c = peftcpp.zeros(*xs), peftcpp.zeros(*cs)
    with pytest.raises(ValueError, match=r"\[rope\].*" + what):
        _core.rope(x, c, c)


# ---------------------------------------------------------------- attention

def attn_ref(q, k, v, mask=None, is_causal=True, scale=0.0, window=0, softcap=0.0):
    """Explicit torch math: repeat kv heads, scores, softcap, mask, softmax.
    Rows that see no key give zeros (as peftcpp does) instead of NaN."""
    B, Hq, T, D = q.shape
    Hkv, S = k.shape[1], k.shape[2]
    k = k.repeat_interleave(Hq // Hkv, dim=1)
    v = v.repeat_interleave(Hq // Hkv, dim=1)
    scale = scale if scale > 0 else 1.0 / math.sqrt(D)
    z = (q @ k.transpose(-1, -2)) * scale
    if softcap > 0:
        z = softcap * torch.tanh(z / softcap)
    if mask is not None:
        z = z + mask
    pos = torch.arange(T)[:, None] + (S - T)
    j = torch.arange(S)[None, :]
    allowed = torch.ones(T, S, dtype=torch.bool)
    if is_causal:
        allowed &= j <= pos
    if window > 0:
        allowed &= (pos - j) < window
    z = z.masked_fill(~allowed, float("-inf"))
    row_ok = (z > float("-inf")).any(-1, keepdim=True)
    p = torch.softmax(torch.where(row_ok, z, torch.zeros_like(z)), -1) * row_ok
    return p @ v


def run_attention(rng, B=2, Hq=6, Hkv=2, T=7, S=7, D=10, Dv=12, mask_shape=None, mask_grad=False,
                  mask_fn=None, **kw):
    """Runs peftcpp and the torch reference on the same random inputs; checks
    the output and every gradient; returns the peftcpp output."""
    (pq, tq), (pk, tk), (pv, tv) = random_pairs(rng, (B, Hq, T, D), (B, Hkv, S, D), (B, Hkv, S, Dv))
    pm = tm = None
    if mask_shape is not None:
        m = rng.standard_normal(mask_shape).astype(np.float32)
        if mask_fn is not None:
            m = mask_fn(m)
        pm, tm = pair(m, requires_grad=mask_grad)
    out = _core.scaled_dot_product_attention(pq, pk, pv, pm, **kw)
    tkw = dict(kw)
    tkw["window"] = tkw.pop("sliding_window", 0)
    ref = attn_ref(tq.double(), tk.double(), tv.double(), None if tm is None else tm.double(), **tkw)
    assert tuple(out.shape) == (B, Hq, T, Dv)
    assert not np.isnan(out.numpy()).any()
    check_forward_backward(rng, out, ref, [(pq, tq, "dq"), (pk, tk, "dk"), (pv, tv, "dv")])
    if mask_grad:
        assert_close(pm.grad, tm.grad, BWD_RTOL, "dmask")
    elif pm is not None:
        assert pm.grad is None
    return out


@pytest.mark.parametrize("Hkv", [6, 3, 2, 1])  # MHA, GQA, MQA
def test_attention_causal_gqa(rng, Hkv):
    run_attention(rng, Hkv=Hkv, is_causal=True)


def test_attention_causal_kv_cache_alignment(rng):
    # T < S: the T queries are the last T positions, each seeing S - T + i + 1 keys.
    run_attention(rng, T=7, S=11, Hkv=3, is_causal=True)
    run_attention(rng, T=1, S=11, Hkv=2, is_causal=True)  # one-token decode


def test_attention_non_causal_with_mask(rng):
    run_attention(rng, S=11, is_causal=False, mask_shape=(2, 1, 7, 11))


@pytest.mark.parametrize("mask_shape", [(2, 6, 7, 11), (2, 1, 1, 11), (7, 11)])
def test_attention_mask_gradient(rng, mask_shape):
    run_attention(rng, S=11, Hkv=3, is_causal=False, mask_shape=mask_shape, mask_grad=True)


def test_attention_causal_plus_padding_mask(rng):
    # A HF-style padding mask: batch 1 has its first 3 keys padded out.
    def pad(m):
        m = np.zeros_like(m)
        m[1, ..., :3] = -np.inf
        return m
    run_attention(rng, T=7, S=11, is_causal=True, mask_shape=(2, 1, 1, 11), mask_fn=pad)


@pytest.mark.parametrize("window", [1, 3, 20])
def test_attention_sliding_window(rng, window):
    run_attention(rng, T=7, S=11, is_causal=True, sliding_window=window)


def test_attention_sliding_window_changes_result():
    # Same inputs (same seed) with and without a window of 2: rows 0 and 1
    # see the same keys either way, later rows lose keys and must change.
    a = run_attention(np.random.default_rng(7), is_causal=True).numpy()
    b = run_attention(np.random.default_rng(7), is_causal=True, sliding_window=2).numpy()
    np.testing.assert_allclose(a[:, :, :2], b[:, :, :2], rtol=1e-5, atol=1e-6)
    assert np.abs(a[:, :, 2:] - b[:, :, 2:]).max() > 1e-2


def test_attention_softcap(rng):
    # scale 1.0 makes scores large enough for tanh to saturate.
    run_attention(rng, is_causal=True, scale=1.0, softcap=2.0)


def test_attention_everything_at_once(rng):
    run_attention(rng, T=7, S=11, Hkv=3, is_causal=True, scale=0.4, sliding_window=4, softcap=3.0,
                  mask_shape=(2, 1, 7, 11), mask_grad=True)


def test_attention_matches_torch_sdpa(rng):
    B, Hq, Hkv, T, D = 2, 6, 2, 7, 10
    (pq, tq), (pk, tk), (pv, tv) = random_pairs(rng, (B, Hq, T, D), (B, Hkv, T, D), (B, Hkv, T, D))
    out = _core.scaled_dot_product_attention(pq, pk, pv)  # defaults: causal, 1/sqrt(D)
    ref = F.scaled_dot_product_attention(tq.double(), tk.double(), tv.double(), is_causal=True, enable_gqa=True)
    check_forward_backward(rng, out, ref, [(pq, tq, "dq"), (pk, tk, "dk"), (pv, tv, "dv")])


def test_attention_fully_masked_rows_are_zero(rng):
    # Causal with T > S: queries 0 and 1 sit before every key. Plus an additive
    # mask that blanks row 4 of batch 0 entirely.
    def blank(m):
        m = np.zeros_like(m)
        m[0, :, 4, :] = -np.inf
        return m
    out = run_attention(rng, T=5, S=3, Hkv=3, is_causal=True, mask_shape=(2, 1, 5, 3), mask_fn=blank).numpy()
    np.testing.assert_array_equal(out[:, :, :2], 0.0)
    np.testing.assert_array_equal(out[0, :, 4], 0.0)
    assert np.abs(out[1, :, 4]).max() > 0


def test_attention_strided_inputs(rng):
    # q/v as [B, T, H, D] projections viewed as [B, H, T, D] (read in place),
    # k stored as [B, H, D, T] and transposed (last dim strided: copied).
    B, T, Hq, Hkv, D = 2, 7, 4, 2, 8
    (pq, tq), (pk, tk), (pv, tv) = random_pairs(rng, (B, T, Hq, D), (B, Hkv, D, T), (B, T, Hkv, D))
    perm, kperm = [0, 2, 1, 3], [0, 1, 3, 2]
    out = _core.scaled_dot_product_attention(_core.permute(pq, perm), _core.permute(pk, kperm),
                                             _core.permute(pv, perm))
    ref = attn_ref(tq.double().permute(*perm), tk.double().permute(*kperm), tv.double().permute(*perm))
    check_forward_backward(rng, out, ref, [(pq, tq, "dq"), (pk, tk, "dk"), (pv, tv, "dv")])


@pytest.mark.parametrize("threads", [1, 2])
def test_attention_single_head_large(rng, threads):
    # One (b, h) slice with T·S above the row-parallel threshold: the path
    # where BLAS and the row loops, not the heads, share the threads.
    prev = peftcpp.get_num_threads()
    peftcpp.set_num_threads(threads)
    try:
        run_attention(rng, B=1, Hq=1, Hkv=1, T=130, S=140, D=16, Dv=8, is_causal=True, sliding_window=50)
    finally:
        peftcpp.set_num_threads(prev)


def test_attention_no_grad_records_nothing(rng):
    q = peftcpp.tensor(rng.standard_normal((1, 2, 3, 4)).astype(np.float32), requires_grad=True)
    k = peftcpp.tensor(rng.standard_normal((1, 2, 3, 4)).astype(np.float32))
    with peftcpp.no_grad():
        out = _core.scaled_dot_product_attention(q, k, k)
    assert not out.requires_grad
    out = _core.scaled_dot_product_attention(q, k, k)
    assert out.requires_grad and out.grad_fn is not None


@pytest.mark.parametrize("qs,ks,vs,what", [
    ((2, 6, 7, 10), (2, 2, 7, 8), (2, 2, 7, 12), "head dims differ"),
    ((2, 6, 7, 10), (2, 4, 7, 10), (2, 4, 7, 12), "multiple of kv heads"),
    ((6, 7, 10), (2, 7, 10), (2, 7, 12), "4-D"),
    ((2, 6, 7, 10), (1, 2, 7, 10), (1, 2, 7, 12), "batch sizes differ"),
    ((2, 6, 7, 10), (2, 2, 7, 10), (2, 2, 8, 12), "must share heads and length"),
])
def test_attention_bad_shapes_raise(qs, ks, vs, what):
    q, k, v = peftcpp.zeros(*qs), peftcpp.zeros(*ks), peftcpp.zeros(*vs)
    with pytest.raises(ValueError, match=r"\[scaled_dot_product_attention\].*" + what):
        _core.scaled_dot_product_attention(q, k, v)


def test_attention_bad_mask_raises():
    q, k = peftcpp.zeros(2, 6, 7, 10), peftcpp.zeros(2, 2, 11, 10)
    with pytest.raises(ValueError, match=r"\[scaled_dot_product_attention\] mask \[2, 1, 7, 10\]"):
        _core.scaled_dot_product_attention(q, k, k, peftcpp.zeros(2, 1, 7, 10))
    with pytest.raises(TypeError, match=r"\[scaled_dot_product_attention\]"):
        _core.scaled_dot_product_attention(q, k, k, peftcpp.zeros(7, 11, dtype=peftcpp.int64))

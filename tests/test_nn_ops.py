"""Norms, activations, embedding and dropout (peftcpp._core) against PyTorch:
forward and every gradient, with a random upstream gradient."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import peftcpp
from peftcpp import _core as C

from helpers import BWD_RTOL, FWD_RTOL, assert_close, pair, rel_err, to_np

SHAPES = [(3, 7, 45), (5, 33), (64, 1024)]  # the last one takes the OpenMP paths


def upstream(rng, shape):
    """The same random upstream gradient for both libraries."""
    g = rng.standard_normal(shape).astype(np.float32)
    return peftcpp.tensor(g), torch.tensor(g)


def check_fwd_bwd(rng, p_out, t_out, p_inputs, t_inputs, what):
    """Compares the forward, then backpropagates one random gradient on both
    sides and compares the gradient of every input that requires one."""
    assert_close(p_out, t_out, FWD_RTOL, f"{what} forward")
    gp, gt = upstream(rng, tuple(t_out.shape))
    p_out.backward(gp)
    t_out.backward(gt)
    for i, (pi, ti) in enumerate(zip(p_inputs, t_inputs)):
        if ti is None or not ti.requires_grad:
            continue
        assert pi.grad is not None, f"{what}: input {i} got no gradient"
        assert_close(pi.grad, ti.grad, BWD_RTOL, f"{what} grad of input {i}")


# ------------------------------------------------------------------ layer_norm


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
def test_layer_norm(rng, shape, affine):
    c = shape[-1]
    px, tx = pair(rng.standard_normal(shape) * 2 + 0.5)
    pw = tw = pb = tb = None
    if affine in ("both", "weight"):
        pw, tw = pair(rng.standard_normal(c))
    if affine == "both":
        pb, tb = pair(rng.standard_normal(c))
    p_out = C.layer_norm(px, pw, pb, 1e-5)
    t_out = F.layer_norm(tx, (c,), tw, tb, 1e-5)
    assert p_out.grad_fn == "LayerNormBackward"
    check_fwd_bwd(rng, p_out, t_out, [px, pw, pb], [tx, tw, tb], f"layer_norm{shape}/{affine}")


def test_layer_norm_frozen_params_and_strided_input(rng):
    # x is a transposed (non-contiguous) view; weight/bias do not require grad.
    arr = rng.standard_normal((45, 7)).astype(np.float32)
    px, tx = pair(arr)
    pxt, txt = C.transpose(px, 0, 1), tx.t()
    assert not pxt.is_contiguous()
    pw, tw = pair(rng.standard_normal(45), requires_grad=False)
    pb, tb = pair(rng.standard_normal(45), requires_grad=False)
    p_out = C.layer_norm(pxt, pw, pb, eps=1e-3)
    t_out = F.layer_norm(txt, (45,), tw, tb, 1e-3)
    check_fwd_bwd(rng, p_out, t_out, [px], [tx], "layer_norm strided")
    assert pw.grad is None and pb.grad is None


def test_layer_norm_no_grad_records_nothing(rng):
    px, _ = pair(rng.standard_normal((4, 9)))
    with peftcpp.no_grad():
        out = C.layer_norm(px)
    assert out.grad_fn is None and not out.requires_grad


# ------------------------------------------------------------------ rms_norm


def llama_rms_norm(x, w, eps):
    # transformers' LlamaRMSNorm (float32 path)
    var = x.pow(2).mean(-1, keepdim=True)
    y = x * torch.rsqrt(var + eps)
    return y if w is None else w * y


def gemma_rms_norm(x, w, eps):
    # transformers' GemmaRMSNorm: scales by (1 + w)
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return y * (1.0 + w.float())


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("variant", ["llama", "gemma", "noweight"])
def test_rms_norm(rng, shape, variant):
    c = shape[-1]
    px, tx = pair(rng.standard_normal(shape) * 3)
    pw = tw = None
    if variant != "noweight":
        pw, tw = pair(rng.standard_normal(c) * 0.5 + (0 if variant == "gemma" else 1))
    if variant == "gemma":
        p_out = C.rms_norm(px, pw, eps=1e-6, offset=1.0)
        t_out = gemma_rms_norm(tx, tw, 1e-6)
    else:
        p_out = C.rms_norm(px, pw, eps=1e-6)
        t_out = llama_rms_norm(tx, tw, 1e-6)
    check_fwd_bwd(rng, p_out, t_out, [px, pw], [tx, tw], f"rms_norm{shape}/{variant}")


@pytest.mark.parametrize("half", ["bf16", "f16"])
@pytest.mark.parametrize("offset", [0.0, 1.0])
def test_rms_norm_half_weight_is_rounded_f32(rng, half, offset):
    px, tx = pair(rng.standard_normal((3, 7, 45)))
    w = (rng.standard_normal(45) * 0.7 + 1).astype(np.float32)
    p_dtype, t_dtype = (peftcpp.bfloat16, torch.bfloat16) if half == "bf16" else (peftcpp.float16, torch.float16)
    pw = peftcpp.tensor(w, dtype=p_dtype)
    assert pw.dtype == p_dtype
    tw = torch.tensor(w).to(t_dtype).float()  # what the half weight holds
    # Rounding really changed the weight, so matching tw is not vacuous.
    assert np.abs(tw.numpy() - w).max() > 0
    p_out = C.rms_norm(px, pw, 1e-6, offset)
    t_out = llama_rms_norm(tx, tw + offset, 1e-6)
    check_fwd_bwd(rng, p_out, t_out, [px], [tx], f"rms_norm {half} weight")


def test_rms_norm_half_weight_stays_frozen(rng):
    pw = peftcpp.tensor(np.full(8, 1.5, np.float32), dtype=peftcpp.bfloat16)
    with pytest.raises(TypeError):
        pw.requires_grad_(True)  # half-precision weights cannot train
    px, _ = pair(rng.standard_normal((2, 8)))
    out = C.rms_norm(px, pw)
    out.backward(peftcpp.ones(2, 8))
    assert pw.grad is None and px.grad is not None


# ------------------------------------------------------------------ activations


@pytest.mark.parametrize("shape", [(3, 7, 45), (300, 130)])
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(rng, shape, approximate):
    px, tx = pair(rng.standard_normal(shape) * 3)
    p_out = C.gelu(px, approximate)
    t_out = F.gelu(tx, approximate=approximate)
    check_fwd_bwd(rng, p_out, t_out, [px], [tx], f"gelu/{approximate}")


def test_gelu_default_is_exact(rng):
    # erf and tanh forms differ by ~1e-3 near |x|=2: the default must be erf.
    px, tx = pair(np.linspace(-4, 4, 101), requires_grad=False)
    assert_close(C.gelu(px), F.gelu(tx), FWD_RTOL, "gelu default")
    assert rel_err(to_np(C.gelu(px)), F.gelu(tx, approximate="tanh").numpy()) > 1e-5


@pytest.mark.parametrize("shape", [(3, 7, 45), (300, 130)])
def test_silu(rng, shape):
    px, tx = pair(rng.standard_normal(shape) * 4)
    check_fwd_bwd(rng, C.silu(px), F.silu(tx), [px], [tx], "silu")


@pytest.mark.parametrize("shape", [(3, 7, 45), (300, 130)])
def test_swiglu(rng, shape):
    pg, tg = pair(rng.standard_normal(shape) * 3)
    pu, tu = pair(rng.standard_normal(shape))
    p_out = C.swiglu(pg, pu)
    assert p_out.grad_fn == "SwigluBackward"
    check_fwd_bwd(rng, p_out, F.silu(tg) * tu, [pg, pu], [tg, tu], "swiglu")


@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_gelu_mul(rng, approximate):
    pg, tg = pair(rng.standard_normal((3, 7, 45)) * 3)
    pu, tu = pair(rng.standard_normal((3, 7, 45)))
    p_out = C.gelu_mul(pg, pu, approximate=approximate)
    t_out = F.gelu(tg, approximate=approximate) * tu
    check_fwd_bwd(rng, p_out, t_out, [pg, pu], [tg, tu], f"gelu_mul/{approximate}")


def test_gelu_mul_default_is_tanh(rng):
    pg, tg = pair(np.linspace(-4, 4, 101), requires_grad=False)
    pu, tu = pair(np.ones(101), requires_grad=False)
    assert_close(C.gelu_mul(pg, pu), F.gelu(tg, approximate="tanh") * tu, FWD_RTOL, "gelu_mul default")


def test_swiglu_grad_to_one_input_only(rng):
    # up is frozen: only gate gets a gradient.
    pg, tg = pair(rng.standard_normal((4, 11)))
    pu, tu = pair(rng.standard_normal((4, 11)), requires_grad=False)
    check_fwd_bwd(rng, C.swiglu(pg, pu), F.silu(tg) * tu, [pg], [tg], "swiglu frozen up")
    assert pu.grad is None


# ------------------------------------------------------------------ embedding


@pytest.mark.parametrize("id_dtype", ["int32", "int64"])
@pytest.mark.parametrize("ids_shape,vocab,dim", [((4, 9), 13, 45), ((37,), 5, 7), ((2, 3, 5), 50, 2000)])
def test_embedding(rng, id_dtype, ids_shape, vocab, dim):
    ids = rng.integers(0, vocab, size=ids_shape)
    ids[(0,) * len(ids_shape)] = ids.flat[-1]  # at least one repeat, so grads accumulate
    assert len(np.unique(ids)) < ids.size
    p_ids = peftcpp.tensor(ids, dtype=getattr(peftcpp, id_dtype))
    assert p_ids.dtype == getattr(peftcpp, id_dtype)
    pw, tw = pair(rng.standard_normal((vocab, dim)))
    p_out = C.embedding(p_ids, pw)
    t_out = F.embedding(torch.tensor(ids), tw)
    assert p_out.shape == tuple(ids_shape) + (dim,)
    check_fwd_bwd(rng, p_out, t_out, [pw], [tw], "embedding")


def test_embedding_bf16_weight_matches_rounded(rng):
    w = rng.standard_normal((20, 33)).astype(np.float32)
    ids = rng.integers(0, 20, size=(3, 8))
    pw = peftcpp.tensor(w, dtype=peftcpp.bfloat16)
    out = C.embedding(peftcpp.tensor(ids), pw)
    expect = F.embedding(torch.tensor(ids), torch.tensor(w).bfloat16().float())
    assert out.dtype == peftcpp.float32
    # Widening bf16 is exact: the rows must be bit-identical.
    np.testing.assert_array_equal(out.numpy(), expect.numpy())
    assert np.abs(out.numpy() - w[ids]).max() > 0  # the rounding is visible


def test_embedding_frozen_weight_allocates_no_gradient(rng):
    vocab, dim = 50000, 64  # a dense dW would be 12.8 MB
    pw = peftcpp.tensor(rng.standard_normal((vocab, dim)).astype(np.float32))
    ids = peftcpp.tensor(rng.integers(0, vocab, size=(2, 16)))
    out = C.embedding(ids, pw)
    assert out.grad_fn is None  # nothing recorded for a frozen table
    ps, ts = pair(rng.standard_normal(dim))
    y = C.mul(out, ps)  # something downstream that does train
    peftcpp.reset_peak_memory()
    before = peftcpp.memory_stats()["current"]
    y.backward(peftcpp.tensor(np.ones((2, 16, dim), np.float32)))
    assert peftcpp.memory_stats()["peak"] - before < vocab * dim * 4 // 4
    assert pw.grad is None
    np.testing.assert_allclose(ps.grad.numpy(), out.numpy().reshape(-1, dim).sum(0), rtol=1e-5)


def test_embedding_out_of_range(rng):
    pw = peftcpp.zeros(49152, 8)
    ids = peftcpp.tensor(np.array([[1, 2], [70000, 3]]))
    with pytest.raises(IndexError, match=r"^\[embedding\] index 70000 out of range for vocabulary of 49152$"):
        C.embedding(ids, pw)
    with pytest.raises(IndexError, match=r"\[embedding\] index -1 out of range"):
        C.embedding(peftcpp.tensor(np.array([0, -1]), dtype=peftcpp.int32), pw)


def test_embedding_bad_inputs():
    w = peftcpp.zeros(10, 4)
    with pytest.raises(TypeError, match=r"\[embedding\] ids must be int32 or int64, got float32"):
        C.embedding(peftcpp.zeros(3), w)
    with pytest.raises(TypeError, match=r"\[embedding\] weight must be a float tensor, got int64"):
        C.embedding(peftcpp.tensor([1, 2]), peftcpp.tensor(np.zeros((10, 4), np.int64)))
    with pytest.raises(ValueError, match=r"\[embedding\] weight must be 2-D.*\[40\]"):
        C.embedding(peftcpp.tensor([1, 2]), peftcpp.zeros(40))


# ------------------------------------------------------------------ dropout


def test_dropout_identity_when_off(rng):
    px, _ = pair(rng.standard_normal((4, 5)))
    for out in (C.dropout(px, 0.0, True), C.dropout(px, 0.5, False), C.dropout(px, p=0.9, training=False)):
        assert out._is_same(px)  # x itself: no copy, no node
        assert out.grad_fn is None


def test_dropout_seeded_mask_and_fraction():
    n, p = 100_000, 0.3
    x = peftcpp.ones(n)
    peftcpp.manual_seed(1234)
    a = C.dropout(x, p, True).numpy().copy()
    b = C.dropout(x, p, True).numpy().copy()  # the generator moved on
    peftcpp.manual_seed(1234)
    a2 = C.dropout(x, p, True).numpy()
    C.manual_seed(99)
    c = C.dropout(x, p, True).numpy()
    np.testing.assert_array_equal(a, a2)
    assert (a != b).any() and (a != c).any()
    # Kept values are scaled by 1/(1-p); the rest are exactly zero.
    vals = np.unique(a)
    assert len(vals) == 2 and vals[0] == 0.0
    np.testing.assert_allclose(vals[1], 1 / (1 - p), rtol=1e-6)
    for mask in (a, b, c):
        kept = (mask != 0).mean()
        assert abs(kept - (1 - p)) < 0.01, kept


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_backward_is_mask_over_keep(rng, p):
    arr = rng.standard_normal((50, 40)).astype(np.float32)
    px = peftcpp.tensor(arr, requires_grad=True)
    out = C.dropout(px, p)  # defaults: training=True
    assert out.grad_fn == "DropoutBackward"
    o = out.numpy()
    mask = o != 0
    np.testing.assert_allclose(o[mask], arr[mask] / (1 - p), rtol=1e-6)
    assert abs(mask.mean() - (1 - p)) < 0.05
    g = rng.standard_normal((50, 40)).astype(np.float32)
    out.backward(peftcpp.tensor(g))
    np.testing.assert_allclose(px.grad.numpy(), np.where(mask, g / (1 - p), 0), rtol=1e-6)


def test_dropout_bad_inputs(rng):
    px, _ = pair(rng.standard_normal(5))
    for p in (-0.1, 1.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"\[dropout\] probability must be in \[0, 1\)"):
            C.dropout(px, p, True)
    with pytest.raises(ValueError, match=r"\[dropout\]"):
        C.dropout(px, 1.0, False)  # checked even in eval, as torch does
    with pytest.raises(TypeError, match=r"\[dropout\].*int64"):
        C.dropout(peftcpp.tensor([1, 2, 3]), 0.5, True)


# ------------------------------------------------------------------ errors


def test_norm_errors_name_the_op(rng):
    px, _ = pair(rng.standard_normal((3, 7, 45)))
    with pytest.raises(ValueError, match=r"^\[layer_norm\] weight of shape \[44\] does not match input \[3, 7, 45\]"):
        C.layer_norm(px, peftcpp.ones(44))
    with pytest.raises(ValueError, match=r"\[layer_norm\] bias of shape \[45, 1\]"):
        C.layer_norm(px, None, peftcpp.zeros(45, 1))
    with pytest.raises(ValueError, match=r"\[rms_norm\] weight of shape \[7\]"):
        C.rms_norm(px, peftcpp.ones(7))
    with pytest.raises(TypeError, match=r"\[rms_norm\] input must be a float tensor, got int64 of shape \[2, 3\]"):
        C.rms_norm(peftcpp.tensor(np.zeros((2, 3), np.int64)))
    with pytest.raises(TypeError, match=r"\[layer_norm\] weight must be a float tensor, got int64"):
        C.layer_norm(px, peftcpp.tensor(np.zeros(45, np.int64)))


def test_activation_errors_name_the_op(rng):
    pi = peftcpp.tensor(np.zeros((2, 3), np.int32), dtype=peftcpp.int32)
    pf, _ = pair(rng.standard_normal((2, 3)))
    with pytest.raises(TypeError, match=r"\[silu\].*int32"):
        C.silu(pi)
    with pytest.raises(TypeError, match=r"\[gelu\].*int32"):
        C.gelu(pi)
    with pytest.raises(ValueError, match=r"\[gelu\] approximate must be 'none' or 'tanh', got 'fast'"):
        C.gelu(pf, "fast")
    with pytest.raises(ValueError, match=r"\[swiglu\] gate \[2, 3\] and up \[3, 2\] must have the same shape"):
        C.swiglu(pf, peftcpp.zeros(3, 2))
    with pytest.raises(TypeError, match=r"\[gelu_mul\] up must be a float tensor"):
        C.gelu_mul(pf, pi)

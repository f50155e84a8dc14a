"""Elementwise, reduction, shape and matrix ops against PyTorch: forward and
every gradient, on odd shapes, float32 (forward ≤ 1e-5, backward ≤ 1e-4
relative to the tensor's scale)."""
import numpy as np
import pytest
import torch

import peftcpp
from peftcpp import _core
from helpers import BWD_RTOL, FWD_RTOL, assert_close, pair


def check(fn_p, fn_t, *arrays, grad_seed=0):
    ps, ts = zip(*(pair(a) for a in arrays))
    out_p, out_t = fn_p(*ps), fn_t(*ts)
    assert_close(out_p, out_t, FWD_RTOL, "forward")
    g = np.random.default_rng(grad_seed).standard_normal(tuple(out_t.shape)).astype(np.float32)
    out_p.backward(peftcpp.tensor(g))
    out_t.backward(torch.tensor(g))
    for i, (p, t) in enumerate(zip(ps, ts)):
        assert_close(p.grad, t.grad, BWD_RTOL, f"grad of input {i}")


BINARY = [
    (lambda a, b: a + b, "add"),
    (lambda a, b: a - b, "sub"),
    (lambda a, b: a * b, "mul"),
    (lambda a, b: a / b, "div"),
]
SHAPES = [((3, 5, 7), (3, 5, 7)), ((3, 5, 7), (7,)), ((3, 1, 7), (5, 1)), ((1, 5, 1), (3, 1, 7))]


@pytest.mark.parametrize("op,name", BINARY, ids=[n for _, n in BINARY])
@pytest.mark.parametrize("sa,sb", SHAPES)
def test_binary_broadcast(rng, op, name, sa, sb):
    a = rng.standard_normal(sa)
    b = rng.standard_normal(sb)
    if name == "div":
        b = np.sign(b) * (np.abs(b) + 0.5)
    check(op, op, a, b)


def test_maximum(rng):
    a, b = rng.standard_normal((4, 9)), rng.standard_normal((9,))
    check(_core.maximum, torch.maximum, a, b)


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "abs", "neg"])
def test_unary(rng, name):
    x = rng.standard_normal((5, 13))
    if name in ("log", "sqrt", "rsqrt"):
        x = np.abs(x) + 0.1
    check(getattr(_core, name), getattr(torch, name), x)


@pytest.mark.parametrize("fn", [
    lambda x: x * 2.5, lambda x: 2.5 * x, lambda x: x + 1.5, lambda x: 1.5 - x, lambda x: 3.0 / x,
    lambda x: x / 4.0, lambda x: x ** 3, lambda x: x ** 0.5])
def test_scalar_ops(rng, fn):
    x = np.abs(rng.standard_normal((6, 11))) + 0.2
    check(fn, fn, x)


@pytest.mark.parametrize("dims,keepdim", [(None, False), ((1,), False), ((0, 2), True), ((-1,), True), ((1, 2), False)])
def test_sum_mean(rng, dims, keepdim):
    x = rng.standard_normal((3, 7, 9))
    tdims = dims if dims is not None else tuple(range(3))
    check(lambda t: t.sum(dims, keepdim) if dims else t.sum(), lambda t: t.sum(tdims, keepdim) if dims else t.sum(), x)
    check(lambda t: t.mean(dims, keepdim) if dims else t.mean(),
          lambda t: t.mean(tdims, keepdim) if dims else t.mean(), x)


def test_amax(rng):
    x = rng.standard_normal((4, 6, 5))
    check(lambda t: t.amax(1), lambda t: t.amax(1), x)
    check(lambda t: t.amax(-1, True), lambda t: t.amax(-1, keepdim=True), x)


def test_shape_ops(rng):
    x = rng.standard_normal((3, 4, 5))
    check(lambda t: t.reshape(4, 15), lambda t: t.reshape(4, 15), x)
    check(lambda t: t.permute(2, 0, 1) * 1.0, lambda t: t.permute(2, 0, 1) * 1.0, x)
    check(lambda t: t.transpose(0, 2).reshape(-1), lambda t: t.transpose(0, 2).reshape(-1), x)
    check(lambda t: t[:, 1:3, 2], lambda t: t[:, 1:3, 2], x)
    check(lambda t: t[1], lambda t: t[1], x)
    check(lambda t: t[..., None, 1:4], lambda t: t[..., None, 1:4], x)
    check(lambda t: t.unsqueeze(1).squeeze(1), lambda t: t.unsqueeze(1).squeeze(1), x)
    check(lambda t: t[:, :1].expand(3, 4, 5), lambda t: t[:, :1].expand(3, 4, 5), x)


def test_getitem_boolean_masks_select_as_numpy_does():
    x = peftcpp.tensor(np.arange(6, dtype=np.float32).reshape(3, 2))
    mask = np.array([True, False, True])
    np.testing.assert_array_equal(x[mask].numpy(), x.numpy()[mask])
    np.testing.assert_array_equal(x[x > 2].numpy(), x.numpy()[x.numpy() > 2])
    with pytest.raises(IndexError, match=r"mask of shape \[2\] does not match"):
        x[np.array([True, False])]


def test_views_share_memory():
    x = peftcpp.tensor(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    for v in (x.transpose(0, 2), x[:, 1], x.reshape(6, 4), x.permute(1, 0, 2), x[1:, :, 1:3]):
        assert v._shares_storage(x)
    assert not x.transpose(0, 1).is_contiguous()
    np.testing.assert_array_equal(x.transpose(0, 2).numpy(), np.arange(24).reshape(2, 3, 4).transpose(2, 1, 0))


def test_cat_split_index_select(rng):
    a, b, c = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 1, 4))
    check(lambda x, y, z: peftcpp.cat([x, y, z], 1), lambda x, y, z: torch.cat([x, y, z], 1), a, b, c)
    x = rng.standard_normal((7, 6))
    check(lambda t: t.split([2, 4], dim=1)[1] * t.split([2, 4], dim=1)[0].sum(),
          lambda t: t.split([2, 4], dim=1)[1] * t.split([2, 4], dim=1)[0].sum(), x)
    idx = np.array([3, 0, 3, 6, 1])
    check(lambda t: t.index_select(0, peftcpp.tensor(idx)), lambda t: t.index_select(0, torch.tensor(idx)), x)
    check(lambda t: t[idx], lambda t: t[idx], x)
    check(lambda t: peftcpp.stack([t, t * 2], 1), lambda t: torch.stack([t, t * 2], 1), x)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_gather(rng, dim):
    x = rng.standard_normal((4, 6, 5))
    shape = [3, 4, 2]
    idx = rng.integers(0, x.shape[dim], size=shape)
    check(lambda t: peftcpp.gather(t, dim, peftcpp.tensor(idx)), lambda t: torch.gather(t, dim, torch.tensor(idx)), x)


def test_gather_out_of_range():
    with pytest.raises(IndexError, match=r"\[gather\] index 6 out of range for dimension 1 of size 6"):
        peftcpp.zeros(2, 6).gather(1, peftcpp.tensor(np.array([[0, 6]])))


@pytest.mark.parametrize("sa,sb", [((1, 7), (7, 3)), ((3, 1, 7), (3, 7, 5)), ((5, 7), (7, 3)), ((2, 5, 7), (2, 7, 3)), ((2, 3, 5, 7), (7, 9)),
                                   ((2, 1, 5, 7), (3, 7, 4)), ((6, 11), (11, 1))])
def test_matmul(rng, sa, sb):
    check(lambda a, b: a @ b, lambda a, b: a @ b, rng.standard_normal(sa), rng.standard_normal(sb))


def test_matmul_transposed_views(rng):
    a, b = rng.standard_normal((3, 7, 5)), rng.standard_normal((3, 9, 7))
    check(lambda x, y: x.transpose(1, 2) @ y.transpose(1, 2), lambda x, y: x.transpose(1, 2) @ y.transpose(1, 2), a, b)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("rows", [(3, 5), (1,)])  # (1,): the matrix-vector path used when decoding
def test_linear(rng, bias, rows):
    x, w, b = rng.standard_normal((*rows, 17)), rng.standard_normal((11, 17)), rng.standard_normal(11)
    if bias:
        check(_core.linear, torch.nn.functional.linear, x, w, b)
    else:
        check(lambda x, w: _core.linear(x, w), torch.nn.functional.linear, x, w)


def test_linear_bf16_frozen_weight(rng):
    x, w = rng.standard_normal((4, 33)).astype(np.float32), rng.standard_normal((19, 33)).astype(np.float32)
    px, tx = pair(x)
    wb = peftcpp.tensor(w).bfloat16()
    tw = torch.tensor(w).bfloat16().float()
    out_p, out_t = _core.linear(px, wb), torch.nn.functional.linear(tx, tw)
    assert_close(out_p, out_t, FWD_RTOL)
    out_p.sum().backward()
    out_t.sum().backward()
    assert_close(px.grad, tx.grad, BWD_RTOL)
    assert wb.grad is None
    with pytest.raises(TypeError, match="requires_grad_"):
        wb.requires_grad_(True)


def torch_lora(x, w, b, A, B, scale):
    return torch.nn.functional.linear(x, w, b) + scale * ((x @ A.T) @ B.T)


@pytest.mark.parametrize("frozen", [True, False])
def test_lora_linear(rng, frozen):
    M, K, N, r = 13, 37, 29, 5
    x, w, b = rng.standard_normal((2, M, K)), rng.standard_normal((N, K)), rng.standard_normal(N)
    A, B = rng.standard_normal((r, K)) * 0.1, rng.standard_normal((N, r)) * 0.1
    arrays = [x, w, b, A, B]
    ps, ts = zip(*(pair(a) for a in arrays))
    if frozen:  # W and b frozen: no gradient must be produced for them
        for t in ps[1:3]:
            t.requires_grad_(False)
        for t in ts[1:3]:
            t.requires_grad_(False)
    out_p = _core.lora_linear(*ps, 1.7, 0.0, True)
    out_t = torch_lora(*ts, 1.7)
    assert_close(out_p, out_t, FWD_RTOL, "forward")
    g = rng.standard_normal(out_t.shape).astype(np.float32)
    out_p.backward(peftcpp.tensor(g))
    out_t.backward(torch.tensor(g))
    for i, (p, t) in enumerate(zip(ps, ts)):
        if t.grad is None:
            assert p.grad is None, f"input {i} got a gradient it does not need"
        else:
            assert_close(p.grad, t.grad, BWD_RTOL, f"grad {i}")


def test_lora_linear_dropout_matches_explicit_mask(rng):
    """The fused op's dropout draws the same mask as F.dropout from the same
    generator state, so the composite with that mask is the reference."""
    M, K, N, r, p = 9, 21, 14, 4, 0.3
    x, w = rng.standard_normal((M, K)), rng.standard_normal((N, K))
    A, B = rng.standard_normal((r, K)), rng.standard_normal((N, r))
    peftcpp.manual_seed(7)
    xd = peftcpp.nn.functional.dropout(peftcpp.tensor(x.astype(np.float32)), p, True).numpy().copy()
    peftcpp.manual_seed(7)
    px, pw, pA, pB = (peftcpp.tensor(a.astype(np.float32), requires_grad=True) for a in (x, w, A, B))
    pw.requires_grad_(False)
    out = _core.lora_linear(px, pw, None, pA, pB, 2.0, p, True)
    tx, tA, tB = (torch.tensor(a.astype(np.float32), requires_grad=True) for a in (x, A, B))
    tw = torch.tensor(w.astype(np.float32))
    mask = torch.tensor((xd != 0).astype(np.float32) / (1 - p))
    ref = tx @ tw.T + 2.0 * (((tx * mask) @ tA.T) @ tB.T)
    assert_close(out, ref, FWD_RTOL)
    g = rng.standard_normal((M, N)).astype(np.float32)
    out.backward(peftcpp.tensor(g))
    ref.backward(torch.tensor(g))
    for p_, t_ in ((px, tx), (pA, tA), (pB, tB)):
        assert_close(p_.grad, t_.grad, BWD_RTOL)
    # eval mode: no dropout at all
    out_eval = _core.lora_linear(px.detach(), pw, None, pA.detach(), pB.detach(), 2.0, p, False)
    ref_eval = tx @ tw.T + 2.0 * ((tx @ tA.T) @ tB.T)
    assert_close(out_eval, ref_eval.detach(), FWD_RTOL)


def test_lora_linear_bad_shapes():
    x, w = peftcpp.zeros(2, 8), peftcpp.zeros(6, 8)
    with pytest.raises(ValueError, match=r"\[lora_linear\] lora_A \[4, 7\]"):
        _core.lora_linear(x, w, None, peftcpp.zeros(4, 7), peftcpp.zeros(6, 4), 1.0)
    with pytest.raises(ValueError, match=r"\[lora_linear\] lora_B \[5, 4\]"):
        _core.lora_linear(x, w, None, peftcpp.zeros(4, 8), peftcpp.zeros(5, 4), 1.0)


# (300, 40) and (40, 300) take LAPACK's divide-and-conquer path (min dimension > 25)
@pytest.mark.parametrize("shape", [(7, 5), (4, 9), (300, 40), (40, 300)])
def test_svd_matches_torch(rng, shape):
    w = rng.standard_normal(shape).astype(np.float32)
    u, s, vh = _core.svd(peftcpp.tensor(w))
    ref_s = torch.linalg.svdvals(torch.tensor(w, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(s.numpy(), ref_s, rtol=1e-5)
    np.testing.assert_allclose(u.numpy() @ np.diag(s.numpy()) @ vh.numpy(), w, rtol=1e-5, atol=1e-5)
    k = min(shape)
    np.testing.assert_allclose(u.numpy().T @ u.numpy(), np.eye(k), atol=1e-5)
    np.testing.assert_allclose(vh.numpy() @ vh.numpy().T, np.eye(k), atol=1e-5)
    with pytest.raises(ValueError, match=r"\[svd\] expected a 2-D matrix"):
        _core.svd(peftcpp.zeros(3))
    w[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"\[svd\] the matrix of shape \[\d+, \d+\] has a non-finite value at \[1, 2\]"):
        _core.svd(peftcpp.tensor(w))

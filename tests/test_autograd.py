"""Autograd engine behaviour: accumulation, no_grad, graph freeing,
checkpointing, and errors that name the op and shapes."""
import numpy as np
import pytest
import torch

import peftcpp
from peftcpp import _core
from peftcpp.utils import checkpoint
from helpers import BWD_RTOL, assert_close, pair


def test_gradient_accumulates_across_backward_calls(rng):
    x = rng.standard_normal((4, 5))
    p, t = pair(x)
    for k in range(3):
        (p * (k + 1.0)).tanh().sum().backward()
        (t * (k + 1.0)).tanh().sum().backward()
    assert_close(p.grad, t.grad, BWD_RTOL)


def test_shared_input_gradients_add(rng):
    p, t = pair(rng.standard_normal((3, 3)))
    ((p * p).sum() + (p @ p).sum() + p.exp().mean()).backward()
    ((t * t).sum() + (t @ t).sum() + t.exp().mean()).backward()
    assert_close(p.grad, t.grad, BWD_RTOL)


def test_no_grad_records_nothing():
    x = peftcpp.ones(3, requires_grad=True)
    with peftcpp.no_grad():
        y = (x * 2).exp()
    assert not y.requires_grad and y.grad_fn is None

    @peftcpp.no_grad()
    def f(a):
        return a * 3
    assert f(x).grad_fn is None
    assert (x * 3).grad_fn == "MulBackward"


def test_frozen_inputs_get_no_gradient_buffer():
    w = peftcpp.ones(4, 4)  # does not require grad
    x = peftcpp.ones(2, 4, requires_grad=True)
    _core.linear(x, w).sum().backward()
    assert w.grad is None and x.grad is not None
    y = peftcpp.ones(3) * 2.0
    assert not y.requires_grad and y.grad_fn is None


def test_graph_freed_after_backward():
    x = peftcpp.ones(3, requires_grad=True)
    y = (x * x).exp().sum()
    y.backward()
    with pytest.raises(ValueError, match="second time"):
        y.backward()
    z = (x * x).exp().sum()
    z.backward(retain_graph=True)
    z.backward()  # allowed once more
    np.testing.assert_allclose(x.grad.numpy(), 3 * 2 * np.e * np.ones(3), rtol=1e-6)


def test_saved_tensors_released(rng):
    """After backward the nodes drop their saved activations."""
    x = peftcpp.tensor(rng.standard_normal((256, 256)).astype(np.float32), requires_grad=True)
    before = peftcpp.memory_stats()["current"]
    y = (x.exp() * x.tanh()).sigmoid().sum()
    held = peftcpp.memory_stats()["current"] - before
    y.backward()
    x.grad = None
    after = peftcpp.memory_stats()["current"] - before
    assert held >= 3 * 256 * 256 * 4
    assert after < 256 * 256 * 4 // 2, f"{after} bytes still held after backward"


def test_backward_non_scalar_needs_gradient():
    x = peftcpp.ones(2, 3, requires_grad=True)
    with pytest.raises(ValueError, match=r"scalar outputs.*\[2, 3\]"):
        (x * 2).backward()
    with pytest.raises(ValueError, match=r"gradient of shape \[3\] for an output of shape \[2, 3\]"):
        (x * 2).backward(peftcpp.ones(3))


def test_backward_without_grad_raises():
    with pytest.raises(ValueError, match="does not require grad"):
        peftcpp.ones(2).sum().backward()


def test_checkpoint_matches_plain_backward(rng):
    w1 = peftcpp.tensor(rng.standard_normal((8, 8)).astype(np.float32), requires_grad=True)
    w2 = peftcpp.tensor(rng.standard_normal((8, 8)).astype(np.float32), requires_grad=True)
    x = peftcpp.tensor(rng.standard_normal((5, 8)).astype(np.float32), requires_grad=True)

    def block(h, mask, scale=1.0):
        assert mask is None
        return peftcpp.nn.functional.linear(peftcpp.nn.functional.linear(h, w1).tanh(), w2) * scale

    out = checkpoint(block, x, None, scale=0.5)
    assert out.grad_fn == "CheckpointBackward"
    out.sum().backward()
    g = [t.grad.numpy().copy() for t in (x, w1, w2)]
    for t in (x, w1, w2):
        t.grad = None
    block(x, None, 0.5).sum().backward()
    for a, t in zip(g, (x, w1, w2)):
        np.testing.assert_allclose(a, t.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_checkpoint_keeps_no_activations(rng):
    x = peftcpp.tensor(rng.standard_normal((512, 512)).astype(np.float32), requires_grad=True)

    def heavy(h):
        for _ in range(6):
            h = h.tanh() * 1.01
        return h

    base = peftcpp.memory_stats()["current"]
    y = heavy(x).sum()
    plain = peftcpp.memory_stats()["current"] - base
    del y
    base = peftcpp.memory_stats()["current"]
    y = checkpoint(heavy, x).sum()
    ckpt = peftcpp.memory_stats()["current"] - base
    assert ckpt * 4 < plain, (ckpt, plain)
    y.backward()
    assert x.grad is not None


def test_from_numpy_shares_memory_and_numpy_view():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = peftcpp.from_numpy(a)
    a[0, 0] = 42.0
    assert t.numpy()[0, 0] == 42.0
    v = t.numpy()
    v[1, 2] = -1.0
    assert a[1, 2] == -1.0
    assert not t._storage_is_owned()
    c = peftcpp.tensor(a)
    assert c._storage_is_owned()
    a[0, 1] = 7.0
    assert c.numpy()[0, 1] == 1.0


def test_dtypes_roundtrip():
    a = np.array([1.5, -2.25, 3.0e4], dtype=np.float32)
    for dt, ref in ((peftcpp.float16, torch.float16), (peftcpp.bfloat16, torch.bfloat16)):
        h = peftcpp.tensor(a).to(dt)
        assert h.dtype == dt and h.shape == (3,)
        np.testing.assert_array_equal(h.float().numpy(), torch.tensor(a).to(ref).float().numpy())
    i = peftcpp.tensor(np.array([1, 2, 3]))
    assert i.dtype == peftcpp.int64


def test_errors_name_op_and_shapes():
    a, b = peftcpp.zeros(2, 3), peftcpp.zeros(4, 5)
    with pytest.raises(ValueError, match=r"\[add\] shapes \[2, 3\] and \[4, 5\]"):
        a + b
    with pytest.raises(ValueError, match=r"\[matmul\] shapes \[2, 3\] and \[4, 5\]"):
        a @ b
    with pytest.raises(ValueError, match=r"\[linear\] input \[2, 3\] does not match weight \[4, 5\]"):
        _core.linear(a, b)
    with pytest.raises(TypeError, match=r"\[linear\] input must be float32, got int64"):
        _core.linear(peftcpp.tensor(np.zeros((2, 5), dtype=np.int64)), b)
    with pytest.raises(IndexError, match=r"\[index_select\] index 9 out of range"):
        a.index_select(0, peftcpp.tensor(np.array([9])))
    with pytest.raises(IndexError, match=r"\[narrow\]"):
        a[:, 5:9].numpy() if False else a.narrow(1, 2, 5)
    with pytest.raises(ValueError, match=r"\[reshape\] shape \[7\] is invalid for input of shape \[2, 3\]"):
        a.reshape(7)
    with pytest.raises(TypeError, match="from_numpy"):
        peftcpp.from_numpy(np.zeros(3, dtype=np.complex64))


def test_num_threads_setting():
    n = peftcpp.get_num_threads()
    peftcpp.set_num_threads(1)
    assert peftcpp.get_num_threads() == 1
    peftcpp.set_num_threads(n)
    assert peftcpp.get_num_threads() == n


def test_freed_blocks_are_cached_then_released():
    peftcpp._core.empty_cache()
    t = peftcpp.zeros(512, 512)  # 1 MiB: cached size class
    live = peftcpp.memory_stats()["current"]
    del t
    stats = peftcpp.memory_stats()
    assert stats["current"] <= live - 512 * 512 * 4
    assert stats["cached"] >= 512 * 512 * 4
    again = peftcpp.zeros(512, 512)  # reused block still comes back zeroed
    assert float(again.abs().sum().item()) == 0.0
    del again
    peftcpp._core.empty_cache()
    assert peftcpp.memory_stats()["cached"] == 0

"""Cross-entropy and the chunked output-projection cross-entropy, against
torch.nn.functional.cross_entropy on the materialised logits."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import peftcpp
from peftcpp import _core
from helpers import BWD_RTOL, FWD_RTOL, assert_close, pair

# Odd sizes so that no chunk divides the vocabulary evenly.
N, C, V = 37, 29, 1001
IGNORED = [3, 7, 20, 36]


def make_targets(rng, n=N, v=V, ignored=IGNORED, dtype=np.int64):
    t = rng.integers(0, v, n)
    t[[i for i in ignored if i < n]] = -100
    return t.astype(dtype)


def torch_lce(h, w, t, reduction="mean", softcap=0.0):
    z = h @ w.T
    if softcap > 0:
        z = softcap * torch.tanh(z / softcap)
    return F.cross_entropy(z, torch.as_tensor(t, dtype=torch.int64), reduction=reduction)


# ---------------------------------------------------------------- cross_entropy

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("tdtype", [np.int64, np.int32])
def test_cross_entropy_matches_torch(rng, reduction, label_smoothing, tdtype):
    x, tx = pair(rng.standard_normal((N, V)) * 3)
    t = make_targets(rng, dtype=tdtype)
    loss = _core.cross_entropy(x, peftcpp.tensor(t, dtype=peftcpp.int32 if tdtype == np.int32 else None),
                               reduction=reduction, label_smoothing=label_smoothing)
    ref = F.cross_entropy(tx, torch.as_tensor(t, dtype=torch.int64), reduction=reduction,
                          label_smoothing=label_smoothing)
    assert_close(loss, ref, FWD_RTOL, "loss")
    if reduction == "none":
        assert np.all(loss.numpy()[IGNORED] == 0.0), "ignored rows must have zero loss"
    # A non-uniform upstream gradient checks the per-row scaling of "none".
    g = rng.standard_normal(tuple(ref.shape)).astype(np.float32)
    loss.backward(peftcpp.tensor(g))
    ref.backward(torch.tensor(g))
    assert_close(x.grad, tx.grad, BWD_RTOL, "dlogits")
    assert np.all(x.grad.numpy()[IGNORED] == 0.0), "ignored rows must get zero gradient"


def test_cross_entropy_custom_ignore_index(rng):
    x, tx = pair(rng.standard_normal((N, V)))
    t = rng.integers(0, V, N)
    t[::3] = 7
    loss = _core.cross_entropy(x, peftcpp.tensor(t), ignore_index=7)
    ref = F.cross_entropy(tx, torch.tensor(t), ignore_index=7)
    assert_close(loss, ref, FWD_RTOL, "loss")
    loss.backward()
    ref.backward()
    assert_close(x.grad, tx.grad, BWD_RTOL, "dlogits")


def test_cross_entropy_all_ignored(rng):
    x, tx = pair(rng.standard_normal((5, 11)))
    t = np.full(5, -100)
    loss = _core.cross_entropy(x, peftcpp.tensor(t))
    ref = F.cross_entropy(tx, torch.tensor(t))
    assert np.isnan(ref.item()) and np.isnan(loss.item()), "mean over zero targets is nan, as torch"
    assert _core.cross_entropy(x, peftcpp.tensor(t), reduction="sum").item() == 0.0
    loss.backward()
    assert np.all(x.grad.numpy() == 0.0)


def test_cross_entropy_errors(rng):
    x = peftcpp.tensor(rng.standard_normal((4, 6)).astype(np.float32))
    with pytest.raises(IndexError, match=r"\[cross_entropy\].*position 2 is 6"):
        _core.cross_entropy(x, peftcpp.tensor(np.array([0, 1, 6, 2])))
    with pytest.raises(IndexError, match=r"\[cross_entropy\].*position 0 is -1"):
        _core.cross_entropy(x, peftcpp.tensor(np.array([-1, 1, 2, 2])))
    with pytest.raises(ValueError, match=r"\[cross_entropy\].*\[3\].*\[4, 6\]"):
        _core.cross_entropy(x, peftcpp.tensor(np.array([0, 1, 2])))
    with pytest.raises(TypeError, match=r"\[cross_entropy\].*int64"):
        _core.cross_entropy(peftcpp.tensor(np.zeros((4, 6), np.int64)), peftcpp.tensor(np.zeros(4, np.int64)))
    with pytest.raises(TypeError, match=r"\[cross_entropy\].*targets.*float32"):
        _core.cross_entropy(x, peftcpp.tensor(np.zeros(4, np.float32)))
    with pytest.raises(ValueError, match=r"\[cross_entropy\].*reduction.*'avg'"):
        _core.cross_entropy(x, peftcpp.tensor(np.zeros(4, np.int64)), reduction="avg")
    with pytest.raises(ValueError, match=r"\[cross_entropy\].*label_smoothing"):
        _core.cross_entropy(x, peftcpp.tensor(np.zeros(4, np.int64)), label_smoothing=1.5)


# ---------------------------------------------------------------- linear_cross_entropy

@pytest.mark.parametrize("chunk_size", [64, 1000, 4096])
@pytest.mark.parametrize("softcap", [0.0, 2.0])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_linear_cross_entropy_matches_torch(rng, chunk_size, softcap, reduction):
    h, th = pair(rng.standard_normal((N, C)))
    w, tw = pair(rng.standard_normal((V, C)) * 0.5)
    t = make_targets(rng)
    loss = _core.linear_cross_entropy(h, w, peftcpp.tensor(t), reduction=reduction, chunk_size=chunk_size,
                                      softcap=softcap)
    ref = torch_lce(th, tw, t, reduction, softcap)
    assert_close(loss, ref, FWD_RTOL, "loss")
    loss.backward()
    ref.backward()
    assert_close(h.grad, th.grad, BWD_RTOL, "dhidden")
    assert_close(w.grad, tw.grad, BWD_RTOL, "dweight")
    assert np.all(h.grad.numpy()[IGNORED] == 0.0), "ignored rows must get zero gradient"


def test_linear_cross_entropy_softcap_changes_result(rng):
    # The capped loss must differ from the uncapped one (the cap is applied).
    h = peftcpp.tensor(rng.standard_normal((N, C)).astype(np.float32))
    w = peftcpp.tensor(rng.standard_normal((V, C)).astype(np.float32))
    t = peftcpp.tensor(make_targets(rng))
    a = _core.linear_cross_entropy(h, w, t).item()
    b = _core.linear_cross_entropy(h, w, t, softcap=2.0).item()
    assert abs(a - b) > 0.1 * abs(a)


def test_linear_cross_entropy_none_reduction(rng):
    h, th = pair(rng.standard_normal((N, C)))
    w, tw = pair(rng.standard_normal((V, C)) * 0.5)
    t = make_targets(rng)
    loss = _core.linear_cross_entropy(h, w, peftcpp.tensor(t), reduction="none", chunk_size=100)
    ref = torch_lce(th, tw, t, "none")
    assert tuple(loss.shape) == (N,)
    assert_close(loss, ref, FWD_RTOL, "per-row loss")
    g = rng.standard_normal(N).astype(np.float32)
    loss.backward(peftcpp.tensor(g))
    ref.backward(torch.tensor(g))
    assert_close(h.grad, th.grad, BWD_RTOL, "dhidden")
    assert_close(w.grad, tw.grad, BWD_RTOL, "dweight")


def test_linear_cross_entropy_batched_hidden(rng):
    # hidden [B, T, C] with targets [B, T], as a language model produces them.
    h, th = pair(rng.standard_normal((3, 5, C)))
    w, tw = pair(rng.standard_normal((V, C)) * 0.5)
    t = rng.integers(0, V, (3, 5))
    t[0, :2] = -100
    loss = _core.linear_cross_entropy(h, w, peftcpp.tensor(t), chunk_size=128)
    ref = torch_lce(th.reshape(-1, C), tw, t.reshape(-1))
    assert_close(loss, ref, FWD_RTOL, "loss")
    loss.backward()
    ref.backward()
    assert tuple(h.grad.shape) == (3, 5, C)
    assert_close(h.grad, th.grad, BWD_RTOL, "dhidden")
    assert_close(w.grad, tw.grad, BWD_RTOL, "dweight")


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_linear_cross_entropy_half_weight(rng, dtype):
    h, th = pair(rng.standard_normal((N, C)))
    w_np = (rng.standard_normal((V, C)) * 0.5).astype(np.float32)
    w = peftcpp.tensor(w_np, dtype=getattr(peftcpp, dtype))
    tw = torch.tensor(w_np).to(getattr(torch, dtype)).float()  # the values the weight really holds
    t = make_targets(rng)
    loss = _core.linear_cross_entropy(h, w, peftcpp.tensor(t), chunk_size=300, softcap=3.0)
    ref = torch_lce(th, tw, t, "mean", 3.0)
    assert_close(loss, ref, FWD_RTOL, "loss")
    loss.backward()
    ref.backward()
    assert_close(h.grad, th.grad, BWD_RTOL, "dhidden")
    assert w.grad is None, "a frozen half-precision weight gets no gradient"


def test_linear_cross_entropy_frozen_f32_weight(rng):
    h, th = pair(rng.standard_normal((N, C)))
    w, tw = pair(rng.standard_normal((V, C)) * 0.5, requires_grad=False)
    t = make_targets(rng)
    loss = _core.linear_cross_entropy(h, w, peftcpp.tensor(t), chunk_size=64)
    ref = torch_lce(th, tw, t)
    loss.backward()
    ref.backward()
    assert_close(h.grad, th.grad, BWD_RTOL, "dhidden")
    assert w.grad is None


def test_linear_cross_entropy_strided_weight(rng):
    # Rows with a stride (a column slice of a wider matrix) are used in place;
    # a transposed view is made contiguous. Both must match torch.
    big = rng.standard_normal((V, C + 5)).astype(np.float32) * 0.5
    h, th = pair(rng.standard_normal((N, C)))
    t = make_targets(rng)
    wbig = peftcpp.tensor(big, requires_grad=True)
    w = wbig.narrow(1, 2, C)
    loss = _core.linear_cross_entropy(h, w, peftcpp.tensor(t), chunk_size=250)
    tbig = torch.tensor(big, requires_grad=True)
    ref = torch_lce(th, tbig[:, 2:2 + C], t)
    assert_close(loss, ref, FWD_RTOL, "loss (row-strided weight)")
    loss.backward()
    ref.backward()
    assert_close(wbig.grad, tbig.grad, BWD_RTOL, "dweight through the slice")

    wt = peftcpp.tensor(np.ascontiguousarray(big[:, :C].T))  # [C, V]
    loss2 = _core.linear_cross_entropy(h, wt.t(), peftcpp.tensor(t), chunk_size=250)
    ref2 = torch_lce(th, torch.tensor(big[:, :C]), t)
    assert_close(loss2, ref2, FWD_RTOL, "loss (transposed weight)")


def test_linear_cross_entropy_all_ignored(rng):
    h, _ = pair(rng.standard_normal((6, C)))
    w, _ = pair(rng.standard_normal((V, C)))
    t = peftcpp.tensor(np.full(6, -100))
    loss = _core.linear_cross_entropy(h, w, t)
    ref = F.cross_entropy(torch.zeros(6, V), torch.full((6,), -100))
    assert np.isnan(ref.item()) and np.isnan(loss.item()), "mean over zero targets is nan, as torch"
    assert _core.linear_cross_entropy(h, w, t, reduction="sum").item() == 0.0
    loss.backward()
    assert np.all(h.grad.numpy() == 0.0) and np.all(w.grad.numpy() == 0.0)


def test_linear_cross_entropy_errors(rng):
    h = peftcpp.tensor(rng.standard_normal((4, 8)).astype(np.float32))
    w = peftcpp.tensor(rng.standard_normal((10, 8)).astype(np.float32))
    t = peftcpp.tensor(np.array([1, 2, 3, 4]))
    op = r"\[linear_cross_entropy\]"
    with pytest.raises(ValueError, match=op + r".*targets \[3\].*\[4, 8\]"):
        _core.linear_cross_entropy(h, w, peftcpp.tensor(np.array([1, 2, 3])))
    with pytest.raises(ValueError, match=op + r".*\[4, 8\].*\[10, 7\].*8 != 7"):
        _core.linear_cross_entropy(h, peftcpp.tensor(np.zeros((10, 7), np.float32)), t)
    with pytest.raises(TypeError, match=op + r".*hidden.*int64"):
        _core.linear_cross_entropy(peftcpp.tensor(np.zeros((4, 8), np.int64)), w, t)
    with pytest.raises(TypeError, match=op + r".*targets.*float32"):
        _core.linear_cross_entropy(h, w, peftcpp.tensor(np.zeros(4, np.float32)))
    with pytest.raises(IndexError, match=op + r".*position 3 is 10"):
        _core.linear_cross_entropy(h, w, peftcpp.tensor(np.array([1, 2, 3, 10])))
    with pytest.raises(IndexError, match=op + r".*position 1 is -5"):
        _core.linear_cross_entropy(h, w, peftcpp.tensor(np.array([1, -5, 3, 4])))
    with pytest.raises(ValueError, match=op + r".*chunk_size"):
        _core.linear_cross_entropy(h, w, t, chunk_size=0)
    with pytest.raises(ValueError, match=op + r".*softcap"):
        _core.linear_cross_entropy(h, w, t, softcap=-1.0)
    with pytest.raises(ValueError, match=op + r".*reduction"):
        _core.linear_cross_entropy(h, w, t, reduction="max")


# ---------------------------------------------------------------- memory

MN, MC, MV, MCHUNK = 256, 64, 150_000, 1024  # a Qwen-sized vocabulary
FULL_LOGITS = MN * MV * 4  # 153.6 MB


def _chunk_bound(extra):
    # Logits-chunk buffers, a widened weight chunk, plus what the op must
    # return (dhidden, which the leaf accumulation copies once more).
    return 4 * (MN * MCHUNK * 3 + MCHUNK * MC * 3) + extra


def _measure(rng, weight_dtype, weight_grad):
    h_np = rng.standard_normal((MN, MC), dtype=np.float32)
    w_np = rng.standard_normal((MV, MC), dtype=np.float32) * np.float32(0.1)
    t_np = rng.integers(0, MV, MN)
    t_np[:10] = -100
    h = peftcpp.tensor(h_np, requires_grad=True)
    w = peftcpp.tensor(w_np, dtype=weight_dtype, requires_grad=weight_grad)
    t = peftcpp.tensor(t_np)
    before = peftcpp.memory_stats()["current"]
    peftcpp.reset_peak_memory()
    loss = _core.linear_cross_entropy(h, w, t, chunk_size=MCHUNK)
    loss.backward()
    growth = peftcpp.memory_stats()["peak"] - before

    th = torch.tensor(h_np, requires_grad=True)
    tw = torch.tensor(w_np)
    if weight_dtype == peftcpp.bfloat16:
        tw = tw.bfloat16().float()
    ref = torch_lce(th, tw, t_np)
    ref.backward()
    assert_close(loss, ref, FWD_RTOL, "loss")
    assert_close(h.grad, th.grad, BWD_RTOL, "dhidden")
    return growth


@pytest.mark.parametrize("weight_dtype", ["float32", "bfloat16"])
def test_linear_cross_entropy_memory_frozen_weight(rng, weight_dtype):
    growth = _measure(rng, getattr(peftcpp, weight_dtype), False)
    assert growth < 0.25 * FULL_LOGITS, f"peak grew by {growth / 1e6:.1f} MB; full logits are {FULL_LOGITS / 1e6} MB"
    assert growth < _chunk_bound(2 * MN * MC * 4), f"peak grew by {growth} bytes, above the chunk bound"


def test_linear_cross_entropy_memory_trainable_weight(rng):
    # dweight is [V, C] (V·C·4 bytes) and the leaf accumulation copies it once;
    # beyond those the extra memory must still be the chunk's, not the logits'.
    growth = _measure(rng, peftcpp.float32, True)
    dweight = MV * MC * 4
    assert growth - 2 * dweight < _chunk_bound(2 * MN * MC * 4), f"peak grew by {growth / 1e6:.1f} MB"
    assert growth - 2 * dweight < 0.05 * FULL_LOGITS

"""The torch API a user-written model uses (`import peftcpp as torch`), each
function, method and module against torch itself: forward, and backward
where torch differentiates. Also: numpy arrays accepted wherever torch takes
a tensor, one-line errors for wrong argument types, and devices ("cpu"
everywhere, any other device refused)."""
import math

import numpy as np
import pytest
import torch

import peftcpp
from helpers import BWD_RTOL, FWD_RTOL, assert_close, to_np


def both(fn, *arrays, grad=True, seed=0):
    """fn(lib, *tensors) with lib = peftcpp and lib = torch on the same float32
    data: the outputs agree, and so do the inputs' gradients."""
    ps = [peftcpp.tensor(np.float32(a), requires_grad=grad) for a in arrays]
    ts = [torch.tensor(np.float32(a), requires_grad=grad) for a in arrays]
    out_p, out_t = fn(peftcpp, *ps), fn(torch, *ts)
    assert_close(out_p, out_t, FWD_RTOL, "forward")
    if grad:
        g = np.random.default_rng(seed).standard_normal(tuple(out_t.shape)).astype(np.float32)
        out_p.backward(peftcpp.tensor(g))
        out_t.backward(torch.tensor(g))
        for i, (p, t) in enumerate(zip(ps, ts)):
            if t.grad is None:
                assert p.grad is None or not p.grad.numpy().any(), f"input {i} got a gradient torch does not give"
            else:
                assert_close(p.grad, t.grad, BWD_RTOL, f"grad of input {i}")
    return out_p, out_t


def same(a, b):
    """Equal values and the same kind of dtype (bool, integer, float)."""
    a, b = to_np(a), b.numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert a.dtype.kind == b.dtype.kind, (a.dtype, b.dtype)
    np.testing.assert_array_equal(a, b)


def test_constants_and_dtype_names():
    assert (peftcpp.inf, peftcpp.pi, peftcpp.e) == (torch.inf, torch.pi, torch.e) and math.isnan(peftcpp.nan)
    assert peftcpp.long == peftcpp.int64 and peftcpp.float == peftcpp.float32 and peftcpp.half == peftcpp.float16
    assert peftcpp.bool.itemsize == 1 and not peftcpp.bool.is_floating_point


@pytest.mark.parametrize("diagonal", [-1, 0, 1, 2])
def test_triu_tril(rng, diagonal):
    x = rng.standard_normal((2, 4, 5))
    both(lambda T, a: T.triu(a, diagonal=diagonal) * 2, x)
    both(lambda T, a: T.tril(a, diagonal) + a.tril(diagonal), x)
    same(peftcpp.triu(peftcpp.ones(4, 4), diagonal=diagonal), torch.triu(torch.ones(4, 4), diagonal=diagonal))
    ids = np.arange(12).reshape(3, 4)
    same(peftcpp.tril(peftcpp.tensor(ids), diagonal), torch.tril(torch.tensor(ids), diagonal))


def test_unary_functions_and_pow(rng):
    x = rng.uniform(0.2, 2.0, (3, 5))
    both(lambda T, a: T.tanh(a) + T.sqrt(a) + T.exp(a) * T.log(a) + T.sin(a) * T.cos(a) + T.rsqrt(a), x)
    both(lambda T, a: T.pow(a, 3) + T.pow(2.0, a) + a ** 0.5 + 3 ** a, x)
    both(lambda T, a, b: T.pow(a, b) + a.pow(b), x, rng.uniform(-1.5, 1.5, (5,)))
    both(lambda T, a: T.square(a) + T.sigmoid(a) + T.relu(a - 1) + T.abs(a - 1), x)
    # the book's GELU: tensors built from Python scalars and torch.pi
    both(lambda T, a: 0.5 * a * (1 + T.tanh(T.sqrt(T.tensor(2.0 / T.pi)) * (a + 0.044715 * T.pow(a, 3)))), x - 1)


@pytest.mark.parametrize("dim", [-1, 0])
def test_softmax_and_log_softmax(rng, dim):
    x = rng.standard_normal((4, 6))
    both(lambda T, a: T.softmax(a, dim=dim) * 3 + T.log_softmax(a, dim), x)
    both(lambda T, a: a.softmax(dim) + T.nn.functional.softmax(a, dim=dim, dtype=T.float32), x)


def test_masked_fill_in_the_graph_as_the_books_attention(rng):
    def attention(T, q, k):
        scores = q @ k.transpose(-2, -1)
        mask = T.triu(T.ones(5, 5), diagonal=1).bool()[:4, :4]
        scores.masked_fill_(mask, -T.inf)
        return T.softmax(scores / k.shape[-1] ** 0.5, dim=-1)
    both(attention, rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 3)))
    both(lambda T, a: a.masked_fill(T.tensor(np.array([True, False, True])), 0.5) * a, rng.standard_normal((2, 3)))


def test_in_place_ops_keep_saved_values_and_refuse_leaves(rng):
    # exp saves its output for backward: writing over it must not change the gradient
    x_p, x_t = peftcpp.tensor(np.float32([0.5, 1.0]), requires_grad=True), torch.tensor([0.5, 1.0],
                                                                                          requires_grad=True)
    y_p = x_p.exp()
    y_p.masked_fill_(peftcpp.tensor(np.array([True, False])), 0.0)
    y_p.sum().backward()
    y_t = x_t.exp().masked_fill(torch.tensor([True, False]), 0.0)
    y_t.sum().backward()
    assert_close(x_p.grad, x_t.grad, BWD_RTOL, "grad through the overwritten exp")
    leaf = peftcpp.zeros(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"\[masked_fill_\] a leaf tensor that requires grad"):
        leaf.masked_fill_(peftcpp.tensor(np.array([True, False])), 1.0)
    with peftcpp.no_grad():  # allowed under no_grad, and views see it
        view = leaf[1:]
        leaf.masked_fill_(peftcpp.tensor(np.array([False, True])), 7.0)
    assert view.item() == 7.0
    with pytest.raises(TypeError, match=r"\[masked_fill\] the mask must be a bool tensor, got float32"):
        peftcpp.zeros(2).masked_fill(peftcpp.ones(2), 1.0)
    ids = peftcpp.tensor(np.array([3, 4, 5]))
    same(ids.masked_fill(ids > 3, -100), torch.tensor([3, 4, 5]).masked_fill(torch.tensor([3, 4, 5]) > 3, -100))


def test_augmented_assignment_updates_parameters_under_no_grad():
    """The from-scratch SGD step `p -= lr * p.grad` changes the parameter (it is not rebound)."""
    for lib in (peftcpp, torch):
        lib.manual_seed(0)
        lin = lib.nn.Linear(3, 2)
        before = to_np(lin.weight).copy()
        lin(lib.ones(4, 3)).sum().backward()
        with lib.no_grad():
            for p in lin.parameters():
                p -= 0.1 * p.grad
        np.testing.assert_allclose(to_np(lin.weight), before - 0.4, rtol=1e-6)
        lin.weight.data *= 2.0
        np.testing.assert_allclose(to_np(lin.weight), (before - 0.4) * 2, rtol=1e-6)
    with pytest.raises(RuntimeError, match=r"\[add_\] a leaf tensor that requires grad"):
        w = peftcpp.zeros(2, requires_grad=True)
        w += 1


@pytest.mark.parametrize("kw", [{"unbiased": False}, {"unbiased": True}, {}, {"correction": 0}, {"correction": 2}])
@pytest.mark.parametrize("dim", [-1, (0, 2), None])
def test_var_and_std(rng, kw, dim):
    x = rng.standard_normal((3, 4, 5))
    both(lambda T, a: a.var(dim=dim, keepdim=dim is not None, **kw), x)
    both(lambda T, a: T.std(a, dim=dim, **kw), x)


def test_the_books_layer_norm_matches_torchs(rng):
    def layer_norm(T, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return (x - mean) / T.sqrt(var + 1e-5)
    both(layer_norm, rng.standard_normal((2, 3, 8)))


def test_dtype_conversions_and_comparisons(rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    pa, ta = peftcpp.tensor(a), torch.tensor(a)
    for f in (lambda x: x.bool(), lambda x: (x > 0).float(), lambda x: (x > 0).long(), lambda x: x.long(),
              lambda x: x == x[0], lambda x: x != 0.5, lambda x: x <= x.T.T, lambda x: (x > 0) & (x < 1),
              lambda x: (x > 0) | ~(x < 1), lambda x: (x > 0).sum(), lambda x: (x > 0).sum(dim=1),
              lambda x: x.to(x.long().dtype), lambda x: x.isfinite() ^ (x > 0)):
        same(f(pa), f(ta))
    assert (pa > 0).dtype == peftcpp.bool and (pa > 0).sum().dtype == peftcpp.int64
    assert (pa > 0).sum().item() == (ta > 0).sum().item() and isinstance((pa > 0).sum().item(), int)
    assert isinstance(peftcpp.tensor([True]).item(), bool) and peftcpp.tensor(2 ** 40).item() == 2 ** 40
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(pa > 0)
    assert bool(pa[0, 0] == pa[0, 0])


@pytest.mark.parametrize("dim,keepdim", [(None, False), (0, False), (-1, True)])
def test_argmax_argmin_max_min(rng, dim, keepdim):
    x = rng.standard_normal((4, 5))
    for name in ("argmax", "argmin"):
        same(getattr(peftcpp.tensor(x), name)(dim=dim, keepdim=keepdim),
             getattr(torch.tensor(x), name)(dim=dim, keepdim=keepdim))
        same(getattr(peftcpp, name)(peftcpp.tensor(x), dim), getattr(torch, name)(torch.tensor(x), dim))
    for name in ("max", "min"):
        if dim is None:
            both(lambda T, a: getattr(T, name)(a) * 2, x)
        else:
            out_p, out_t = both(lambda T, a: getattr(a, name)(dim, keepdim=keepdim).values, x)
            same(getattr(peftcpp.tensor(x), name)(dim, keepdim).indices,
                 getattr(torch.tensor(x), name)(dim, keepdim).indices)
    both(lambda T, a, b: T.max(a, b) + T.min(a, b) + T.maximum(a, b) * T.minimum(a, b), x, rng.standard_normal(5))
    ids = np.array([[3, 9, 1], [7, 2, 8]])
    same(peftcpp.tensor(ids).max(dim=1).values, torch.tensor(ids).max(dim=1).values)


def test_topk_sort_argsort(rng):
    x = rng.standard_normal((3, 6))
    for largest in (True, False):
        both(lambda T, a: T.topk(a, 3, dim=-1, largest=largest).values, x)
        same(peftcpp.tensor(x).topk(2, 0, largest).indices, torch.tensor(x).topk(2, 0, largest).indices)
    for desc in (False, True):
        both(lambda T, a: a.sort(dim=1, descending=desc).values, x)
        same(peftcpp.argsort(peftcpp.tensor(x), 0, desc), torch.argsort(torch.tensor(x), 0, desc))


def test_where_and_clamp(rng):
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((4,))
    both(lambda T, a, b: T.where(a > 0, a, b) + T.where(a < b, 0.5, a), x, y)
    same(peftcpp.where(peftcpp.tensor(x) > 0)[1], torch.where(torch.tensor(x) > 0)[1])
    same(peftcpp.where(peftcpp.tensor([True, False]), peftcpp.tensor([1, 2]), 0),
         torch.where(torch.tensor([True, False]), torch.tensor([1, 2]), 0))
    both(lambda T, a: T.clamp(a, -0.5, 0.5) + a.clamp(min=0.1) + a.clamp(max=-0.2) + a.clip(-1, 1), x)
    both(lambda T, a, lo: T.clamp(a, min=lo), x, y)
    same(peftcpp.tensor([1, 5, 9]).clamp(2, 6), torch.tensor([1, 5, 9]).clamp(2, 6))


def test_integer_arithmetic_and_numpy_operands():
    ids_p, ids_t = peftcpp.tensor([[1, 2], [3, 4]]), torch.tensor([[1, 2], [3, 4]])
    for f in (lambda x: x + 1, lambda x: 2 * x - x, lambda x: x // 2, lambda x: x % 3, lambda x: x / 2,
              lambda x: -x, lambda x: x * 0.5, lambda x: x.float() * x):
        same(f(ids_p), f(ids_t))
    a = np.float32([[1.0, 2.0], [3.0, 4.0]])
    out = a + peftcpp.ones(2, 2)  # numpy defers to the tensor, as with torch
    assert isinstance(out, peftcpp.Tensor)
    same(out, a + 1)
    assert isinstance(peftcpp.ones(2) * np.float32([2, 3]), peftcpp.Tensor)
    same(peftcpp.ones(2) / 0.0, torch.ones(2) / 0.0)


def test_cross_entropy_and_its_module(rng):
    logits, target = rng.standard_normal((6, 5)), np.array([0, 4, -100, 2, 2, 1])
    for kw in ({}, {"ignore_index": -100}, {"reduction": "sum"}, {"label_smoothing": 0.1}):
        both(lambda T, a: T.nn.functional.cross_entropy(a, T.tensor(target), **kw), logits)
        both(lambda T, a: T.nn.CrossEntropyLoss(**kw)(a, T.tensor(target)), logits)
    both(lambda T, a: T.nn.functional.cross_entropy(a, T.tensor(np.abs(target) % 5), ignore_index=2,
                                                    reduction="none"), logits)
    seq, seq_target = rng.standard_normal((2, 5, 3)), np.array([[0, 4, 1], [-100, 2, 3]])  # [N, C, d1]
    both(lambda T, a: T.nn.functional.cross_entropy(a, T.tensor(seq_target)), seq)
    probs = rng.dirichlet(np.ones(5), size=6).astype(np.float32)
    both(lambda T, a: T.nn.CrossEntropyLoss(label_smoothing=0.2)(a, T.tensor(probs)), logits)
    y = (rng.random((6, 5)) > 0.5).astype(np.float32)
    both(lambda T, a: T.nn.BCEWithLogitsLoss()(a, T.tensor(y)) + T.nn.MSELoss()(a, T.tensor(y)), logits)
    # numpy targets are taken as tensors
    loss = peftcpp.nn.functional.cross_entropy(peftcpp.tensor(np.float32(logits)), target)
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(target))
                                        .item(), rel=1e-5)


class Block:
    """A small user module written once against `lib` (peftcpp or torch)."""

    @staticmethod
    def build(lib):
        class Attn(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.proj = lib.nn.Linear(4, 4)
                self.register_buffer("mask", lib.triu(lib.ones(3, 3), diagonal=1))
                self.register_buffer("scratch", lib.zeros(2), persistent=False)

            def forward(self, x):
                n = x.shape[1]
                scores = (x @ x.transpose(1, 2)).masked_fill(self.mask.bool()[:n, :n], -lib.inf)
                return self.proj(lib.softmax(scores, dim=-1) @ x)

        class Net(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = lib.nn.Embedding(10, 4)
                self.blocks = lib.nn.Sequential(*[Attn() for _ in range(2)])
                self.head = lib.nn.Linear(4, 2)

            def forward(self, ids):
                return self.head(self.blocks(self.emb(ids)))
        return Net()


def test_user_modules_traverse_and_load_like_torchs():
    pm, tm = Block.build(peftcpp), Block.build(torch)
    assert [n for n, _ in pm.named_children()] == [n for n, _ in tm.named_children()]
    assert list(pm.state_dict()) == list(tm.state_dict())  # persistent buffers in, the other out
    assert len(pm.blocks) == 2 and isinstance(pm.blocks[1], type(pm.blocks[0]))
    tm.load_state_dict({k: torch.tensor(v.numpy()) for k, v in pm.state_dict().items()})
    ids = np.array([[1, 2, 3], [4, 5, 6]])
    assert_close(pm(ids), tm(torch.tensor(ids)), FWD_RTOL, "forward")  # a numpy batch goes straight in
    seen = []
    pm.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen.count("Linear") == 3
    pm.load_state_dict(pm.state_dict())
    with pytest.raises(RuntimeError, match="Missing key"):
        pm.load_state_dict({})


def test_kaiming_uniform_follows_torchs_bound():
    peftcpp.manual_seed(0)
    w = peftcpp.nn.Parameter(peftcpp.empty(400, 300))
    peftcpp.nn.init.kaiming_uniform_(w, a=math.sqrt(5))
    bound = 1 / math.sqrt(300)  # torch: gain(leaky_relu, √5) * √(3 / fan_in)
    t = torch.empty(400, 300)
    torch.nn.init.kaiming_uniform_(t, a=math.sqrt(5))
    assert abs(t).max().item() <= bound and abs(w.numpy()).max() <= bound
    assert w.numpy().std() == pytest.approx(t.std().item(), rel=0.02)


def test_no_grad_patterns():
    x = peftcpp.ones(2, requires_grad=True)
    with peftcpp.no_grad():
        assert (x * 2).grad_fn is None

    @peftcpp.no_grad()
    def infer(v):
        return v * 2
    assert infer(x).grad_fn is None and (x * 2).grad_fn is not None
    with peftcpp.set_grad_enabled(False):
        assert not peftcpp.is_grad_enabled()
    assert peftcpp.is_grad_enabled()


def test_factories_and_dtypes_like_torchs():
    for f in (lambda T: T.arange(5), lambda T: T.arange(0, 1, 0.25), lambda T: T.full((2,), 7),
              lambda T: T.full((2,), True), lambda T: T.full((2,), 0.5), lambda T: T.tensor([True, False]),
              lambda T: T.zeros(2, dtype=T.long), lambda T: T.ones(2, 2, dtype=T.bool),
              lambda T: T.zeros_like(T.ones(3)), lambda T: T.full_like(T.ones(2), 3.0), lambda T: T.tensor(3).long(),
              lambda T: T.ones(2, 3).new_zeros(4)):
        same(f(peftcpp), f(torch))
    peftcpp.manual_seed(3)
    a = peftcpp.randint(0, 10, (50,))
    peftcpp.manual_seed(3)
    assert a.dtype == peftcpp.int64
    same(a, peftcpp.randint(0, 10, (50,)))
    assert 0 <= a.numpy().min() and a.numpy().max() < 10


def test_devices_cpu_accepted_everywhere_others_refused():
    t = peftcpp.ones(2, 3)
    assert t.to("cpu") is t and t.cpu() is t and t.to(peftcpp.device("cpu")) is t and t.device == "cpu"
    assert t.to("cpu", peftcpp.float16).dtype == peftcpp.float16 and t.to(device="cpu").shape == (2, 3)
    assert t.to(peftcpp.zeros(1, dtype=peftcpp.int64)).dtype == peftcpp.int64
    device = peftcpp.device("cuda" if peftcpp.cuda.is_available() else "cpu")
    assert str(device) == "cpu" and repr(peftcpp.device("cuda", 1)) == "device(type='cuda', index=1)"
    assert not peftcpp.backends.mps.is_available()
    for f in (peftcpp.zeros, peftcpp.ones, peftcpp.empty, peftcpp.rand, peftcpp.randn):
        assert f(2, device="cpu").shape == (2,)
    assert peftcpp.arange(3, device=device).shape == (3,) and peftcpp.tensor([1], device="cpu").shape == (1,)
    model = peftcpp.nn.Linear(2, 2)
    assert model.to("cpu") is model and model.to(peftcpp.device("cpu")) is model and model.cpu() is model
    for call, op in ((lambda: t.to("cuda"), "Tensor.to"), (lambda: t.to("mps"), "Tensor.to"),
                     (lambda: t.cuda(), "Tensor.cuda"), (lambda: model.to("cuda"), "Linear.to"),
                     (lambda: model.to(peftcpp.device("cuda:0")), "Linear.to"), (lambda: model.cuda(), "Linear.cuda"),
                     (lambda: peftcpp.zeros(2, device="cuda"), "zeros"),
                     (lambda: peftcpp.arange(2, device="mps"), "arange"),
                     (lambda: peftcpp.tensor([1], device="cuda"), "tensor")):
        with pytest.raises(RuntimeError, match=rf"^\[{op}\] device '(cuda|mps)(:0)?' is not available: peftcpp "
                                               "computes on the CPU only"):
            call()


class Embedder(peftcpp.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = peftcpp.nn.Embedding(50, 8)

    def forward(self, ids):
        return self.emb(ids)


def test_numpy_batches_are_taken_wherever_a_tensor_is():
    ids = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int32)
    model = Embedder()
    assert model(ids).shape == (2, 3, 8)  # before: a pybind11 signature dump with the whole weight matrix
    assert model(ids.astype(np.uint8)).shape == (2, 3, 8)
    w = np.float64(np.eye(3))  # float64 arrays become float32
    out = peftcpp.nn.functional.linear(np.ones((2, 3)), w)
    assert out.dtype == peftcpp.float32
    same(out, np.ones((2, 3), np.float32))
    assert peftcpp.cat([np.zeros((1, 2), np.float32), peftcpp.ones(1, 2)]).shape == (2, 2)
    assert peftcpp.softmax(np.zeros((2, 3), np.float32), dim=-1).shape == (2, 3)


@pytest.mark.parametrize("call,message", [
    (lambda m: m([[1, 2]]),
     r"[embedding] argument 'ids' must be a Tensor (or a numeric numpy array), got list of list"),
    (lambda m: m("hello"), r"[embedding] argument 'ids' must be a Tensor (or a numeric numpy array), got str"),
    (lambda m: peftcpp.ones(2).sum(dim="x"), r"[sum] argument 'dims' must be a list of integers, got list of str"),
    (lambda m: peftcpp.ones(2).fill_("a"), r"[Tensor.fill_] argument 'value' must be a number, got str"),
    (lambda m: peftcpp.sqrt(2.0), r"[sqrt] argument 'input' must be a Tensor (or a numeric numpy array), got float"),
    (lambda m: peftcpp.cat([peftcpp.ones(1), "x"]), r"[cat] argument 'tensors' must be a list of Tensors, "
                                                     r"got list of Tensor, str"),
    (lambda m: peftcpp.nn.functional.cross_entropy(peftcpp.ones(2, 2), [0, 1]),
     r"[cross_entropy] argument 'target' must be a Tensor (or a numeric numpy array), got list"),
    (lambda m: peftcpp.ones(2).narrow(0, 0.5, 1), r"[narrow] argument 'start' must be an integer, got float"),
    (lambda m: m(np.array(["a", "b"])), r"[embedding] argument 'ids' must be a Tensor (or a numeric numpy array), "
                                         r"got numpy array of <U1"),
])
def test_wrong_argument_types_give_one_line_errors(call, message):
    with pytest.raises(TypeError) as info:
        call(Embedder())
    text = str(info.value)
    assert text == message and "\n" not in text


def test_bool_tensors_round_trip_numpy_and_safetensors(tmp_path):
    mask = peftcpp.tensor(np.array([[True, False], [False, True]]))
    assert mask.dtype == peftcpp.bool and mask.numpy().dtype == np.bool_
    path = str(tmp_path / "m.safetensors")
    peftcpp.serialization.save_file({"mask": mask}, path)
    back = peftcpp.serialization.load_file(path)["mask"]
    assert back.dtype == peftcpp.bool
    same(back, mask.numpy())
    from safetensors.numpy import load_file
    assert load_file(path)["mask"].dtype == np.bool_


def test_indexing_with_masks_and_assignment():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    p, t = peftcpp.tensor(x), torch.tensor(x)
    same(p[p > 5], t[t > 5])
    same(p[peftcpp.tensor([True, False, True])], t[torch.tensor([True, False, True])])
    same(p[[-1, 0]], t[[-1, 0]])
    p[p > 5] = 0.0
    t[t > 5] = 0.0
    p[:, 0] = peftcpp.tensor([9.0, 8.0, 7.0])
    t[:, 0] = torch.tensor([9.0, 8.0, 7.0])
    same(p, t)
    w = peftcpp.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"^\[setitem\] assigning into a tensor that takes part in autograd"):
        w[0] = 2.0


def test_data_loader_batches_like_torchs():
    from peftcpp.utils.data import DataLoader, TensorDataset
    from torch.utils.data import DataLoader as TDataLoader, TensorDataset as TTensorDataset
    x, y = np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10)
    for kw in ({"batch_size": 4}, {"batch_size": 4, "drop_last": True}, {"batch_size": 3}):
        p = list(DataLoader(TensorDataset(peftcpp.tensor(x), peftcpp.tensor(y)), **kw))
        t = list(TDataLoader(TTensorDataset(torch.tensor(x), torch.tensor(y)), **kw))
        assert len(p) == len(t)
        for (pa, pb), (ta, tb) in zip(p, t):
            same(pa, ta)
            same(pb, tb)
    peftcpp.manual_seed(5)
    order = [b[1].tolist() for b in DataLoader(TensorDataset(peftcpp.tensor(x), peftcpp.tensor(y)), 5, shuffle=True)]
    assert sorted(sum(order, [])) == list(range(10)) and sum(order, []) != list(range(10))
    peftcpp.manual_seed(5)
    assert order == [b[1].tolist() for b in DataLoader(TensorDataset(peftcpp.tensor(x), peftcpp.tensor(y)), 5,
                                                         shuffle=True)]

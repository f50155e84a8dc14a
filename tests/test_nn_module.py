"""peftcpp.nn.Module against torch.nn.Module: names, traversal, state dicts,
modes and errors."""
import math

import numpy as np
import pytest
import torch

import peftcpp
from peftcpp import nn


def build(lib):
    class Block(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = lib.nn.Linear(6, 5)
            self.norm = lib.nn.LayerNorm(5)
            self.drop = lib.nn.Dropout(0.1)

        def forward(self, x):
            return self.drop(self.norm(self.proj(x)))

    class Net(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = lib.nn.Embedding(11, 6)
            self.layers = lib.nn.ModuleList([Block(), Block()])
            self.head = lib.nn.Sequential(lib.nn.Linear(5, 7, bias=False), lib.nn.GELU())
            self.register_buffer("scale", lib.ones(1))
            self.register_buffer("tmp", lib.zeros(2), persistent=False)

    return Net()


def test_names_match_torch():
    p, t = build(peftcpp), build(torch)
    assert [n for n, _ in p.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert [n for n, _ in p.named_modules()] == [n for n, _ in t.named_modules()]
    assert [n for n, _ in p.named_buffers()] == [n for n, _ in t.named_buffers()]
    assert list(p.state_dict()) == list(t.state_dict())
    assert [n for n, _ in p.named_children()] == [n for n, _ in t.named_children()]
    for (n1, a), (n2, b) in zip(p.named_parameters(), t.named_parameters()):
        assert tuple(a.shape) == tuple(b.shape), n1


def test_state_dict_round_trip_with_torch():
    p, t = build(peftcpp), build(torch)
    t.load_state_dict({k: torch.tensor(v.numpy()) for k, v in p.state_dict().items()})
    for (k, a), (_, b) in zip(p.state_dict().items(), t.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
    # and back: torch values into peftcpp (numpy arrays accepted)
    t2 = build(torch)
    p.load_state_dict({k: v.numpy() for k, v in t2.state_dict().items()})
    for (k, a), (_, b) in zip(p.state_dict().items(), t2.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)


def test_load_state_dict_errors_name_keys():
    p = build(peftcpp)
    sd = {k: v.numpy() for k, v in p.state_dict().items()}
    bad = dict(sd)
    bad["head.0.weight"] = np.zeros((3, 3), dtype=np.float32)
    with pytest.raises(RuntimeError, match=r"size mismatch for head.0.weight.*\(3, 3\).*\(7, 5\)"):
        p.load_state_dict(bad)
    missing = dict(sd)
    del missing["emb.weight"]
    missing["extra"] = np.zeros(1, dtype=np.float32)
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "extra"'):
        p.load_state_dict(missing)
    res = p.load_state_dict(missing, strict=False)
    assert res.missing_keys == ["emb.weight"] and res.unexpected_keys == ["extra"]


def test_train_eval_apply_and_requires_grad():
    p = build(peftcpp)
    p.eval()
    assert all(not m.training for m in p.modules())
    p.train()
    assert all(m.training for m in p.modules())
    seen = []
    p.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen.count("Linear") == 3
    p.requires_grad_(False)
    assert not any(x.requires_grad for x in p.parameters())
    p.layers[1].requires_grad_(True)
    assert [n for n, x in p.named_parameters() if x.requires_grad] == [
        "layers.1.proj.weight", "layers.1.proj.bias", "layers.1.norm.weight", "layers.1.norm.bias"]


def test_linear_default_init_bounds():
    peftcpp.manual_seed(0)
    lin = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w = lin.weight.numpy()
    assert w.min() >= -bound and w.max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound  # uniform std
    assert abs(lin.bias.numpy()).max() <= bound
    peftcpp.manual_seed(0)
    again = nn.Linear(400, 300)
    np.testing.assert_array_equal(again.weight.numpy(), w)


def test_forward_matches_torch():
    p, t = build(peftcpp), build(torch)
    t.load_state_dict({k: torch.tensor(v.numpy()) for k, v in p.state_dict().items()})
    p.eval(), t.eval()
    x = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    out_p = p.head(p.layers[0](peftcpp.tensor(x)))
    out_t = t.head(t.layers[0](torch.tensor(x)))
    np.testing.assert_allclose(out_p.numpy(), out_t.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_module_dtype_conversion_keeps_names():
    p = build(peftcpp)
    p.bfloat16()
    assert p.emb.weight.dtype == peftcpp.bfloat16 and not p.emb.weight.requires_grad
    assert isinstance(p.emb.weight, nn.Parameter)
    p.float()
    assert p.emb.weight.dtype == peftcpp.float32


def test_setattr_rules():
    m = nn.Module()
    m.w = nn.Parameter(peftcpp.zeros(2))
    m.sub = nn.Linear(2, 2)
    m.plain = 3
    assert "w" in m._parameters and "sub" in m._modules and m.plain == 3
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        m.nope
    del m.w
    assert "w" not in dict(m.named_parameters())
    with pytest.raises(TypeError):
        m.register_parameter("x", peftcpp.zeros(2))

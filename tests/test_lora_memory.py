"""A LoRA step over frozen bf16 weights allocates no gradient or optimizer
state for them: the memory it keeps is that of the adapters only."""
import numpy as np

import peftcpp
from peftcpp import nn
from peftcpp.nn import functional as F


class LoraMLP(nn.Module):
    def __init__(self, d, hidden, r):
        super().__init__()
        self.up = nn.Linear(d, hidden, bias=False)
        self.down = nn.Linear(hidden, d, bias=False)
        self.up_A = nn.Parameter(peftcpp.randn(r, d) * 0.01)
        self.up_B = nn.Parameter(peftcpp.zeros(hidden, r))
        self.down_A = nn.Parameter(peftcpp.randn(r, hidden) * 0.01)
        self.down_B = nn.Parameter(peftcpp.zeros(d, r))

    def forward(self, x):
        h = F.lora_linear(x, self.up.weight, None, self.up_A, self.up_B, 2.0, 0.05, self.training)
        return F.lora_linear(F.silu(h), self.down.weight, None, self.down_A, self.down_B, 2.0, 0.05, self.training)


def test_lora_step_allocates_nothing_for_frozen_bf16_weights():
    d, hidden, r = 256, 1024, 8
    start = peftcpp.memory_stats()["current"]
    peftcpp.manual_seed(0)
    m = LoraMLP(d, hidden, r)
    m.up.bfloat16()
    m.down.bfloat16()
    assert m.up.weight.dtype == peftcpp.bfloat16 and not m.up.weight.requires_grad
    trainable = [p for p in m.parameters() if p.requires_grad]
    assert len(trainable) == 4
    opt = peftcpp.optim.AdamW(trainable, lr=1e-3)
    x = peftcpp.randn(4, 16, d)

    def step():
        loss = (m(x) * m(x)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # optimizer state now exists
    base = peftcpp.memory_stats()["current"]
    for _ in range(3):
        step()
    assert peftcpp.memory_stats()["current"] - base <= 4096, "memory grows step after step"
    assert m.up.weight.grad is None and m.down.weight.grad is None
    assert all(p.grad is not None for p in trainable)
    # Optimizer state only for the adapters: nothing for the frozen weights.
    assert len(opt.state_dict()["state"]) == len(trainable)
    # The frozen bf16 weights cost half of their float32 size.
    frozen = (m.up.weight, m.down.weight)
    assert all(w.dtype.itemsize == 2 for w in frozen)
    # Beyond the weights and the input, the model holds the adapters' grads
    # and two Adam moments, plus at most one reusable float32 scratch the
    # size of the largest frozen weight (where bf16 is widened on use).
    stored = sum(p.numel() * p.dtype.itemsize for p in m.parameters()) + x.numel() * 4
    held = base - start - stored
    adapter_bytes = sum(p.numel() * 4 for p in trainable)
    scratch = max(w.numel() for w in frozen) * 4
    assert held <= 3 * adapter_bytes + scratch + 65536, (held, adapter_bytes, scratch)

"""A small GPT written once against the torch API and instantiated with both
libraries: peftcpp must train it step for step like PyTorch (same initial
weights, AdamW, dropout 0): per-step losses equal within 1e-4 relative over
20 steps, and the loss must fall."""
import numpy as np
import pytest
import torch

import peftcpp

V, C, H, L, T, B = 97, 48, 4, 2, 13, 3


def make_gpt(lib, checkpointing=False, dropout=0.0):
    nn, F = lib.nn, lib.nn.functional

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(C)
            self.c_attn = nn.Linear(C, 3 * C)
            self.c_proj = nn.Linear(C, C)
            self.ln_2 = nn.LayerNorm(C)
            self.c_fc = nn.Linear(C, 4 * C)
            self.mlp_proj = nn.Linear(4 * C, C)
            self.drop = nn.Dropout(dropout)

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
            q, k, v = (z.reshape(b, t, H, C // H).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            y = y.transpose(1, 2).reshape(b, t, C)
            x = x + self.drop(self.c_proj(y))
            return x + self.drop(self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh")))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(V, C)
            self.wpe = nn.Embedding(T, C)
            self.h = nn.ModuleList([Block() for _ in range(L)])
            self.ln_f = nn.LayerNorm(C)

        def forward(self, idx, targets):
            x = self.wte(idx) + self.wpe(lib.arange(idx.shape[1]))
            for block in self.h:
                if checkpointing:
                    x = lib.utils.checkpoint(block, x, use_reentrant=True) if lib is peftcpp else \
                        torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
                else:
                    x = block(x)
            x = self.ln_f(x).reshape(-1, C)
            if lib is torch:  # logits materialised, tied output projection
                return F.cross_entropy(x @ self.wte.weight.T, targets.reshape(-1))
            return F.linear_cross_entropy(x, self.wte.weight, targets.reshape(-1), chunk_size=32)

    return GPT()


def batches(n):
    """Learnable data: each row counts up by a row-specific step (mod V)."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        start = rng.integers(0, V, size=(B, 1))
        step = rng.integers(1, 4, size=(B, 1))
        seq = (start + step * np.arange(T + 1)) % V
        out.append((seq[:, :-1].astype(np.int64), seq[:, 1:].astype(np.int64)))
    return out


def train(lib, model, data, steps=20):
    opt = lib.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    clip = lib.nn.utils.clip_grad_norm_
    losses = []
    for i in range(steps):
        x, y = data[i % len(data)]
        loss = model(lib.tensor(x), lib.tensor(y))
        opt.zero_grad()
        loss.backward()
        clip(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.item()))
    return losses


def twin_models(checkpointing=False):
    peftcpp.manual_seed(0)
    pm = make_gpt(peftcpp, checkpointing)
    tm = make_gpt(torch, checkpointing)
    tm.load_state_dict({k: torch.tensor(v.numpy().copy()) for k, v in pm.state_dict().items()})
    return pm, tm


def test_gpt_trains_like_pytorch():
    pm, tm = twin_models()
    data = batches(4)
    lp = train(peftcpp, pm, data)
    lt = train(torch, tm, data)
    rel = np.abs(np.array(lp) - np.array(lt)) / np.abs(np.array(lt))
    assert rel.max() <= 1e-4, f"per-step loss differs: max rel {rel.max():.2e}\n{lp}\n{lt}"
    assert lp[-1] < 0.8 * lp[0], f"loss did not fall: {lp[0]:.4f} -> {lp[-1]:.4f}"


def test_gpt_gradients_match_pytorch():
    """The first step's gradients for every parameter (after that, Adam's
    sign-like update amplifies float noise on near-zero gradients, so later
    steps are compared through the loss)."""
    from helpers import BWD_RTOL, assert_close
    pm, tm = twin_models()
    x, y = batches(1)[0]
    pm(peftcpp.tensor(x), peftcpp.tensor(y)).backward()
    tm(torch.tensor(x), torch.tensor(y)).backward()
    for (k, a), (_, b) in zip(pm.named_parameters(), tm.named_parameters()):
        assert_close(a.grad, b.grad, BWD_RTOL, k)


def test_gradient_checkpointing_gives_the_same_training():
    pm, _ = twin_models()
    pc, _ = twin_models(checkpointing=True)
    data = batches(2)
    a = train(peftcpp, pm, data, steps=4)
    b = train(peftcpp, pc, data, steps=4)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_training_with_dropout_is_reproducible_and_checkpoint_replays_masks():
    """Same seed, same losses to the bit; checkpointing recomputes each block
    with the dropout masks of its forward, so it trains identically too."""
    def run(checkpointing):
        peftcpp.manual_seed(3)
        model = make_gpt(peftcpp, checkpointing, dropout=0.2)
        return train(peftcpp, model, batches(2), steps=4)
    a, b, c = run(False), run(False), run(True)
    assert a == b
    np.testing.assert_allclose(a, c, rtol=1e-6)

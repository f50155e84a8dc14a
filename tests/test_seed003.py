"""Seed 003, end to end: the user's lab notebook (tests/seed003_gpt.py: a GPT-2
written from scratch, hand-written LoRA, the head swap, its own training
loop) runs on peftcpp with only its imports changed, reproduces the lab's
parameter counts exactly, and computes what torch computes on the same code
and weights (forward logits, loss, gradients, one AdamW step)."""
import os
import re
import types

import numpy as np
import pytest

import peftcpp
import seed003_gpt as lab

import torch  # noqa: E402  (the reference)

SMALL = {"vocab_size": 97, "context_length": 16, "emb_dim": 32, "n_heads": 4, "n_layers": 2, "drop_rate": 0.0,
         "qkv_bias": True}


def torch_lab():
    """The same notebook source run with the real torch (its three import lines swapped back)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seed003_gpt.py")
    with open(path, encoding="utf-8") as f:
        src = f.read()
    swaps = {"import peftcpp as torch\n": "import torch\n", "import peftcpp.nn as nn\n": "import torch.nn as nn\n",
             "from peftcpp.utils.data import": "from torch.utils.data import"}
    for a, b in swaps.items():
        assert src.count(a) == 1, a
        src = src.replace(a, b)
    assert "peftcpp" not in src.split('"""', 2)[2]  # nothing else names peftcpp
    mod = types.ModuleType("seed003_gpt_torch")
    exec(compile(src, path, "exec"), mod.__dict__)
    return mod


def test_the_labs_parameter_counts_on_gpt2_124m():
    peftcpp.manual_seed(123)
    model = lab.GPTModel(lab.GPT_CONFIG_124M)
    assert lab.count_parameters(model) == (163_037_184, 163_037_184)  # untied head, qkv bias
    assert lab.add_lora(model, rank=8, alpha=16) == (1_327_104, 164_364_288)  # Question 2
    # Question 1: the blocks' Linear layers are LinearWithLoRA now, the LM head is not
    wrapped = [n for n, m in model.named_modules() if isinstance(m, lab.LinearWithLoRA)]
    assert len(wrapped) == 12 * 6 and "trf_blocks.0.att.W_query" in wrapped and "out_head" not in wrapped
    assert type(model.out_head) is peftcpp.nn.Linear
    assert lab.add_classification_head(model, lab.GPT_CONFIG_124M) == (1_328_642, 125_768_450)  # Question 3
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n in trainable if n.startswith("out_head.") or ".lora." in n}
    assert {"out_head.weight", "out_head.bias"} <= trainable


def build_pair(seed=0):
    """The lab's classifier in peftcpp and in torch, with the same weights
    (LoRA B made nonzero so the adapters take part in the forward)."""
    tl = torch_lab()
    peftcpp.manual_seed(seed)
    pm = lab.GPTModel(SMALL)
    lab.add_lora(pm, rank=4, alpha=2)
    lab.add_classification_head(pm, SMALL)
    rng = np.random.default_rng(seed)
    with peftcpp.no_grad():
        for name, p in pm.named_parameters():
            if name.endswith("lora.B"):
                p.copy_(peftcpp.tensor(rng.normal(0, 0.1, p.shape).astype(np.float32)))
    tm = tl.GPTModel(SMALL)
    tl.add_lora(tm, rank=4, alpha=2)
    tl.add_classification_head(tm, SMALL)
    missing = tm.load_state_dict({k: torch.tensor(v.numpy()) for k, v in pm.state_dict().items()}, strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys
    assert lab.count_parameters(pm) == tl.count_parameters(tm)
    return pm, tm, tl


def test_forward_loss_gradients_and_an_adamw_step_match_torch():
    pm, tm, tl = build_pair()
    rng = np.random.default_rng(1)
    ids = rng.integers(0, SMALL["vocab_size"], size=(3, 11))
    labels = np.array([0, 1, 1])
    pm.train()
    tm.train()
    p_logits = pm(peftcpp.tensor(ids))
    t_logits = tm(torch.tensor(ids))
    np.testing.assert_allclose(p_logits.detach().numpy(), t_logits.detach().numpy(), rtol=1e-4, atol=1e-5)

    p_opt = peftcpp.optim.AdamW(pm.parameters(), lr=5e-3, weight_decay=0.1)
    t_opt = torch.optim.AdamW(tm.parameters(), lr=5e-3, weight_decay=0.1)
    p_loss_fn, t_loss_fn = peftcpp.nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    for step in range(2):
        p_opt.zero_grad()
        t_opt.zero_grad()
        p_loss = p_loss_fn(pm(peftcpp.tensor(ids))[:, -1, :], peftcpp.tensor(labels))
        t_loss = t_loss_fn(tm(torch.tensor(ids))[:, -1, :], torch.tensor(labels))
        assert p_loss.item() == pytest.approx(t_loss.item(), rel=1e-5, abs=1e-6), f"step {step}"
        p_loss.backward()
        t_loss.backward()
        t_params = dict(tm.named_parameters())
        for name, p in pm.named_parameters():
            tp = t_params[name]
            assert (p.grad is None) == (tp.grad is None), name
            if p.grad is not None:
                np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-3, atol=1e-6, err_msg=name)
        p_opt.step()
        t_opt.step()
    for name, p in pm.named_parameters():
        np.testing.assert_allclose(p.detach().numpy(), t_params[name].detach().numpy(), rtol=1e-4, atol=1e-6,
                                   err_msg=name)


class CharTokenizer:
    """A stand-in for tiktoken: one id per character (ids below the small vocabulary)."""

    def encode(self, text):
        return [ord(c) % 90 for c in text]


def spam_data(n, rng):
    words = ["hello", "see you", "lunch at noon", "call me", "meeting moved", "thanks"]
    spam = ["WIN cash now", "FREE prize", "claim reward", "URGENT offer"]
    texts, labels = [], []
    for _ in range(n):
        label = int(rng.integers(0, 2))
        pool = spam if label else words
        texts.append(" ".join(rng.choice(pool, size=2)))
        labels.append(label)
    return texts, labels


def test_the_labs_training_loop_runs_and_learns():
    rng = np.random.default_rng(0)
    texts, labels = spam_data(96, rng)
    peftcpp.manual_seed(123)
    train = lab.SpamDataset(texts, labels, CharTokenizer(), max_length=12, pad_token_id=0)
    loader = lab.DataLoader(train, batch_size=8, shuffle=True, num_workers=0, drop_last=True)
    assert len(loader) == 12
    model = lab.GPTModel(SMALL)
    lab.add_lora(model, rank=4, alpha=8)
    lab.add_classification_head(model, SMALL)
    device = peftcpp.device("cuda" if peftcpp.cuda.is_available() else "cpu")
    model.to(device)
    optimizer = peftcpp.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.1)
    criterion = peftcpp.nn.CrossEntropyLoss()
    lines, first = [], None
    for epoch in range(1, 5):
        losses, acc = lab.train_one_epoch(model, loader, optimizer, criterion, device, epoch, log=lines.append)
        first = first if first is not None else float(np.mean(losses[:3]))
    assert re.fullmatch(r"Epoch 1 \| Batch 0 \| Loss: \d+\.\d{4}", lines[0])
    assert re.fullmatch(r"Epoch 4 Finished \| Avg Loss: \d+\.\d{4} \| Acc: \d+\.\d{2}% \| Time: \d+\.\d{2}s", lines[-1])
    assert float(np.mean(losses[-3:])) < first / 2
    assert lab.calc_accuracy_loader(loader, model, device) >= 0.9
    assert not model.training  # calc_accuracy_loader leaves it in eval mode, as the book's does

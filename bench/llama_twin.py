"""A Llama-architecture model (SmolLM2-135M's shape by default) with LoRA on
every linear layer, written once against the torch API and instantiated with
either library, so both run the same computation. The torch side uses LoRA
the way HF PEFT computes it (base linear + scale·B(A(dropout(x))))."""
from dataclasses import dataclass


@dataclass
class Shape:
    vocab: int = 49152
    hidden: int = 576
    intermediate: int = 1536
    layers: int = 30
    heads: int = 9
    kv_heads: int = 3
    rope_theta: float = 100000.0
    eps: float = 1e-5


def make_model(lib, cfg, rank=8, alpha=16, dropout=0.0):
    import numpy as np
    nn, F = lib.nn, lib.nn.functional
    is_torch = lib.__name__ == "torch"
    scale = alpha / rank
    head_dim = cfg.hidden // cfg.heads

    class LoraLinear(nn.Module):
        def __init__(self, i, o):
            super().__init__()
            self.base_layer = nn.Linear(i, o, bias=False)
            self.base_layer.weight.requires_grad_(False)
            self.lora_A = nn.Linear(i, rank, bias=False)
            self.lora_B = nn.Linear(rank, o, bias=False)
            nn.init.normal_(self.lora_B.weight, 0.0, 0.02)  # non-zero so every gradient is real work
            self.drop = nn.Dropout(dropout)

        def forward(self, x):
            if is_torch:
                return self.base_layer(x) + self.lora_B(self.lora_A(self.drop(x))) * scale
            return F.lora_linear(x, self.base_layer.weight, None, self.lora_A.weight, self.lora_B.weight, scale,
                                 dropout, self.training)

    def rotate_half(x):
        h = x.shape[-1] // 2
        return lib.cat((-x[..., h:], x[..., :h]), dim=-1)

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            H, KV, D = cfg.heads, cfg.kv_heads, head_dim
            self.input_layernorm = nn.RMSNorm(cfg.hidden, eps=cfg.eps)
            self.q_proj, self.k_proj = LoraLinear(cfg.hidden, H * D), LoraLinear(cfg.hidden, KV * D)
            self.v_proj, self.o_proj = LoraLinear(cfg.hidden, KV * D), LoraLinear(H * D, cfg.hidden)
            self.post_attention_layernorm = nn.RMSNorm(cfg.hidden, eps=cfg.eps)
            self.gate_proj = LoraLinear(cfg.hidden, cfg.intermediate)
            self.up_proj = LoraLinear(cfg.hidden, cfg.intermediate)
            self.down_proj = LoraLinear(cfg.intermediate, cfg.hidden)

        def forward(self, x, cos, sin):
            b, t, _ = x.shape
            h = self.input_layernorm(x)
            q = self.q_proj(h).reshape(b, t, cfg.heads, head_dim).transpose(1, 2)
            k = self.k_proj(h).reshape(b, t, cfg.kv_heads, head_dim).transpose(1, 2)
            v = self.v_proj(h).reshape(b, t, cfg.kv_heads, head_dim).transpose(1, 2)
            if is_torch:  # transformers' apply_rotary_pos_emb
                q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
                a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            else:
                q, k = F.apply_rotary_emb(q, cos, sin), F.apply_rotary_emb(k, cos, sin)
                a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.o_proj(a.transpose(1, 2).reshape(b, t, cfg.hidden))
            h = self.post_attention_layernorm(x)
            if is_torch:
                m = F.silu(self.gate_proj(h)) * self.up_proj(h)
            else:
                m = F.swiglu(self.gate_proj(h), self.up_proj(h))
            return x + self.down_proj(m)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(cfg.vocab, cfg.hidden)
            self.embed_tokens.weight.requires_grad_(False)
            self.layers = nn.ModuleList([Layer() for _ in range(cfg.layers)])
            self.norm = nn.RMSNorm(cfg.hidden, eps=cfg.eps)
            self.norm.weight.requires_grad_(False)
            for l in self.layers:
                l.input_layernorm.weight.requires_grad_(False)
                l.post_attention_layernorm.weight.requires_grad_(False)

        def forward(self, ids, labels):
            t = ids.shape[1]
            inv = 1.0 / (cfg.rope_theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
            ang = np.outer(np.arange(t), inv).astype(np.float32)
            if is_torch:
                full = np.concatenate([ang, ang], axis=-1)
                cos, sin = lib.tensor(np.cos(full)), lib.tensor(np.sin(full))
            else:
                cos, sin = lib.tensor(np.cos(ang)), lib.tensor(np.sin(ang))
            x = self.embed_tokens(ids)
            for layer in self.layers:
                x = layer(x, cos, sin)
            x = self.norm(x).reshape(-1, cfg.hidden)
            if is_torch:  # tied output projection, logits materialised
                return F.cross_entropy(x @ self.embed_tokens.weight.T, labels.reshape(-1))
            return F.linear_cross_entropy(x, self.embed_tokens.weight, labels.reshape(-1))

    return Model()


def step_flops(cfg, batch, seq, rank=8):
    """Useful FLOPs of one LoRA training step (frozen base: no weight
    gradients), counting each matrix product once, recomputation excluded.
    Returns (total, list of (M, N, K, trans_a, trans_b) GEMMs of the step)."""
    M = batch * seq
    D = cfg.hidden // cfg.heads
    lin = [(cfg.hidden, cfg.heads * D), (cfg.hidden, cfg.kv_heads * D), (cfg.hidden, cfg.kv_heads * D),
           (cfg.heads * D, cfg.hidden), (cfg.hidden, cfg.intermediate), (cfg.hidden, cfg.intermediate),
           (cfg.intermediate, cfg.hidden)]
    gemms = []
    for K, N in lin:
        gemms += [(M, N, K, False, True), (M, K, N, False, False)]  # y = x·Wᵀ ; dx = dy·W
        gemms += [(M, rank, K, False, True), (M, N, rank, False, True),  # lora forward
                  (M, rank, N, False, False), (N, rank, M, True, False),  # dH, dB
                  (rank, K, M, True, False), (M, K, rank, False, False)]  # dA, dx lora
    gemms = gemms * cfg.layers
    # attention: scores and P·V forward, four products backward, per (b, head);
    # causal, so only the lower triangle (half the square) is useful work
    att = 2 * 2 * batch * cfg.heads * seq * seq * D * 3 // 2
    # output projection: logits forward, dhidden backward
    gemms += [(M, cfg.vocab, cfg.hidden, False, True), (M, cfg.hidden, cfg.vocab, False, False)]
    total = sum(2 * m * n * k for m, n, k, _, _ in gemms) + att
    return total, gemms

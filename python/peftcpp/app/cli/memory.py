"""A rough training-memory estimate (weights, adapter, optimizer,
activations) checked against /proc/meminfo's MemAvailable before training,
so a run that would swap or be killed says so up front."""

GB = 1e9
_ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "int32": 4, "int64": 8}


def mem_available():
    """Bytes the kernel says can be allocated without swapping, or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def estimate(model, batch_size, seq_len, grad_checkpoint=False):
    """{'weights', 'adapter', 'optimizer', 'activations', 'total'} in bytes.

    weights: every parameter at its dtype's size. adapter: the trainable
    parameters (float32) and their gradients. optimizer: AdamW's two moments.
    activations: what autograd keeps per block for batch x seq_len tokens
    (about 16 hidden-sized and 3 MLP-sized float32 vectors per token, plus
    the attention weights), all blocks or, with gradient checkpointing, one
    block's inputs each plus one full block; plus one row of logits per
    token for the loss."""
    cfg = getattr(model, "config", None)
    weights = trainable = 0
    for p in model.parameters():
        n = p.numel()
        weights += n * _ITEMSIZE.get(p.dtype.name, 4)
        if p.requires_grad:
            trainable += n
    hidden = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "n_embd", 0) or 0)
    inter = int(getattr(cfg, "intermediate_size", 0) or getattr(cfg, "n_inner", 0) or 4 * hidden)
    layers = int(getattr(cfg, "num_hidden_layers", 0) or getattr(cfg, "n_layer", 0) or 0)
    heads = int(getattr(cfg, "num_attention_heads", 0) or getattr(cfg, "n_head", 0) or 1)
    vocab = int(getattr(cfg, "vocab_size", 0) or 0)
    tokens = batch_size * seq_len
    per_block = tokens * (16 * hidden + 3 * inter) * 4 + batch_size * heads * seq_len * seq_len * 4
    if grad_checkpoint:
        acts = layers * tokens * hidden * 4 + per_block
    else:
        acts = layers * per_block
    acts += tokens * vocab * 4
    out = {"weights": weights, "adapter": 2 * trainable * 4, "optimizer": 2 * trainable * 4, "activations": acts}
    out["total"] = sum(out.values())
    return out


def report(est, available, fine_tune_type="lora"):
    """(line, warning or None): the estimate, and what to change when it
    exceeds the available memory."""
    line = (f"Memory estimate: {est['total'] / GB:.2f} GB (weights {est['weights'] / GB:.2f}, "
            f"{'adapter' if fine_tune_type != 'full' else 'trained weights'} + gradients {est['adapter'] / GB:.2f}, "
            f"optimizer {est['optimizer'] / GB:.2f}, activations {est['activations'] / GB:.2f})"
            + (f", {available / GB:.2f} GB available" if available else ""))
    if available and est["total"] > available:
        return line, (f"warning: training may need {est['total'] / GB:.2f} GB but only {available / GB:.2f} GB is "
                      "available; to use less, lower --batch-size, --max-seq-length, --num-layers or --rank, or add "
                      "--grad-checkpoint")
    return line, None

"""Activation tables by transformers' names (hidden_act, dense_act_fn):
plain ones for T5's feed-forward, gated ones (act(gate) * up, one fused
op) for the Llama family's and T5 v1.1's gated MLPs."""
from .. import _core
from ..nn import functional as F

ACT2FN = {"relu": F.relu, "gelu": lambda x: F.gelu(x, "none"), "gelu_new": lambda x: F.gelu(x, "tanh"),
          "gelu_pytorch_tanh": lambda x: F.gelu(x, "tanh"), "silu": F.silu, "swish": F.silu}

ACT_GATED = {"silu": F.swiglu, "swish": F.swiglu,
             "gelu_pytorch_tanh": lambda g, u: _core.gelu_mul(g, u, "tanh"),
             "gelu_new": lambda g, u: _core.gelu_mul(g, u, "tanh"),
             "gelu": lambda g, u: _core.gelu_mul(g, u, "none")}


def gated_act(name):
    if name not in ACT_GATED:
        raise ValueError(f"activation '{name}' is not supported (supported: {', '.join(sorted(ACT_GATED))})")
    return ACT_GATED[name]

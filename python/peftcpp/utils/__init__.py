"""Utilities: gradient checkpointing (like ``torch.utils.checkpoint``) and
``peftcpp.utils.data`` (torch.utils.data's Dataset and DataLoader)."""
from .. import _core
from .._tensor import Tensor
from . import data  # noqa: F401


def checkpoint(function, *args, use_reentrant=None, **kwargs):
    """Runs ``function(*args, **kwargs)`` without keeping its activations;
    they are recomputed during backward (with the same dropout masks).
    Parameters used inside receive their gradients as usual. Non-tensor
    arguments (None, numbers, flags) are passed through unchanged."""
    slots = [i for i, a in enumerate(args) if isinstance(a, Tensor)]

    def run(*tensors):
        full = list(args)
        for i, t in zip(slots, tensors):
            full[i] = t
        out = function(*full, **kwargs)
        if isinstance(out, Tensor):
            return out
        if isinstance(out, (tuple, list)) and all(isinstance(o, Tensor) for o in out):
            return tuple(out)
        raise TypeError("checkpoint: the function must return a Tensor or a tuple of Tensors")

    outs = _core.checkpoint(run, [args[i] for i in slots])
    return outs[0] if len(outs) == 1 else tuple(outs)

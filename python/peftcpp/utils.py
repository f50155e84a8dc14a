"""Utilities: gradient checkpointing (like ``torch.utils.checkpoint``)."""
from . import _core


def checkpoint(function, *args, use_reentrant=None, **kwargs):
    """Runs ``function(*args)`` without keeping its activations; they are
    recomputed during backward (with the same dropout masks). Parameters used
    inside receive their gradients as usual."""
    if kwargs:
        fn = lambda *a: function(*a, **kwargs)  # noqa: E731
    else:
        fn = function
    outs = _core.checkpoint(fn, list(args))
    return outs[0] if len(outs) == 1 else tuple(outs)

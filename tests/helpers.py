"""Shared test helpers: conversions between peftcpp, numpy and torch, and
closeness checks with the tolerances the issue sets (float32)."""
import numpy as np

FWD_RTOL = 1e-5  # forward: relative error
BWD_RTOL = 1e-4  # backward


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    denom = max(np.abs(b).max(initial=0.0), 1e-12)
    return float(np.abs(a - b).max(initial=0.0) / denom)


def assert_close(actual, expected, rtol, what=""):
    """max|a-b| / max|b| <= rtol: relative to the tensor's scale, so tiny
    entries of a large tensor do not dominate."""
    a = to_np(actual)
    e = to_np(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    err = rel_err(a, e)
    assert err <= rtol, f"{what}: relative error {err:.3g} > {rtol}"


def to_np(x):
    import peftcpp
    if isinstance(x, peftcpp.Tensor):
        return x.numpy()
    try:
        import torch
        if isinstance(x, torch.Tensor):
            return x.detach().float().numpy()
    except ImportError:
        pass
    return np.asarray(x)


def pair(arr, requires_grad=True):
    """The same float32 data as a peftcpp tensor and a torch tensor."""
    import peftcpp
    import torch
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    p = peftcpp.tensor(arr, requires_grad=requires_grad)
    t = torch.tensor(arr, requires_grad=requires_grad)
    return p, t


def run_document_blocks(blocks, ns, before=None, **fmt):
    """Runs a user document's code blocks [(name, code)] in namespace `ns`,
    each formatted with `fmt` (the library names to import), and returns
    {name: what the block printed}. `before(name)` runs ahead of each block."""
    import contextlib
    import io
    import textwrap
    printed = {}
    for name, code in blocks:
        if before is not None:
            before(name)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(textwrap.dedent(code.format(**fmt)), ns)  # noqa: S102 - the user's own code
        printed[name] = buf.getvalue()
    return printed

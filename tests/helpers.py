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


def check_logits_loss_greedy(ref, model, x):
    """A peftcpp causal LM against its transformers original `ref` on token ids
    `x` [B, T]: logits (1e-4 relative), loss with labels (1e-5), the logits
    computed with the loss, and a 32-token greedy continuation of x[:1]
    (identical)."""
    import torch
    with torch.no_grad():
        expect = ref(torch.tensor(x)).logits.numpy()
        expect_loss = ref(torch.tensor(x), labels=torch.tensor(x)).loss.item()
    got = model(x).logits.numpy()
    err = np.abs(got - expect).max() / np.abs(expect).max()
    assert err <= 1e-4, err
    out = model(x, labels=x)
    assert abs(out.loss.item() - expect_loss) / expect_loss <= 1e-5
    np.testing.assert_allclose(out.logits.numpy(), expect, rtol=1e-4, atol=1e-5)  # lazily computed
    g_ref = ref.generate(torch.tensor(x[:1]), max_new_tokens=32, do_sample=False)
    g = model.generate(x[:1], max_new_tokens=32)
    np.testing.assert_array_equal(g.numpy(), g_ref.numpy())


def left_padding_mask(x, pads):
    """An attention mask for ids `x` [B, T] whose row i starts with pads[i] padding positions."""
    mask = np.ones_like(x)
    for row, n in enumerate(pads):
        mask[row, :n] = 0
    return mask


def check_batched_left_padded(ref, model, x):
    """Greedy generation (10 tokens) of a batch of 3 rows, rows 1 and 2 left-padded
    by 3 and 5 positions: the same tokens as transformers' `ref`."""
    import torch
    mask = left_padding_mask(x, [0, 3, 5])
    g_ref = ref.generate(torch.tensor(x), attention_mask=torch.tensor(mask), max_new_tokens=10, do_sample=False)
    g = model.generate(x, attention_mask=mask, max_new_tokens=10)
    np.testing.assert_array_equal(g.numpy(), g_ref.numpy())


def check_training_step_grads(ref, model, x, names):
    """One backward of the loss on ids `x` (labels = x) through both models:
    the gradients of the parameters `names` match transformers' (rtol 1e-3, atol 1e-5)."""
    import torch
    model(x, labels=x).loss.backward()
    ref(torch.tensor(x), labels=torch.tensor(x)).loss.backward()
    ours = dict(model.named_parameters())
    for name, p in ref.named_parameters():
        if name in names:
            np.testing.assert_allclose(ours[name].grad.numpy(), p.grad.numpy(), rtol=1e-3, atol=1e-5, err_msg=name)

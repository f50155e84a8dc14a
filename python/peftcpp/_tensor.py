"""Tensor conveniences: operators, torch-style methods and factories.

The class itself is the C++ ``_core.Tensor``; what is pure convenience (operator
overloads, argument parsing, indexing) is attached here, so the bindings stay
thin.
"""
import contextlib
import numbers

import numpy as np

from . import _core

Tensor = _core.Tensor
DType = _core.DType
float32 = DType.float32
float16 = DType.float16
bfloat16 = DType.bfloat16
int32 = DType.int32
int64 = DType.int64

_NP_TO_DTYPE = {
    np.dtype(np.float32): float32,
    np.dtype(np.float16): float16,
    np.dtype(np.int32): int32,
    np.dtype(np.int64): int64,
}


def _to_array(data, dtype):
    if isinstance(data, Tensor):
        return data.numpy()
    arr = np.asarray(data)
    if dtype is None:
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float16) if arr.dtype == np.float16 else arr.astype(np.float32)
        elif arr.dtype.kind in "iub":
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"tensor(): cannot make a tensor from numpy dtype {arr.dtype}")
    return arr


def tensor(data, dtype=None, requires_grad=False):
    """A new tensor holding a copy of ``data`` (like ``torch.tensor``)."""
    arr = _to_array(data, dtype)
    if dtype is not None and dtype not in (bfloat16,):
        np_type = {float32: np.float32, float16: np.float16, int32: np.int32, int64: np.int64}[dtype]
        arr = arr.astype(np_type)
    t = _core.from_numpy(np.require(arr, requirements="C"), copy=True)
    if dtype == bfloat16:
        t = t._to_raw(bfloat16)
    if requires_grad:
        t.requires_grad_(True)
    return t


def from_numpy(arr):
    """A tensor sharing ``arr``'s memory (no copy), like ``torch.from_numpy``."""
    return _core.from_numpy(arr, copy=False)


def _shape_args(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return list(shape[0])
    return list(shape)


def zeros(*shape, dtype=float32, requires_grad=False):
    return _core.zeros(_shape_args(shape), dtype).requires_grad_(requires_grad)


def ones(*shape, dtype=float32, requires_grad=False):
    return _core.full(_shape_args(shape), 1.0, dtype).requires_grad_(requires_grad)


def empty(*shape, dtype=float32):
    return _core.empty(_shape_args(shape), dtype)


def full(shape, value, dtype=float32):
    return _core.full(list(shape), float(value), dtype)


def zeros_like(t, dtype=None):
    return _core.zeros(list(t.shape), dtype or t.dtype)


def ones_like(t, dtype=None):
    return _core.full(list(t.shape), 1.0, dtype or t.dtype)


def rand(*shape, requires_grad=False):
    return _core.rand(_shape_args(shape), 0.0, 1.0).requires_grad_(requires_grad)


def randn(*shape, requires_grad=False):
    return _core.randn(_shape_args(shape), 0.0, 1.0).requires_grad_(requires_grad)


def arange(start, end=None, step=1, dtype=int64):
    if end is None:
        start, end = 0, start
    np_type = np.int64 if dtype == int64 else (np.int32 if dtype == int32 else np.float32)
    return _core.from_numpy(np.arange(start, end, step, dtype=np_type), copy=True)


def cat(tensors, dim=0):
    return _core.cat(list(tensors), dim)


def stack(tensors, dim=0):
    tensors = list(tensors)
    nd = tensors[0].ndim + 1
    d = dim % nd
    return _core.cat([t.unsqueeze(d) for t in tensors], d)


def gather(input, dim, index):
    return _core.gather(input, dim, index)


def matmul(a, b):
    return _core.matmul(a, b)


def manual_seed(seed):
    _core.manual_seed(int(seed))


set_num_threads = _core.set_num_threads
get_num_threads = _core.get_num_threads
memory_stats = _core.memory_stats
reset_peak_memory = _core.reset_peak_memory
empty_cache = _core.empty_cache
is_grad_enabled = _core.is_grad_enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Context manager / decorator that turns graph recording on or off
    (``mode``), restoring the previous setting on exit."""

    def __init__(self, mode):
        self.mode = bool(mode)

    def __enter__(self):
        self.prev = _core.is_grad_enabled()
        _core.set_grad_enabled(self.mode)
        return self

    def __exit__(self, *exc):
        _core.set_grad_enabled(self.prev)
        return False


class no_grad(set_grad_enabled):
    """Context manager / decorator that stops recording the graph."""

    def __init__(self):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Context manager / decorator that records the graph inside a no_grad region."""

    def __init__(self):
        super().__init__(True)


# ---------------------------------------------------------------- operators

def _as_tensor(x, like):
    if isinstance(x, Tensor):
        return x
    return _core.full([], float(x), float32)


def _binary(op, scalar_op=None):
    def f(self, other):
        if isinstance(other, numbers.Number) and scalar_op is not None:
            return scalar_op(self, float(other))
        if not isinstance(other, Tensor):
            return NotImplemented
        return op(self, other)
    return f


Tensor.__add__ = _binary(_core.add, _core.add_scalar)
Tensor.__radd__ = _binary(_core.add, _core.add_scalar)
Tensor.__sub__ = _binary(_core.sub, lambda t, s: _core.add_scalar(t, -s))
Tensor.__rsub__ = _binary(lambda a, b: _core.sub(b, a), _core.rsub_scalar)
Tensor.__mul__ = _binary(_core.mul, _core.mul_scalar)
Tensor.__rmul__ = _binary(_core.mul, _core.mul_scalar)
Tensor.__truediv__ = _binary(_core.div, lambda t, s: _core.mul_scalar(t, 1.0 / s))
Tensor.__rtruediv__ = _binary(lambda a, b: _core.div(b, a), _core.rdiv_scalar)
Tensor.__matmul__ = lambda a, b: _core.matmul(a, b)
Tensor.__neg__ = lambda a: _core.neg(a)


def _pow(self, p):
    if not isinstance(p, numbers.Number):
        return NotImplemented
    return _core.pow_scalar(self, float(p))


Tensor.__pow__ = _pow

for _name in ("exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "abs", "neg"):
    # builtins do not bind as methods: wrap them
    setattr(Tensor, _name, (lambda f: lambda self: f(self))(getattr(_core, _name)))


def _dims(dim):
    if dim is None:
        return []
    if isinstance(dim, int):
        return [dim]
    return list(dim)


Tensor.sum = lambda self, dim=None, keepdim=False: _core.sum(self, _dims(dim), keepdim)
Tensor.mean = lambda self, dim=None, keepdim=False: _core.mean(self, _dims(dim), keepdim)
Tensor.amax = lambda self, dim, keepdim=False: _core.amax(self, dim, keepdim)
Tensor.pow = _pow
Tensor.reshape = lambda self, *shape: _core.reshape(self, _shape_args(shape))


def _view(self, *shape):
    if not self.is_contiguous():
        raise ValueError(f"[view] tensor of shape {list(self.shape)} is not contiguous; use reshape")
    return _core.reshape(self, _shape_args(shape))


Tensor.view = _view
Tensor.permute = lambda self, *dims: _core.permute(self, _shape_args(dims))
Tensor.transpose = lambda self, d0, d1: _core.transpose(self, d0, d1)
Tensor.t = lambda self: _core.transpose(self, 0, 1)
Tensor.T = property(lambda self: _core.permute(self, list(range(self.ndim))[::-1]))
Tensor.contiguous = lambda self: _core.contiguous(self)
Tensor.clone = lambda self: _core.add_scalar(self, 0.0) if self.dtype.is_floating_point else self._clone_raw()
Tensor.narrow = lambda self, dim, start, length: _core.narrow(self, dim, start, length)
Tensor.expand = lambda self, *shape: _core.broadcast_to(
    self, [s if s != -1 else self.shape[i - (len(_shape_args(shape)) - self.ndim)]
           for i, s in enumerate(_shape_args(shape))])
Tensor.split = lambda self, size, dim=0: _split(self, size, dim)
Tensor.chunk = lambda self, n, dim=0: _split(self, -(-self.shape[dim] // n), dim)
Tensor.index_select = lambda self, dim, index: _core.index_select(self, dim, index)
Tensor.gather = lambda self, dim, index: _core.gather(self, dim, index)
Tensor.matmul = lambda self, other: _core.matmul(self, other)
Tensor.size = lambda self, dim=None: tuple(self.shape) if dim is None else self.shape[dim]
Tensor.__len__ = lambda self: self.shape[0]
Tensor.tolist = lambda self: self.numpy().tolist()


def _split(self, size, dim):
    n = self.shape[dim]
    if isinstance(size, int):
        sizes = [min(size, n - i) for i in range(0, n, size)]
    else:
        sizes = list(size)
    return tuple(_core.split(self, sizes, dim))


def _unsqueeze(self, dim):
    nd = self.ndim + 1
    dim = dim % nd
    shape = list(self.shape)
    shape.insert(dim, 1)
    return _core.reshape(self, shape)


def _squeeze(self, dim=None):
    shape = list(self.shape)
    if dim is None:
        shape = [s for s in shape if s != 1]
    else:
        dim = dim % max(self.ndim, 1)
        if shape[dim] == 1:
            shape.pop(dim)
    return _core.reshape(self, shape)


def _flatten(self, start_dim=0, end_dim=-1):
    nd = self.ndim
    s, e = start_dim % nd, end_dim % nd
    shape = list(self.shape)
    return _core.reshape(self, shape[:s] + [-1] + shape[e + 1:])


Tensor.unsqueeze = _unsqueeze
Tensor.squeeze = _squeeze
Tensor.flatten = _flatten


def _to(self, dtype):
    if isinstance(dtype, DType):
        return _core.to_dtype(self, dtype)
    raise TypeError(f"to(): expected a peftcpp dtype, got {dtype!r}")


Tensor.to = _to
Tensor.float = lambda self: _core.to_dtype(self, float32)
Tensor.half = lambda self: _core.to_dtype(self, float16)
Tensor.bfloat16 = lambda self: _core.to_dtype(self, bfloat16)
Tensor.long = lambda self: _core.to_dtype(self, int64)
Tensor.int = lambda self: _core.to_dtype(self, int32)
Tensor.__float__ = lambda self: float(self.item())
Tensor.__int__ = lambda self: int(self.item())


def _getitem(self, idx):
    """Basic indexing: ints, slices with step 1, None, Ellipsis, and a 1-D
    integer tensor or list on one dimension (gather)."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    n_real = sum(1 for i in idx if i is not None and i is not Ellipsis)
    if any(i is Ellipsis for i in idx):
        k = idx.index(Ellipsis)
        idx = idx[:k] + (slice(None),) * (self.ndim - n_real) + idx[k + 1:]
    out = self
    dim = 0
    for i in idx:
        if i is None:
            out = _unsqueeze(out, dim)
            dim += 1
        elif isinstance(i, slice):
            start, stop, step = i.indices(out.shape[dim])
            if step != 1:
                raise IndexError("[getitem] only slices with step 1 are supported")
            out = _core.narrow(out, dim, start, max(0, stop - start))
            dim += 1
        elif isinstance(i, numbers.Integral):
            out = _core.select(out, dim, int(i))
        elif isinstance(i, (Tensor, list, np.ndarray)):
            if not isinstance(i, Tensor) and np.asarray(i).dtype.kind not in "iu":
                raise IndexError(f"[getitem] index arrays must hold integers, got dtype {np.asarray(i).dtype} "
                                 "(boolean masks are not supported)")
            index = i if isinstance(i, Tensor) else tensor(np.asarray(i, dtype=np.int64))
            out = _core.index_select(out, dim, index)
            dim += 1
        else:
            raise IndexError(f"[getitem] unsupported index {i!r}")
    return out


Tensor.__getitem__ = _getitem


def _repr(self):
    body = np.array2string(self.numpy(), precision=4, separator=", ", threshold=50)
    extra = ""
    if self.dtype != float32:
        extra += f", dtype={self.dtype.name}"
    if self.grad_fn is not None:
        extra += f", grad_fn=<{self.grad_fn}>"
    elif self.requires_grad:
        extra += ", requires_grad=True"
    return f"tensor({body}{extra})"


Tensor.__repr__ = _repr
Tensor.__array__ = lambda self, dtype=None, copy=None: (
    self.numpy() if dtype is None else self.numpy().astype(dtype))

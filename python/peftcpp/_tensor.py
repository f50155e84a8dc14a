"""Tensor conveniences: operators, torch-style methods and factories.

The class itself is the C++ ``_core.Tensor``; what is pure convenience (operator
overloads, argument parsing, indexing) is attached here, so the bindings stay
thin.
"""
import contextlib
import numbers

import numpy as np

from . import _core
from ._device import CPU, check_device, is_device

Tensor = _core.Tensor
DType = _core.DType
float32 = DType.float32
float16 = DType.float16
bfloat16 = DType.bfloat16
int32 = DType.int32
int64 = DType.int64
bool_ = DType.bool

_NP_TYPES = {float32: np.float32, float16: np.float16, int32: np.int32, int64: np.int64, bool_: np.bool_}


def _to_array(data, dtype):
    if isinstance(data, Tensor):
        return data.numpy()
    arr = np.asarray(data)
    if dtype is None:
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float16) if arr.dtype == np.float16 else arr.astype(np.float32)
        elif arr.dtype.kind in "iu":
            arr = arr.astype(np.int64)
        elif arr.dtype.kind != "b":
            raise TypeError(f"[tensor] cannot make a tensor from numpy dtype {arr.dtype} (numbers or booleans "
                            "expected)")
    return arr


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a copy of ``data`` (like ``torch.tensor``)."""
    check_device(device, "tensor")
    arr = _to_array(data, dtype)
    if dtype is not None and dtype not in (bfloat16,):
        arr = arr.astype(_NP_TYPES[dtype])
    t = _core.from_numpy(np.require(arr, requirements="C"), copy=True)
    if dtype == bfloat16:
        t = t._to_raw(bfloat16)
    if requires_grad:
        t.requires_grad_(True)
    return t


def as_tensor(data, dtype=None, device=None):
    """data itself when it is a tensor (converted to dtype if given), else tensor(data)."""
    check_device(device, "as_tensor")
    if isinstance(data, Tensor):
        return data if dtype is None else _core.to_dtype(data, dtype)
    return tensor(data, dtype=dtype)


def from_numpy_result(arr, like_float=False):
    """A tensor of a numpy result computed for an op: float64 becomes float32
    (or stays float when like_float: an operand was a float tensor)."""
    arr = np.asarray(arr)
    if arr.dtype.kind == "f" or (like_float and arr.dtype.kind in "iu"):
        arr = arr.astype(np.float32)
    return tensor(arr)


def from_numpy(arr):
    """A tensor sharing ``arr``'s memory (no copy), like ``torch.from_numpy``."""
    return _core.from_numpy(arr, copy=False)


def _shape_args(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return list(shape[0])
    return list(shape)


def _made(t, dtype, requires_grad):
    """A new float32 factory result converted to dtype, with requires_grad."""
    if dtype is not None and dtype != float32:
        t = t._to_raw(dtype)
    return t.requires_grad_(True) if requires_grad else t


def zeros(*shape, dtype=None, device=None, requires_grad=False):
    check_device(device, "zeros")
    return _core.zeros(_shape_args(shape), dtype or float32).requires_grad_(requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad=False):
    check_device(device, "ones")
    return _core.full(_shape_args(shape), 1.0, dtype or float32).requires_grad_(requires_grad)


def empty(*shape, dtype=None, device=None, requires_grad=False):
    check_device(device, "empty")
    return _core.empty(_shape_args(shape), dtype or float32).requires_grad_(requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    """As torch.full: the dtype follows fill_value (bool, int64, float32) unless given."""
    check_device(device, "full")
    if dtype is None:
        dtype = bool_ if isinstance(fill_value, (bool, np.bool_)) else \
            int64 if isinstance(fill_value, numbers.Integral) else float32
    if dtype in (int32, int64):
        return tensor(np.full(_shape_args((size,)), fill_value, dtype=_NP_TYPES[dtype]))
    return _core.full(_shape_args((size,)), float(fill_value), dtype).requires_grad_(requires_grad)


def zeros_like(t, dtype=None, device=None, requires_grad=False):
    check_device(device, "zeros_like")
    return _core.zeros(list(t.shape), dtype or t.dtype).requires_grad_(requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False):
    check_device(device, "ones_like")
    return _core.full(list(t.shape), 1.0, dtype or t.dtype).requires_grad_(requires_grad)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False):
    return full(tuple(t.shape), fill_value, dtype=dtype or t.dtype, device=device, requires_grad=requires_grad)


def empty_like(t, dtype=None, device=None, requires_grad=False):
    return empty(*t.shape, dtype=dtype or t.dtype, device=device, requires_grad=requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad=False):
    check_device(device, "rand")
    return _made(_core.rand(_shape_args(shape), 0.0, 1.0), dtype, requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad=False):
    check_device(device, "randn")
    return _made(_core.randn(_shape_args(shape), 0.0, 1.0), dtype, requires_grad)


def rand_like(t, dtype=None, device=None, requires_grad=False):
    return rand(*t.shape, dtype=dtype or t.dtype, device=device, requires_grad=requires_grad)


def randn_like(t, dtype=None, device=None, requires_grad=False):
    return randn(*t.shape, dtype=dtype or t.dtype, device=device, requires_grad=requires_grad)


def seed_from_generator():
    """A 48-bit seed drawn from the seeded global generator, for numpy
    draws (integers, permutations) that manual_seed must fix too."""
    return int(_core.rand([2], 0.0, 1.0).numpy().astype(np.float64) @ np.array([2.0 ** 24, 2.0 ** 48]))


def randint(low, high=None, size=None, dtype=None, device=None):
    """Integers uniform in [low, high), drawn from the seeded global generator."""
    check_device(device, "randint")
    if size is None:  # randint(high, size)
        low, high, size = 0, low, high
    if high is None or size is None:
        raise TypeError("[randint] expected randint(high, size) or randint(low, high, size)")
    values = np.random.default_rng(seed_from_generator()).integers(int(low), int(high), size=_shape_args((size,)))
    return tensor(values, dtype=dtype or int64)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """As torch.arange: int64 when start, end and step are integers, else float32."""
    check_device(device, "arange")
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = int64 if all(isinstance(v, numbers.Integral) for v in (start, end, step)) else float32
    np_type = {int64: np.int64, int32: np.int32}.get(dtype, np.float32)
    out = _core.from_numpy(np.arange(start, end, step, dtype=np_type), copy=True)
    return _made(out, dtype if dtype not in (int64, int32) else None, requires_grad)


def cat(tensors, dim=0):
    return _core.cat(list(tensors), dim)


def stack(tensors, dim=0):
    tensors = [tensor(t) if isinstance(t, np.ndarray) else t for t in tensors]
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

def _operand(x):
    """A tensor for an operand given as a numpy array (torch takes those
    too), the number itself for a Python/numpy scalar, None for anything else."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (numbers.Number, np.bool_)):
        return x
    if isinstance(x, np.ndarray):
        return tensor(x)
    return None


def _on_numpy(op, a, b):
    """op on numpy values, for integer and bool tensors (which never carry a
    gradient): the result's dtype follows torch's promotion (float32 as soon
    as a float takes part)."""
    like_float = any(isinstance(v, Tensor) and v.dtype.is_floating_point or isinstance(v, float) for v in (a, b))
    va = a.numpy() if isinstance(a, Tensor) else a
    vb = b.numpy() if isinstance(b, Tensor) else b
    with np.errstate(divide="ignore", invalid="ignore"):
        return from_numpy_result(op(va, vb), like_float)


def _is_float(x):
    return isinstance(x, Tensor) and x.dtype.is_floating_point


def _binary(op, scalar_op=None, np_op=None, swap=False):
    """A Tensor operator: float tensors go to the engine (differentiable),
    integer and bool operands through numpy."""
    def f(self, other):
        other = _operand(other)
        if other is None:
            return NotImplemented
        a, b = (other, self) if swap else (self, other)
        if self.dtype.is_floating_point and (_is_float(other) or isinstance(other, numbers.Number)
                                             and not isinstance(other, (bool, np.bool_))):
            if not isinstance(other, Tensor):
                if scalar_op is not None:
                    return scalar_op(self, float(other))
                other = _core.full([], float(other), float32)
                a, b = (other, self) if swap else (self, other)
            return op(a, b)
        if isinstance(other, Tensor) and other.dtype.is_floating_point and other.requires_grad \
                or self.requires_grad:
            other = other.float() if isinstance(other, Tensor) else _core.full([], float(other), float32)
            a, b = (other, self.float()) if swap else (self.float(), other)
            return op(a, b)
        return _on_numpy(np_op, a, b)
    return f


def _scalar_div(t, s):
    return _core.mul_scalar(t, 1.0 / s) if s != 0 else _core.div(t, _core.full([], 0.0, float32))


def _rpow(t, s):
    return _core.pow(_core.full([], s, float32), t)


Tensor.__add__ = _binary(_core.add, _core.add_scalar, np.add)
Tensor.__radd__ = _binary(_core.add, _core.add_scalar, np.add, swap=True)
Tensor.__sub__ = _binary(_core.sub, lambda t, s: _core.add_scalar(t, -s), np.subtract)
Tensor.__rsub__ = _binary(_core.sub, _core.rsub_scalar, np.subtract, swap=True)
Tensor.__mul__ = _binary(_core.mul, _core.mul_scalar, np.multiply)
Tensor.__rmul__ = _binary(_core.mul, _core.mul_scalar, np.multiply, swap=True)
Tensor.__truediv__ = _binary(_core.div, _scalar_div, np.true_divide)
Tensor.__rtruediv__ = _binary(_core.div, _core.rdiv_scalar, np.true_divide, swap=True)
Tensor.__pow__ = _binary(_core.pow, _core.pow_scalar, np.power)
Tensor.__rpow__ = _binary(_core.pow, _rpow, np.power, swap=True)
Tensor.__floordiv__ = lambda a, b: _on_numpy(np.floor_divide, a, _operand(b))
Tensor.__rfloordiv__ = lambda a, b: _on_numpy(np.floor_divide, _operand(b), a)
Tensor.__mod__ = lambda a, b: _on_numpy(np.remainder, a, _operand(b))
Tensor.__matmul__ = lambda a, b: _core.matmul(a, b)
Tensor.__rmatmul__ = lambda a, b: _core.matmul(b, a)
Tensor.__neg__ = lambda a: _core.neg(a) if a.dtype.is_floating_point else from_numpy_result(-a.numpy())
Tensor.__pos__ = lambda a: a
Tensor.__abs__ = lambda a: a.abs()
Tensor.__array_priority__ = 1000  # numpy defers to these operators, as for torch tensors
Tensor.__hash__ = object.__hash__  # identity, as torch (== is elementwise)


def _comparison(np_op):
    def f(self, other):
        if other is None or _operand(other) is None:
            return NotImplemented
        other = _operand(other)
        return tensor(np_op(self.numpy(), other.numpy() if isinstance(other, Tensor) else other))
    return f


Tensor.__eq__ = _comparison(np.equal)
Tensor.__ne__ = _comparison(np.not_equal)
Tensor.__lt__ = _comparison(np.less)
Tensor.__le__ = _comparison(np.less_equal)
Tensor.__gt__ = _comparison(np.greater)
Tensor.__ge__ = _comparison(np.greater_equal)


def _logical(np_op, name):
    def f(self, other):
        other = _operand(other)
        if other is None:
            return NotImplemented
        for v in (self, other):
            if isinstance(v, Tensor) and v.dtype.is_floating_point or isinstance(v, float):
                raise TypeError(f"[{name}] bitwise operators take bool or integer tensors, got a float operand")
        return tensor(np_op(self.numpy(), other.numpy() if isinstance(other, Tensor) else other))
    return f


Tensor.__and__ = Tensor.__rand__ = _logical(np.bitwise_and, "&")
Tensor.__or__ = Tensor.__ror__ = _logical(np.bitwise_or, "|")
Tensor.__xor__ = Tensor.__rxor__ = _logical(np.bitwise_xor, "^")


def _invert(self):
    if self.dtype.is_floating_point:
        raise TypeError("[~] bitwise not takes a bool or integer tensor, got " + self.dtype.name)
    return tensor(np.invert(self.numpy()))


Tensor.__invert__ = _invert


def _bool(self):
    if self.numel() != 1:
        raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous (shape {list(self.shape)})")
    return bool(self.item())


Tensor.__bool__ = _bool


def _index(self):
    if self.dtype.is_floating_point or self.numel() != 1:
        raise TypeError(f"only integer tensors of a single element can be converted to an index "
                        f"({self.dtype.name}, shape {list(self.shape)})")
    return int(self.item())


Tensor.__index__ = _index


def _item(self, core_item=Tensor.item):
    if self.dtype.is_floating_point:
        return core_item(self)
    if self.numel() != 1:
        core_item(self)  # its one-line error
    return self.numpy().reshape(-1)[0].item()  # int or bool, exact for int64


Tensor.item = _item

for _name in ("exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "abs", "neg", "sin", "cos"):
    # builtins do not bind as methods: wrap them
    setattr(Tensor, _name, (lambda f: lambda self: f(self))(getattr(_core, _name)))


def _dims(dim):
    if dim is None:
        return []
    if isinstance(dim, int):
        return [dim]
    return list(dim)


def _sum(self, dim=None, keepdim=False, dtype=None):
    if not self.dtype.is_floating_point:  # torch: integer and bool sums are int64
        axis = None if dim is None else tuple(_dims(dim))
        out = tensor(np.sum(self.numpy(), axis=axis, keepdims=keepdim, dtype=np.int64))
    else:
        out = _core.sum(self, _dims(dim), keepdim)
    return out if dtype is None else _core.to_dtype(out, dtype)


def _mean(self, dim=None, keepdim=False, dtype=None):
    return _core.mean(self if dtype is None else _core.to_dtype(self, dtype), _dims(dim), keepdim)


Tensor.sum = _sum
Tensor.mean = _mean
Tensor.amax = lambda self, dim, keepdim=False: _core.amax(self, dim, keepdim)
Tensor.pow = Tensor.__pow__
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


def _len(self):
    if self.ndim == 0:
        raise TypeError("len() of a 0-d tensor")
    return self.shape[0]


Tensor.__len__ = _len
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


def parse_to_args(op, args, kwargs):
    """(dtype or None) from torch's .to() forms: to(dtype), to(device),
    to(device, dtype), to(tensor), with device=/dtype= keywords; a device
    other than the CPU raises (naming op)."""
    dtype, device = kwargs.pop("dtype", None), kwargs.pop("device", None)
    for k in ("non_blocking", "copy", "memory_format"):
        kwargs.pop(k, None)
    if kwargs:
        raise TypeError(f"[{op}] unexpected keyword argument(s) {', '.join(kwargs)}")
    for a in args:
        if isinstance(a, DType):
            dtype = a
        elif isinstance(a, Tensor):
            dtype = a.dtype
        elif is_device(a):
            device = a
        elif a is not None:
            raise TypeError(f"[{op}] expected a dtype, a device ('cpu') or a tensor, got {type(a).__name__} {a!r}")
    check_device(device, op)
    return dtype


def _to(self, *args, **kwargs):
    copy = kwargs.get("copy", False)
    dtype = parse_to_args("Tensor.to", args, kwargs)
    out = self if dtype is None else _core.to_dtype(self, dtype)
    return out.clone() if copy and out is self else out


def _cuda(self, *args, **kwargs):
    check_device("cuda", "Tensor.cuda")


Tensor.to = _to
Tensor.cpu = lambda self: self
Tensor.cuda = _cuda
Tensor.device = property(lambda self: CPU, doc="Where the data lies: always the CPU")
Tensor.is_cuda = property(lambda self: False)
Tensor.is_cpu = property(lambda self: True)
Tensor.type_as = lambda self, other: _core.to_dtype(self, other.dtype)
Tensor.is_floating_point = lambda self: self.dtype.is_floating_point
Tensor.element_size = lambda self: self.dtype.itemsize
Tensor.new_tensor = lambda self, data, dtype=None: tensor(data, dtype=dtype or self.dtype)
Tensor.new_zeros = lambda self, *size, dtype=None: zeros(*size, dtype=dtype or self.dtype)
Tensor.new_ones = lambda self, *size, dtype=None: ones(*size, dtype=dtype or self.dtype)
Tensor.new_full = lambda self, size, fill_value, dtype=None: full(size, fill_value, dtype=dtype or self.dtype)
Tensor.new_empty = lambda self, *size, dtype=None: empty(*size, dtype=dtype or self.dtype)
Tensor.bool = lambda self: _core.to_dtype(self, bool_)
Tensor.float = lambda self: _core.to_dtype(self, float32)
Tensor.half = lambda self: _core.to_dtype(self, float16)
Tensor.bfloat16 = lambda self: _core.to_dtype(self, bfloat16)
Tensor.long = lambda self: _core.to_dtype(self, int64)
Tensor.int = lambda self: _core.to_dtype(self, int32)
Tensor.__float__ = lambda self: float(self.item())
Tensor.__int__ = lambda self: int(self.item())


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

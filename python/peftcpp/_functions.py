"""torch's math functions and the Tensor methods of the same names.

Differentiable float ops call the engine (each a native kernel with its
backward node: where, clamp, pow, maximum/minimum, softmax, ...), or compose
those where torch defines the op that way (var, std, triu on a tensor that
requires grad, max/topk values gathered at their indices). Ops whose result
carries no gradient (comparisons, argmax, indices, integer and bool tensors)
run on numpy views of the data.
"""
import builtins
import math
import numbers
from collections import namedtuple

import numpy as np

from . import _core
from ._tensor import Tensor, bool_, float32, from_numpy_result, is_grad_enabled, tensor

inf = math.inf
nan = math.nan
pi = math.pi
e = math.e

_values_indices = {name: namedtuple(name, ["values", "indices"]) for name in ("max", "min", "topk", "sort")}


def as_input(x, op, name="input"):
    """x as a tensor (a numpy array is converted, as every op accepts); else a
    one-line TypeError naming op, the argument and its type."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return tensor(x)
    raise TypeError(f"[{op}] argument '{name}' must be a Tensor (or a numeric numpy array), got {type(x).__name__}")


def _value_tensor(v, op, name):
    """A scalar operand as a 0-d float32 tensor (a tensor or array as a tensor)."""
    if isinstance(v, (numbers.Number, np.bool_)):
        return _core.full([], float(v), float32)
    return as_input(v, op, name)


def _in_graph(*xs):
    return is_grad_enabled() and builtins.any(isinstance(x, Tensor) and x.requires_grad for x in xs)


def _np(x):
    return x.numpy() if isinstance(x, Tensor) else x


# ------------------------------------------------------------ in place
def apply_in_place(self, out, op):
    """What torch's in-place ops do, on this engine: without autograd the
    result is written into self's memory (views see it); in the graph, self
    takes the result's data and history (so tensors saved for backward keep
    their values), and a leaf that requires grad is refused, as in torch."""
    if out.grad_fn is not None:
        if self.is_leaf and self.requires_grad:
            raise RuntimeError(f"[{op}] a leaf tensor that requires grad cannot be modified in place; use the "
                               f"out-of-place {op.rstrip('_')} or wrap the call in torch.no_grad()")
        self._rebind(out)
        return self
    if tuple(out.shape) != tuple(self.shape):
        out = _core.broadcast_to(out, list(self.shape))
    if self.is_contiguous():
        self.copy_(out)
    elif self.dtype != _core.DType.bfloat16:
        self.numpy()[...] = out.numpy()  # a strided view: numpy writes through the strides
    else:
        self._rebind(_core.to_dtype(out, self.dtype))
    return self


def _in_place(name):
    def f(self, *args, **kwargs):
        return apply_in_place(self, getattr(Tensor, name)(self, *args, **kwargs), name + "_")
    f.__name__ = name + "_"
    return f


# ------------------------------------------------------------ elementwise
def _is_float_operand(v):
    return (isinstance(v, Tensor) and v.dtype.is_floating_point) or (isinstance(v, np.ndarray) and v.dtype.kind == "f")


def _engine_operand(v, op, name):
    """An operand of a float op as a float tensor (a number as a 0-d one)."""
    t = _value_tensor(v, op, name)
    return t if t.dtype.is_floating_point else _core.to_dtype(t, float32)


def where(condition, input=None, other=None):
    """condition ? input : other (broadcast); where(condition) gives the
    indices of the true elements, one tensor per dimension."""
    cond = condition if isinstance(condition, Tensor) else tensor(np.asarray(condition))
    if input is None and other is None:
        return tuple(tensor(ix) for ix in np.nonzero(cond.numpy()))
    if builtins.any(_is_float_operand(v) for v in (input, other)) or _in_graph(input, other):
        return _core.where(cond, _engine_operand(input, "where", "input"), _engine_operand(other, "where", "other"))
    for name, v in (("input", input), ("other", other)):
        if not isinstance(v, (Tensor, np.ndarray, numbers.Number, np.bool_)):
            raise TypeError(f"[where] argument '{name}' must be a Tensor, a numpy array or a number, "
                            f"got {type(v).__name__}")
    return from_numpy_result(np.where(_np(cond).astype(bool), _np(input), _np(other)),
                             like_float=builtins.any(isinstance(v, float) for v in (input, other)))


def _check_mask(mask, op):
    mask = as_input(mask, op, "mask")
    if mask.dtype != bool_:
        raise TypeError(f"[{op}] the mask must be a bool tensor, got {mask.dtype.name} (use mask.bool())")
    return mask


def masked_fill(input, mask, value):
    """input with value where mask is true (mask broadcasts to input)."""
    input = as_input(input, "masked_fill")
    mask = _check_mask(mask, "masked_fill")
    if isinstance(value, Tensor) and value.numel() != 1:
        raise ValueError(f"[masked_fill] value must be a number or a 0-d tensor, got shape {list(value.shape)}")
    if input.dtype.is_floating_point:
        return _core.where(mask, _value_tensor(value, "masked_fill", "value"), input)
    out = np.where(mask.numpy(), _np(value), input.numpy())
    return tensor(out.astype(input.numpy().dtype))


def clamp(input, min=None, max=None):
    input = as_input(input, "clamp")
    if min is None and max is None:
        raise ValueError("[clamp] at least one of min and max must be given")
    if not input.dtype.is_floating_point:
        return tensor(np.clip(input.numpy(), _np(min), _np(max)).astype(input.numpy().dtype))
    out = input
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        if min is not None:
            out = _core.maximum(out, _value_tensor(min, "clamp", "min"))
        if max is not None:
            out = _core.minimum(out, _value_tensor(max, "clamp", "max"))
        return out
    return _core.clamp(out, -inf if min is None else float(min), inf if max is None else float(max))


def maximum(input, other):
    return _core.maximum(as_input(input, "maximum"), as_input(other, "maximum", "other"))


def minimum(input, other):
    return _core.minimum(as_input(input, "minimum"), as_input(other, "minimum", "other"))


def pow(input, exponent):
    if isinstance(input, (numbers.Number, np.bool_)):
        return as_input(exponent, "pow", "exponent").__rpow__(input)
    return as_input(input, "pow").__pow__(exponent)


def square(input):
    input = as_input(input, "square")
    return input * input


def triu(input, diagonal=0):
    """Elements on and above the given diagonal of the last two dimensions; zeros below."""
    return _triangle(input, diagonal, np.triu, "triu")


def tril(input, diagonal=0):
    """Elements on and below the given diagonal of the last two dimensions; zeros above."""
    return _triangle(input, diagonal, np.tril, "tril")


def _triangle(input, diagonal, np_op, op):
    input = as_input(input, op)
    if input.ndim < 2:
        raise ValueError(f"[{op}] input must have at least 2 dimensions, got shape {list(input.shape)}")
    if _in_graph(input):
        keep = np_op(np.ones(input.shape[-2:], dtype=bool), int(diagonal))
        return _core.where(tensor(keep), input, _core.full([], 0.0, float32))
    return from_numpy_result(np_op(input.numpy(), int(diagonal)), like_float=input.dtype.is_floating_point)


def isnan(input):
    return tensor(np.isnan(as_input(input, "isnan").numpy()))


def isinf(input):
    return tensor(np.isinf(as_input(input, "isinf").numpy()))


def isfinite(input):
    return tensor(np.isfinite(as_input(input, "isfinite").numpy()))


def logical_not(input):
    return tensor(np.logical_not(as_input(input, "logical_not").numpy()))


def logical_and(input, other):
    return tensor(np.logical_and(as_input(input, "logical_and").numpy(), _np(other)))


def logical_or(input, other):
    return tensor(np.logical_or(as_input(input, "logical_or").numpy(), _np(other)))


# ------------------------------------------------------------ reductions
def _axis(dim):
    return None if dim is None else (tuple(dim) if isinstance(dim, (tuple, list)) else int(dim))


def argmax(input, dim=None, keepdim=False):
    """Index of the first maximum (over the flattened tensor when dim is None)."""
    return _arg(input, dim, keepdim, np.argmax, "argmax")


def argmin(input, dim=None, keepdim=False):
    return _arg(input, dim, keepdim, np.argmin, "argmin")


def _arg(input, dim, keepdim, np_op, op):
    arr = as_input(input, op).numpy()
    if dim is None:
        out = np.asarray(np_op(arr))
        return tensor(out.reshape([1] * arr.ndim) if keepdim else out)
    return tensor(np_op(arr, axis=int(dim), keepdims=keepdim))


def _extreme(input, dim, keepdim, other, largest):
    op = "max" if largest else "min"
    input = as_input(input, op)
    if isinstance(dim, (Tensor, np.ndarray)) and other is None:  # torch.max(a, b)
        dim, other = None, dim
    if other is not None:
        return maximum(input, other) if largest else minimum(input, other)
    if dim is None:  # the whole tensor
        if not input.dtype.is_floating_point:
            return tensor((np.max if largest else np.min)(input.numpy()))
        flat = _core.reshape(input if largest else _core.neg(input), [-1])
        out = _core.amax(flat, 0, False)
        return out if largest else _core.neg(out)
    idx = _arg(input, dim, True, np.argmax if largest else np.argmin, op)
    if input.dtype.is_floating_point:
        values = _core.gather(input, int(dim), idx)
    else:
        values = tensor(np.take_along_axis(input.numpy(), idx.numpy(), axis=int(dim)))
    if not keepdim:
        values, idx = values.squeeze(int(dim)), idx.squeeze(int(dim))
    return _values_indices[op](values, idx)


def max(input, dim=None, keepdim=False, *, other=None):
    """max(input) -> the largest value; max(input, dim) -> (values, indices);
    max(input, other_tensor) -> the elementwise maximum."""
    return _extreme(input, dim, keepdim, other, True)


def min(input, dim=None, keepdim=False, *, other=None):
    return _extreme(input, dim, keepdim, other, False)


def _ordered(input, dim, descending, op):
    input = as_input(input, op)
    arr = input.numpy()
    order = np.argsort(-arr if descending and arr.dtype != np.bool_ else arr, axis=dim, kind="stable")
    if descending and arr.dtype == np.bool_:
        order = np.flip(np.argsort(arr, axis=dim, kind="stable"), axis=dim)
    return input, np.ascontiguousarray(order)


def _take(input, idx, dim):
    if input.dtype.is_floating_point:
        return _core.gather(input, dim, idx)
    return tensor(np.take_along_axis(input.numpy(), idx.numpy(), axis=dim))


def sort(input, dim=-1, descending=False, stable=False):
    input, order = _ordered(input, dim, descending, "sort")
    idx = tensor(order)
    return _values_indices["sort"](_take(input, idx, dim % input.ndim), idx)


def argsort(input, dim=-1, descending=False, stable=False):
    return tensor(_ordered(input, dim, descending, "argsort")[1])


def topk(input, k, dim=-1, largest=True, sorted=True):
    input, order = _ordered(input, dim, largest, "topk")
    dim = dim % input.ndim
    if not 0 <= k <= input.shape[dim]:
        raise ValueError(f"[topk] k={k} is out of range for dimension {dim} of size {input.shape[dim]}")
    idx = tensor(np.ascontiguousarray(np.take(order, np.arange(k), axis=dim)))
    return _values_indices["topk"](_take(input, idx, dim), idx)


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance over dim (all dims when None) with torch's correction:
    unbiased=True / correction=1 (the default) divides by N - 1, unbiased=False by N."""
    input = as_input(input, "var")
    if isinstance(dim, bool) and unbiased is None:  # var(unbiased) of the whole tensor
        dim, unbiased = None, dim
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    dims = [] if dim is None else ([dim] if isinstance(dim, int) else list(dim))
    n = 1
    for d in dims or range(input.ndim):
        n *= input.shape[d]
    centered = input - _core.mean(input, dims, True)
    total = _core.sum(centered * centered, dims, keepdim)
    return total / (n - correction) if n - correction > 0 else total / 0.0


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return _core.sqrt(var(input, dim, unbiased, keepdim, correction=correction))


def any(input, dim=None, keepdim=False):
    return tensor(np.any(as_input(input, "any").numpy(), axis=_axis(dim), keepdims=keepdim))


def all(input, dim=None, keepdim=False):
    return tensor(np.all(as_input(input, "all").numpy(), axis=_axis(dim), keepdims=keepdim))


def softmax(input, dim, dtype=None):
    input = as_input(input, "softmax")
    return _core.softmax(input if dtype is None else _core.to_dtype(input, dtype), int(dim))


def log_softmax(input, dim, dtype=None):
    input = as_input(input, "log_softmax")
    return _core.log_softmax(input if dtype is None else _core.to_dtype(input, dtype), int(dim))


def _repeat(self, *sizes):
    """Tiles the tensor sizes[i] times along each dimension (differentiable)."""
    sizes = list(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else list(sizes)
    if len(sizes) < self.ndim:
        raise ValueError(f"[repeat] {len(sizes)} repeat counts for a tensor of {self.ndim} dimensions")
    shape = [1] * (len(sizes) - self.ndim) + list(self.shape)
    spread, wide = [], []
    for r, s in zip(sizes, shape):
        spread += [1, s]
        wide += [r, s]
    x = _core.broadcast_to(_core.reshape(self, spread), wide)
    return _core.reshape(_core.contiguous(x), [r * s for r, s in zip(sizes, shape)])


# ------------------------------------------------------------ Tensor methods
_METHODS = {
    "masked_fill": masked_fill, "where": lambda self, condition, other: where(condition, self, other),
    "clamp": clamp, "clip": clamp, "clamp_min": lambda self, m: clamp(self, min=m),
    "clamp_max": lambda self, m: clamp(self, max=m), "maximum": maximum, "minimum": minimum,
    "square": square, "triu": triu, "tril": tril, "isnan": isnan, "isinf": isinf, "isfinite": isfinite,
    "logical_not": logical_not, "logical_and": logical_and, "logical_or": logical_or,
    "argmax": argmax, "argmin": argmin, "max": max, "min": min, "sort": sort, "argsort": argsort, "topk": topk,
    "var": var, "std": std, "any": any, "all": all, "softmax": softmax, "log_softmax": log_softmax,
    "repeat": _repeat, "expand_as": lambda self, other: self.expand(*other.shape),
    "view_as": lambda self, other: self.view(*other.shape),
    "reshape_as": lambda self, other: self.reshape(*other.shape),
    "eq": Tensor.__eq__, "ne": Tensor.__ne__, "lt": Tensor.__lt__, "le": Tensor.__le__, "gt": Tensor.__gt__,
    "ge": Tensor.__ge__, "add": Tensor.__add__, "sub": Tensor.__sub__, "mul": Tensor.__mul__,
    "div": Tensor.__truediv__,
}
for _name, _fn in _METHODS.items():
    setattr(Tensor, _name, _fn)
for _name in ("masked_fill", "clamp", "clamp_min", "clamp_max", "add", "sub", "mul", "div", "pow", "exp", "log",
              "sqrt", "tanh", "sigmoid", "relu", "abs", "neg", "sin", "cos", "triu", "tril", "square"):
    setattr(Tensor, _name + "_", _in_place(_name))


def _augmented(name, operator):
    """x += y and the like, in place as in torch (a Parameter updated under
    no_grad by `p -= lr * p.grad` is updated, not rebound)."""
    def f(self, other):
        out = operator(self, other)
        if out is NotImplemented:
            return out
        return apply_in_place(self, out, name)
    return f


Tensor.__iadd__ = _augmented("add_", Tensor.__add__)
Tensor.__isub__ = _augmented("sub_", Tensor.__sub__)
Tensor.__imul__ = _augmented("mul_", Tensor.__mul__)
Tensor.__itruediv__ = _augmented("div_", Tensor.__truediv__)


def _set_data(self, value):
    """t.data = v: v's values become t's (same shape), outside autograd."""
    value = as_input(value, "Tensor.data", "value")
    if tuple(value.shape) != tuple(self.shape):
        raise ValueError(f"[Tensor.data] cannot assign data of shape {list(value.shape)} to a tensor of shape "
                         f"{list(self.shape)}")
    self.detach().copy_(value)


Tensor.data = property(Tensor.detach, _set_data, doc="The tensor's data outside autograd (assignable)")


def _sampled_in_place(name, draw):
    def f(self, *args, **kwargs):
        return apply_in_place(self, draw(list(self.shape), *args, **kwargs), name)
    return f


Tensor.normal_ = _sampled_in_place("normal_", lambda shape, mean=0.0, std=1.0: _core.randn(shape, mean, std))
Tensor.uniform_ = _sampled_in_place("uniform_", lambda shape, a=0.0, b=1.0: _core.rand(shape, a, b))


def _method_function(name):
    """torch.<name>(input, ...) for a Tensor method (the input may be a numpy array)."""
    def f(input, *args, **kwargs):
        return getattr(as_input(input, name), name)(*args, **kwargs)
    f.__name__ = name
    f.__doc__ = f"torch.{name}(input, ...): input.{name}(...)"
    return f


for _name in ("exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "abs", "neg", "sin", "cos", "sum", "mean",
              "reshape", "transpose", "permute", "flatten", "squeeze", "unsqueeze", "narrow", "split", "chunk",
              "index_select", "clone", "t", "numel", "amax", "eq", "ne", "lt", "le", "gt", "ge", "add", "sub", "mul",
              "div", "matmul"):
    if _name not in globals():
        globals()[_name] = _method_function(_name)
del _name, _fn

"""Tensor indexing: ``t[...]`` (views where the layout allows, differentiable)
and ``t[...] = value`` (in place, for tensors outside the autograd graph)."""
import numbers

import numpy as np

from . import _core
from ._tensor import Tensor, is_grad_enabled, tensor


def _index_tensor(i, size):
    """A 1-D int64 tensor of the positions i names along a dimension of this
    size (negative positions count from the end, as in torch)."""
    arr = i.numpy() if isinstance(i, Tensor) else np.asarray(i)
    if arr.dtype.kind not in "iu":
        raise IndexError(f"[getitem] index arrays must hold integers or booleans, got dtype {arr.dtype}")
    arr = arr.astype(np.int64).reshape(-1)
    return tensor(np.where(arr < 0, arr + size, arr))


def _is_mask(i):
    return (isinstance(i, Tensor) and i.dtype == _core.DType.bool) or \
        (isinstance(i, (np.ndarray, list)) and np.asarray(i).dtype == np.bool_)


def _getitem(self, idx):
    """ints, slices with step 1, None, Ellipsis, an integer tensor/list/array
    on one dimension (index_select), and boolean masks over one or more
    dimensions (the selected elements, flattened, as in torch)."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    n_real = sum(np.asarray(i).ndim if _is_mask(i) else 1 for i in idx if i is not None and i is not Ellipsis)
    if any(i is Ellipsis for i in idx):
        k = idx.index(Ellipsis)
        idx = idx[:k] + (slice(None),) * (self.ndim - n_real) + idx[k + 1:]
    out = self
    dim = 0
    for i in idx:
        if i is None:
            out = out.unsqueeze(dim)
            dim += 1
        elif isinstance(i, slice):
            start, stop, step = i.indices(out.shape[dim])
            if step != 1:
                raise IndexError("[getitem] only slices with step 1 are supported")
            out = _core.narrow(out, dim, start, max(0, stop - start))
            dim += 1
        elif isinstance(i, numbers.Integral):
            out = _core.select(out, dim, int(i))
        elif _is_mask(i):
            mask = i.numpy() if isinstance(i, Tensor) else np.asarray(i)
            shape = list(out.shape)
            if list(mask.shape) != shape[dim:dim + mask.ndim]:
                raise IndexError(f"[getitem] mask of shape {list(mask.shape)} does not match dimensions "
                                 f"{dim}..{dim + mask.ndim - 1} of a tensor of shape {shape}")
            out = _core.reshape(out, shape[:dim] + [-1] + shape[dim + mask.ndim:])
            out = _core.index_select(out, dim, tensor(np.flatnonzero(mask)))
            dim += 1
        elif isinstance(i, (Tensor, list, np.ndarray)):
            out = _core.index_select(out, dim, _index_tensor(i, out.shape[dim]))
            dim += 1
        else:
            raise IndexError(f"[getitem] unsupported index {type(i).__name__} {i!r}")
    return out


def _numpy_index(idx):
    if isinstance(idx, tuple):
        return tuple(_numpy_index(i) for i in idx)
    return idx.numpy() if isinstance(idx, Tensor) else idx


def _setitem(self, idx, value):
    """Writes value into the selected elements, in place (numpy's rules)."""
    if is_grad_enabled() and (self.requires_grad or isinstance(value, Tensor) and value.requires_grad):
        raise RuntimeError("[setitem] assigning into a tensor that takes part in autograd is not supported; build "
                           "a new tensor (torch.where, masked_fill) or assign under torch.no_grad()")
    if self.dtype == _core.DType.bfloat16:
        raise TypeError("[setitem] assigning into a bfloat16 tensor is not supported; convert it first")
    view = self.numpy()
    view[_numpy_index(idx)] = value.numpy() if isinstance(value, Tensor) else value


Tensor.__getitem__ = _getitem
Tensor.__setitem__ = _setitem

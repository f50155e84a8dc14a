"""Layers with torch.nn's names, parameter names and default initialisation."""
import contextlib
import math
from collections import OrderedDict

from .. import _core
from .._tensor import empty, float32
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter


class _InitMode:
    empty = False


@contextlib.contextmanager
def init_empty_weights():
    """Layers built inside get shape-only placeholder weights (no memory, no
    random init), for models whose weights come from a checkpoint next."""
    prev = _InitMode.empty
    _InitMode.empty = True
    try:
        yield
    finally:
        _InitMode.empty = prev


def empty_weights_enabled():
    """True inside init_empty_weights (layers built now allocate nothing)."""
    return _InitMode.empty


def _new_weight(*shape):
    return _core.meta(list(shape), float32) if _InitMode.empty else empty(*shape)


class Identity(Module):
    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Linear(Module):
    def __init__(self, in_features, out_features, bias=True, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(_new_weight(out_features, in_features))
        self.bias = Parameter(_new_weight(out_features)) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        if not _InitMode.empty:
            self.reset_parameters()
        if dtype is not None and dtype != float32:
            self.to(dtype)

    def reset_parameters(self):
        # torch's default: kaiming_uniform(a=√5) => U(±1/√fan_in), same for bias
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, dtype=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.weight = Parameter(_new_weight(num_embeddings, embedding_dim))
        if not _InitMode.empty:
            self.reset_parameters()
        if dtype is not None and dtype != float32:
            self.to(dtype)

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.numpy()[self.padding_idx] = 0.0

    def forward(self, ids):
        return F.embedding(ids, self.weight)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"


def _norm_weight(module, normalized_shape, elementwise_affine, init_value):
    """Sets normalized_shape (a tuple) and the [C] weight (None without affine) shared by the norms."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    module.normalized_shape = tuple(normalized_shape)
    n = module.normalized_shape[-1]
    module.register_parameter("weight", Parameter(_core.full([n], init_value, float32)) if elementwise_affine
                              else None)
    return n


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        n = _norm_weight(self, normalized_shape, elementwise_affine, 1.0)
        self.register_parameter("bias", Parameter(_core.zeros([n], float32)) if elementwise_affine and bias
                                else None)

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class RMSNorm(Module):
    """torch.nn.RMSNorm; offset=1.0 gives Gemma's (1 + weight) scaling."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, offset=0.0):
        super().__init__()
        self.eps = eps
        self.offset = offset
        _norm_weight(self, normalized_shape, elementwise_affine, 0.0 if offset else 1.0)

    def forward(self, x):
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps, self.offset)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


class Dropout(Module):
    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability has to be in [0, 1), but got {p}")
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class GELU(Module):
    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)


class SiLU(Module):
    def forward(self, x):
        return F.silu(x)


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class Tanh(Module):
    def forward(self, x):
        return x.tanh()


class Softmax(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = -1 if dim is None else dim

    def forward(self, x):
        return F.softmax(x, self.dim)


class LogSoftmax(Softmax):
    def forward(self, x):
        return F.log_softmax(x, self.dim)


class ModuleList(Module):
    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _idx(self, i):
        n = len(self._modules)
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range for ModuleList of length {n}")
        return str(i % n)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return ModuleList(list(self._modules.values())[i])
        return self._modules[self._idx(i)]

    def __setitem__(self, i, m):
        self.add_module(self._idx(i), m)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, m):
        self.add_module(str(len(self._modules)), m)
        return self

    def extend(self, ms):
        for m in ms:
            self.append(m)
        return self


class _KeyedDict(Module):
    """Mapping access shared by ModuleDict and ParameterDict; `_store` names
    the Module dict (`_modules` / `_parameters`) whose entries are the items."""
    _store = "_modules"

    def __init__(self, items=None):
        super().__init__()
        for k, v in (items or {}).items():
            self[k] = v

    def _entries(self):
        return self.__dict__[self._store]

    def __getitem__(self, k):
        return self._entries()[k]

    def __contains__(self, k):
        return k in self._entries()

    def __len__(self):
        return len(self._entries())

    def __iter__(self):
        return iter(self._entries())

    def keys(self):
        return self._entries().keys()

    def items(self):
        return self._entries().items()

    def values(self):
        return self._entries().values()

    def pop(self, k, *default):
        return self._entries().pop(k, *default)


class ModuleDict(_KeyedDict):
    def __init__(self, modules=None):
        super().__init__(modules)

    def __setitem__(self, k, m):
        self.add_module(k, m)


class ParameterDict(_KeyedDict):
    """torch.nn.ParameterDict's naming: parameters registered under their keys."""
    _store = "_parameters"

    def __init__(self, parameters=None):
        super().__init__(parameters)

    def __setitem__(self, k, p):
        self.register_parameter(k, p)


class Conv1D(Module):
    """transformers' Conv1D (transformers.pytorch_utils): a linear layer whose
    weight is stored [in, out]; forward is x @ weight + bias. Here, not in an
    architecture, so that LoRA's layer detection needs no model import."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf, self.nx = nf, nx
        w = _core.zeros([nx, nf], float32)
        init.normal_(w, std=0.02)
        self.weight = Parameter(w)
        self.bias = Parameter(_core.zeros([nf], float32))

    def forward(self, x):
        shape = list(x.shape)
        y = _core.matmul(x.reshape(-1, shape[-1]), self.weight) + self.bias
        return y.reshape(*shape[:-1], self.nf)

    def extra_repr(self):
        return f"nf={self.nf}, nx={self.nx}"


class Sequential(Module):
    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for k, m in args[0].items():
                self.add_module(k, m)
        else:
            for i, m in enumerate(args):
                self.add_module(str(i), m)

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

"""AdamW and SGD with torch's optimizer API, over the C++ kernels.

The Python side keeps what torch keeps (``param_groups``, ``state``,
``state_dict``); each ``step()`` hands a whole parameter group to one C++
call that updates parameters and state in place without the GIL. The
arithmetic reproduces torch's single-tensor (``foreach=False``) path.
"""
import json
from collections.abc import MutableMapping

import numpy as np

from .. import _core
from .. import serialization
from .._tensor import Tensor, enable_grad, float32

__all__ = ["Optimizer", "AdamW", "SGD", "clip_grad_norm_"]

_STATE_FORMAT = "peftcpp.optim"
_STATE_FORMAT_VERSION = "1"


class _ParamState(MutableMapping):
    """``param -> dict`` keyed by identity, returning (and keeping) an empty
    dict for a parameter not seen yet, like torch's ``defaultdict(dict)``.
    Identity rather than ``==``, which tensors may define elementwise."""

    def __init__(self):
        self._d = {}

    def __getitem__(self, p):
        if id(p) not in self._d:
            self._d[id(p)] = (p, {})
        return self._d[id(p)][1]

    def __setitem__(self, p, value):
        self._d[id(p)] = (p, value)

    def __delitem__(self, p):
        del self._d[id(p)]

    def __contains__(self, p):
        return id(p) in self._d

    def get(self, p, default=None):
        entry = self._d.get(id(p))
        return default if entry is None else entry[1]

    def __iter__(self):
        return (p for p, _ in list(self._d.values()))

    def __len__(self):
        return len(self._d)

    def __repr__(self):
        return f"_ParamState({len(self)} parameters)"


def _is_torch_tensor(v):
    return type(v).__module__.startswith("torch") and hasattr(v, "detach") and hasattr(v, "numpy")


def _state_tensor(value, param, what):
    """A fresh float32 contiguous copy of a state tensor (peftcpp, numpy or
    torch), checked against the parameter's shape."""
    if isinstance(value, Tensor):
        t = value._to_raw(float32)._clone_raw() if value.dtype != float32 else value._clone_raw()
    else:
        if _is_torch_tensor(value):
            value = value.detach().cpu().float().numpy()
        if not isinstance(value, np.ndarray):
            raise TypeError(f"[load_state_dict] {what} is a {type(value).__name__}, expected a tensor")
        t = _core.from_numpy(np.array(value, dtype=np.float32, order="C"), copy=False)  # keeps 0-d
    if tuple(t.shape) != tuple(param.shape):
        raise ValueError(f"[load_state_dict] {what} has shape {list(t.shape)} but the parameter has shape "
                         f"{list(param.shape)}")
    return t


def _step_count(value, what):
    v = float(value)  # torch stores the step as a float tensor
    if v < 0 or v != int(v):
        raise ValueError(f"[load_state_dict] {what} must be a non-negative integer, got {value!r}")
    return int(v)


class Optimizer:
    """Base class: parameter groups, state, zero_grad, (de)serialization.
    Subclasses define ``_step_group`` and ``_check_group``."""

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = _ParamState()
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            "but got a Tensor")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, param_group):
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering "
                            "of tensors in sets will change between runs. Please use a list instead.")
        else:
            params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        ids = [id(p) for p in params]
        if len(set(ids)) != len(ids):
            raise ValueError("a parameter group contains the same parameter more than once")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if seen.intersection(ids):
            raise ValueError("some parameters appear in more than one parameter group")
        group = dict(param_group)
        group["params"] = params
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group):
        pass

    def _step_group(self, group):
        raise NotImplementedError

    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.zero_()

    def step(self, closure=None):
        """One update of every parameter that has a gradient. ``closure``, if
        given, re-evaluates the model and returns the loss (as in torch)."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._step_group(group)
        return loss

    # ------------------------------------------------------------ state_dict

    def _packed_groups(self):
        index, groups = {}, []
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            for p in g["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in g["params"]]
            groups.append(packed)
        return groups, index

    def state_dict(self):
        """``{'state': {index: {...}}, 'param_groups': [...]}`` as torch lays it
        out, parameters numbered in group order. The state tensors are copies
        (a snapshot), so later steps do not change a saved state dict."""
        groups, index = self._packed_groups()
        state = {}
        for p, s in self.state.items():
            if s and id(p) in index:
                state[index[id(p)]] = {k: (v._clone_raw() if isinstance(v, Tensor) else v) for k, v in s.items()}
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restores a state dict from ``state_dict()`` (or one from the torch
        optimizer of the same kind: its tensors are converted). The
        hyper-parameters come from the state dict, the parameters stay ours.
        Everything is checked before anything changes."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for g, sg in zip(self.param_groups, saved_groups):
            if len(g["params"]) != len(sg["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                                 "optimizer's group")
        id_map = {}
        for g, sg in zip(self.param_groups, saved_groups):
            for saved_id, p in zip(sg["params"], g["params"]):
                id_map[int(saved_id)] = p
        new_state = _ParamState()
        for key, values in state_dict["state"].items():
            k = int(key)
            if k not in id_map:
                raise ValueError(f"[load_state_dict] state for parameter {k}, which no parameter group lists")
            p = id_map[k]
            entry = {}
            for name, v in values.items():
                what = f"state '{name}' of parameter {k}"
                if name == "step":
                    entry[name] = _step_count(v, what)
                elif isinstance(v, Tensor) or isinstance(v, np.ndarray) or _is_torch_tensor(v):
                    entry[name] = _state_tensor(v, p, what)
                else:
                    entry[name] = v
            new_state[p] = entry
        new_groups = []
        for g, sg in zip(self.param_groups, saved_groups):
            ng = {k: v for k, v in sg.items() if k != "params"}
            if "betas" in ng:
                ng["betas"] = tuple(float(b) for b in ng["betas"])
            ng["params"] = g["params"]
            self._check_group(ng)
            new_groups.append(ng)
        self.state = new_state
        self.param_groups = new_groups

    # --------------------------------------------------------- files on disk

    def save_state(self, path):
        """Writes the optimizer state to a safetensors file (atomically): the
        state tensors as ``state.<index>.<name>``, the step counts and the
        param_groups as JSON in the metadata. ``load_state`` restores it bit
        for bit."""

        groups, index = self._packed_groups()
        tensors, scalars = {}, {}
        for p, s in self.state.items():
            if not s or id(p) not in index:
                continue
            i = index[id(p)]
            for name, v in s.items():
                if isinstance(v, Tensor):
                    tensors[f"state.{i}.{name}"] = v
                else:
                    scalars.setdefault(str(i), {})[name] = v
        try:
            meta = {
                "format": _STATE_FORMAT,
                "format_version": _STATE_FORMAT_VERSION,
                "optimizer": type(self).__name__,
                "param_groups": json.dumps(groups),
                "state": json.dumps(scalars),
            }
        except TypeError as e:
            raise TypeError(f"[save_state] a hyper-parameter or state value is not JSON-serializable: {e}") from None
        serialization.save_file(tensors, path, metadata=meta)

    def load_state(self, path):
        """Restores what ``save_state`` wrote; the optimizer must be of the same
        kind with the same parameter group sizes."""

        tensors, meta = serialization.load_file_with_metadata(path)
        if meta.get("format") != _STATE_FORMAT:
            raise ValueError(f"[load_state] {path} is not a peftcpp optimizer state file")
        if meta.get("optimizer") != type(self).__name__:
            raise ValueError(f"[load_state] {path} holds {meta.get('optimizer')} state, not {type(self).__name__}")
        state = {}
        for i, values in json.loads(meta["state"]).items():
            state.setdefault(int(i), {}).update(values)
        for name, t in tensors.items():
            parts = name.split(".", 2)
            if len(parts) != 3 or parts[0] != "state" or not parts[1].isdigit():
                raise ValueError(f"[load_state] {path}: unexpected tensor '{name}'")
            state.setdefault(int(parts[1]), {})[parts[2]] = t
        self.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)


def _grads_of(group):
    return [p for p in group["params"] if p.grad is not None]


class AdamW(Optimizer):
    """torch.optim.AdamW: decoupled weight decay, then Adam's moments with
    bias correction. State per parameter: ``step`` (int), ``exp_avg``,
    ``exp_avg_sq``, created on the parameter's first step with a gradient."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, *, amsgrad=False,
                 maximize=False, foreach=None):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach)
        super().__init__(params, defaults)

    def _check_group(self, g):
        lr, (b1, b2), eps, wd = float(g["lr"]), g["betas"], g["eps"], g["weight_decay"]
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= b1 < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {b1}")
        if not 0.0 <= b2 < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {b2}")
        if not 0.0 <= wd:
            raise ValueError(f"Invalid weight_decay value: {wd}")
        if g.get("amsgrad") or g.get("maximize"):
            raise NotImplementedError("AdamW: amsgrad and maximize are not supported")

    def _step_group(self, group):
        params = _grads_of(group)
        if not params:
            return
        states = [self.state.get(p) or {} for p in params]
        b1, b2 = group["betas"]
        exp_avgs, exp_avg_sqs, steps = _core.adamw_step(
            params, [s.get("exp_avg") for s in states], [s.get("exp_avg_sq") for s in states],
            [int(s.get("step", 0)) for s in states], float(group["lr"]), float(b1), float(b2),
            float(group["eps"]), float(group["weight_decay"]))
        for p, m, v, n in zip(params, exp_avgs, exp_avg_sqs, steps):
            st = self.state[p]
            st["step"] = n
            st["exp_avg"] = m
            st["exp_avg_sq"] = v


class SGD(Optimizer):
    """torch.optim.SGD: L2 weight decay into the gradient, momentum with
    dampening (the buffer starts as the first gradient), optional Nesterov.
    State per parameter (only with momentum): ``momentum_buffer``."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach)
        super().__init__(params, defaults)

    def _check_group(self, g):
        lr = float(g["lr"])
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if g["momentum"] < 0.0:
            raise ValueError(f"Invalid momentum value: {g['momentum']}")
        if g["weight_decay"] < 0.0:
            raise ValueError(f"Invalid weight_decay value: {g['weight_decay']}")
        if g["nesterov"] and (g["momentum"] <= 0 or g["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        if g.get("maximize"):
            raise NotImplementedError("SGD: maximize is not supported")

    def _step_group(self, group):
        params = _grads_of(group)
        if not params:
            return
        bufs = [(self.state.get(p) or {}).get("momentum_buffer") for p in params]
        bufs = _core.sgd_step(params, bufs, float(group["lr"]), float(group["momentum"]),
                              float(group["dampening"]), float(group["weight_decay"]), bool(group["nesterov"]))
        if group["momentum"] != 0:
            for p, b in zip(params, bufs):
                self.state[p]["momentum_buffer"] = b


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """torch.nn.utils.clip_grad_norm_: scales the gradients in place so that
    their global ``norm_type`` norm is at most ``max_norm`` (by
    ``max_norm / (total + 1e-6)``); returns the total norm before clipping as
    a 0-d float32 tensor. Parameters without a gradient are ignored."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    params = list(parameters)
    total = _core.clip_grad_norm(params, float(max_norm), float(norm_type), bool(error_if_nonfinite))
    return _core.full([], total, float32)

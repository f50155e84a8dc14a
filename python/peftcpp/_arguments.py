"""One-line errors for arguments of the wrong type given to the native module.

pybind11 answers a call it cannot match with a TypeError that lists every
signature and the repr of every argument (for an op, whole weight matrices).
``install`` wraps, once at import, every function of ``peftcpp._core`` and
every method C++ binds on its classes: a call pybind11 rejects is re-raised as
one line naming the op, the argument and its type. numpy arrays need no
wrapper: the binding converts them wherever a Tensor is expected.
"""
import functools
import numbers
import re
import types
from collections.abc import Mapping

import numpy as np

_REJECTED = re.compile(r"^[\w.]+\(\): incompatible (?:function|constructor) arguments")
_OVERLOAD = re.compile(r"^\s*\d+\. \((?P<params>.*)\)(?: -> .*)?$", re.M)
_PREFIXES = ("peftcpp._core.", "typing.", "collections.abc.", "numpy.typing.", "numpy.")


def _split(text, sep):
    """text split at sep outside brackets."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        c = text[i]
        if c in "[(":
            depth += 1
        elif c in "])":
            depth -= 1
        elif depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            start = i + len(sep)
            i = start
            continue
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _params(signature):
    """[(name, type text, has default)] of one overload's parameter list."""
    out = []
    for p in _split(signature, ","):
        if p in ("*", "/") or p.startswith("*"):
            out.append((p.lstrip("*"), "typing.Any", True))
            continue
        head, eq, _ = p.partition(" = ")
        name, _, typ = head.partition(": ")
        out.append((name.strip(), typ.strip() or "typing.Any", bool(eq)))
    return out


def _short(typ):
    for pre in _PREFIXES:
        typ = typ.replace(pre, "")
    return typ


def _accepts(typ, value, tensor_type):
    """Whether pybind11 could take value for a parameter of this type text
    (True when unsure: only a clear mismatch is blamed)."""
    for alt in _split(typ, "|"):
        t = _short(alt)
        if t == "None":
            ok = value is None
        elif t == "Tensor":  # the binding converts numeric numpy arrays
            ok = isinstance(value, tensor_type) or isinstance(value, np.ndarray) and value.dtype.kind in "fiub"
        elif t == "bool":
            ok = isinstance(value, (bool, np.bool_))
        elif t in ("SupportsFloat", "float"):
            ok = isinstance(value, numbers.Real) or hasattr(type(value), "__float__")
        elif t in ("SupportsInt", "SupportsIndex", "int"):
            ok = isinstance(value, numbers.Integral) or hasattr(type(value), "__index__")
        elif t == "str":
            ok = isinstance(value, str)
        elif t.startswith(("Sequence[", "list[", "tuple[")):
            inner = t[t.index("[") + 1:-1]
            ok = isinstance(value, (list, tuple)) and all(_accepts(inner, v, tensor_type) for v in value)
        elif t.startswith(("Mapping[", "dict[", "dict")):
            ok = isinstance(value, Mapping)
        elif t.startswith("Callable"):
            ok = callable(value)
        elif t == "DType":
            ok = type(value).__name__ == "DType"
        else:  # Any, object, numpy arrays (which take lists), types we do not know
            ok = True
        if ok:
            return True
    return False


def _expected(typ):
    names = {"None": "None", "Tensor": "a Tensor (or a numeric numpy array)", "bool": "a bool",
             "SupportsFloat": "a number",
             "float": "a number", "SupportsInt": "an integer", "SupportsIndex": "an integer", "int": "an integer",
             "str": "a string", "DType": "a dtype"}
    words = []
    for alt in _split(typ, "|"):
        t = _short(alt)
        if t.startswith(("Sequence[", "list[", "tuple[")):
            inner = _expected(t[t.index("[") + 1:-1]).split(" (")[0]
            words.append("a list of " + inner.removeprefix("a ").removeprefix("an ") + "s")
        else:
            words.append(names.get(t, t))
    if "a number" in words:  # pybind11 takes an int for a float
        words = [w for w in words if w != "an integer"]
    return " or ".join(dict.fromkeys(words))


def _described(value, tensor_type):
    if isinstance(value, tensor_type):
        return f"Tensor of {value.dtype.name}"
    if isinstance(value, np.ndarray):
        return f"numpy array of {value.dtype}"
    if isinstance(value, (list, tuple)):
        kinds = sorted({type(v).__name__ for v in value})
        return f"{type(value).__name__} of {', '.join(kinds)}" if kinds else f"empty {type(value).__name__}"
    return type(value).__name__


def _problem(params, args, kwargs, tensor_type):
    """What is wrong with this call for one overload, or None when nothing is visibly wrong."""
    if len(args) > len(params):
        return f"takes {len(params)} argument(s) ({', '.join(p[0] for p in params)}), got {len(args)}"
    names = [p[0] for p in params]
    for k in kwargs:
        if k not in names:
            return f"unexpected keyword argument '{k}' (its arguments: {', '.join(names)})"
    for i, (name, typ, has_default) in enumerate(params):
        if i < len(args):
            value = args[i]
        elif name in kwargs:
            value = kwargs[name]
        else:
            if not has_default:
                return f"missing argument '{name}'"
            continue
        if not _accepts(typ, value, tensor_type):
            return f"argument '{name}' must be {_expected(typ)}, got {_described(value, tensor_type)}"
    return None


def one_line_error(op, message, args, kwargs, tensor_type):
    """The one-line text for pybind11's rejection `message` of op(*args, **kwargs)."""
    overloads = [_params(m.group("params")) for m in _OVERLOAD.finditer(message)]
    for params in overloads:
        found = _problem(params, args, kwargs, tensor_type)
        if found:
            return f"[{op}] {found}"
    got = ", ".join([_described(a, tensor_type) for a in args] +
                    [f"{k}={_described(v, tensor_type)}" for k, v in kwargs.items()])
    want = " | ".join("(" + ", ".join(f"{n}: {_short(t)}" for n, t, _ in params) + ")" for params in overloads)
    return f"[{op}] invalid arguments ({got}); expected {want or 'other arguments'}"


def _wrapped(fn, op, tensor_type):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TypeError as e:
            text = str(e)
            if not _REJECTED.match(text):
                raise
            raise TypeError(one_line_error(op, text, args, kwargs, tensor_type)) from None
    return call


def install(core):
    """Wraps the module's functions and its classes' bound methods (once)."""
    if getattr(core, "_one_line_errors", False):
        return
    tensor_type = core.Tensor
    for name, obj in list(vars(core).items()):
        if isinstance(obj, types.BuiltinFunctionType):
            setattr(core, name, _wrapped(obj, name, tensor_type))
        elif isinstance(obj, type):
            for attr, member in list(vars(obj).items()):
                if not attr.startswith("__") and type(member).__name__ == "instancemethod":
                    setattr(obj, attr, _wrapped(member, f"{name}.{attr}", tensor_type))
    core._one_line_errors = True

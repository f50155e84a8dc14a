"""A render budget for chat templates. A template is code from a model's files: two nested
``range(100000)`` loops, ``'x' * 10**9`` or a macro calling itself twice would hang or exhaust memory.
Every rendering gets one budget, shared by all its loops, calls, filters and output: steps (loop
iterations, calls, filter uses, range items), the size of every value a template makes (checked
before the large ones are made), the characters it emits, the nesting of macro calls, and a
wall-clock limit checked at each step. Running out raises TemplateBudgetError naming the template's
source and the limit hit. Normal templates take a few hundred steps and never come near.

Imported with jinja2 (template_env), on the first rendering only.
"""
from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager

import jinja2.exceptions
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import safe_range

__all__ = ["TemplateBudgetError", "RenderBudget", "LIMITS", "render_budget", "active_budget", "budgeted_filter",
           "check_call", "check_binop", "budgeted_range"]


class TemplateBudgetError(jinja2.exceptions.SecurityError):
    """A chat template that went past its render budget (one line: the source and the limit)."""


# The limits of one rendering. A module-level dict so that a caller (or a test) can change them.
LIMITS = {
    "steps": 1_000_000,  # loop iterations + calls + filter uses + range items
    "macro_call_steps": 20,  # what one macro call costs: it is far slower than a loop step
    "chars": 16 * 2 ** 20,  # the longest string a template may make, and the rendered text
    "emitted_chars": 64 * 2 ** 20,  # everything emitted, macro bodies included (they are emitted twice)
    "items": 2 ** 20,  # the longest list / dict / tuple a template may make
    "int_bits": 65536,  # the largest integer a template may compute
    "depth": 64,  # nested macro calls / recursive loops
    "seconds": 10.0,
    "template_chars": 2 ** 20,  # the template's own text (real ones are a few kilobytes)
}

_ACTIVE = threading.local()


class RenderBudget:
    """What is left of one rendering's allowance."""

    def __init__(self, source):
        self.source = source
        self.steps = LIMITS["steps"]
        self.emitted = 0
        self.emit_limit = LIMITS["emitted_chars"]
        self.depth = 0
        self.clock = 0
        self.deadline = time.monotonic() + LIMITS["seconds"]

    def fail(self, what):
        raise TemplateBudgetError(f"{self.source}: the chat template went past its render budget: {what}")

    def spend(self, n=1):
        self.steps -= n
        if self.steps < 0:
            self.fail(f"more than {LIMITS['steps']:,} steps (loop iterations, calls, filters and range items)")
        self.clock += n
        if self.clock >= 64:  # the clock every 64 steps: a step is a few microseconds
            self.clock = 0
            if time.monotonic() > self.deadline:
                self.fail(f"more than {LIMITS['seconds']:g} seconds")

    def check_size(self, value, what="a value"):
        """Raises when `value` (just made, or about to be made with that size) is too large."""
        if isinstance(value, str):
            if len(value) > LIMITS["chars"]:
                self.fail(f"{what} of {len(value):,} characters (limit {LIMITS['chars']:,})")
        elif isinstance(value, (list, tuple, dict, set, frozenset)):
            if len(value) > LIMITS["items"]:
                self.fail(f"{what} of {len(value):,} items (limit {LIMITS['items']:,})")
        elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > LIMITS["int_bits"]:
            self.fail(f"an integer of {value.bit_length():,} bits (limit {LIMITS['int_bits']:,})")
        return value

    def check_chars(self, n, what):
        if n > LIMITS["chars"]:
            self.fail(f"{what} of about {n:,} characters (limit {LIMITS['chars']:,})")

    def check_items(self, n, what):
        if n > LIMITS["items"]:
            self.fail(f"{what} of {n:,} items (limit {LIMITS['items']:,})")

    def emit(self, n):
        self.emitted += n
        if self.emitted > self.emit_limit:
            self.fail(f"more than {LIMITS['emitted_chars']:,} characters of output")

    @contextmanager
    def nested(self, what):
        self.depth += 1
        if self.depth > LIMITS["depth"]:
            self.fail(f"{what} nested more than {LIMITS['depth']} deep")
        try:
            yield
        finally:
            self.depth -= 1


@contextmanager
def render_budget(source):
    """The budget of one rendering, active in this thread while it lasts."""
    outer = getattr(_ACTIVE, "budget", None)
    _ACTIVE.budget = budget = RenderBudget(source)
    try:
        yield budget
    except RecursionError:
        budget.fail("recursion too deep")
    finally:
        _ACTIVE.budget = outer


def active_budget():
    budget = getattr(_ACTIVE, "budget", None)
    if budget is None:  # a template rendered outside render_chat still gets a budget (never refilled)
        budget = _ACTIVE.budget = RenderBudget("a chat template")
    return budget


def budgeted_range(*args):
    r = safe_range(*args)
    active_budget().spend(len(r))
    return r


# ------------------------------------------------------------ estimates before making a value

_BRACED = re.compile(r"\{[^{}]*\}")
_PERCENT = re.compile(r"%[^a-zA-Z%]*")
_DIGITS = re.compile(r"\d+")


def _format_width(fmt, pattern):
    """The widths and precisions written in a format string's fields ('{:>1000000}', '%1000000d')."""
    return sum(int(d) for field in pattern.findall(fmt) for d in _DIGITS.findall(field)[:3] if len(d) < 40) \
        if ("{" in fmt or "%" in fmt) else 0


def _text_len(values):
    return sum(len(v) for v in values if isinstance(v, str))


def _check_ints(budget, args, kwargs, limit, what):
    for v in list(args) + list(kwargs.values()):
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > limit:
            budget.fail(f"{what} with the integer argument {v} (limit {limit:,})")


def _replace_size(s, old, new, count):
    n = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        n = min(n, count)
    return len(s) + n * (len(new) - len(old))


def _arg(args, kwargs, i, name, default=None):
    return args[i] if len(args) > i else kwargs.get(name, default)


def _estimate_filter(budget, name, args, kwargs):
    """Raises before a filter call whose result would be too large (args: value first)."""
    value = args[0] if args else None
    if name == "center":
        width = _arg(args, kwargs, 1, "width", 80)
        if isinstance(width, int):
            budget.check_chars(width, "center()")
    elif name == "indent" and isinstance(value, str):
        width = _arg(args, kwargs, 1, "width", 4)
        w = width if isinstance(width, int) else len(str(width))
        budget.check_chars(len(value) + max(w, 0) * (value.count("\n") + 1), "indent()")
    elif name == "format" and isinstance(value, str):
        budget.check_chars(len(value) + _format_width(value, _PERCENT) + _text_len(args[1:])
                           + _text_len(kwargs.values()), "format()")
    elif name == "replace" and len(args) >= 3 and all(isinstance(a, str) for a in args[:3]):
        budget.check_chars(_replace_size(args[0], args[1], args[2], _arg(args, kwargs, 3, "count")), "replace()")
    elif name == "join" and isinstance(value, (list, tuple)):
        sep = _arg(args, kwargs, 1, "d", "")
        budget.check_chars(_text_len(value) + len(str(sep)) * max(len(value) - 1, 0), "join()")
    elif name == "wordwrap" and isinstance(value, str):
        wrap = _arg(args, kwargs, 4, "wrapstring") or "\n"
        width = _arg(args, kwargs, 1, "width", 79)
        lines = len(value) // max(width if isinstance(width, int) else 1, 1) + value.count(" ") + 1
        budget.check_chars(len(value) + lines * len(str(wrap)), "wordwrap()")
    elif name == "tojson":
        indent = _arg(args, kwargs, 2, "indent")
        if indent is not None and (len(indent) if isinstance(indent, str) else indent) > 64:
            budget.fail(f"tojson(indent={indent!r}) (limit 64)")
    elif name == "sum" and not isinstance(_arg(args, kwargs, 2, "start", 0), (int, float)):
        if isinstance(value, (list, tuple)):  # summing sequences copies the growing sum again and again
            copies = len(value) * sum(len(v) for v in value if isinstance(v, (list, tuple, str)))
            if copies > LIMITS["steps"]:
                budget.fail(f"sum() of {len(value):,} sequences, copying about {copies:,} items (limit "
                            f"{LIMITS['steps']:,})")


_AMPLIFYING = {"center", "indent", "format", "replace", "join", "wordwrap", "tojson", "sum"}


def budgeted_filter(name, func, pass_args):
    """A filter that spends a step, refuses integer arguments and results too large, and estimates
    the results of the filters that can multiply their input (center, indent, format, replace, join,
    wordwrap, tojson, sum). `pass_args`: how many leading arguments jinja passes (context, ...)."""
    amplifies = name in _AMPLIFYING

    def filter_(*args, **kwargs):
        budget = active_budget()
        budget.spend()
        if kwargs or len(args) > pass_args + 1:  # arguments beyond the value
            own = args[pass_args:]
            _check_ints(budget, own[1:], kwargs, LIMITS["items"], f"the {name} filter")
            if amplifies:
                _estimate_filter(budget, name, own, kwargs)
        return budget.check_size(func(*args, **kwargs), f"the {name} filter's result")
    filter_.__dict__.update(getattr(func, "__dict__", {}))  # jinja's pass_context / pass_environment markers
    filter_.__name__ = filter_.__qualname__ = getattr(func, "__name__", name)
    filter_.__doc__ = func.__doc__
    return filter_


_PADDING = ("center", "ljust", "rjust", "zfill")


def check_call(budget, obj, args, kwargs):
    """Before a call from a template: its step, and the size of what a str method would make."""
    target = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format / format_map
    owner = getattr(target, "__self__", None)
    if not isinstance(owner, str):
        return
    name = getattr(target, "__name__", "")
    if name in _PADDING and args and isinstance(args[0], int):
        budget.check_chars(args[0], f"str.{name}()")
    elif name == "expandtabs":
        size = _arg(args, kwargs, 0, "tabsize", 8)
        budget.check_chars(len(owner) + owner.count("\t") * (size if isinstance(size, int) else 0), "expandtabs()")
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        budget.check_chars(_replace_size(owner, args[0], args[1], _arg(args, kwargs, 2, "count")), "str.replace()")
    elif name == "join" and args and isinstance(args[0], (list, tuple)):
        budget.check_chars(_text_len(args[0]) + len(owner) * max(len(args[0]) - 1, 0), "str.join()")
    elif name in ("format", "format_map"):
        _check_ints(budget, args, kwargs, LIMITS["chars"], "str.format()")
        budget.check_chars(len(owner) + _format_width(owner, _BRACED) + _text_len(args) + _text_len(kwargs.values())
                           + sum(_text_len(a.values()) for a in args if isinstance(a, dict)), "str.format()")


def nesting(obj):
    """What a call nests (a macro, a recursive loop), or None."""
    if isinstance(obj, Macro):
        return "macro calls"
    if isinstance(obj, LoopContext):
        return "recursive loops"
    return None


def _seq_len(v):
    return len(v) if isinstance(v, (str, list, tuple)) else None


def check_binop(budget, op, left, right):
    """Before `left op right` for the operators that can make huge values: *, **, % and +."""
    budget.spend()
    if op == "*":
        for seq, n in ((left, right), (right, left)):
            size = _seq_len(seq)
            if size is not None and isinstance(n, int) and not isinstance(n, bool):
                total = size * max(n, 0)
                if isinstance(seq, str):
                    budget.check_chars(total, "a repeated string")
                else:
                    budget.check_items(total, "a repeated list")
        if isinstance(left, int) and isinstance(right, int) and \
                left.bit_length() + right.bit_length() > LIMITS["int_bits"]:
            budget.fail(f"a product of {left.bit_length() + right.bit_length():,} bits (limit {LIMITS['int_bits']:,})")
    elif op == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1 and \
                right * left.bit_length() > LIMITS["int_bits"]:
            budget.fail(f"a power of about {right * left.bit_length():,} bits (limit {LIMITS['int_bits']:,})")
    elif op == "%" and isinstance(left, str):
        rest = right if isinstance(right, tuple) else (right,)
        _check_ints(budget, rest, {}, LIMITS["chars"], "a %-format")
        budget.check_chars(len(left) + _format_width(left, _PERCENT) + _text_len(rest)
                           + (_text_len(right.values()) if isinstance(right, dict) else 0), "a %-format")
    elif op == "+":
        a, b = _seq_len(left), _seq_len(right)
        if a is not None and b is not None:
            if isinstance(left, str):
                budget.check_chars(a + b, "a concatenation")
            else:
                budget.check_items(a + b, "a concatenation")

"""The jinja2 environment chat templates render in: transformers' sandbox, filters and globals
(``transformers.utils.chat_template_utils``), plus the ``{% generation %}`` marker that records
where assistant text lands in the rendered string.

Imported on the first rendering only, so that loading a tokenizer does not import jinja2.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache

import jinja2
import jinja2.ext
import jinja2.nodes as nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import pass_context
from jinja2.visitor import NodeTransformer

from .template_budget import LIMITS, active_budget, budgeted_filter, budgeted_range, check_binop, check_call, nesting

__all__ = ["compile_template", "BudgetedEnvironment"]

# Filters the budgeting rewrite puts into every template (dotted names no template would write).
_LOOP, _EMIT, _SIZED, _CHARGE = ("peftcpp.budget.loop", "peftcpp.budget.emit", "peftcpp.budget.sized",
                                  "peftcpp.budget.charge")


class _CountedItems:
    """A for-loop's iterable: each item spends a step and the loop body's literal text (len() still
    answers, for loop.length)."""
    __slots__ = ("items", "budget", "chars")

    def __init__(self, items, budget, chars):
        self.items, self.budget, self.chars = items, budget, chars

    def __len__(self):
        return len(self.items)

    def __iter__(self):
        spend, emit, chars = self.budget.spend, self.budget.emit, self.chars
        for item in self.items:
            spend()
            if chars:
                emit(chars)
            yield item


# pass_context: never folded into a constant at compile time, so they run (and count) at render time
@pass_context
def _loop_items(context, items, chars=0):
    return _CountedItems(items, active_budget(), chars)


@pass_context
def _charge(context, chars):
    active_budget().emit(chars)
    return ""


@pass_context
def _emit(context, value):
    budget = active_budget()
    if isinstance(value, str):
        budget.emit(len(value))
    elif isinstance(value, (list, tuple, dict)):
        budget.emit(2 * len(value))
    return value


@pass_context
def _sized(context, value):
    return active_budget().check_size(value, "a concatenation")


def _filter(node, name, *args):
    return nodes.Filter(node, name, [nodes.Const(a) for a in args], [], None, None, lineno=node.lineno)


_BODIES = (nodes.For, nodes.Macro, nodes.CallBlock)  # bodies that run more than once, each charged on its own


def _literal_chars(body):
    """Characters of literal template text in `body`, outside nested loops and macros."""
    total = 0
    for node in body:
        if isinstance(node, nodes.TemplateData):
            total += len(node.data)
        elif not isinstance(node, _BODIES):
            total += _literal_chars(node.iter_child_nodes())
    return total


def _dynamic(node):
    """False for literals and sums of literals: adding one to a value cannot multiply its size."""
    if isinstance(node, (nodes.Const, nodes.TemplateData)):
        return False
    if isinstance(node, (nodes.Add, nodes.Concat)):
        parts = [node.left, node.right] if isinstance(node, nodes.Add) else node.nodes
        return any(_dynamic(p) for p in parts)
    return True


class _Budgeting(NodeTransformer):
    """Rewrites a parsed template so that its loops, macros, buffered output, `+` / `~` of two computed
    values and assignments go through the render budget (calls, filters and the operators *, ** and %
    are checked by BudgetedEnvironment itself). Literal text is charged per loop iteration and per
    macro call; `'<|user|>' + content + '<|end|>'` stays plain Python."""

    def __init__(self):
        self.buffered = 0  # inside a body whose output is collected before it is returned

    def _buffered_visit(self, node):
        self.buffered += 1
        try:
            return self.generic_visit(node)
        finally:
            self.buffered -= 1

    def visit_For(self, node):
        node = self._buffered_visit(node) if node.recursive else self.generic_visit(node)
        node.iter = _filter(node.iter, _LOOP, _literal_chars(node.body))
        return node

    def visit_Macro(self, node):
        node = self._buffered_visit(node)
        chars = _literal_chars(node.body)
        if chars:
            node.body.insert(0, nodes.Output([_filter(nodes.Const(chars), _CHARGE)], lineno=node.lineno))
        return node

    visit_CallBlock = visit_Macro

    def visit_FilterBlock(self, node):
        return self._buffered_visit(node)

    visit_AssignBlock = visit_FilterBlock

    def visit_Output(self, node):
        node = self.generic_visit(node)
        if self.buffered:  # the root's output is counted as it streams out (chat_template._render)
            node.nodes = [child if isinstance(child, nodes.TemplateData) else _filter(child, _EMIT)
                          for child in node.nodes]
        return node

    def visit_Assign(self, node):
        node = self.generic_visit(node)
        if _dynamic(node.node):
            node.node = _filter(node.node, _SIZED)
        return node

    def visit_Add(self, node):
        node = self.generic_visit(node)
        return _filter(node, _SIZED) if _dynamic(node.left) and _dynamic(node.right) else node

    def visit_Concat(self, node):
        node = self.generic_visit(node)
        acc = node.nodes[0]
        for part in node.nodes[1:]:  # one `~` at a time: each join of two computed values is checked
            acc = nodes.Concat([acc, part], lineno=node.lineno)
            if _dynamic(part) and _dynamic(acc.nodes[0]):
                acc = _filter(acc, _SIZED)
        return acc


class BudgetedEnvironment(ImmutableSandboxedEnvironment):
    """transformers' sandbox, with every rendering held to a budget (template_budget.py)."""
    intercepted_binops = frozenset(["*", "**", "%"])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.globals["range"] = budgeted_range

    def budget_filters(self):
        """Every filter (those added by the caller too) through the budget; call once, last."""
        for name, func in list(self.filters.items()):
            self.filters[name] = budgeted_filter(name, func, 1 if getattr(func, "jinja_pass_arg", None) else 0)
        self.filters.update({_LOOP: _loop_items, _EMIT: _emit, _SIZED: _sized, _CHARGE: _charge})

    def _parse(self, source, name, filename):
        return _Budgeting().visit(super()._parse(source, name, filename))

    def call_binop(self, context, operator, left, right):
        if type(left) is int and type(right) is int and operator == "%":  # loop.index0 % 2: kept fast
            return left % right
        check_binop(active_budget(), operator, left, right)
        return self.check_size(super().call_binop(context, operator, left, right))

    @staticmethod
    def check_size(value):
        return active_budget().check_size(value, "a computed value")

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - the sandbox's signature
        budget = active_budget()
        kind = nesting(__obj)
        budget.spend(LIMITS["macro_call_steps"] if kind == "macro calls" else 1)
        check_call(budget, __obj, args, kwargs)
        if kind is None:
            result = super().call(__context, __obj, *args, **kwargs)
        else:
            with budget.nested(kind):
                result = super().call(__context, __obj, *args, **kwargs)
        return budget.check_size(result, "a call's result")


class GenerationTracker(jinja2.ext.Extension):
    """``{% generation %}...{% endgeneration %}``: records the character spans of assistant text."""

    tags = {"generation"}

    def __init__(self, environment):
        super().__init__(environment)
        environment.extend(track_generation=self.track)
        self._blocks = None
        self._spans = None

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_mark"), [], [], body).set_lineno(lineno)

    def _mark(self, caller):
        text = caller()
        if self._blocks is not None:
            start = len("".join(self._blocks))
            self._spans.append((start, start + len(text)))
        return text

    @contextmanager
    def track(self, blocks, spans):
        self._blocks, self._spans = blocks, spans
        try:
            yield
        finally:
            self._blocks = self._spans = None


def _raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # Unlike jinja's own filter: no HTML escaping, and indent/separators/sort_keys are honoured.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt):
    return datetime.now().strftime(fmt)


class _SafeDict:
    def __call__(self, *args, **kwargs):
        return dict(*args, **kwargs)

    def fromkeys(self, *args, **kwargs):
        return dict.fromkeys(*args, **kwargs)


class _SafeNamespace(jinja2.utils.Namespace):
    def __init__(*args, **kwargs):  # noqa: N805 - same signature trick as jinja's Namespace
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _SafeNamespace._check(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name, value):
        _SafeNamespace._check(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name):
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(
                f"Chat templates cannot store underscore-prefixed attributes on a namespace, got {name!r}.")


@lru_cache(maxsize=32)
def compile_template(chat_template):
    """The compiled template; its ``environment.track_generation(blocks, spans)`` records generation spans."""
    env = BudgetedEnvironment(trim_blocks=True, lstrip_blocks=True,
                              extensions=[GenerationTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = _SafeDict()
    env.globals["namespace"] = _SafeNamespace
    env.budget_filters()
    return env.from_string(chat_template)

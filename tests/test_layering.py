"""The package's shape, checked statically on the source tree: the library
never imports the application (peftcpp.app), no import cycle between modules
(imports inside functions count: they only hide a cycle), no private name
used outside its module, and no source file over 700 lines."""
import ast
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "python", "peftcpp")
APP = "peftcpp.app"
# Entry points of the application that sit in the package root by Python's rules.
APP_ENTRY_POINTS = {"peftcpp.__main__"}
MAX_LINES = 700


def _modules():
    """{dotted name: (path, is_package)} of every module under python/peftcpp, plus the extension."""
    mods = {"peftcpp._core": (None, False)}
    for dirpath, _, files in os.walk(PKG):
        for f in files:
            if not f.endswith(".py"):
                continue
            parts = os.path.relpath(os.path.join(dirpath, f), os.path.dirname(PKG))[:-3].split(os.sep)
            is_pkg = parts[-1] == "__init__"
            mods[".".join(parts[:-1] if is_pkg else parts)] = (os.path.join(dirpath, f), is_pkg)
    return mods


def _imports(mods):
    """[(importer, imported module, imported name or None, line)] for every
    import statement anywhere in a module (top level or inside a function)."""
    out = []
    for name, (path, is_pkg) in mods.items():
        if path is None:
            continue
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        package = name if is_pkg else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    out.append((name, a.name, None, node.lineno))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(base + ([node.module] if node.module else []))
                else:
                    base = node.module
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    out.append((name, sub, None, node.lineno) if sub in mods else (name, base, a.name, node.lineno))
    return out


def _graph():
    mods = _modules()
    edges = {m: {} for m in mods}
    for src, dst, _, line in _imports(mods):
        if dst in mods and dst != src:
            edges[src].setdefault(dst, line)
    return mods, edges


def _cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, comps, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return comps


def test_the_analysis_sees_the_package():
    mods, edges = _graph()
    assert "peftcpp.models.llama" in mods and "peftcpp.app.cli" in mods
    assert "peftcpp.nn" in edges["peftcpp.models.llama"]  # a real edge is found
    # a planted cycle, through an import inside a function, is found
    planted = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert _cycles(planted) == [["a", "b", "c"]]


def test_no_import_cycles():
    _, edges = _graph()
    comps = _cycles(edges)
    detail = []
    for comp in comps:
        inside = set(comp)
        detail.append(" ; ".join(f"{m} -> {d} (line {line})" for m in comp for d, line in sorted(edges[m].items())
                                 if d in inside))
    assert not comps, "import cycles:\n" + "\n".join(detail)


def test_the_library_never_imports_the_application():
    mods = _modules()
    bad = [f"{src} line {line} imports {dst}" for src, dst, _, line in _imports(mods)
           if (dst == APP or dst.startswith(APP + ".")) and not (src == APP or src.startswith(APP + "."))
           and src not in APP_ENTRY_POINTS]
    assert not bad, "the library imports the application:\n" + "\n".join(bad)


def test_no_private_name_is_used_outside_its_module():
    mods = _modules()
    bad = []
    for src, dst, name, line in _imports(mods):
        if name and name.startswith("_") and not name.startswith("__") and dst.startswith("peftcpp"):
            bad.append(f"{src} line {line}: from {dst} import {name}")
    # module._name attribute uses, for modules bound by `import` / `from pkg import module`
    for src, (path, _) in mods.items():
        if path is None:
            continue
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for a in node.names:
                    aliases[a.asname or a.name] = a.name
            elif isinstance(node, ast.Import):
                for a in node.names:
                    aliases[a.asname or a.name.split(".")[0]] = a.name
        module_aliases = {alias for alias, full in aliases.items()
                          if any(m == full or m.endswith("." + full) for m in mods if m.startswith("peftcpp"))}
        module_aliases.discard("_core")  # the extension's names are its API
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in module_aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                bad.append(f"{src} line {node.lineno}: {node.value.id}.{node.attr}")
    assert not bad, "private names used outside their module:\n" + "\n".join(bad)


def _long_files(tree):
    """'path: N lines' for each source file under ROOT/tree over MAX_LINES (tests and generated stubs aside)."""
    long, seen = [], 0
    for dirpath, _, files in os.walk(os.path.join(ROOT, tree)):
        if "tests" in os.path.relpath(dirpath, ROOT).split(os.sep):
            continue
        for f in files:
            if f.endswith((".py", ".cpp", ".h")):
                path = os.path.join(dirpath, f)
                with open(path, encoding="utf-8") as fh:
                    n = sum(1 for _ in fh)
                seen += 1
                if n > MAX_LINES:
                    long.append(f"{os.path.relpath(path, ROOT)}: {n} lines")
    return long, seen


@pytest.mark.parametrize("tree", ["python/peftcpp", "csrc"])
def test_no_source_file_is_over_700_lines(tree):
    long, seen = _long_files(tree)
    assert seen > 20, f"only {seen} source files found under {tree}"  # the walk really reads the tree
    assert not long, f"files over {MAX_LINES} lines:\n" + "\n".join(long)

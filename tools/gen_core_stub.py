"""Writes the type stub of the native module, python/peftcpp/_core.pyi, with
pybind11-stubgen (pinned in pyproject.toml's test extra, with pybind11 pinned in the Makefile's PY_BUILD).

    python tools/gen_core_stub.py                        # the built module -> python/peftcpp/_core.pyi
    python tools/gen_core_stub.py --core-dir build/dev   # a CMake build's module
    python tools/gen_core_stub.py --out /tmp/_core.pyi --compare python/peftcpp/_core.pyi

The module is imported as ``peftcpp._core`` under a bare ``peftcpp`` package,
so the stub shows the C++ bindings only (peftcpp/__init__.py, which adds
Python methods to Tensor, is not run). The CMake build runs this after
linking the extension (``--optional``: a missing generator or an unloadable
module is a warning there, never a build failure); tests/test_core_stub.py
checks the checked-in stub against the module.
"""
from __future__ import annotations

import argparse
import difflib
import glob
import importlib
import importlib.machinery
import os
import sys
import tempfile
import types

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUB = os.path.join(REPO, "python", "peftcpp", "_core.pyi")
REGENERATE = "python tools/gen_core_stub.py"


def has_core(folder):
    return any(glob.glob(os.path.join(folder, "_core" + s)) for s in importlib.machinery.EXTENSION_SUFFIXES)


def find_core_dir():
    """PEFTCPP_CORE_DIR, else the first peftcpp folder on sys.path holding the built extension."""
    candidates = [os.environ.get("PEFTCPP_CORE_DIR", "")] + [os.path.join(p or ".", "peftcpp") for p in sys.path]
    for folder in candidates:
        if folder and has_core(folder):
            return os.path.abspath(folder)
    raise SystemExit("no built peftcpp._core found: build it (make install, or cmake) or pass --core-dir")


def generate(core_dir):
    """The stub text of the _core extension in core_dir."""
    import pybind11_stubgen

    package = types.ModuleType("peftcpp")
    package.__path__ = [core_dir]
    sys.modules["peftcpp"] = package
    with tempfile.TemporaryDirectory() as out:
        pybind11_stubgen.main(["peftcpp._core", "--output-dir", out, "--exit-code",
                               "--enum-class-locations", "DType:peftcpp._core"])
        with open(os.path.join(out, "peftcpp", "_core.pyi"), encoding="utf-8") as f:
            return f.read()


def write(core_dir, out, compare):
    text = generate(os.path.abspath(core_dir) if core_dir else find_core_dir())
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    if not compare:
        return
    old = ""
    if os.path.isfile(compare):
        with open(compare, encoding="utf-8") as f:
            old = f.read()
    if old != text:
        diff = difflib.unified_diff(old.splitlines(), text.splitlines(), compare, out, lineterm="", n=1)
        print(f"warning: {compare} does not match the built module; regenerate it with "
              f"`{REGENERATE}` (or copy {out}):\n" + "\n".join(list(diff)[:40]), file=sys.stderr)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--core-dir", help="folder holding the built _core extension (default: found on sys.path)")
    ap.add_argument("--out", default=STUB, help="where to write the stub (default: python/peftcpp/_core.pyi)")
    ap.add_argument("--compare", help="a stub to compare with: warn when it differs")
    ap.add_argument("--optional", action="store_true", help="warn instead of failing (for the build)")
    args = ap.parse_args(argv)
    try:
        write(args.core_dir, args.out, args.compare)
    except (Exception, SystemExit) as e:  # stubgen reports errors through SystemExit
        if not args.optional:
            raise
        missing = isinstance(e, ImportError) and e.name == "pybind11_stubgen"
        why = "pybind11-stubgen is not installed (make setup)" if missing else f"{type(e).__name__}: {e}"
        print(f"note: no type stub for peftcpp._core: {why}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The native module's visible API: the checked-in type stub
python/peftcpp/_core.pyi matches the built peftcpp._core (regenerated with
tools/gen_core_stub.py, which the CMake build also runs), and every binding
carries a docstring."""
import difflib
import importlib.util
import os
import subprocess
import sys
import types

import pytest

from peftcpp import _core

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO, "tools", "gen_core_stub.py")
STUB = os.path.join(REPO, "python", "peftcpp", "_core.pyi")


def test_checked_in_stub_matches_module(tmp_path):
    assert importlib.util.find_spec("pybind11_stubgen"), \
        "pybind11-stubgen is missing: run `make setup` (or pip install pybind11-stubgen==3.0.0)"
    core_dir = os.path.dirname(os.path.abspath(_core.__file__))
    out = tmp_path / "_core.pyi"
    r = subprocess.run([sys.executable, TOOL, "--core-dir", core_dir, "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{TOOL} failed:\n{r.stdout}\n{r.stderr}"
    with open(STUB, encoding="utf-8") as f:
        have = f.read()
    want = out.read_text(encoding="utf-8")
    diff = "\n".join(list(difflib.unified_diff(have.splitlines(), want.splitlines(), "checked in", "built module",
                                               lineterm="", n=1))[:60])
    assert have == want, ("python/peftcpp/_core.pyi does not match the built peftcpp._core; regenerate it with "
                          f"`python tools/gen_core_stub.py --core-dir {core_dir}` and commit it:\n{diff}")


def has_text(doc, signature_lines):
    """Whether a pybind docstring says more than the generated signature(s)."""
    lines = [ln.strip() for ln in (doc or "").splitlines() if ln.strip()]
    return any(not signature_lines(ln) for ln in lines)


def undocumented():
    def is_signature(name):
        return lambda ln: (ln.startswith(f"{name}(") or ln == "Overloaded function."
                           or ln[:2].isdigit() and ln.split(". ", 1)[-1].startswith(f"{name}("))

    missing = []
    for name, obj in vars(_core).items():
        if name.startswith("__"):
            continue
        if not isinstance(obj, type):
            if callable(obj) and not has_text(obj.__doc__, is_signature(name)):
                missing.append(name)
            continue
        if not (obj.__doc__ or "").strip():
            missing.append(name)
        is_enum = hasattr(obj, "__members__")
        for attr, member in vars(obj).items():
            if attr in ("__doc__", "__module__", "__dict__", "__weakref__", "_pybind11_conduit_v1_"):
                continue
            member = getattr(member, "__wrapped__", member)  # peftcpp/_arguments.py's one-line-error wrapper
            if is_enum and (attr.startswith("__") or attr in ("name", "value") or attr in obj.__members__):
                continue  # pybind11's own enum machinery
            # Only what C++ binds: peftcpp/_tensor.py adds Python methods to Tensor.
            if isinstance(member, property):
                if isinstance(member.fget, types.BuiltinFunctionType) and not (member.__doc__ or "").strip():
                    missing.append(f"{name}.{attr}")
            elif type(member).__name__ == "instancemethod" and not has_text(member.__doc__, is_signature(attr)):
                missing.append(f"{name}.{attr}")
    return missing


def test_every_binding_has_a_docstring():
    assert undocumented() == [], "bindings without a docstring (add one in csrc/bindings/)"


@pytest.mark.parametrize("name", ["ggml_types", "llama_file_types"])
def test_tables_are_exported(name):
    rows = getattr(_core, name)()
    assert rows and len({r.name for r in rows}) == len(rows)

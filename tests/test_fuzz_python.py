"""tools/fuzz_python.py and tools/fuzz_jsonl.py stay runnable: each target runs a few hundred atheris inputs
without a finding (the long runs: `make fuzz`, docs/FUZZING.md)."""
import os
import subprocess
import sys

import pytest

from test_cli import ROOT, cli_env

TOOL = os.path.join(ROOT, "tools", "fuzz_python.py")


def test_lists_its_targets():
    res = subprocess.run([sys.executable, TOOL, "--list"], capture_output=True, text=True, env=cli_env(), timeout=300)
    assert res.returncode == 0, res.stderr
    assert "config" in res.stdout and "adapter" in res.stdout


@pytest.mark.parametrize("target", ["config", "adapter"])
def test_short_run_finds_nothing(target, tmp_path):
    res = subprocess.run([sys.executable, TOOL, target, "-runs=300", "-seed=1", f"-artifact_prefix={tmp_path}/"],
                         capture_output=True, text=True, env=cli_env(), cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Done 300 runs" in res.stderr
    assert not [n for n in os.listdir(tmp_path) if n.startswith("crash-")]


def test_jsonl_short_run_finds_nothing(tmp_path):
    tool = os.path.join(ROOT, "tools", "fuzz_jsonl.py")
    res = subprocess.run([sys.executable, tool, "-runs=300", "-seed=1", f"-artifact_prefix={tmp_path}/"],
                         capture_output=True, text=True, env=cli_env(), cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Done 300 runs" in res.stderr
    assert not [n for n in os.listdir(tmp_path) if n.startswith("crash-")]

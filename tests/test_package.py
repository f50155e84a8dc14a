"""Package-level promises: torch is never imported by peftcpp, the demo
runs end to end, and OpenBLAS is the OpenMP build sharing our pool."""
import os
import subprocess
import sys

import peftcpp


def _env():
    env = dict(os.environ)
    if os.environ.get("PEFTCPP_CORE_DIR"):
        env["PYTHONPATH"] = os.path.join(os.path.dirname(__file__), "..", "python")
    return env


def test_import_does_not_import_torch():
    code = "import sys, peftcpp, peftcpp.nn, peftcpp.optim, peftcpp.io; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=True)
    assert out.stdout.strip() == "False"


def test_demo_runs_end_to_end(tmp_path, capsys):
    from peftcpp import demo
    demo.main(["--base-steps", "40", "--lora-steps", "30", "--default-model-steps", "3", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert (tmp_path / "adapter_model.safetensors").stat().st_size > 0
    pre = [l for l in out.splitlines() if l.startswith("[pretrain] loss")][0]
    first, last = (float(v) for v in pre.split("loss ")[1].split(" -> "))
    assert last < first
    assert "reloaded adapters" in out
    steps = [float(l.rsplit("loss ", 1)[1]) for l in out.splitlines() if l.startswith("[default model] LoRA step")]
    assert len(steps) == 2 and steps[-1] < steps[0]  # LoRA on the default model learns


def test_thread_count_follows_omp_num_threads():
    code = "import peftcpp; print(peftcpp.get_num_threads())"
    env = dict(_env(), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "1"
    assert peftcpp.get_num_threads() >= 1


def test_json_writes_are_atomic(tmp_path):
    from peftcpp.io import write_json_atomic
    path = tmp_path / "config.json"
    write_json_atomic(path, {"a": 1})
    assert path.read_text() == '{\n  "a": 1\n}\n'
    import pytest
    with pytest.raises(TypeError):
        write_json_atomic(path, {"a": object()})  # fails while serialising: the file is untouched
    assert path.read_text() == '{\n  "a": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]

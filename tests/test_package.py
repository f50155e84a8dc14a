"""Package-level promises: torch is never imported by peftcpp, the demo
(train -> convert -> answers) runs end to end, and OpenBLAS is the OpenMP build sharing our pool."""
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
    code = "import sys, peftcpp, peftcpp.nn, peftcpp.optim, peftcpp.serialization; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=True)
    assert out.stdout.strip() == "False"


def test_demo_runs_end_to_end(tmp_path, capsys, monkeypatch):
    """`make demo`'s code path on a slice of the sample dataset, 3 iterations
    (the real run, 300 iterations, is recorded in the README)."""
    import json
    repo_data = os.path.join(os.path.dirname(__file__), "..", "data")
    (tmp_path / "data").mkdir()
    for name, n in (("train.jsonl", 12), ("valid.jsonl", 4)):
        with open(os.path.join(repo_data, name), encoding="utf-8") as f:
            rows = [json.loads(l) for l in f][:n]
        (tmp_path / "data" / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.chdir(tmp_path)
    from peftcpp.app import demo
    rc = demo.main(["--iters", "3", "--max-tokens", "12"])
    out = capsys.readouterr().out
    for section in ("== 1.", "== 2.", "== 3.", "== 4."):
        assert section in out
    gg = tmp_path / "output" / "gguf"
    names = sorted(os.listdir(gg))
    assert "Modelfile" in names and any(n.endswith("-f16.gguf") for n in names) and \
        any(n.endswith("-Q4_K_M.gguf") for n in names)
    assert (tmp_path / "output" / "adapters" / "adapter_model.safetensors").is_file()
    assert out.count("[base model]") == out.count("[fine-tuned Q4_K_M]") == 3
    scores = [l for l in out.splitlines() if l.startswith("Style markers of the dataset")]
    import re
    assert len(scores) == 1
    base, tuned = (int(x) for x in re.findall(r"(\d+)/12", scores[0]))
    assert rc == (0 if tuned > base else 1)  # the exit code says whether the style was learned


def test_thread_count_follows_omp_num_threads():
    code = "import peftcpp; print(peftcpp.get_num_threads())"
    env = dict(_env(), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "1"
    assert peftcpp.get_num_threads() >= 1


def test_json_writes_are_atomic(tmp_path):
    from peftcpp.fileio import write_json_atomic
    path = tmp_path / "config.json"
    write_json_atomic(path, {"a": 1})
    assert path.read_text() == '{\n  "a": 1\n}\n'
    import pytest
    with pytest.raises(TypeError):
        write_json_atomic(path, {"a": object()})  # fails while serialising: the file is untouched
    assert path.read_text() == '{\n  "a": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_atomic_write_and_folder_keep_the_old_version_on_failure(tmp_path):
    """peftcpp.fileio: a failing block leaves the old file / folder and no temporary."""
    import pytest
    from peftcpp.fileio import atomic_folder, atomic_write
    path = tmp_path / "f.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(path, "w", encoding="utf-8") as f:
            f.write("new, half")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old"
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "a").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_folder(folder) as tmp:
            open(os.path.join(tmp, "b"), "w").close()
            raise RuntimeError("interrupted")
    assert sorted(os.listdir(folder)) == ["a"]
    with atomic_folder(folder) as tmp:
        open(os.path.join(tmp, "b"), "w").close()
    assert sorted(os.listdir(folder)) == ["b"]  # replaced whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt", "out"]


def test_packaging_declares_what_the_makefile_installs():
    """pyproject.toml's dependencies and `test` extra are the Makefile's PY_RUNTIME and PY_TEST, so
    `pip install .[test]` gives what `make setup` gives."""
    import re
    import tomllib
    root = os.path.join(os.path.dirname(__file__), "..")
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    with open(os.path.join(root, "Makefile"), encoding="utf-8") as f:
        make = dict(re.findall(r"^(PY_RUNTIME|PY_TEST) = (.*)$", f.read(), re.M))

    def names(reqs):
        return sorted(re.split(r"[<>=\[ ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs)
    assert names(project["dependencies"]) == names(make["PY_RUNTIME"].split())
    assert names(project["optional-dependencies"]["test"]) == names(make["PY_TEST"].split())
    assert "torch==2.13.0" in project["optional-dependencies"]["test"]  # other versions download gigabytes

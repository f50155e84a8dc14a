"""One writer per output folder (peftcpp.fileio.folder_lock): a second
holder fails at once naming the folder and the first one's PID, the lock
survives the folder being replaced whole (atomic_folder), the operating
system releases it on `kill -9`, and `peftcpp train`, `fuse`, `convert`
refuse a folder another process is writing without touching it."""
import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest

from peftcpp.fileio import (FolderInUseError, atomic_folder, folder_lock, folder_lock_holder, lock_file_path)
from test_cli import cli_env, run_cli

HOLD = """
import sys, time
from peftcpp.fileio import folder_lock
with folder_lock(sys.argv[1], "--adapter-path"):
    print("locked", flush=True)
    time.sleep(600)
"""


def snapshot(folder):
    """{relative path: sha256} of every file under folder."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def start_holder(folder):
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True,
                         env=cli_env())
    assert p.stdout.readline().strip() == "locked"
    return p


def test_second_holder_fails_at_once_naming_folder_and_pid(tmp_path):
    folder = tmp_path / "adapters"
    with folder_lock(folder, "--adapter-path") as lock:
        # beside the folder, never inside it (the folder is the user's: uploaded, replaced whole)
        assert os.path.dirname(lock) == str(tmp_path) and not folder.exists()
        assert folder_lock_holder(folder) == str(os.getpid())
        t0 = time.perf_counter()
        with pytest.raises(FolderInUseError) as e:
            with folder_lock(str(folder), "--adapter-path"):
                pass
        assert time.perf_counter() - t0 < 1.0
        assert str(e.value) == (f"{folder} is in use by another peftcpp process (PID {os.getpid()}); wait for it "
                                "to finish or choose another --adapter-path")
        # another spelling of the same folder meets the same lock
        os.symlink(folder.parent, tmp_path.parent / (tmp_path.name + "-link"))
        with pytest.raises(FolderInUseError):
            with folder_lock(tmp_path.parent / (tmp_path.name + "-link") / "x" / ".." / "adapters"):
                pass
    assert folder_lock_holder(folder) is None
    assert os.listdir(tmp_path) == []  # released: the lock file is gone too
    with folder_lock(folder):  # and can be taken again
        pass


def test_lock_holds_while_atomic_folder_replaces_the_folder(tmp_path):
    """fuse's output folder is replaced by a rename: a lock file inside it
    would be swapped for an unlocked one; the one beside it stays locked."""
    folder = tmp_path / "fused_model"
    folder.mkdir()
    (folder / "old.txt").write_text("old")
    with folder_lock(folder, "--save-path"):
        with atomic_folder(folder) as tmp:
            with open(os.path.join(tmp, "config.json"), "w") as f:
                f.write("{}")
        assert os.listdir(folder) == ["config.json"]  # nothing of ours inside the model folder
        assert folder_lock_holder(folder) == str(os.getpid())
        with pytest.raises(FolderInUseError, match="choose another --save-path"):
            with folder_lock(folder, "--save-path"):
                pass


def test_lock_of_another_process_and_release_after_kill_9(tmp_path):
    folder = tmp_path / "adapters"
    p = start_holder(folder)
    try:
        assert folder_lock_holder(folder) == str(p.pid)
        with pytest.raises(FolderInUseError, match=rf"\(PID {p.pid}\)"):
            with folder_lock(folder):
                pass
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert os.path.exists(lock_file_path(folder))  # a killed holder cannot remove it ...
    assert folder_lock_holder(folder) is None  # ... but the system released its lock
    with folder_lock(folder, "--adapter-path"):
        assert folder_lock_holder(folder) == str(os.getpid())


def _fake_adapter(folder):
    os.makedirs(folder)
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        f.write('{"peft_type": "LORA", "r": 4}\n')
    with open(os.path.join(folder, "adapter_model.safetensors"), "wb") as f:
        f.write(b"x" * 64)
    return str(folder)


def _refused(res, folder, option, t0):
    assert res.returncode == 1, res.stderr
    assert time.perf_counter() - t0 < 60  # at once: before any model is loaded
    assert "Traceback" not in res.stderr
    msg = res.stderr.strip().splitlines()
    assert len(msg) == 1 and msg[0].endswith(f"{folder} is in use by another peftcpp process (PID {os.getpid()}); "
                                             f"wait for it to finish or choose another {option}"), res.stderr


def test_train_refuses_an_adapter_folder_in_use(tmp_path):
    adapter = _fake_adapter(tmp_path / "adapters")
    before = snapshot(adapter)
    with folder_lock(adapter):
        t0 = time.perf_counter()
        res = run_cli("train", "--adapter-path", adapter, "--data", tmp_path / "data", "--iters", 2)
        _refused(res, adapter, "--adapter-path", t0)
        res = run_cli("train", "--resume", "--adapter-path", adapter)
        _refused(res, adapter, "--adapter-path", t0)
    assert snapshot(adapter) == before


def test_fuse_and_convert_refuse_output_folders_in_use(tmp_path):
    adapter = _fake_adapter(tmp_path / "adapters")
    fused = tmp_path / "fused"
    fused.mkdir()
    (fused / "config.json").write_text("{}")
    gguf = tmp_path / "gguf"
    gguf.mkdir()
    (gguf / "Modelfile").write_text("FROM ./x.gguf\n")
    before = snapshot(tmp_path)
    with folder_lock(fused):
        t0 = time.perf_counter()
        _refused(run_cli("fuse", "--adapter-path", adapter, "--save-path", fused), fused, "--save-path", t0)
        _refused(run_cli("convert", "--adapter-path", adapter, "--save-path", fused, "--gguf-dir", gguf),
                 fused, "--save-path", t0)
    with folder_lock(gguf):
        t0 = time.perf_counter()
        _refused(run_cli("convert", "--adapter-path", adapter, "--save-path", fused, "--gguf-dir", gguf),
                 gguf, "--gguf-dir", t0)
    assert snapshot(tmp_path) == before


def test_clean_output_keeps_a_folder_in_use(tmp_path):
    out = tmp_path / "output"
    adapter = _fake_adapter(out / "adapters")
    with folder_lock(adapter):
        res = run_cli("clean-output", "--output-dir", out, "--yes")
        assert res.returncode == 1 and f"in use by a peftcpp process (PID {os.getpid()})" in res.stderr
        assert os.path.isdir(adapter)
    ok = run_cli("clean-output", "--output-dir", out, "--yes")
    assert ok.returncode == 0 and not out.exists(), ok.stderr

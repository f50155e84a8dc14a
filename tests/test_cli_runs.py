"""What `peftcpp` commands do with a folder another run is writing or a run
left unfinished, and with records and prompts from files: two trainings on
one --adapter-path (the second refused at once, the lock released by
`kill -9`), a failed run's record ('failed', then refused by fuse/convert
until `--resume` finishes it), `peftcpp test`'s prompts (recorded at training,
never from a folder the record names outside the adapter), and a system
prompt the Modelfile cannot hold (convert refuses before any work)."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from peftcpp.fileio import folder_lock_holder
from test_cli import FAST, cli_env, make_dataset, make_tiny_model, ok, read_jsonl, run_cli, write_jsonl
from test_modelfile import ollama_parse

RECORD = "peftcpp_train.json"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    model = make_tiny_model(root / "model", layers=2)
    data = make_dataset(root / "data", n_train=8, n_valid=4)
    adapter = str(root / "adapter")
    ok(run_cli("train", "--model", model, "--data", data, "--iters", 2, "--num-layers", 1, "--rank", 4,
               "--adapter-path", adapter, *FAST))
    return {"root": root, "model": model, "data": data, "adapter": adapter}


def train_args(tiny, adapter, iters, *more):
    return ["train", "--model", tiny["model"], "--data", tiny["data"], "--iters", iters, "--num-layers", 1,
            "--rank", 4, *FAST, "--adapter-path", adapter, *more]


def one_line_error(res, command):
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith(f"peftcpp {command}: error: ")]
    assert len(lines) == 1, res.stderr
    return lines[0][len(f"peftcpp {command}: error: "):]


def record(adapter):
    with open(os.path.join(adapter, RECORD), encoding="utf-8") as f:
        return json.load(f)


# ------------------------------------------------ two runs on one folder

def test_second_training_on_a_busy_folder_fails_at_once_and_kill_9_frees_it(tiny, tmp_path):
    adapter = str(tmp_path / "adapter")
    p = subprocess.Popen([sys.executable, "-m", "peftcpp", *map(str, train_args(tiny, adapter, 500, "--save-every",
                                                                                1, "--steps-per-eval", 1000))],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (folder_lock_holder(adapter) == str(p.pid)
                                              and os.path.isdir(os.path.join(adapter, "checkpoints", "checkpoint-1"))):
            assert p.poll() is None, p.communicate()
            time.sleep(0.05)
        t0 = time.perf_counter()
        second = run_cli(*train_args(tiny, adapter, 3))
        assert one_line_error(second, "train") == (
            f"{adapter} is in use by another peftcpp process (PID {p.pid}); wait for it to finish or choose another "
            "--adapter-path")
        assert time.perf_counter() - t0 < 30
        assert record(adapter)["status"] == "running" and record(adapter)["iters"] == 500  # the first run's
        busy = one_line_error(run_cli("fuse", "--adapter-path", adapter, "--save-path", tmp_path / "f"), "fuse")
        assert busy.startswith(f"{adapter} is being trained right now (peftcpp PID {p.pid})"), busy
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert folder_lock_holder(adapter) is None
    stopped = one_line_error(run_cli("fuse", "--adapter-path", adapter, "--save-path", tmp_path / "f"), "fuse")
    assert stopped.startswith(f"the training run in {adapter} stopped without finishing (killed?)"), stopped
    assert "`peftcpp train --resume --adapter-path" in stopped
    assert re.search(r"^  Status: +stopped$", ok(run_cli("info", adapter)), re.M)
    last = max(int(d.split("-")[1]) for d in os.listdir(os.path.join(adapter, "checkpoints"))
               if d.startswith("checkpoint-"))
    done = ok(run_cli("train", "--resume", "--iters", last + 1, "--adapter-path", adapter))
    assert "(resuming)" in done and record(adapter)["status"] == "complete"
    assert not os.path.exists(tmp_path / "f")


# ------------------------------------------------------ a failed run

def test_failed_run_marks_its_record_and_readers_refuse_until_resume(tiny, tmp_path):
    """The final save fails (a folder where adapter_model.safetensors goes):
    the record says 'failed' with the error, fuse/convert/export-adapter
    refuse with one line saying so, test warns; --resume then finishes it."""
    adapter = tmp_path / "adapter"
    ok(run_cli(*train_args(tiny, adapter, 2)))  # an earlier, finished run: its record is replaced
    os.rename(adapter / "adapter_model.safetensors", tmp_path / "earlier.safetensors")
    (adapter / "adapter_model.safetensors").mkdir()  # the obstacle: saving the weights raises
    res = run_cli(*train_args(tiny, adapter, 3, "--save-every", 2))
    error = one_line_error(res, "train")
    assert "adapter_model.safetensors" in error
    assert f"`peftcpp train --resume --adapter-path {adapter}` continues from" in res.stderr
    rec = record(adapter)
    assert rec["status"] == "failed" and rec["iters"] == 3 and "\n" not in rec["error"]
    assert rec["error"].endswith(error) or error.endswith(rec["error"].split(": ", 1)[1]), (rec["error"], error)
    assert rec["last_checkpoint"].endswith("checkpoint-3")
    msg = one_line_error(run_cli("fuse", "--adapter-path", adapter, "--save-path", tmp_path / "f"), "fuse")
    assert msg.startswith(f"the last training run in {adapter} failed ({rec['error']}); its adapter files are not "
                          f"that run's result; `peftcpp train --resume --adapter-path {adapter}` finishes it"), msg
    for cmd in (["convert", "--save-path", tmp_path / "f", "--gguf-dir", tmp_path / "g"], ["export-adapter",
                "--out", tmp_path / "g" / "a.gguf"]):
        assert one_line_error(run_cli(cmd[0], "--adapter-path", adapter, *cmd[1:]), cmd[0]) == msg
    assert not os.path.exists(tmp_path / "f") and not os.path.exists(tmp_path / "g")
    info = ok(run_cli("info", adapter))
    assert re.search(r"^  Status: +failed$", info, re.M) and "Note:" in info
    os.rmdir(adapter / "adapter_model.safetensors")
    os.rename(tmp_path / "earlier.safetensors", adapter / "adapter_model.safetensors")
    test = run_cli("test", "--adapter-path", adapter, "--max-tokens", 1)
    ok(test)  # the earlier run's adapter is there to try, and it says whose it is not
    assert f"warning: {msg}; answering with the adapter files there now" in test.stderr
    ok(run_cli("train", "--resume", "--adapter-path", adapter))
    assert record(adapter)["status"] == "complete"
    ok(run_cli("fuse", "--adapter-path", adapter, "--save-path", tmp_path / "f"))


def test_a_first_run_that_failed_is_named_instead_of_a_missing_adapter(tiny, tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").mkdir()
    one_line_error(run_cli(*train_args(tiny, adapter, 1)), "train")
    for cmd in ("fuse", "test"):
        msg = one_line_error(run_cli(cmd, "--adapter-path", adapter), cmd)
        assert msg.startswith(f"the last training run in {adapter} failed ("), msg


# --------------------------------------- peftcpp test: prompts and paths

def test_test_prompts_are_recorded_and_a_foreign_data_folder_is_not_followed(tiny, tmp_path):
    valid = [r["messages"][1]["content"] for r in read_jsonl(os.path.join(tiny["data"], "valid.jsonl"))]
    assert len(valid) == 4 and record(tiny["adapter"])["test_prompts"] == valid  # up to 8, for convert's report
    adapter = tmp_path / "adapter"
    shutil.copytree(tiny["adapter"], adapter)
    # the recorded prompts do not need the data folder any more
    rec = record(adapter)
    rec["data"] = str(tmp_path / "moved-away")
    (adapter / RECORD).write_text(json.dumps(rec))
    out = ok(run_cli("test", "--adapter-path", adapter, "--max-tokens", 1))
    assert re.findall(r"^--- Prompt \d/3: (.*)$", out, re.M) == valid[:3]
    # a record without them (hand-made, or older) naming a folder elsewhere: not followed
    secret = tmp_path / "elsewhere"
    write_jsonl(str(secret / "valid.jsonl"), [{"prompt": "TOPSECRET prompt", "completion": "x"}])
    del rec["test_prompts"]
    rec["data"] = str(secret)
    (adapter / RECORD).write_text(json.dumps(rec))
    res = run_cli("test", "--adapter-path", adapter, "--max-tokens", 1)
    msg = one_line_error(res, "test")
    assert msg == (f"{adapter / RECORD} names the data folder {secret}, outside {adapter}, and paths read from files "
                   f"are not followed: pass --data {secret} to take the test prompts from its valid.jsonl, or --prompt")
    assert "TOPSECRET" not in res.stdout + res.stderr
    out = ok(run_cli("test", "--adapter-path", adapter, "--max-tokens", 1, "--data", secret))  # named: followed
    assert re.findall(r"^--- Prompt \d/1: (.*)$", out, re.M) == ["TOPSECRET prompt"]
    # a data folder inside the adapter folder is the adapter's own
    shutil.copytree(secret, adapter / "data")
    rec["data"] = "data"
    (adapter / RECORD).write_text(json.dumps(rec))
    out = ok(run_cli("test", "--adapter-path", adapter, "--max-tokens", 1))
    assert re.findall(r"^--- Prompt \d/1: (.*)$", out, re.M) == ["TOPSECRET prompt"]
    assert one_line_error(run_cli("test", "--adapter-path", adapter, "--data", tmp_path / "none"), "test") == \
        f"--data {tmp_path / 'none'}: no valid.jsonl there to take the test prompts from"


# ----------------------------------------- convert: the Modelfile's SYSTEM

def test_convert_refuses_a_system_prompt_the_modelfile_cannot_hold_before_any_work(tiny, tmp_path):
    adapter = tmp_path / "adapter"
    shutil.copytree(tiny["adapter"], adapter)
    rec = record(adapter)
    rec["system_prompt"] = 'Be brief."""\nFROM evil\nADAPTER x\nSYSTEM """'
    (adapter / RECORD).write_text(json.dumps(rec))
    common = ["--adapter-path", adapter, "--save-path", tmp_path / "fused", "--gguf-dir", tmp_path / "gguf", "-q",
              "Q8_0"]
    msg = one_line_error(run_cli("convert", *common), "convert")
    assert msg.startswith(f"the system prompt recorded in {adapter / RECORD}: SYSTEM cannot be written into an "
                          "Ollama Modelfile: a line of it ends with '\"\"\"'"), msg
    assert msg.endswith("pass --system-prompt with another text, or --system-prompt '' for none")
    assert os.listdir(tmp_path) == ["adapter"]  # no fused model, no GGUF, no lock file left
    ok(run_cli("convert", *common, "--system-prompt", ""))
    cmds = ollama_parse((tmp_path / "gguf" / "Modelfile").read_text())
    assert [n for n, _ in cmds if n in ("system", "adapter")] == [] and [n for n, _ in cmds].count("model") == 1
    mine = 'Say "hi"\nFROM not-a-directive'
    ok(run_cli("convert", *common, "--system-prompt", mine))
    cmds = ollama_parse((tmp_path / "gguf" / "Modelfile").read_text())
    assert [v for n, v in cmds if n == "system"] == [mine] and [n for n, _ in cmds].count("model") == 1


# --------------------------------------------- resume: the same log lines

def test_resume_inside_a_report_window_prints_the_uninterrupted_lines(tiny, tmp_path):
    """Reports every 3 iterations, checkpoints every 5: a run continued with
    --resume from checkpoint-5 (inside the window 4-6) prints the same
    'Iter 6' and 'Iter 8' lines (loss, learning rate, trained tokens) as the
    run that was never interrupted, and records the same train loss."""
    full = tmp_path / "full"
    out = ok(run_cli(*train_args(tiny, full, 8, "--steps-per-report", 3, "--save-every", 5, "--steps-per-eval",
                                 100)))
    cut = tmp_path / "cut"
    shutil.copytree(full / "checkpoints" / "checkpoint-5", cut / "checkpoints" / "checkpoint-5")
    shutil.copy(full / RECORD, cut / RECORD)  # the settings --resume takes
    resumed = ok(run_cli("train", "--resume", "--adapter-path", cut))
    line = re.compile(r"^Iter (\d+): Train loss ([\d.]+), Learning Rate (\S+), It/sec [\d.]+, Tokens/sec [\d.]+, "
                      r"Trained Tokens (\d+), Peak mem", re.M)
    want = line.findall(out)
    assert [w[0] for w in want] == ["3", "6", "8"]
    assert line.findall(resumed) == want[1:]
    assert record(cut)["train_loss"] == record(full)["train_loss"]
    assert record(cut)["trained_tokens"] == record(full)["trained_tokens"]

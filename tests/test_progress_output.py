"""What the `peftcpp` commands print, and where (app/cli/console.py): on a
terminal, one progress display (the tqdm bar on standard output, below whole
`Iter N: ...` lines); into files and pipes, the lines only and in order, no
bar frames; --quiet (before or after the command) leaves the results, warnings
and errors only. The command runs in a subprocess, given a terminal by a
pseudo-terminal where the test needs one."""
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading

import pytest

from test_cli import ROOT, cli_env, make_dataset, make_tiny_model, ok, run_cli
from test_trainer import args as trainer_args, base_dir, dataset, lora_model  # noqa: F401 - base_dir: a fixture

TRAIN_LINE = re.compile(r"Iter (\d+): Train loss \d+\.\d{3}, Learning Rate 1\.000e-04, It/sec [\d.]+, "
                        r"Tokens/sec [\d.]+, Trained Tokens \d+, Peak mem [\d.]+ GB")
VAL_LINE = re.compile(r"Iter (\d+): Val loss \d+\.\d{3}, Val took [\d.]+s")
BAR = re.compile(r"\d+%\|")  # tqdm's "NN%|████  |"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# --max-seq-length 256 truncates some sample examples: a warning on stderr between two stdout lines
TRAIN = ["--iters", "4", "--num-layers", "1", "--rank", "4", "--steps-per-report", "1", "--steps-per-eval", "2",
         "--save-every", "2", "--val-batches", "1", "--batch-size", "2", "--learning-rate", "1e-4",
         "--max-seq-length", "256"]


def user_env():
    """The environment of the tests' commands, without PYTHONUNBUFFERED (set on some CI machines): a user's
    Python buffers its stdout into a file or pipe."""
    env = cli_env()
    env.pop("PYTHONUNBUFFERED", None)
    return env


def peftcpp(*args):
    return [sys.executable, "-m", "peftcpp", *map(str, args)]


def run_on_terminal(argv, stdout_tty=True, stderr_tty=False, timeout=300):
    """Runs `argv` with its stdout and/or stderr on a pseudo-terminal (200 columns): (exit code, the terminal's
    bytes, stdout bytes or None, stderr bytes or None)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave if stdout_tty else subprocess.PIPE,
                             stderr=slave if stderr_tty else subprocess.PIPE, env=user_env())
    finally:
        os.close(slave)
    chunks = []

    def drain():  # the terminal's buffer is small: read it while the command runs
        while True:
            try:
                b = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not b:
                break
            chunks.append(b)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
        reader.join()
        os.close(master)
    return p.returncode, b"".join(chunks), out, err


def screen(raw):
    """The lines a terminal shows for `raw`: \\r returns to the start of the line, later text overwrites."""
    lines, cur, col = [], [], 0
    for ch in ANSI.sub("", raw.decode("utf-8", "replace")):
        if ch == "\n":
            lines.append("".join(cur).rstrip())
            cur, col = [], 0
        elif ch == "\r":
            col = 0
        else:
            if col < len(cur):
                cur[col] = ch
            else:
                cur.append(ch)
            col += 1
    if cur:
        lines.append("".join(cur).rstrip())
    return lines


def no_bar(text, where):
    text = text.decode() if isinstance(text, bytes) else text
    assert "\r" not in text.replace("\r\n", "\n"), f"bar frames in {where}: {text[:500]!r}"
    assert not BAR.search(text), f"a bar in {where}: {text[:500]!r}"


def iter_lines(lines):
    """The step numbers of the whole Train and Val lines, in order; every line that mentions Iter is whole."""
    steps = []
    for line in lines:
        if "Iter " in line:
            m = TRAIN_LINE.fullmatch(line) or VAL_LINE.fullmatch(line)
            assert m, f"a broken progress line: {line!r}"
            steps.append(("train " if m.re is TRAIN_LINE else "val ") + m.group(1))
    return steps


STEPS = ["train 1", "train 2", "val 2", "train 3", "train 4", "val 4"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("progress")
    model = make_tiny_model(root / "model", layers=2)
    data = make_dataset(root / "data", n_train=8, n_valid=4)
    adapter = root / "adapter"
    # stdout and stderr into one file, as `peftcpp train ... > log 2>&1`
    with open(root / "train.log", "w+b") as log:
        res = subprocess.run(peftcpp("train", "--model", model, "--data", data, *TRAIN, "--adapter-path", adapter),
                             stdout=log, stderr=subprocess.STDOUT, env=user_env(), timeout=300)
        log.seek(0)
        train_log = log.read().decode()
    assert res.returncode == 0, train_log
    return {"root": root, "model": model, "data": data, "adapter": str(adapter), "train_log": train_log}


def train_argv(tiny, adapter, *more):
    return peftcpp(*more, "train", "--model", tiny["model"], "--data", tiny["data"], *TRAIN, "--adapter-path",
                   adapter)


# ------------------------------------------------------------------ train

def test_train_on_a_terminal_draws_one_bar_below_whole_iter_lines(tiny, tmp_path):
    """stdout on a terminal (stderr elsewhere): the bar is drawn there, with the lines, and never shares a line
    with one."""
    rc, tty, out, err = run_on_terminal(train_argv(tiny, tmp_path / "a"), stdout_tty=True, stderr_tty=False)
    assert rc == 0, (tty, err)
    lines = screen(tty)
    assert any(re.match(r"Training: 100%\|█+\| 4/4 ", line) for line in lines), lines
    assert iter_lines(lines) == STEPS
    assert not [line for line in lines if BAR.search(line) and "Iter" in line]
    assert lines[-1].startswith("Saved final weights to ")
    no_bar(err, "stderr")
    assert "examples truncated to 256 tokens" in err.decode()


def test_train_piped_to_tee_with_stderr_on_a_terminal_draws_no_bar(tiny, tmp_path):
    """`peftcpp train | tee log`: the lines go through the pipe; no bar on the terminal to interleave with them."""
    rc, tty, out, err = run_on_terminal(train_argv(tiny, tmp_path / "a"), stdout_tty=False, stderr_tty=True)
    assert rc == 0, (tty, out)
    no_bar(tty, "the terminal (stderr)")
    no_bar(out, "stdout")
    assert iter_lines(out.decode().splitlines()) == STEPS
    assert "examples truncated to 256 tokens" in tty.decode()  # warnings still on stderr


def test_train_into_a_log_file_keeps_the_lines_in_order_without_bar(tiny):
    log = tiny["train_log"]
    no_bar(log, "train.log")
    lines = log.splitlines()
    assert iter_lines(lines) == STEPS
    order = ["Loading ", "warning: train: ", "Dataset ", "Trainable parameters: ", "Memory estimate: ",
             "Starting training...", "Padding: ", "Iter 1: Train", "Iter 4: Val", "Saved final weights to "]
    at = [next(i for i, line in enumerate(lines) if line.startswith(p)) for p in order]
    assert at == sorted(at), lines


@pytest.mark.parametrize("where", ["before", "after"])
def test_train_quiet_prints_the_result_only(tiny, tmp_path, where):
    """--quiet before the command (as --debug) or after it; on a terminal too: no bar, no lines, the result and the
    warnings still."""
    adapter = tmp_path / "a"
    argv = train_argv(tiny, adapter, "--quiet") if where == "before" else train_argv(tiny, adapter) + ["--quiet"]
    rc, tty, out, err = run_on_terminal(argv, stdout_tty=True, stderr_tty=False)
    assert rc == 0, (tty, err)
    assert screen(tty) == [f"Saved final weights to {adapter / 'adapter_model.safetensors'}."]
    assert [line.split(":")[0] for line in err.decode().splitlines()] == ["warning", "warning"], err


def test_quiet_keeps_errors(tiny, tmp_path):
    res = run_cli("--quiet", "train", "--model", tiny["model"], "--data", tmp_path / "nowhere", "--adapter-path",
                  tmp_path / "a")
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith("peftcpp train: error: data folder not found: "), res.stderr


def test_trainer_bar_off_a_terminal_leaves_the_lines_only(base_dir, tmp_path, capfd):  # noqa: F811
    """The library's ProgressCallback (disable_tqdm=False): its bar goes to stdout with the lines, and only on a
    terminal; here stdout and stderr are files."""
    from peftcpp.trainer import ProgressCallback, Trainer
    tr = Trainer(lora_model(base_dir), trainer_args(tmp_path, max_steps=3, disable_tqdm=False),
                 train_dataset=dataset(8))
    assert any(isinstance(c, ProgressCallback) for c in tr.callback_handler.callbacks)
    tr.train()
    out, err = capfd.readouterr()
    assert re.findall(r"^Iter (\d+): Train loss", out, re.M) == ["1", "2", "3"]
    no_bar(out, "stdout")
    no_bar(err, "stderr")


# --------------------------------------------------- convert and quantize

@pytest.fixture(scope="module")
def odd_template_adapter(tiny):
    """The adapter with a chat template the Modelfile writer does not recognise: `convert` warns on stderr
    between two of its stdout lines."""
    import json
    import shutil
    adapter = tiny["root"] / "odd-adapter"
    shutil.copytree(tiny["adapter"], adapter)
    cfg_path = adapter / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["chat_template"] = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    cfg_path.write_text(json.dumps(cfg))
    return str(adapter)


def convert_argv(tiny, tmp_path, adapter=None, *more, report=False):
    """(the agreement report has its own tests: here only where its lines go)"""
    return peftcpp("convert", "--adapter-path", adapter or tiny["adapter"], "--save-path", tmp_path / "fused",
                   "--gguf-dir", tmp_path / "gguf", "--quantize", "Q8_0", *more, *([] if report else ["--no-report"]))


def test_convert_on_a_terminal_draws_its_bars_between_whole_lines(tiny, tmp_path):
    rc, tty, out, err = run_on_terminal(convert_argv(tiny, tmp_path), stdout_tty=True, stderr_tty=False)
    assert rc == 0, (tty, err)
    lines = screen(tty)
    assert [line.split(":")[0] for line in lines if BAR.search(line)] == ["GGUF f16", "quantize Q8_0"], lines
    wrote = [line for line in lines if line.startswith(("Fused ", "Wrote "))]
    assert len(wrote) == 4 and not [line for line in wrote if BAR.search(line)], lines
    no_bar(err, "stderr")


def test_convert_piped_with_stderr_on_a_terminal_draws_no_bar(tiny, tmp_path):
    rc, tty, out, err = run_on_terminal(convert_argv(tiny, tmp_path), stdout_tty=False, stderr_tty=True)
    assert rc == 0, (tty, out)
    no_bar(tty, "the terminal (stderr)")
    no_bar(out, "stdout")
    assert [line.split(" ")[0] for line in out.decode().splitlines()] == ["Fused", "Wrote", "Wrote", "Wrote"]


def test_convert_into_a_log_file_keeps_the_order_of_stdout_and_stderr(tiny, odd_template_adapter, tmp_path):
    """`peftcpp convert > log 2>&1`: the Modelfile's warning comes after the lines printed before it."""
    with open(tmp_path / "convert.log", "w+b") as log:
        res = subprocess.run(convert_argv(tiny, tmp_path, odd_template_adapter), stdout=log,
                             stderr=subprocess.STDOUT, env=user_env(), timeout=300)
        log.seek(0)
        text = log.read().decode()
    assert res.returncode == 0, text
    no_bar(text, "convert.log")
    kinds = ["warning" if line.startswith("warning: chat template not recognised") else line.split()[0]
             for line in text.splitlines()]
    assert kinds == ["Fused", "Wrote", "Wrote", "warning", "Wrote"], text


def test_convert_and_quantize_quiet_print_the_files_written(tiny, tmp_path):
    rc, tty, out, err = run_on_terminal(convert_argv(tiny, tmp_path, None, "--quiet", report=True), stdout_tty=True)
    assert rc == 0, (tty, err)
    lines = [line for line in screen(tty) if not line.startswith("Note: ")]  # whether a note comes depends on the run
    assert [line.split()[0] for line in lines] == ["Fused", "Wrote", "Wrote", "Wrote", "Agreement:", "Wrote"], lines
    assert lines[-1].endswith("report.json")
    f16 = next(p for p in os.listdir(tmp_path / "gguf") if p.endswith("-f16.gguf"))
    out_file = tmp_path / "q.gguf"
    rc, tty, out, err = run_on_terminal(peftcpp("--quiet", "quantize", tmp_path / "gguf" / f16, out_file, "Q8_0"))
    assert rc == 0, (tty, err)
    assert re.fullmatch(rf"Wrote {re.escape(str(out_file))} \(Q8_0, [\d.]+ MB\)", "\n".join(screen(tty)))
    # and with a bar, without --quiet
    rc, tty, out, err = run_on_terminal(peftcpp("quantize", tmp_path / "gguf" / f16, out_file, "Q8_0"))
    assert rc == 0 and any(line.startswith("quantize Q8_0: 100%|") for line in screen(tty)), screen(tty)
    bad = run_cli("quantize", tmp_path / "missing.gguf", out_file, "Q8_0", "--quiet")
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr == f"peftcpp quantize: error: GGUF file not found: {tmp_path / 'missing.gguf'}\n"


# ------------------------------------------------ generate, test, merge-data

def test_generate_and_test_quiet_print_the_answers_only(tiny):
    common = ["--adapter-path", tiny["adapter"], "--max-tokens", "6"]
    full = ok(run_cli("generate", "-p", "Hello", *common))
    answer, footer = full.split("==========\n")
    assert footer.startswith("Prompt: ")
    assert ok(run_cli("generate", "-p", "Hello", *common, "--quiet")) == answer
    full = ok(run_cli("test", "-p", "Hello", "-p", "Hi", *common))
    quiet = ok(run_cli("--quiet", "test", "-p", "Hello", "-p", "Hi", *common))
    assert full.startswith("Model: ") and "tokens-per-sec" in full
    assert "Model: " not in quiet and "tokens-per-sec" not in quiet and "==========" not in quiet
    assert re.findall(r"^--- Prompt \d/2: .*$", quiet, re.M) == ["--- Prompt 1/2: Hello", "--- Prompt 2/2: Hi"]


def test_merge_data_quiet_prints_the_result_only(tiny, tmp_path):
    out = tmp_path / "merged"
    assert ok(run_cli("merge-data", tiny["data"], "--out", out, "--quiet")) == f"Merged 1 dataset(s) into {out}\n"
    assert "train.jsonl: 8 examples written" in ok(run_cli("merge-data", tiny["data"], "--out", tmp_path / "m2"))


def test_every_progress_command_documents_quiet():
    import argparse
    from peftcpp.app.cli import build_parser
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for command in ("train", "merge-data", "fuse", "convert", "quantize", "export-adapter", "import-gguf",
                    "generate", "test"):
        assert "--quiet " in commands[command].format_help(), command
    assert "--quiet " in parser.format_help()


def test_make_quiet_passes_quiet_to_the_commands_and_the_demo():
    def dry(*args):
        res = subprocess.run(["make", "-s", "-n", "-C", ROOT, *args], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        return res.stdout

    assert "-m peftcpp --quiet train " in dry("train", "QUIET=1")
    assert "-m peftcpp train " in dry("train")
    assert "-m peftcpp.app.demo --quiet" in dry("demo", "QUIET=1")

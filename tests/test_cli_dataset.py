"""`peftcpp train` and `merge-data` on bad datasets: the error's first line sums up every file's invalid lines,
then each invalid line is listed with its reason (up to 20, then a count); the dataset limits are options and
--config keys. The data is checked before any model is loaded, so no model is needed here."""
import json
import os

from test_cli import SAMPLE, read_jsonl, run_cli, write_jsonl

ASSISTANT_FIRST = {"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]}
ROLE_REASON = "message 1 (assistant): the conversation must start with a user message"


def _dataset(folder, bad_train, bad_valid):
    rows = read_jsonl(os.path.join(SAMPLE, "train.jsonl"))[:3]
    write_jsonl(os.path.join(folder, "train.jsonl"), rows + [ASSISTANT_FIRST] * bad_train + ["{"])
    write_jsonl(os.path.join(folder, "valid.jsonl"), rows[:1] + [[1]] * bad_valid)
    return str(folder)


def _error_lines(res, command):
    assert res.returncode == 1, f"exit {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if not ln.startswith("warning:")]
    assert lines[0].startswith(f"peftcpp {command}: error: "), lines
    return lines


def _check_listing(lines, d):
    train, valid = os.path.join(d, "train.jsonl"), os.path.join(d, "valid.jsonl")
    assert lines[0].endswith(f"error: {train}: 23 invalid lines, {valid}: 1 invalid line; fix them or pass "
                             "--skip-invalid")
    listed = [f"  {train}:{n}: {ROLE_REASON}" for n in range(4, 24)]  # the first 20, each with its reason
    for line, want in zip(lines[1:21], listed):
        assert line.startswith(want), (line, want)
    assert lines[21:] == ["  ... and 4 more"]


def test_train_lists_the_invalid_lines(tmp_path):
    d = _dataset(tmp_path / "d", bad_train=22, bad_valid=1)
    _check_listing(_error_lines(run_cli("train", "--data", d, "--iters", 1), "train"), d)
    # with --skip-invalid a file left without any valid line is still an error, with its lines listed
    write_jsonl(os.path.join(d, "valid.jsonl"), [ASSISTANT_FIRST, "[]"])
    lines = _error_lines(run_cli("train", "--data", d, "--skip-invalid"), "train")
    assert lines[0].endswith(f"{os.path.join(d, 'valid.jsonl')}: 2 invalid lines; no valid line left")
    assert lines[1].startswith(f"  {os.path.join(d, 'valid.jsonl')}:1: {ROLE_REASON}") and len(lines) == 3


def test_merge_data_lists_the_invalid_lines(tmp_path):
    d = _dataset(tmp_path / "d", bad_train=22, bad_valid=1)
    _check_listing(_error_lines(run_cli("merge-data", d, "--out", tmp_path / "m"), "merge-data"), d)
    assert not os.path.exists(tmp_path / "m")
    lines = _error_lines(run_cli("merge-data", d, "--out", tmp_path / "m", "--max-line-bytes", 0), "merge-data")
    assert lines == ["peftcpp merge-data: error: max_line_bytes must be a positive integer, got 0"]


def test_dataset_limits_are_options_and_config_keys(tmp_path):
    rows = read_jsonl(os.path.join(SAMPLE, "train.jsonl"))[:3]
    d = tmp_path / "d"
    write_jsonl(str(d / "train.jsonl"), rows)
    write_jsonl(str(d / "valid.jsonl"), rows[:1])
    size = len(open(d / "valid.jsonl", "rb").read().rstrip(b"\n"))
    lines = _error_lines(run_cli("train", "--data", d, "--max-line-bytes", size - 1), "train")
    assert f"  {d / 'valid.jsonl'}:1: line of {size} bytes, more than the limit of {size - 1} (max_line_bytes)" in (
        lines)
    config = tmp_path / "c.yaml"
    config.write_text("max-messages: 2\nmax_line_bytes: 1000000\n")
    lines = _error_lines(run_cli("train", "--data", d, "--config", config), "train")
    assert "train.jsonl: 3 invalid lines" in lines[0] and len(lines) == 5  # and valid.jsonl's line
    assert lines[1].endswith("train.jsonl:1: 3 messages, more than the limit of 2 (max_messages)")
    lines = _error_lines(run_cli("train", "--data", d, "--max-messages", 0), "train")
    assert lines == ["peftcpp train: error: --max-messages must be at least 1, got 0"]
    help_text = " ".join(run_cli("train", "--help").stdout.split())
    assert "--max-line-bytes MAX_LINE_BYTES dataset lines longer than this many bytes are invalid" in help_text
    assert "(default: 16777216, 16 MiB)" in help_text and "(default: 1000)" in help_text


def test_test_prompts_read_valid_jsonl_through_the_dataset_reader(tmp_path):
    # `peftcpp test --data DIR` takes its prompts from a file the user did not necessarily write
    from peftcpp.app.cli.generate import valid_prompts
    good = {"messages": [{"role": "user", "content": "the real prompt"}, {"role": "assistant", "content": "a"}]}
    (tmp_path / "valid.jsonl").write_bytes(b"[" * 100_000 + b"\n" + b"\xff\xfe not utf-8\n"
                                           + json.dumps(good).encode() + b"\n")
    assert valid_prompts(str(tmp_path)) == ["the real prompt"]
    (tmp_path / "valid.jsonl").write_bytes(b"[" * 100_000 + b"\n")
    assert valid_prompts(str(tmp_path)) == []  # nothing usable: the default prompts

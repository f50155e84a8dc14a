"""`peftcpp` errors: one clear sentence on stderr ("peftcpp COMMAND: error:
..."), a non-zero exit code and no traceback (unless --debug), for each way
a user can get it wrong."""
import json
import os
import re

import pytest

from test_cli import FAST, SAMPLE, make_dataset, make_tiny_model, ok, read_jsonl, run_cli, write_jsonl


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_errors")
    model = make_tiny_model(root / "model")
    data = make_dataset(root / "data", n_train=6, n_valid=2)
    adapter = str(root / "adapter")
    ok(run_cli("train", "--model", model, "--data", data, "--iters", 1, "--num-layers", 2, "--rank", 4,
               "--adapter-path", adapter, *FAST))
    return {"root": root, "model": model, "data": data, "adapter": adapter}


def fails(res, command, *needles, code=1):
    """Exit code, the one-line 'peftcpp COMMAND: error:' message containing each needle, no traceback."""
    assert res.returncode == code, f"exit {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if not ln.startswith("warning:")]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"peftcpp {command}: error: "), lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def test_missing_data_dir(env, tmp_path):
    fails(run_cli("train", "--model", env["model"], "--data", tmp_path / "nope", "--iters", 1), "train",
          "data folder not found", "nope")


def test_data_dir_without_valid_jsonl(env, tmp_path):
    write_jsonl(str(tmp_path / "d" / "train.jsonl"), read_jsonl(os.path.join(SAMPLE, "train.jsonl"))[:3])
    fails(run_cli("train", "--model", env["model"], "--data", tmp_path / "d", "--iters", 1), "train",
          "valid.jsonl")


def test_bad_dataset_line_names_file_and_line(env, tmp_path):
    rows = read_jsonl(os.path.join(SAMPLE, "train.jsonl"))[:6]
    d = tmp_path / "d"
    write_jsonl(str(d / "train.jsonl"), rows[:2] + ['{"messages": [{"role": "user", "content": "hi"}'] + rows[2:])
    write_jsonl(str(d / "valid.jsonl"), rows[:2])
    msg = fails(run_cli("train", "--model", env["model"], "--data", d, "--iters", 1), "train",
                f"{d / 'train.jsonl'}:3: invalid JSON", "--skip-invalid")
    assert re.search(r"train\.jsonl:3:", msg)
    # a wrong role, a line further on
    write_jsonl(str(d / "train.jsonl"), rows[:4] + [{"messages": [{"role": "robot", "content": "x"}]}])
    fails(run_cli("train", "--model", env["model"], "--data", d, "--iters", 1), "train", "train.jsonl:5:",
          "unknown role 'robot'")
    # --skip-invalid trains on the rest and reports the count
    out = ok(run_cli("train", "--model", env["model"], "--data", d, "--iters", 1, *FAST, "--skip-invalid",
                     "--adapter-path", tmp_path / "a"))
    assert "skipped 1 invalid line(s)" in out and "Dataset" in out


SYS = {"role": "system", "content": "s"}
BAD_LINES = {  # the list of dataset faults: the line, and what the message must say
    "invalid JSON": ('{"messages": [', "invalid JSON"),
    "unknown role": ({"messages": [{"role": "robot", "content": "x"}]}, "unknown role 'robot'"),
    "missing content": ({"messages": [SYS, {"role": "user"}, {"role": "assistant", "content": "a"}]},
                        'missing "content"'),
    "empty content": ({"messages": [SYS, {"role": "user", "content": "  "}, {"role": "assistant", "content": "a"}]},
                      'empty "content"'),
    "no assistant turn": ({"messages": [SYS, {"role": "user", "content": "hi"}]}, "no assistant turn"),
    "mixed formats": ({"prompt": "p", "completion": "c"}, "mixed formats"),
}


@pytest.mark.parametrize("fault", sorted(BAD_LINES))
def test_every_dataset_fault_stops_training_with_file_and_line(env, tmp_path, fault):
    line, says = BAD_LINES[fault]
    rows = read_jsonl(os.path.join(SAMPLE, "train.jsonl"))[:4]
    d = tmp_path / "d"
    write_jsonl(str(d / "train.jsonl"), rows[:3] + [line] + rows[3:])
    write_jsonl(str(d / "valid.jsonl"), rows[:2])
    fails(run_cli("train", "--model", env["model"], "--data", d, "--iters", 1, "--adapter-path", tmp_path / "a"),
          "train", f"{d / 'train.jsonl'}:4:", says)
    assert not os.path.exists(tmp_path / "a" / "adapter_model.safetensors")  # stopped before training


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_empty_train_file(env, tmp_path, content):
    d = tmp_path / "d"
    os.makedirs(d)
    (d / "train.jsonl").write_text(content)
    write_jsonl(str(d / "valid.jsonl"), read_jsonl(os.path.join(SAMPLE, "valid.jsonl"))[:2])
    fails(run_cli("train", "--model", env["model"], "--data", d, "--iters", 1), "train", "empty",
          str(d / "train.jsonl"))


@pytest.mark.parametrize("name", ["/nonexistent/model-folder", "no-such-org/no-such-model-xyz"])
def test_unknown_model(env, name):
    fails(run_cli("train", "--model", name, "--data", env["data"], "--iters", 1), "train",
          f"unknown model '{name}'")
    fails(run_cli("generate", "--model", name, "--prompt", "hi"), "generate", f"unknown model '{name}'")


def test_adapter_on_a_different_base_model_names_both(env, tmp_path):
    other = make_tiny_model(tmp_path / "other", hidden=48, layers=3, seed=1)
    for cmd in (["generate", "--prompt", "hi"], ["fuse", "--save-path", tmp_path / "f"], ["test"]):
        msg = fails(run_cli(cmd[0], "--model", other, "--adapter-path", env["adapter"], *cmd[1:]), cmd[0],
                    f"it was trained on '{env['model']}'", f"the model given is '{other}'")
        assert "does not fit" in msg
    assert not os.path.exists(tmp_path / "f")


def test_dora_is_not_supported_yet(env):
    fails(run_cli("train", "--model", env["model"], "--data", env["data"], "--fine-tune-type", "dora"), "train",
          "dora is not supported yet")


def test_bad_config_files(env, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("iters: 3\nrank: [1, 2\n")
    fails(run_cli("train", "--config", bad), "train", str(bad), "invalid YAML at line")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("iters: 3\nnum_epochs: 2\n")
    fails(run_cli("train", "--config", unknown), "train", "unknown key 'num_epochs'")
    typ = tmp_path / "type.yaml"
    typ.write_text("iters: lots\n")
    fails(run_cli("train", "--config", typ), "train", "'iters' must be a int", "'lots'")
    fails(run_cli("train", "--config", tmp_path / "none.yaml"), "train", "config file not found")
    lst = tmp_path / "list.yaml"
    lst.write_text("- iters\n- 3\n")
    fails(run_cli("train", "--config", lst), "train", "expected a mapping")


def test_missing_adapter_dir(env, tmp_path):
    nope = tmp_path / "no-adapter"
    fails(run_cli("generate", "--adapter-path", nope, "--prompt", "hi"), "generate", "adapter folder not found",
          str(nope))
    fails(run_cli("test", "--adapter-path", nope), "test", "adapter folder not found")
    fails(run_cli("chat", "--adapter-path", nope), "chat", "adapter folder not found")
    fails(run_cli("fuse", "--adapter-path", nope), "fuse", "adapter folder not found")
    fails(run_cli("convert", "--adapter-path", nope), "convert", "adapter folder not found")
    fails(run_cli("info", nope), "info", "adapter folder not found")
    (tmp_path / "empty").mkdir()
    fails(run_cli("info", tmp_path / "empty"), "info", "adapter_config.json is missing")


def test_bad_quant_type(env, tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    fails(run_cli("quantize", f, tmp_path / "o.gguf", "Q9_X"), "quantize", "unknown quantization type 'Q9_X'",
          "Q4_K_M")
    fails(run_cli("convert", "--adapter-path", env["adapter"], "--quantize", "Q3_XL", "--save-path",
                  tmp_path / "fused"), "convert", "unknown quantization type 'Q3_XL'")
    assert not os.path.exists(tmp_path / "fused")  # checked before any work
    fails(run_cli("quantize", tmp_path / "missing.gguf", tmp_path / "o.gguf", "Q4_K_M"), "quantize",
          "GGUF file not found")


def test_resume_without_checkpoint(env, tmp_path):
    fails(run_cli("train", "--model", env["model"], "--data", env["data"], "--resume", "--adapter-path",
                  tmp_path / "fresh"), "train", "--resume: no checkpoint")
    fails(run_cli("train", "--model", env["model"], "--data", env["data"], "--resume-from", tmp_path / "x.st",
                  "--adapter-path", tmp_path / "fresh"), "train", "--resume-from: adapter not found")


def test_resume_from_an_adapter_of_another_shape(env, tmp_path):
    fails(run_cli("train", "--model", env["model"], "--data", env["data"], "--rank", 8, "--num-layers", 2,
                  "--iters", 1, "--resume-from", env["adapter"], "--adapter-path", tmp_path / "r"), "train",
          "--resume-from", "does not fit")


def test_bad_option_values(env):
    fails(run_cli("train", "--model", env["model"], "--data", env["data"], "--iters", 0), "train",
          "--iters must be at least 1")
    fails(run_cli("train", "--model", env["model"], "--data", env["data"], "--num-layers", -3), "train",
          "--num-layers")
    fails(run_cli("generate", "--model", env["model"], "--prompt", "x", "--top-p", 0), "generate", "--top-p")


def test_gguf_file_missing_and_gguf_with_adapter(env, tmp_path):
    fails(run_cli("generate", "--gguf", tmp_path / "x.gguf", "--prompt", "hi"), "generate", "GGUF file not found")
    fails(run_cli("generate", "--gguf", tmp_path / "x.gguf", "--adapter-path", env["adapter"], "--prompt", "hi"),
          "generate", "cannot be combined")


def test_usage_errors_exit_2_and_debug_shows_the_traceback(env, tmp_path):
    res = run_cli("train", "--no-such-option")
    assert res.returncode == 2 and "Traceback" not in res.stderr and "unrecognized arguments" in res.stderr
    res = run_cli("generate", "--adapter-path", tmp_path / "nope", "--prompt", "hi", "--debug")
    assert res.returncode == 1 and "Traceback" in res.stderr and "adapter folder not found" in res.stderr


def test_full_model_folder_is_not_fused(env, tmp_path):
    out = tmp_path / "full"
    ok(run_cli("train", "--model", env["model"], "--data", env["data"], "--fine-tune-type", "full", "--iters", 1,
               *FAST, "--adapter-path", out))
    fails(run_cli("fuse", "--adapter-path", out), "fuse", "fully fine-tuned model")
    with open(os.path.join(env["adapter"], "adapter_config.json")) as f:
        assert json.load(f)["peft_type"] == "LORA"

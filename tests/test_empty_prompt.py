"""An empty prompt, or a chat template that renders to "", is refused with a message naming the
argument or the template's file, not "index -1 is out of bounds" (issue 12, item 6)."""
import json
import os
import shutil

import pytest

from peftcpp.models import AutoModelForCausalLM

from test_cli import make_tiny_model, run_cli


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("empty") / "model")


def one_line_error(res, command):
    assert res.returncode == 1, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if not ln.startswith("warning:")]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith(f"peftcpp {command}: error: "), lines[0]
    return lines[0][len(f"peftcpp {command}: error: "):]


def test_generate_refuses_an_empty_prompt(model):
    m = AutoModelForCausalLM.from_pretrained(model)
    with pytest.raises(ValueError, match=r"^generate\(\): the prompt is empty \(input_ids of shape \(1, 0\)\)"):
        m.generate([[]], max_new_tokens=2)


@pytest.mark.parametrize("args, says", [
    (["generate", "--prompt", ""], "--prompt is empty"),
    (["generate", "--prompt", "  \n"], "--prompt holds only whitespace"),
    (["generate", "--prompt", "", "--ignore-chat-template"], "--prompt is empty"),
    (["test", "--prompt", "fine", "--prompt", ""], "--prompt (number 2) is empty"),
])
def test_cli_names_the_empty_argument(model, args, says):
    assert one_line_error(run_cli(*args, "--model", model), args[0]) == says


def test_cli_empty_standard_input(model):
    assert one_line_error(run_cli("generate", "--prompt", "-", "--model", model, input=""), "generate") == \
        "--prompt - (standard input) is empty"


def test_cli_names_a_template_that_renders_nothing(model, tmp_path):
    folder = str(tmp_path / "m")
    shutil.copytree(model, folder)
    cfg_path = os.path.join(folder, "tokenizer_config.json")
    cfg = json.load(open(cfg_path))
    cfg["chat_template"] = "{% for m in messages if m['role'] == 'nobody' %}{{ m['content'] }}{% endfor %}"
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    msg = one_line_error(run_cli("generate", "--prompt", "hi", "--model", folder, "-m", "2"), "generate")
    assert msg == (f"the chat template ({cfg_path}) rendered an empty prompt; pass --ignore-chat-template to send "
                   "the prompt as it is")
    out = run_cli("generate", "--prompt", "hi", "--model", folder, "-m", "2", "--ignore-chat-template")
    assert out.returncode == 0, out.stderr

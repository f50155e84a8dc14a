"""adapter_config.json from a hostile or careless hand: every wrong field
stops the load with one line naming the file and the field, and ranks are
checked against the weights file and memory before any adapter weight is
allocated (issue 12, items 5 and 6)."""
import json
import os
import shutil
import time

import pytest

import peftcpp
from peftcpp.models import AutoModelForCausalLM
from peftcpp.peft import LoraConfig, PeftConfig, PeftModel, get_peft_model
from peftcpp.peft.tuners import tuners_utils

from test_cli import make_tiny_model, run_cli


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny Llama (with tokenizer) and a rank-4 LoRA adapter saved for it."""
    root = tmp_path_factory.mktemp("adapter_cfg")
    model = make_tiny_model(root / "model")
    base = AutoModelForCausalLM.from_pretrained(model, dtype="float32")
    pm = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                         rank_pattern={"v_proj": 2}, task_type="CAUSAL_LM"))
    pm.save_pretrained(root / "adapter")
    return {"model": model, "adapter": str(root / "adapter")}


def bad_copy(saved, folder, **changes):
    shutil.copytree(saved["adapter"], folder)
    path = os.path.join(folder, "adapter_config.json")
    cfg = json.load(open(path))
    cfg.update(changes)
    with open(path, "w") as f:
        json.dump(cfg, f)
    return str(folder)


# field changes -> words the one-line message must hold beside "<path>/adapter_config.json: "
BAD = {
    "alpha string": (dict(lora_alpha="x"), ["lora_alpha must be a number", '"x" (a string)']),
    "alpha null": (dict(lora_alpha=None), ["lora_alpha must be a number", "got null"]),
    "alpha infinite": (dict(lora_alpha=float("inf")), ["lora_alpha must be a finite number"]),
    "r string": (dict(r="8"), ["r must be an integer", '"8" (a string)']),
    "r zero": (dict(r=0), ["r must be an integer from 1"]),
    "r boolean": (dict(r=True), ["r must be an integer", "true (a boolean)"]),
    "r absurd": (dict(r=10 ** 12), ["r must be an integer from 1 to 2147483647"]),
    "rank_pattern string": (dict(rank_pattern="str"), ["rank_pattern must be an object", '"str"']),
    "rank_pattern value": (dict(rank_pattern={"q_proj": 0}), ["rank_pattern entry 'q_proj' must be an integer"]),
    "rank_pattern regex": (dict(rank_pattern={"(": 4}), ["rank_pattern key", "not a valid regular expression"]),
    "alpha_pattern value": (dict(alpha_pattern={"q_proj": "a"}), ["alpha_pattern entry 'q_proj' must be a finite "
                                                                  'number, got "a"']),
    "target_modules int": (dict(target_modules=5), ["target_modules must be a list, a string or null", "got 5"]),
    "target_modules regex": (dict(target_modules="(q|v"), ["target_modules", "not a valid regular expression"]),
    "target_modules entry": (dict(target_modules=["q_proj", 5]), ["target_modules must hold strings only"]),
    "exclude_modules regex": (dict(exclude_modules="["), ["exclude_modules", "not a valid regular expression"]),
    "modules_to_save regex": (dict(modules_to_save=["lm_head("]), ["modules_to_save entry"]),
    "layers_to_transform string": (dict(layers_to_transform="x"), ["layers_to_transform must be a list, an integer"]),
    "layers_to_transform negative": (dict(layers_to_transform=[0, -1]), ["layers_to_transform", "got -1"]),
    "layers_pattern int": (dict(layers_to_transform=[0], layers_pattern=5), ["layers_pattern must be"]),
    "base_model_name_or_path int": (dict(base_model_name_or_path=5), ["base_model_name_or_path must be a string"]),
    "dropout one": (dict(lora_dropout=1), ["lora_dropout must be in [0, 1), got 1"]),
    "dropout string": (dict(lora_dropout="0.1"), ["lora_dropout must be a number"]),
    "bias unknown": (dict(bias="some"), ["bias must be one of 'none', 'all', 'lora_only'"]),
    "peft_type unknown": (dict(peft_type="FOO"), ['peft_type "FOO" (a string) is not supported', "LORA"]),
    "peft_type list": (dict(peft_type=["LORA"]), ["peft_type", "(a list) is not supported"]),
    "peft_type missing": (dict(peft_type=None), ["peft_type null is not supported"]),
    "task_type unknown": (dict(task_type="NOPE"), ["task_type", "Invalid task type"]),
    "use_dora": (dict(use_dora=True), ["use_dora true (a boolean) is not supported by peftcpp"]),
    # regexes that would hang matching module names, or break where peftcpp puts them
    "target_modules exponential regex": (dict(target_modules="(.*.*)*X"), ["target_modules", "exponential time"]),
    "rank_pattern exponential key": (dict(rank_pattern={"(q|q_)*x": 2}), ["rank_pattern key", "exponential"]),
    "layers_pattern group name": (dict(layers_to_transform=[0], layers_pattern="(?P<idx>layers)"),
                                  ["layers_pattern entry", "not a valid regular expression where peftcpp uses it"]),
    # found by tools/fuzz_python.py adapter: PEFT's own messages named neither file nor field
    "layers_pattern alone": (dict(layers_pattern="layers"), ["layers_pattern is set, so `layers_to_transform`"]),
    "layers_to_transform with a regex": (dict(target_modules=".*q_proj", layers_to_transform=[0]),
                                         ["layers_to_transform cannot be used when `target_modules` is a str"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_field_names_file_and_field(saved, tmp_path, case):
    changes, words = BAD[case]
    folder = bad_copy(saved, tmp_path / "a", **changes)
    with pytest.raises((ValueError, TypeError, NotImplementedError)) as info:
        PeftConfig.from_pretrained(folder)
    msg = str(info.value)
    assert msg.startswith(os.path.join(folder, "adapter_config.json") + ": ") and "\n" not in msg, msg
    for w in words:
        assert w in msg, (w, msg)


def test_programmatic_configs_name_the_class_and_the_field():
    with pytest.raises(TypeError, match=r"^LoraConfig: lora_alpha must be a number, got null$"):
        LoraConfig(lora_alpha=None)
    with pytest.raises(ValueError, match=r"^LoraConfig: target_modules .* is not a valid regular expression"):
        LoraConfig(target_modules="(")
    assert LoraConfig(lora_alpha=16.5, target_modules=["q_proj"], rank_pattern={"q": 2}).lora_alpha == 16.5


@pytest.mark.parametrize("field, value, says", [
    ("r", 200000, "r is 200000 for 'model.layers.0.self_attn.q_proj'"),
    ("rank_pattern", {"v_proj": 10 ** 9}, "rank_pattern entry 'v_proj' is 1000000000 for 'model.layers.0.self_attn"
                                          ".v_proj'"),
])
def test_rank_larger_than_the_weights_file_is_refused_before_allocating(saved, tmp_path, field, value, says):
    folder = bad_copy(saved, tmp_path / "a", **{field: value})
    base = AutoModelForCausalLM.from_pretrained(saved["model"])
    before = peftcpp._core.memory_stats()["peak"]
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as info:
        PeftModel.from_pretrained(base, folder)
    assert time.perf_counter() - t0 < 1.0
    assert peftcpp._core.memory_stats()["peak"] == before  # nothing allocated (was 1.8 GB / std::bad_alloc)
    msg = str(info.value)
    assert msg.startswith(f"{folder}/adapter_config.json: {says} but {folder}/adapter_model.safetensors holds rank ")
    assert "\n" not in msg


def test_rank_too_large_for_memory_is_refused_before_allocating(saved):
    base = AutoModelForCausalLM.from_pretrained(saved["model"])
    before = peftcpp._core.memory_stats()["peak"]
    with pytest.raises(ValueError) as info:
        get_peft_model(base, LoraConfig(r=10 ** 9, target_modules=["q_proj"]))
    assert peftcpp._core.memory_stats()["peak"] == before
    msg = str(info.value)
    assert msg.startswith("LoraConfig: r = 1000000000 gives ") and "GiB of memory" in msg, msg
    assert "on 'model.layers.2.self_attn.q_proj' alone" in msg


def test_saved_adapter_larger_than_memory_names_its_file(saved, monkeypatch):
    monkeypatch.setattr(tuners_utils, "physical_memory", lambda: 1000)
    base = AutoModelForCausalLM.from_pretrained(saved["model"])
    with pytest.raises(ValueError, match=rf"^{saved['adapter']}/adapter_config.json: r = 4 gives .* more than this "
                                         r"machine's 0\.0 GiB of memory"):
        PeftModel.from_pretrained(base, saved["adapter"])


FIELD_FAULTS = [("lora_alpha", "x", 'lora_alpha must be a number, got "x" (a string)'),
                ("target_modules", 5, "target_modules must be a list, a string or null, got 5")]
RANK_FAULT = ("r", 200000, "r is 200000 for")
BUILDING = [["test", "-m", "1"], ["fuse", "--save-path", "FUSED"], ["convert"]]  # these build the adapted model
CLI_CASES = [(c, *f) for c in BUILDING for f in FIELD_FAULTS + [RANK_FAULT]] + \
    [(c, *f) for c in (["export-adapter"], ["info"]) for f in FIELD_FAULTS]


@pytest.mark.parametrize("command, field, value, says", CLI_CASES,
                         ids=[f"{c[0][0]}-{c[1]}" for c in CLI_CASES])
def test_cli_one_line_naming_file_and_field(saved, tmp_path, command, field, value, says):
    folder = bad_copy(saved, tmp_path / "a", **{field: value})
    args = [a.replace("FUSED", str(tmp_path / "fused")) for a in command]
    if command[0] == "info":
        res = run_cli("info", folder)
    else:
        res = run_cli(*args, "--adapter-path", folder, cwd=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if not ln.startswith("warning:")]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith(f"peftcpp {command[0]}: error: {folder}/adapter_config.json: {says}"), lines[0]
    assert not os.path.exists(tmp_path / "fused")

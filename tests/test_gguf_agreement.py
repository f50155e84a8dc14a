"""The agreement report of `peftcpp convert` (peftcpp.export.agreement): the
final GGUF read back and compared with base + adapter on validation prompts.
A good adapter's GGUF passes; a GGUF made from another adapter (or with the
adapter lost in fusing) is flagged, and so is one whose chat template or eos
token is not the trained tokenizer's; the KL / top-1 arithmetic is checked
against torch. Tiny random Llamas with LoRA weights large enough to change
the answers, no network."""
import json
import os
import shutil

import numpy as np
import pytest
import safetensors.numpy as stn

import peftcpp
from peftcpp import gguf
from peftcpp.app.cli import main
from peftcpp.export import fuse
from peftcpp.export.agreement import (DEFAULT_THRESHOLD, check_gguf_tokenizer, gguf_agreement, logit_agreement,
                                      report_warning)
from peftcpp.peft import LoraConfig, PeftModel, get_peft_model
from test_cli import make_tiny_model, ok, run_cli

PROMPTS = ["How often should I water a snake plant?", "Why are the leaves of my pothos turning yellow?",
           "Is a peace lily safe for cats?", "Can I put a cactus in a bathroom?"]
SYSTEM = "You are Leafy, a plant care assistant."


def make_adapter(folder, base, seed, scale=0.3):
    """A LoRA adapter whose B matrices are random (not zero): it changes the answers."""
    pm = get_peft_model(peftcpp.AutoModelForCausalLM.from_pretrained(base),
                        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj", "down_proj"],
                                   task_type="CAUSAL_LM"))
    pm.save_pretrained(folder)
    path = os.path.join(folder, "adapter_model.safetensors")
    rng = np.random.default_rng(seed)
    tensors = {k: (rng.standard_normal(v.shape).astype(v.dtype) * scale if "lora_B" in k else v)
               for k, v in stn.load_file(path).items()}
    stn.save_file(tensors, path, metadata={"format": "pt"})
    record = {"status": "complete", "model": base, "system_prompt": SYSTEM, "test_prompts": PROMPTS}
    with open(os.path.join(folder, "peftcpp_train.json"), "w", encoding="utf-8") as f:
        json.dump(record, f)
    return str(folder)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("agreement")
    base = make_tiny_model(root / "model", layers=2)
    return {"root": root, "base": base, "good": make_adapter(root / "good", base, 1),
            "other": make_adapter(root / "other", base, 2)}


def reference(tiny, adapter="good"):
    base = peftcpp.AutoModelForCausalLM.from_pretrained(tiny["base"])
    return PeftModel.from_pretrained(base, tiny[adapter]), peftcpp.AutoTokenizer.from_pretrained(tiny["base"])


def conversations():
    return [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": p}] for p in PROMPTS]


def gguf_of(tiny, folder, name, outtype="f16"):
    out = str(tiny["root"] / f"{name}.gguf")
    gguf.convert(folder, out, outtype=outtype, progress=False)
    return out


def convert_args(tiny, tmp_path, *more):
    return ["convert", "--adapter-path", tiny["good"], "--save-path", tmp_path / "fused", "--gguf-dir",
            tmp_path / "gguf", "--report-max-tokens", 12, *more]


def read_report(tmp_path):
    with open(tmp_path / "gguf" / "report.json", encoding="utf-8") as f:
        return json.load(f)


# ------------------------------------------------------------ the arithmetic

def test_logit_agreement_matches_torch(rng):
    import torch
    a = rng.standard_normal((7, 50)).astype(np.float32) * 4
    b = a + rng.standard_normal((7, 50)).astype(np.float32)
    a[0, 3], b[1] = 900.0, a[1]  # a peaked row (overflows a naive exp) and an identical one
    b[2, :] = a[2, ::-1]  # another argmax
    top1, kl = logit_agreement(a, b)
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    want = torch.nn.functional.kl_div(torch.log_softmax(tb, -1), torch.log_softmax(ta, -1), log_target=True,
                                      reduction="none").sum(-1).numpy()
    np.testing.assert_allclose(kl, want, rtol=1e-10, atol=1e-12)
    assert kl[1] == 0.0 and np.isfinite(kl).all() and (kl >= 0).all()
    assert top1.tolist() == (ta.argmax(-1) == tb.argmax(-1)).tolist() and not top1[2] and top1[1]
    with pytest.raises(ValueError, match=r"shapes \(7, 50\) and \(7, 49\)"):
        logit_agreement(a, b[:, :49])


# -------------------------------------------------------------- the library

def test_the_good_adapters_gguf_agrees_and_another_adapters_is_flagged(tiny, capsys):
    model, tok = reference(tiny)
    good = gguf_of(tiny, fuse(tiny["good"], tiny["root"] / "fused-good", base_model=tiny["base"]), "good")
    r = gguf_agreement(model, tok, good, conversations(), max_new_tokens=12)
    assert r["passed"] and r["problems"] == [], r["problems"]
    assert r["top1_agreement"] >= DEFAULT_THRESHOLD and r["mean_kl"] < 1e-3
    assert r["prompts"] == 4 and r["answer_tokens"] == sum(p["answer_tokens"] for p in r["per_prompt"]) > 4
    assert r["tokenizer"]["chat_template_match"] and r["tokenizer"]["eos"]["gguf"] == tok.eos_token_id
    assert all(p["prompt_tokens_match"] for p in r["per_prompt"]) and r["file_type"] == "F16"
    assert r["base_top1_agreement"] < 0.5 and r["base_mean_kl"] > 0.1 and r["notes"] == []  # the adapter matters
    # the same base, another adapter: the answers differ
    other = gguf_of(tiny, fuse(tiny["other"], tiny["root"] / "fused-other", base_model=tiny["base"]), "other")
    r = gguf_agreement(model, tok, other, conversations(), max_new_tokens=12)
    assert not r["passed"] and r["top1_agreement"] < 0.5 and r["mean_kl"] > 0.1
    assert r["problems"] == [f"top-1 agreement {r['top1_agreement']:.3f} is below the threshold "
                             f"{DEFAULT_THRESHOLD:.2f}"]
    # the base alone (an adapter lost on the way)
    base_gguf = gguf_of(tiny, tiny["base"], "base")
    r = gguf_agreement(model, tok, base_gguf, conversations(), max_new_tokens=12)
    assert not r["passed"] and r["top1_agreement"] < 0.5
    # ... scores what the report predicted for it
    assert r["top1_agreement"] == pytest.approx(r["base_top1_agreement"], abs=0.05)
    # an adapter that changes nothing: a lost adapter cannot be told apart, and the report says so
    zero = make_adapter(tiny["root"] / "zero", tiny["base"], 3, scale=0.0)
    r = gguf_agreement(PeftModel.from_pretrained(peftcpp.AutoModelForCausalLM.from_pretrained(tiny["base"]), zero),
                       tok, base_gguf, conversations(), max_new_tokens=12)
    assert r["passed"] and r["base_top1_agreement"] == 1.0
    assert r["notes"] == ["the base model alone agrees 1.000 with base + adapter: the adapter changes too few answer "
                          "tokens for this check to tell a lost adapter from a kept one"]


def test_a_gguf_with_another_chat_template_or_eos_is_flagged(tiny):
    model, tok = reference(tiny)
    fused = fuse(tiny["good"], tiny["root"] / "fused-tpl", base_model=tiny["base"])
    path = os.path.join(fused, "tokenizer_config.json")
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    # the template without the generation prompt's newline: prompts end one token short
    cfg["chat_template"] = cfg["chat_template"].replace("'<|im_start|>assistant\n'", "'<|im_start|>assistant'")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f)
    r = gguf_agreement(model, tok, gguf_of(tiny, fused, "template"), conversations(), max_new_tokens=4)
    assert not r["passed"] and not r["tokenizer"]["chat_template_match"]
    assert any("tokenizer.chat_template differs from the chat template the adapter was trained with" in p
               for p in r["problems"]), r["problems"]
    assert any("turn prompt 1 into other tokens than the trained tokenizer" in p for p in r["problems"])
    assert r["top1_agreement"] >= DEFAULT_THRESHOLD  # the weights are right: only the template is wrong
    # the eos of the file is another token: Ollama would not stop at <|im_end|>
    shutil.rmtree(fused)
    fused = fuse(tiny["good"], tiny["root"] / "fused-tpl", base_model=tiny["base"])
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    cfg["eos_token"] = "<|endoftext|>"
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f)
    g = gguf_of(tiny, fused, "eos")
    r = gguf_agreement(model, tok, g, conversations(), max_new_tokens=4)
    assert not r["passed"] and r["tokenizer"]["chat_template_match"]
    assert r["tokenizer"]["eos"] == {"gguf": 0, "gguf_token": "<|endoftext|>", "trained": 2,
                                     "trained_token": "<|im_end|>"}
    assert f"{g}: tokenizer.ggml.eos_token_id is 0 ('<|endoftext|>'); the trained tokenizer's eos is " \
           "'<|im_end|>' (id 2)" in r["problems"]


def test_a_gguf_with_nan_weights_is_flagged_and_the_report_stays_json(tiny):
    model, tok = reference(tiny)
    fused = fuse(tiny["good"], tiny["root"] / "fused-nan", base_model=tiny["base"])
    path = os.path.join(fused, "model.safetensors")
    tensors = stn.load_file(path)
    tensors["model.norm.weight"] = np.full_like(tensors["model.norm.weight"], np.nan)
    stn.save_file(tensors, path, metadata={"format": "pt"})
    g = gguf_of(tiny, fused, "nan")
    r = gguf_agreement(model, tok, g, conversations()[:2], max_new_tokens=4)
    assert not r["passed"] and r["mean_kl"] is None and r["max_kl"] is None
    assert f"{g}: its logits hold NaN or infinity on prompt 1" in r["problems"]
    json.dumps(r, allow_nan=False)  # strict JSON: no NaN / Infinity
    assert "mean KL infinite nats/token" in report_warning(r)


def test_a_gguf_peftcpp_cannot_read_back_is_refused_before_any_work(tiny, tmp_path):
    from test_gguf_export import exported
    path = exported(tmp_path, "gpt2", "f16")[0]
    tok = peftcpp.AutoTokenizer.from_pretrained(tiny["base"])
    with pytest.raises(gguf.GGUFImportError, match=r"gpt2.f16.gguf: peftcpp cannot read back general.architecture "
                                                  r"'gpt2' to compare it \(it reads llama, qwen2, qwen3, gemma3\)"):
        gguf_agreement(None, tok, path, conversations())  # no reference model: none is touched before the check


def test_every_token_the_trained_model_stopped_with_must_stop_the_file(tiny):
    tok = peftcpp.AutoTokenizer.from_pretrained(tiny["base"])
    meta = {"tokenizer.ggml.tokens": [tok.convert_ids_to_tokens(i) for i in range(len(tok))],
            "tokenizer.ggml.eos_token_id": 2, "tokenizer.chat_template": tok.chat_template}
    assert check_gguf_tokenizer(tok, meta, "m.gguf", stopped_with=[2])["problems"] == []
    # answers that ended with <|endoftext|> (a generation_config eos): the file stops only at <|im_end|>
    got = check_gguf_tokenizer(tok, meta, "m.gguf", stopped_with=[0, 2, 0])
    assert got["problems"] == ["m.gguf: the trained model ends its answers with '<|endoftext|>' (id 0), which the "
                               "file does not stop at (eos 2, eot None)"] and got["stopped_with"] == [0, 2]
    meta["tokenizer.ggml.eot_token_id"] = 0  # an end-of-turn token stops llama.cpp and Ollama too
    assert check_gguf_tokenizer(tok, meta, "m.gguf", stopped_with=[0, 2])["problems"] == []
    del meta["tokenizer.ggml.eos_token_id"], meta["tokenizer.chat_template"]
    assert check_gguf_tokenizer(tok, meta, "m.gguf")["problems"] == [
        "m.gguf has no tokenizer.chat_template; the adapter was trained with one",
        "m.gguf has no tokenizer.ggml.eos_token_id; the trained tokenizer's eos is '<|im_end|>' (id 2)"]


# ---------------------------------------------------------- the command line

def test_convert_writes_a_passing_report(tiny, tmp_path):
    out = ok(run_cli(*convert_args(tiny, tmp_path, "-q", "Q8_0")))
    r = read_report(tmp_path)
    final = str(tmp_path / "gguf" / "model-finetuned-Q8_0.gguf")
    assert r["gguf"] == final and r["file_type"] == "Q8_0" and r["passed"] and r["problems"] == []
    assert r["top1_agreement"] >= DEFAULT_THRESHOLD and r["threshold"] == DEFAULT_THRESHOLD
    assert [p["prompt"] for p in r["per_prompt"]] == PROMPTS and r["system_prompt"] == SYSTEM
    # the file stops where the trained model stops, with the template it was trained with
    assert r["tokenizer"]["chat_template_match"] and all(p["prompt_tokens_match"] for p in r["per_prompt"])
    assert r["tokenizer"]["eos"] == {"gguf": 2, "gguf_token": "<|im_end|>", "trained": 2,
                                     "trained_token": "<|im_end|>"}
    assert r["reference"] == f"{tiny['base']} + adapter {tiny['good']}" and r["max_new_tokens"] == 12
    assert f"Agreement: top-1 {r['top1_agreement']:.3f} over {r['answer_tokens']} answer tokens" in out
    assert f"(the base model without the adapter: top-1 {r['base_top1_agreement']:.3f}, mean KL" in out
    assert f"Wrote {tmp_path / 'gguf' / 'report.json'}" in out
    assert sorted(os.listdir(tmp_path / "gguf")) == ["Modelfile", "model-finetuned-Q8_0.gguf",
                                                       "model-finetuned-f16.gguf", "report.json"]  # nothing left over


def test_convert_flags_a_gguf_that_lost_the_adapter(tiny, tmp_path, monkeypatch, capsys):
    """Fusing goes wrong (here: another adapter is fused): convert still
    finishes (exit 0) but the report fails and a loud warning names the file."""
    import peftcpp.export as export
    real = export.fuse
    monkeypatch.setattr(export, "fuse", lambda pm, out: real(tiny["other"], out, base_model=tiny["base"]))
    assert main([str(a) for a in convert_args(tiny, tmp_path, "-q", "F16", "--report-prompts", 2)]) == 0
    captured = capsys.readouterr()
    r = read_report(tmp_path)
    final = str(tmp_path / "gguf" / "model-finetuned-f16.gguf")
    assert not r["passed"] and r["gguf"] == final and r["prompts"] == 2
    assert "FLAGGED" in captured.out
    assert f"WARNING: {final} may not be the model that was trained." in captured.err
    assert f"top-1 agreement {r['top1_agreement']:.3f} (threshold {DEFAULT_THRESHOLD:.2f})" in captured.err
    assert f"  - top-1 agreement {r['top1_agreement']:.3f} is below the threshold" in captured.err


def test_report_options(tiny, tmp_path):
    res = run_cli(*convert_args(tiny, tmp_path, "--report-threshold", 1.5))
    assert res.returncode == 1 and res.stderr.strip() == \
        "peftcpp convert: error: --report-threshold must be between 0 and 1, got 1.5"
    assert not os.path.exists(tmp_path / "gguf") and not os.path.exists(tmp_path / "fused")  # before any work
    res = run_cli(*convert_args(tiny, tmp_path, "--report-data", tmp_path / "none"))
    assert res.stderr.strip() == f"peftcpp convert: error: --report-data {tmp_path / 'none'}: no valid.jsonl there " \
                                 "to take the report's prompts from"
    ok(run_cli(*convert_args(tiny, tmp_path, "-q", "F16", "--report-prompts", 1)))
    assert read_report(tmp_path)["prompts"] == 1
    out = ok(run_cli(*convert_args(tiny, tmp_path, "-q", "F16", "--no-report")))
    # no report, and not the previous one either: it described the files just replaced
    assert "Agreement" not in out and not os.path.exists(tmp_path / "gguf" / "report.json")
    help_text = ok(run_cli("convert", "--help"))
    for flag in ("--report-prompts", "--report-data", "--report-max-tokens", "--report-threshold", "--no-report"):
        assert flag in help_text
    assert f"(default: {DEFAULT_THRESHOLD})" in help_text

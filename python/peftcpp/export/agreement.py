"""Does a GGUF file still answer as the model that was trained?

``gguf_agreement`` answers a few prompts greedily with the reference (the base
model with its adapter, unmerged, as training left it), then feeds each whole
sequence (prompt + answer) to both the reference and the GGUF file read back
(``gguf.import_gguf``: peftcpp's own reader, quantized tensors dequantized)
and compares their next-token distributions over the answer positions:

* top-1 agreement: the share of answer positions where both models' most
  likely next token is the same (up to its first disagreement, the GGUF's own
  greedy answer is the reference's);
* mean KL(p_reference || p_gguf), in nats per answer token;
* the same two figures for the base model alone (the adapter disabled): what
  a file that lost its adapter would score, so how telling the check is.

It also checks the tokenizer side of the file, which decides where Ollama
and llama.cpp stop: ``tokenizer.chat_template`` and the eos / end-of-turn
tokens against the tokenizer the adapter was trained with, and that the
file's tokenizer turns each prompt into the reference's token ids.

    report = gguf_agreement(peft_model, tokenizer, "model-Q4_K_M.gguf",
                            [[{"role": "user", "content": "Hi"}]])
    report["passed"], report["top1_agreement"], report["mean_kl"]
"""
from __future__ import annotations

import gc
import os
import tempfile
import time

import numpy as np

from .._tensor import empty_cache, no_grad
from ..nn import Module
from ..gguf import GGUFFile, GGUFImportError, import_gguf
from ..gguf.import_model import SUPPORTED_ARCHS as READABLE_ARCHS
from ..gguf.file_quantization import FILE_TYPES
from ..models import AutoModelForCausalLM
from ..tokenization import AutoTokenizer

__all__ = ["gguf_agreement", "logit_agreement", "check_gguf_tokenizer", "report_warning", "DEFAULT_THRESHOLD"]

# Measured on SmolLM2-135M-Instruct + a LoRA adapter (README "Agreement report"): Q4_K_M agrees on ~0.9x of
# the answer tokens, the base without its adapter on far fewer; the default sits between the two.
DEFAULT_THRESHOLD = 0.80


def logit_agreement(reference_logits, logits):
    """(top1 [A] bool, kl [A] float64) of two [A, V] logit arrays: whether
    the argmaxes agree, and KL(softmax(reference) || softmax(logits)) in
    nats, computed in float64 from log-softmaxes (no overflow, no log 0)."""
    a = np.asarray(reference_logits, dtype=np.float64)
    b = np.asarray(logits, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"logit_agreement: logits of shapes {a.shape} and {b.shape}; expected two equal [A, V]")
    la = a - a.max(-1, keepdims=True)
    la -= np.log(np.exp(la).sum(-1, keepdims=True))
    lb = b - b.max(-1, keepdims=True)
    lb -= np.log(np.exp(lb).sum(-1, keepdims=True))
    pa = np.exp(la)
    with np.errstate(invalid="ignore"):  # 0 * (-inf): a token the reference never picks adds nothing
        terms = np.where(pa > 0, pa * (la - lb), 0.0)
    kl = np.maximum(terms.sum(-1), 0.0)  # rounding can leave -1e-17 for equal distributions
    return a.argmax(-1) == b.argmax(-1), kl


def _prompt_ids(tokenizer, messages):
    """The ids `peftcpp test` answers: the chat template with the generation
    prompt, tokenized without added specials; plain text without a template."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer("\n".join(m["content"] for m in messages), add_special_tokens=True)["input_ids"])


def _stop_ids(model, tokenizer):
    gen = getattr(model, "generation_config", None)
    e = getattr(gen, "eos_token_id", None) if gen is not None else None
    out = [int(x) for x in (e if isinstance(e, (list, tuple)) else [e] if e is not None else [])]
    if getattr(tokenizer, "eos_token_id", None) is not None and int(tokenizer.eos_token_id) not in out:
        out.append(int(tokenizer.eos_token_id))
    return out


def _greedy_answers(model, prompts, max_new_tokens, stops):
    """Each prompt's greedy answer (ids, ending with the stop token when one
    came), all prompts in one left-padded batch."""
    T0 = max(len(p) for p in prompts)
    pad = stops[0] if stops else 0
    ids = np.full((len(prompts), T0), pad, dtype=np.int64)
    mask = np.zeros((len(prompts), T0), dtype=np.int64)
    for i, p in enumerate(prompts):
        ids[i, T0 - len(p):] = p
        mask[i, T0 - len(p):] = 1
    out = model.generate(ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                         eos_token_id=stops or None, pad_token_id=pad).numpy()
    answers = []
    for row in out[:, T0:].tolist():
        ends = [j for j, t in enumerate(row) if t in stops]
        answers.append(row[: ends[0] + 1] if ends else row)
    return answers


def _answer_logits(model, prompt, answer):
    """[A, V] logits predicting each answer token, the answer teacher-forced."""
    seq = np.asarray([prompt + answer[:-1]], dtype=np.int64)
    with no_grad():
        out = model(input_ids=seq, logits_to_keep=len(answer))
    return np.asarray(out.logits.numpy()[0], dtype=np.float32)


def _trained_template(tokenizer):
    t = getattr(tokenizer, "chat_template", None)
    if isinstance(t, dict):
        return t.get("default")
    return t or None


def _first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def check_gguf_tokenizer(tokenizer, metadata, gguf_path, stopped_with=()):
    """The tokenizer side of a GGUF file against the tokenizer a model was
    trained with: {chat_template_match, eos, eot, problems}. ``stopped_with``:
    the ids the trained model ended its answers with, each of which the file
    must stop at (its eos or eot token)."""
    tokens = metadata.get("tokenizer.ggml.tokens") or []

    def text(i):
        return tokens[i] if isinstance(i, int) and 0 <= i < len(tokens) else None

    problems = []
    trained, written = _trained_template(tokenizer), metadata.get("tokenizer.chat_template")
    if trained != written:
        if written is None:
            problems.append(f"{gguf_path} has no tokenizer.chat_template; the adapter was trained with one")
        elif trained is None:
            problems.append(f"{gguf_path} has a tokenizer.chat_template; the adapter was trained without one")
        else:
            problems.append(f"{gguf_path}: tokenizer.chat_template differs from the chat template the adapter was "
                            f"trained with (from character {_first_difference(trained, written)} on)")
    eos_id, eot_id = metadata.get("tokenizer.ggml.eos_token_id"), metadata.get("tokenizer.ggml.eot_token_id")
    want_id, want = getattr(tokenizer, "eos_token_id", None), getattr(tokenizer, "eos_token", None)
    if want_id is not None:
        if eos_id is None:
            problems.append(f"{gguf_path} has no tokenizer.ggml.eos_token_id; the trained tokenizer's eos is "
                            f"{want!r} (id {want_id})")
        elif eos_id != want_id or text(eos_id) != str(want):
            problems.append(f"{gguf_path}: tokenizer.ggml.eos_token_id is {eos_id} ({text(eos_id)!r}); the trained "
                            f"tokenizer's eos is {want!r} (id {want_id})")
    gguf_stops = {i for i in (eos_id, eot_id) if i is not None}
    for s in sorted(set(stopped_with)):
        if s not in gguf_stops:
            shown = tokenizer.convert_ids_to_tokens(s)
            problems.append(f"{gguf_path}: the trained model ends its answers with {shown!r} (id {s}), which the "
                            f"file does not stop at (eos {eos_id}, eot {eot_id})")
    return {"chat_template_match": trained == written,
            "eos": {"gguf": eos_id, "gguf_token": text(eos_id), "trained": want_id, "trained_token": want},
            "eot": {"gguf": eot_id, "gguf_token": text(eot_id)},
            "stopped_with": sorted(set(stopped_with)), "problems": problems}


def _load_gguf(gguf_path, work_dir):
    folder = import_gguf(gguf_path, os.path.join(work_dir, "model"))
    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def _reference_side(model, prompts, max_new_tokens, stops):
    """(answers, reference logits, (top-1, KL) of the base alone or None) per prompt."""
    was_training = model.training
    model.eval()
    try:
        answers = _greedy_answers(model, prompts, max_new_tokens, stops)
        empty_cache()  # the batch's KV cache: the engine would keep its blocks for reuse
        ref = [_answer_logits(model, p, a) for p, a in zip(prompts, answers)]
        base = None
        if hasattr(model, "disable_adapter"):  # what a GGUF that lost the adapter would score
            with model.disable_adapter():
                base = [logit_agreement(r, _answer_logits(model, p, a)) for r, p, a in zip(ref, prompts, answers)]
    finally:
        model.train(was_training)
    return answers, ref, base


def _gguf_side(gguf_path, work_dir, tokenizer, conversations, prompts, answers, ref_logits):
    """(per-prompt rows with their top-1 [A] and KL [A] arrays, problems)."""
    rows, problems = [], []
    with tempfile.TemporaryDirectory(prefix=".peftcpp-agreement-", dir=work_dir) as tmp:
        model, gguf_tok = _load_gguf(gguf_path, tmp)
        for i, (msgs, p, a, ref) in enumerate(zip(conversations, prompts, answers, ref_logits)):
            got = _answer_logits(model, p, a)
            if got.shape != ref.shape:
                raise ValueError(f"{gguf_path}: logits of shape {got.shape} against the reference's {ref.shape} "
                                 "(a different vocabulary)")
            if not np.isfinite(got).all():  # a broken file: KL is undefined, counted as infinite
                problems.append(f"{gguf_path}: its logits hold NaN or infinity on prompt {i + 1}")
            top1, kl = logit_agreement(ref, got)
            kl = np.where(np.isnan(kl), np.inf, kl)
            gguf_prompt = _prompt_ids(gguf_tok, msgs)
            if gguf_prompt != p:
                problems.append(f"{gguf_path}: its tokenizer and chat template turn prompt {i + 1} into other tokens "
                                f"than the trained tokenizer (from token {_first_difference(gguf_prompt, p)} on)")
            disagree = np.flatnonzero(~top1)
            rows.append(({"prompt": next((m["content"] for m in msgs if m.get("role") == "user"), ""),
                          "answer": tokenizer.decode(a, skip_special_tokens=True), "answer_tokens": len(a),
                          "top1_agreement": float(top1.mean()), "mean_kl": _number(kl.mean()),
                          "first_disagreement": int(disagree[0]) if disagree.size else None,
                          "prompt_tokens_match": gguf_prompt == p}, top1, kl))
        del model  # its weights are mapped from the temporary folder
    return rows, problems


def gguf_agreement(reference_model, tokenizer, gguf_path, conversations, max_new_tokens=64,
                   threshold=DEFAULT_THRESHOLD, work_dir=None):
    """The agreement report (a JSON-ready dict) of the GGUF file
    ``gguf_path`` against ``reference_model`` (with ``tokenizer``, the one it
    was trained with; or a function returning that model, which is then
    released before the file is read: one model in memory at a time, not
    two) on ``conversations`` (lists of {"role", "content"},
    each answered after a generation prompt). ``passed`` is False when the
    top-1 agreement is below ``threshold`` or the file's tokenizer side
    differs (``problems`` says what). The file is read back into a temporary
    folder under ``work_dir`` (default: the system's), removed afterwards; a
    GGUFImportError when peftcpp cannot read its architecture back."""
    t0 = time.perf_counter()
    gguf_path = os.fspath(gguf_path)
    if not conversations:
        raise ValueError("gguf_agreement: no conversations to answer")
    if max_new_tokens < 1:
        raise ValueError(f"gguf_agreement: max_new_tokens must be at least 1, got {max_new_tokens}")
    with GGUFFile(gguf_path) as f:
        metadata = dict(f.metadata)
    arch = metadata.get("general.architecture")
    if arch not in READABLE_ARCHS:  # before the reference's work
        raise GGUFImportError(f"{gguf_path}: peftcpp cannot read back general.architecture {arch!r} to compare it "
                              f"(it reads {', '.join(READABLE_ARCHS)})")
    prompts = [_prompt_ids(tokenizer, msgs) for msgs in conversations]
    for i, p in enumerate(prompts):
        if not p:
            raise ValueError(f"gguf_agreement: conversation {i + 1} gives no prompt tokens")
    model = reference_model() if callable(reference_model) and not isinstance(reference_model, Module) else \
        reference_model
    stops = _stop_ids(model, tokenizer)
    answers, ref_logits, base_pairs = _reference_side(model, prompts, max_new_tokens, stops)
    del model  # a model loaded here is released before the file is read, with the blocks the engine kept
    gc.collect()
    empty_cache()
    rows, file_problems = _gguf_side(gguf_path, work_dir, tokenizer, conversations, prompts, answers, ref_logits)
    top1 = np.concatenate([t for _, t, _ in rows])
    kl = np.concatenate([k for _, _, k in rows])
    tok_check = check_gguf_tokenizer(tokenizer, metadata, gguf_path,
                                     stopped_with=[a[-1] for a in answers if a and a[-1] in stops])
    agreement = float(top1.mean())
    below = [f"top-1 agreement {agreement:.3f} is below the threshold {threshold:.2f}"] if agreement < threshold else []
    problems = below + tok_check.pop("problems") + file_problems
    report = {"gguf": os.path.abspath(gguf_path), "file_type": _file_type(metadata), "passed": not problems,
              "top1_agreement": agreement, "mean_kl": _number(kl.mean()), "max_kl": _number(kl.max()),
              "threshold": float(threshold), "prompts": len(rows), "answer_tokens": int(top1.size),
              "max_new_tokens": int(max_new_tokens), "base_top1_agreement": None, "base_mean_kl": None,
              "tokenizer": tok_check, "problems": problems, "notes": [], "per_prompt": [r for r, _, _ in rows]}
    if base_pairs is not None:
        base_top1 = float(np.concatenate([t for t, _ in base_pairs]).mean())
        report.update(base_top1_agreement=base_top1,
                      base_mean_kl=_number(np.concatenate([k for _, k in base_pairs]).mean()))
        if base_top1 >= threshold:
            report["notes"].append(f"the base model alone agrees {base_top1:.3f} with base + adapter: the adapter "
                                   "changes too few answer tokens for this check to tell a lost adapter from a kept "
                                   "one")
    report["seconds"] = round(time.perf_counter() - t0, 2)
    return report


def _number(x):
    """A float for JSON (which has no infinity): None when not finite."""
    return float(x) if np.isfinite(x) else None


def _file_type(metadata):
    """general.file_type by llama.cpp's name (Q4_K_M, ...)."""
    ft = metadata.get("general.file_type")
    return next((name for name, i in FILE_TYPES.items() if i == ft), ft)


def _shown(kl):
    return "infinite" if kl is None else f"{kl:.4f}"


def report_warning(report, reference="the trained model"):
    """The loud multi-line warning of a report that did not pass, or None."""
    if report["passed"]:
        return None
    bar = "!" * 78
    lines = [bar, f"WARNING: {report['gguf']} may not be the model that was trained.",
             f"  compared with {reference} on {report['prompts']} prompts ({report['answer_tokens']} answer tokens):",
             f"  top-1 agreement {report['top1_agreement']:.3f} (threshold {report['threshold']:.2f}), "
             f"mean KL {_shown(report['mean_kl'])} nats/token"]
    if report.get("base_top1_agreement") is not None:
        lines.append(f"  (the base model without the adapter: top-1 agreement {report['base_top1_agreement']:.3f}, "
                     f"mean KL {_shown(report['base_mean_kl'])})")
    lines += [f"  - {p}" for p in report["problems"]]
    lines.append(bar)
    return "\n".join(lines)

"""Tokenizer metadata for GGUF (``tokenizer.ggml.*``) from a Hugging Face
tokenizer folder (tokenizer.json + tokenizer_config.json).

Two tokenizer models are written:

* ``gpt2``: byte-level BPE (tokens in the GPT-2 byte->unicode form, merges).
* ``llama``: SentencePiece-style BPE with byte fallback (``<0x..>`` tokens,
  ``▁`` for spaces). llama.cpp's SPM tokenizer merges the pair whose merged
  token has the highest score, so a merge of rank k gets score -k: the same
  order as the BPE merges.

``tokenizer.ggml.pre`` (byte-level BPE only) names the pre-tokenizer llama.cpp
runs before BPE. llama.cpp's converter picks it by hashing the ids of a probe
string, which needs the real vocabulary of a known model. We instead read the
pre-tokenizer that tokenizer.json itself declares and match its structure:

    ByteLevel(use_regex=True)                                  -> "gpt-2"
    Sequence[Digits(individual_digits=True), ByteLevel(regex)] -> "smollm"
    Sequence[Split(<Llama-3 regex>), ByteLevel(no regex)]      -> "llama-bpe"
    Sequence[Split(<Qwen2 regex>), ByteLevel(no regex)]        -> "qwen2"

These are exactly the splits llama.cpp implements under those names, so the
choice holds for any vocabulary (tiny test tokenizers included). Anything
else raises, naming what was found; ``pre=`` overrides the detection.
"""
from __future__ import annotations

import json
import os

__all__ = ["vocab_metadata", "detect_pre_tokenizer", "load_tokenizer_files", "TokenizerExportError"]

# llama.cpp token types
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# The split regexes of the families (as their tokenizer.json writes them); the
# same strings peftcpp's GGUF importer rebuilds tokenizers from.
from .names import LLAMA3_RE, QWEN2_RE  # noqa: E402

_REGEX_FAMILIES = {LLAMA3_RE: "llama-bpe", QWEN2_RE: "qwen2"}


class TokenizerExportError(ValueError):
    """A tokenizer that cannot be written as GGUF metadata."""


def load_tokenizer_files(folder):
    """(tokenizer.json dict, tokenizer_config.json dict or {}) of a folder."""
    tj_path = os.path.join(folder, "tokenizer.json")
    if not os.path.isfile(tj_path):
        raise TokenizerExportError(f"{folder}: no tokenizer.json (a fast Hugging Face tokenizer is needed; "
                                   "SentencePiece-only tokenizer.model folders are not supported)")
    with open(tj_path, encoding="utf-8") as f:
        tj = json.load(f)
    cfg = {}
    cfg_path = os.path.join(folder, "tokenizer_config.json")
    if os.path.isfile(cfg_path):
        with open(cfg_path, encoding="utf-8") as f:
            cfg = json.load(f)
    return tj, cfg


def _flatten(pre):
    if pre is None:
        return []
    if pre.get("type") == "Sequence":
        out = []
        for p in pre.get("pretokenizers", []):
            out += _flatten(p)
        return out
    return [pre]


def _regex_of(split):
    pat = split.get("pattern", {})
    return pat.get("Regex") if isinstance(pat, dict) else None


def detect_pre_tokenizer(tokenizer_json, source="<tokenizer.json>"):
    """llama.cpp's ``tokenizer.ggml.pre`` name for a byte-level BPE
    tokenizer.json (see the module docstring)."""
    steps = _flatten(tokenizer_json.get("pre_tokenizer"))
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and steps[1].get("use_regex", True):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True):
        name = _REGEX_FAMILIES.get(_regex_of(steps[0]))
        if name:
            return name
    raise TokenizerExportError(
        f"{source}: pre-tokenizer {json.dumps(tokenizer_json.get('pre_tokenizer'))[:300]} matches none of the "
        "families llama.cpp knows that peftcpp can detect (gpt-2, smollm, llama-bpe, qwen2); pass pre=<name> "
        "to choose one")


def _token_content(value):
    if isinstance(value, dict):
        return value.get("content")
    return value


def _is_spm_style(tj):
    model = tj.get("model", {})
    steps = _flatten(tj.get("pre_tokenizer"))
    byte_level = any(s.get("type") == "ByteLevel" for s in steps) or \
        (tj.get("decoder") or {}).get("type") == "ByteLevel"
    return model.get("byte_fallback", False) and not byte_level


def _add_bos_from_post_processor(tj):
    pp = tj.get("post_processor") or {}
    procs = pp.get("processors", [pp]) if pp.get("type") == "Sequence" else [pp]
    for p in procs:
        if p.get("type") == "TemplateProcessing":
            single = p.get("single", [])
            return bool(single) and "SpecialToken" in single[0]
    return False


def vocab_metadata(folder, n_vocab=None, pre=None, chat_template=None):
    """``[(key, value, gguf type), ...]`` of the tokenizer in ``folder``,
    with the token list padded to ``n_vocab`` rows (the model's embedding
    rows) by ``[PAD{i}]`` tokens of type UNUSED."""
    tj, cfg = load_tokenizer_files(folder)
    model = tj.get("model", {})
    if model.get("type") != "BPE":
        raise TokenizerExportError(f"{folder}: tokenizer model '{model.get('type')}' is not supported "
                                   "(BPE only: byte-level as 'gpt2', byte-fallback as 'llama')")
    vocab = dict(model["vocab"])
    added = {a["id"]: a for a in tj.get("added_tokens", [])}
    for i, a in added.items():
        vocab.setdefault(a["content"], i)
    by_id = {}
    for tok, i in vocab.items():
        by_id.setdefault(i, tok)
    size = max(by_id) + 1 if by_id else 0
    if n_vocab is None:
        n_vocab = size
    if size > n_vocab:
        raise TokenizerExportError(f"{folder}: the tokenizer has {size} tokens but the model's embedding only "
                                   f"{n_vocab} rows")
    spm = _is_spm_style(tj)
    unk = model.get("unk_token")
    tokens, types, seen = [], [], set()
    for i in range(n_vocab):
        tok = by_id.get(i)
        if tok is None or tok in seen:  # llama.cpp needs unique tokens
            tokens.append(f"[PAD{i}]")
            types.append(UNUSED)
            continue
        seen.add(tok)
        tokens.append(tok)
        if spm and tok == unk:
            types.append(UNKNOWN)
        elif spm and len(tok) == 6 and tok.startswith("<0x") and tok.endswith(">"):
            types.append(BYTE)
        elif i in added:
            types.append(CONTROL if added[i].get("special") else USER_DEFINED)
        else:
            types.append(NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]

    kv = []
    if spm:
        # Score of a token = -(rank of the merge producing it); plain pieces 0,
        # added tokens -1000, padding -10000 (as llama.cpp's converter).
        rank = {}
        for k, m in enumerate(merges):
            left, right = m.split(" ", 1)
            rank.setdefault(left + right, k)
        scores = []
        for i, (tok, ty) in enumerate(zip(tokens, types)):
            if ty == UNUSED:
                scores.append(-10000.0)
            elif ty in (CONTROL, USER_DEFINED):
                scores.append(-1000.0)
            else:
                scores.append(-float(rank.get(tok, 0)))
        kv += [("tokenizer.ggml.model", "llama", "STRING"), ("tokenizer.ggml.pre", "default", "STRING"),
               ("tokenizer.ggml.tokens", tokens, "ARRAY[STRING]"), ("tokenizer.ggml.scores", scores, "ARRAY[FLOAT32]"),
               ("tokenizer.ggml.token_type", types, "ARRAY[INT32]")]
        normalizer = json.dumps(tj.get("normalizer"))
        kv.append(("tokenizer.ggml.add_space_prefix", "Prepend" in normalizer or
                   any(s.get("prepend_scheme") in ("always", "first") for s in _flatten(tj.get("pre_tokenizer"))),
                   "BOOL"))
    else:
        pre = pre or detect_pre_tokenizer(tj, os.path.join(folder, "tokenizer.json"))
        kv += [("tokenizer.ggml.model", "gpt2", "STRING"), ("tokenizer.ggml.pre", pre, "STRING"),
               ("tokenizer.ggml.tokens", tokens, "ARRAY[STRING]"),
               ("tokenizer.ggml.token_type", types, "ARRAY[INT32]"),
               ("tokenizer.ggml.merges", merges, "ARRAY[STRING]")]

    index = {t: i for i, t in enumerate(tokens)}
    for name, key in (("bos", "bos_token"), ("eos", "eos_token"), ("unknown", "unk_token"),
                      ("padding", "pad_token")):
        content = _token_content(cfg.get(key))
        if content is not None and content in index:
            kv.append((f"tokenizer.ggml.{name}_token_id", index[content], "UINT32"))
    add_bos = cfg.get("add_bos_token")
    if add_bos is None:
        add_bos = _add_bos_from_post_processor(tj)
    kv.append(("tokenizer.ggml.add_bos_token", bool(add_bos), "BOOL"))
    if cfg.get("add_eos_token") is not None:
        kv.append(("tokenizer.ggml.add_eos_token", bool(cfg["add_eos_token"]), "BOOL"))
    template = chat_template if chat_template is not None else read_chat_template(folder, cfg)
    if template:
        kv.append(("tokenizer.chat_template", template, "STRING"))
    return kv


def read_chat_template(folder, cfg=None):
    """The default chat template of a tokenizer folder, or None."""
    if cfg is None:
        _, cfg = load_tokenizer_files(folder)
    t = cfg.get("chat_template")
    if isinstance(t, list):  # named templates: the "default" one
        named = {d.get("name"): d.get("template") for d in t}
        t = named.get("default") or (t[0].get("template") if t else None)
    if t:
        return t
    path = os.path.join(folder, "chat_template.jinja")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            return f.read()
    path = os.path.join(folder, "chat_template.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("chat_template")
    return None

#!/usr/bin/env python3
"""Coverage-guided fuzzing of the JSONL dataset reader with atheris (issue 12).

Each input is written as a train.jsonl and goes through what `peftcpp train` and `merge-data` do with a
dataset file: read_jsonl (with and without skip_invalid, with the default and with tiny limits), merge_datasets
(whose output must read back whole) and tokenize_example of the valid examples with two tiny tokenizers
(ChatML and a Gemma-style template that folds the system prompt into the first user turn), with and without the
prompt mask. DatasetError (an invalid line or file: the documented error) is expected; any other exception, or
a broken invariant (labels that are not the token or -100, a problem without "file:line:", linear assistant spans
that differ from every-prefix rendering's, a nesting depth seen on the raw line that differs from the parsed
object's), is a finding: atheris stops and writes the input to crash-<hash> (or -artifact_prefix).

    pip install atheris
    python3 tools/fuzz_jsonl.py -max_total_time=180 [-artifact_prefix=DIR/] [CORPUS_DIR]

Without a corpus folder the built-in seeds are used. Findings are kept as regression cases in tests/test_data.py.
"""
import json
import os
import sys
import tempfile
import warnings

import atheris

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
if os.environ.get("PEFTCPP_CORE_DIR"):  # the source tree with a CMake build of _core, as the tests run it
    sys.path.insert(0, os.path.join(ROOT, "python"))

with atheris.instrument_imports(include=["peftcpp.data", "peftcpp.tokenization.chat_template"]):
    import peftcpp.data.dataset as dataset_module
    import peftcpp.data.tokenize as tokenize_module
    from peftcpp.data import IGNORE_INDEX, DatasetError, merge_datasets, read_dataset, read_jsonl, tokenize_example

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
GEMMA = ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first = messages[0]['content'] + '\n\n' %}"
         "{% set loop_messages = messages[1:] %}{% else %}{% set first = '' %}{% set loop_messages = messages %}"
         "{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
         "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
         "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\n' + "
         "(first if loop.first else '') + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
         "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}")

SEEDS = [
    b'{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, '
    b'{"role": "assistant", "content": "Hello!"}]}\n'
    b'{"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}, '
    b'{"role": "user", "content": "and 3+3?"}, {"role": "assistant", "content": " 6 "}]}\n',
    b'{"prompt": "Say hi", "completion": "hi", "tools": [{"type": "function"}]}\n{"prompt": "a", "completion": "b"}\n',
    b'{"text": "The quick brown fox."}\r\n\n{"text": "\\ud83d\\ude00 \\u00e9"}\n',
    b'{"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]}\n[1]\n{"text": 1e999}\n',
    b'\xef\xbb\xbf{"text": "bom"}\n{"text": "a\x00b"}\n{"text": "\xff"}\n{"text": "\\ud800"}\n' + b"[" * 300 + b"\n",
    b"\x01" + bytes(range(0, 256, 3)),  # structured inputs (see one_input)
    b"\x01" + bytes(range(255, 0, -2)),
]
DICTIONARY = [b'"messages"', b'"role"', b'"content"', b'"user"', b'"assistant"', b'"system"', b'"tool"',
              b'"prompt"', b'"completion"', b'"text"', b'"tools"', b'"tool_calls"', b"[", b"]", b"{", b"}", b":", b",",
              b"null", b"true", b"NaN", b"1e999", b'"\\ud800"', b'"\\ud83d\\ude00"', b'"\\u0000"', b"\r\n",
              b"\xef\xbb\xbf", b"<|im_end|>", b"<end_of_turn>"]


def _tokenizers(folder):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    from peftcpp.tokenization import AutoTokenizer
    out = []
    for name, specials, config in (
            ("chatml", ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
             {"eos_token": "<|im_end|>", "pad_token": "<|im_end|>", "chat_template": CHATML}),
            ("gemma", ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"],
             {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "chat_template": GEMMA})):
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(["Hello world! The quick brown fox.", "def add(a, b): return a + b"] * 10,
                                trainers.BpeTrainer(vocab_size=300, special_tokens=specials, show_progress=False,
                                                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        path = os.path.join(folder, name)
        os.makedirs(path)
        tok.save(os.path.join(path, "tokenizer.json"))
        with open(os.path.join(path, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f)
        out.append(AutoTokenizer.from_pretrained(path))
    return out


WORK = tempfile.mkdtemp(prefix="fuzz_jsonl_")
DATA = os.path.join(WORK, "data")
TRAIN = os.path.join(DATA, "train.jsonl")
TOKENIZERS = _tokenizers(os.path.join(WORK, "tok"))
os.makedirs(DATA)
os.fsync = lambda fd: None  # merge_datasets' durability is not what is fuzzed; fsync would dominate each run


def _check_split(split, path):
    assert split.num_lines == len(split.examples) + len(split.problems), "lines miscounted"
    for problem in split.problems:
        lineno = problem[len(path) + 1:].split(":", 1)[0]
        assert problem.startswith(path + ":") and lineno.isdigit(), f"problem without file:line: {problem!r}"


def _check_item(item, limit):
    ids, labels = item["input_ids"], item["labels"]
    assert len(ids) == len(labels) == len(item["attention_mask"]) <= limit
    assert all(lab in (IGNORE_INDEX, i) for i, lab in zip(ids, labels)), "a label that is not its token"


ROLES = ["user", "assistant", "system", "tool", "robot", 3, None]
TEXTS = ["", " ", "\n", "<|im_end|>", "<|im_start|>assistant\n", "<start_of_turn>model\n", "<end_of_turn>",
         "\ue000", "\ue0001\ue001", "{{ x }}", "Hello", "  padded  "]


def _nested(fdp):
    """A value nested up to 3000 levels (past json's recursion limit), arrays and objects mixed."""
    depth = fdp.ConsumeIntInRange(0, 3000)
    opens = [fdp.PickValueInList([b"[", b'{"a": ']) for _ in range(min(depth, 64))] * (depth // 64 + 1)
    opens = opens[:depth]
    closes = [b"]" if o == b"[" else b"}" for o in reversed(opens)]
    return b"".join(opens) + b"1" + b"".join(closes)


def _structured(fdp):
    """1 to 3 lines built from the input: conversations with fuzzed roles and contents (mostly in a valid order,
    so that the tokenization path runs), completions, texts, deep nesting and long repetitions of JSON tokens
    (shapes that byte mutations of short inputs do not reach)."""
    lines = []
    for _ in range(fdp.ConsumeIntInRange(1, 3)):
        kind = fdp.ConsumeIntInRange(0, 7)
        text = (lambda: fdp.PickValueInList(TEXTS) + fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 12))
                + (fdp.PickValueInList(TEXTS) if fdp.ConsumeBool() else ""))
        if kind == 6:
            lines.append(b'{"text": "x", "extra": ' + _nested(fdp) + b"}" if fdp.ConsumeBool() else _nested(fdp))
            continue
        if kind == 7:
            lines.append(fdp.PickValueInList(DICTIONARY) * fdp.ConsumeIntInRange(1, 5000))
            continue
        if kind == 0:
            obj = {"prompt": text(), "completion": text()}
        elif kind == 1:
            obj = {"text": text()}
        else:
            msgs = [{"role": "system", "content": text()}] if fdp.ConsumeBool() else []
            if kind < 5:  # a valid order
                msgs += [{"role": r, "content": text()} for _ in range(fdp.ConsumeIntInRange(1, 4))
                         for r in ("user", "assistant")]
            else:
                msgs += [{"role": fdp.PickValueInList(ROLES), "content": text()}
                         for _ in range(fdp.ConsumeIntInRange(1, 7))]
            obj = {"messages": msgs}
        lines.append(json.dumps(obj, ensure_ascii=fdp.ConsumeBool()).encode("utf-8", "surrogatepass"))
    return b"\n".join(lines) + b"\n"


def _same_as_every_prefix(example, tok):
    """The linear assistant spans equal those of rendering every prefix."""
    fast = tokenize_example(example, tok, None)
    linear = tokenize_module._linear_labels
    tokenize_module._linear_labels = lambda *a: None
    try:
        slow = tokenize_example(example, tok, None)
    finally:
        tokenize_module._linear_labels = linear
    assert fast == slow, f"linear spans differ from every-prefix spans: {fast} != {slow}"


def _depth(obj):
    depth, stack = 0, [(obj, 1)]
    while stack:
        value, d = stack.pop()
        if isinstance(value, (dict, list)):
            depth = max(depth, d)
            stack.extend((v, d + 1) for v in (value.values() if isinstance(value, dict) else value))
    return depth


def _shape_agrees(line):
    """The depth seen on the raw line's brackets before parsing agrees with the parsed object's depth."""
    problem = dataset_module._shape_problem(line)
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return
    deep = _depth(obj) > dataset_module.MAX_DEPTH
    assert deep == (problem is not None and "deeper" in problem), f"depth {_depth(obj)} but {problem!r}"


def one_input(data):
    structured = data[:1] == b"\x01"  # else the bytes are the file as they are
    if structured:
        data = _structured(atheris.FuzzedDataProvider(data[1:]))
    with open(TRAIN, "wb") as f:
        f.write(data)
    for line in data.split(b"\n")[:4]:
        _shape_agrees(line)
    with open(os.path.join(DATA, "valid.jsonl"), "wb") as f:
        f.write(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            read_jsonl(TRAIN)
        except DatasetError:
            pass
        split = None
        for limits in ({}, {"max_line_bytes": 64, "max_messages": 3}):
            try:
                part = read_jsonl(TRAIN, skip_invalid=True, **limits)
            except DatasetError:
                continue
            _check_split(part, TRAIN)
            split = split or part
        try:
            counts = merge_datasets([DATA], os.path.join(WORK, "merged"), skip_invalid=True)
        except DatasetError:
            counts = None
        if counts is not None:
            merged = read_dataset(os.path.join(WORK, "merged"))
            assert len(merged["train"]) == counts["train"]["written"], "merged output does not read back"
        if split is None:
            return
        for example in split.examples[:3]:
            for tok in TOKENIZERS:
                for mask in (True, False):
                    _check_item(tokenize_example(example, tok, 48, mask_prompt=mask), 48)
                if structured:
                    _same_as_every_prefix(example, tok)


def main():
    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):  # no corpus folder: the seeds
        corpus = os.path.join(WORK, "corpus")
        os.makedirs(corpus)
        for i, seed in enumerate(SEEDS):
            with open(os.path.join(corpus, f"seed{i}"), "wb") as f:
                f.write(seed)
        argv.append(corpus)
    if not any(a.startswith("-dict=") for a in argv):
        path = os.path.join(WORK, "jsonl.dict")
        with open(path, "w", encoding="ascii") as f:  # libFuzzer's format: "..." with \\, \" and \xNN escapes
            for word in DICTIONARY:
                f.write('"' + "".join(chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\x{b:02x}" for b in word)
                        + '"\n')
        argv.insert(1, f"-dict={path}")
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

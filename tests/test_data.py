"""peftcpp.data: JSONL dataset validation, merging, chat-template tokenization with loss masks, batching.

Tokenizers are trained here with the `tokenizers` library (byte-level BPE) and saved with ChatML and Llama-3 style
chat templates; no network is used.
"""
import json
import os
import warnings

import numpy as np
import pytest

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from peftcpp.data import (DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_MESSAGES, IGNORE_INDEX, DatasetError,
                          DatasetFileNotFoundError, length_grouped_batches, load_dataset, merge_datasets, pad_batch,
                          padding_fraction, random_batches, read_dataset, read_jsonl, tokenize_example)
from peftcpp.tokenization import AutoTokenizer

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world! How are you doing today?",
    "You are a helpful assistant. The user asks questions and the assistant answers them.",
    "def add(a, b):\n    return a + b\n",
    "Write a function that reverses a string in Go.",
] * 20

CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>"
    "\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

# Gemma-3 style: system folded into the first user turn, "model" role, alternation enforced, bos in the template
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first_user_prefix = messages[0]['content'] + "
    "'\n\n' %}{% set loop_messages = messages[1:] %}{% else %}{% set first_user_prefix = '' %}"
    "{% set loop_messages = messages %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') + "
    "message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

# Qwen3 style: only the final assistant turn gets an (empty) think block
QWEN3_LIKE = (
    "{% for message in messages %}{% if message.role == 'assistant' and loop.last %}"
    "{{ '<|im_start|>assistant\n<think>\n\n</think>\n\n' + message.content + '<|im_end|>\n' }}"
    "{% else %}{{ '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _bpe(specials):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=320, special_tokens=specials, show_progress=False,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def _write_tok(folder, tok, config):
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"))
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f)
    return AutoTokenizer.from_pretrained(str(folder))


@pytest.fixture(scope="module")
def toks(tmp_path_factory):
    root = tmp_path_factory.mktemp("data_toks")
    chatml = _bpe(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    gemma = _bpe(["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"])
    llama = _bpe(["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"])
    return {
        # pad == eos, as in SmolLM2: padding must still never be a target
        "chatml": _write_tok(root / "chatml", chatml, {"eos_token": "<|im_end|>", "pad_token": "<|im_end|>",
                                                       "chat_template": CHATML}),
        "llama": _write_tok(root / "llama", llama, {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
                                                    "chat_template": LLAMA3}),
        "gemma": _write_tok(root / "gemma", gemma, {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>",
                                                    "chat_template": GEMMA}),
        "plain": _write_tok(root / "plain", chatml, {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}),
    }


def _write_jsonl(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return str(path)


def _chat(user, assistant, system=None):
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"messages": msgs}


def _make_folder(root, train, valid, test=None):
    _write_jsonl(os.path.join(root, "train.jsonl"), train)
    _write_jsonl(os.path.join(root, "valid.jsonl"), valid)
    if test is not None:
        _write_jsonl(os.path.join(root, "test.jsonl"), test)
    return str(root)


def _labelled_spans(tok, item):
    """Decoded runs of consecutive training targets."""
    spans, cur = [], []
    for i, lab in zip(item["input_ids"], item["labels"]):
        if lab != IGNORE_INDEX:
            assert lab == i
            cur.append(i)
        elif cur:
            spans.append(cur)
            cur = []
    if cur:
        spans.append(cur)
    return [tok.decode(s) for s in spans]


# ------------------------------------------------------------------------------------------------ validation


def test_read_valid_folder(tmp_path):
    folder = _make_folder(tmp_path / "ds", [_chat("Hello", "Hi!")] * 3, [_chat("Hey", "Yo")],
                          [_chat("a", "b")])
    splits = read_dataset(folder)
    assert set(splits) == {"train", "valid", "test"}
    assert len(splits["train"]) == 3 and splits["train"].format == "chat"
    assert splits["train"].line_numbers == [1, 2, 3]
    # a single file is the train split; blank lines are ignored
    path = _write_jsonl(tmp_path / "one.jsonl", [{"text": "abc"}, "", "   ", {"text": "def"}])
    splits = read_dataset(path)
    assert list(splits) == ["train"] and splits["train"].format == "text" and len(splits["train"]) == 2
    assert splits["train"].line_numbers == [1, 4]


BAD_LINES = [
    (_chat("fine", "ok"), None),
    ('{"messages": [', "invalid JSON"),
    ("[1, 2]", "not a JSON object (got an array)"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "robot", "content": "y"}]},
     "message 2 has unknown role 'robot' (expected one of: system, user, assistant)"),
    ({"messages": [{"role": "user"}, {"role": "assistant", "content": "y"}]}, 'message 1 (user): missing "content"'),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "  "}]},
     'message 2 (assistant): empty "content"'),
    ({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "x"}]}, "no assistant turn"),
    ({"text": "plain text"}, "mixed formats: this line is 'text' but the file's first example (line 1) is 'chat'"),
    ({"foo": 1}, "unrecognized format"),
    ({"messages": []}, '"messages" is empty'),
    ({"messages": [{"content": "x"}]}, 'message 1 has no "role"'),
    ({"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "y"}]},
     'message 1 (user): "content" must be a string, got a number'),
]


def test_each_validation_error_names_file_line_and_problem(tmp_path):
    path = _write_jsonl(tmp_path / "ds" / "train.jsonl", [row for row, _ in BAD_LINES])
    with pytest.raises(DatasetError) as info:
        read_jsonl(path)
    err = info.value
    assert isinstance(err, ValueError)
    expected = [(n, what) for n, (_, what) in enumerate(BAD_LINES, start=1) if what]
    assert err.count == len(expected) == len(err.problems)
    for problem, (lineno, what) in zip(err.problems, expected):
        assert problem.startswith(f"{path}:{lineno}: "), problem
        assert what in problem, (what, problem)
    msg = str(err)
    assert f"{len(expected)} invalid line(s) of {len(BAD_LINES)} in {path}" in msg
    assert all(problem in msg for problem in err.problems) and "more" not in msg
    assert "skip_invalid=True" in msg
    assert err.invalid_lines == {path: len(expected)}


def test_error_lists_twenty_invalid_lines_then_a_count(tmp_path):
    path = _write_jsonl(tmp_path / "train.jsonl", [_chat("q", "a")] + [f'{{"text": {i}}}' for i in range(25)])
    with pytest.raises(DatasetError) as info:
        read_jsonl(path)
    msg = str(info.value)
    assert info.value.count == 25
    for lineno in range(2, 22):  # each of the first 20, with its reason
        assert f"{path}:{lineno}: mixed formats" in msg or f"{path}:{lineno}: \"text\" must be a string" in msg
    assert f"{path}:22:" not in msg and msg.count(f"  {path}:") == 20 and "... and 5 more" in msg


def test_completion_and_text_validation(tmp_path):
    path = _write_jsonl(tmp_path / "c.jsonl", [{"prompt": "p", "completion": "c"}, {"prompt": "p"},
                                               {"prompt": "p", "completion": ""}, {"completion": "c", "prompt": 5}])
    with pytest.raises(DatasetError) as info:
        read_jsonl(path)
    assert [p.split(": ", 1)[1] for p in info.value.problems] == [
        'missing "completion"', 'empty "completion"', '"prompt" must be a string, got a number']
    path = _write_jsonl(tmp_path / "t.jsonl", [{"text": ""}, {"text": None}, {"text": "ok"}])
    with pytest.raises(DatasetError) as info:
        read_jsonl(path)
    assert [p.split(": ", 1)[1] for p in info.value.problems] == ['empty "text"', '"text" must be a string, got null']


def test_invalid_utf8_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"text": "ok"}\n{"text": "\xff\xfe"}\n')
    with pytest.raises(DatasetError, match=r"train\.jsonl:2: not valid UTF-8"):
        read_jsonl(path)


def test_skip_invalid_counts_and_warns(tmp_path, toks):
    rows = [_chat("Hello", "Hi!"), "not json", _chat("How are you?", "Fine."), {"messages": [{"role": "user",
                                                                                             "content": "x"}]}]
    folder = _make_folder(tmp_path / "ds", rows, [_chat("Hey", "Yo")])
    with pytest.raises(DatasetError, match="2 invalid line"):
        load_dataset(folder, toks["chatml"])
    with pytest.warns(UserWarning, match=r"Skipped 2 invalid line\(s\) of 4 in .*train\.jsonl"):
        ds = load_dataset(folder, toks["chatml"], skip_invalid=True)
    assert len(ds["train"]) == 2 and ds["train"].num_skipped == 2 and ds["validation"].num_skipped == 0
    assert ds["train"].line_numbers == [1, 3]
    # a file where every line is bad stays an error even with skip_invalid
    path = _write_jsonl(tmp_path / "bad.jsonl", ["{", "}"])
    with pytest.raises(DatasetError, match="No valid line"):
        read_jsonl(path, skip_invalid=True)


def test_empty_and_missing_files(tmp_path, toks):
    folder = tmp_path / "ds"
    _make_folder(folder, [_chat("a", "b")], [])
    with pytest.raises(DatasetError, match=r"Dataset file is empty: .*valid\.jsonl"):
        load_dataset(str(folder), toks["chatml"])
    os.remove(folder / "valid.jsonl")
    with pytest.raises(DatasetFileNotFoundError, match=r"Dataset file not found: .*valid\.jsonl"):
        load_dataset(str(folder), toks["chatml"])
    with pytest.raises(FileNotFoundError, match=r"Dataset not found: .*nowhere"):
        load_dataset(str(tmp_path / "nowhere"), toks["chatml"])
    blank = _write_jsonl(tmp_path / "blank.jsonl", ["", "  "])
    with pytest.raises(DatasetError, match="Dataset file is empty"):
        read_jsonl(blank)


def test_errors_of_all_files_reported_together(tmp_path):
    folder = _make_folder(tmp_path / "ds", [_chat("a", "b"), "{"], ["[]"])
    with pytest.raises(DatasetError) as info:
        read_dataset(folder)
    assert info.value.count == 2
    assert "train.jsonl:2: invalid JSON" in str(info.value) and "valid.jsonl:1: not a JSON object" in str(info.value)



def test_line_byte_limit_refuses_a_huge_line_before_parsing_it(tmp_path):
    import time
    import tracemalloc
    path = tmp_path / "train.jsonl"
    with open(path, "wb") as f:  # a 40 MB line between two good ones: refused, in bounded memory and time
        f.write(b'{"text": "first"}\n{"text": "' + b"a" * (40 << 20) + b'"}\r\n{"text": "last"}\n')
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(DatasetError) as info:
            read_jsonl(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 5
    assert peak < 48 << 20  # about twice the 16 MiB limit, never the 40 MB line and its JSON tree
    assert info.value.problems == [f"{path}:2: line of {(40 << 20) + 12} bytes, more than the limit of "
                                   f"{DEFAULT_MAX_LINE_BYTES} (max_line_bytes)"]
    with pytest.warns(UserWarning, match="Skipped 1 invalid line"):
        split = read_jsonl(path, skip_invalid=True)
    assert [e["text"] for e in split.examples] == ["first", "last"] and split.line_numbers == [1, 3]
    # the limit is a keyword of every reader; the line's end ("\n" or "\r\n") does not count
    small = _write_jsonl(tmp_path / "ds" / "train.jsonl", ['{"text": "12345"}', '{"text": "123456"}'])
    _write_jsonl(tmp_path / "ds" / "valid.jsonl", ['{"text": "1"}'])
    with pytest.raises(DatasetError, match=r"train\.jsonl:2: line of 18 bytes, more than the limit of 17"):
        read_dataset(tmp_path / "ds", max_line_bytes=17)
    with pytest.raises(DatasetError, match=r"train\.jsonl:2: line of 18 bytes"):
        merge_datasets([tmp_path / "ds"], tmp_path / "out", max_line_bytes=17)
    assert len(read_jsonl(small, max_line_bytes=18)) == 2
    with pytest.raises(ValueError, match="max_line_bytes must be a positive integer"):
        read_jsonl(small, max_line_bytes=0)


def test_message_limit(tmp_path, toks):
    def chat(n):
        return {"messages": [{"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"} for i in range(n)]}
    folder = _make_folder(tmp_path / "ds", [chat(DEFAULT_MAX_MESSAGES), chat(DEFAULT_MAX_MESSAGES + 2)], [chat(4)])
    with pytest.raises(DatasetError) as info:
        load_dataset(folder, toks["chatml"])
    assert info.value.problems == [f"{folder}/train.jsonl:2: {DEFAULT_MAX_MESSAGES + 2} messages, more than the "
                                   f"limit of {DEFAULT_MAX_MESSAGES} (max_messages)"]
    assert len(load_dataset(folder, toks["chatml"], None, max_messages=DEFAULT_MAX_MESSAGES + 2)["train"]) == 2
    with pytest.raises(DatasetError, match="4 messages, more than the limit of 3"):
        merge_datasets([folder], tmp_path / "out", max_messages=3)


HOSTILE_LINES = [  # (bytes of the line, what the reader says about it)
    (b"[" * 100_000, "invalid JSON (nested too deeply to parse)"),
    (b'{"text": "x", "deep": ' + b"[" * 150 + b"]" * 150 + b"}", "nested deeper than 100 levels"),
    (b'{"text": "x", "deep": ' + b"[{" * 60 + b'"a"' + b"}]" * 60 + b"}", "nested deeper than 100 levels"),
    # 1.5 MB of "[]," would parse into ~60 MB: refused before parsing
    (b'{"text": "x", "many": [' + b"[]," * 500_000 + b"[]]}", "too many JSON values (more than 1000000 commas"),
    (b'{"text": ' + b"9" * 5000 + b"}", "invalid JSON (a number with too many digits)"),
    (b'\xef\xbb\xbf{"text": "bom"}', "starts with a byte order mark (BOM)"),
    (b'{"text": "a\x00b"}', "contains a NUL byte"),
    (b'{"text": "\xff"}', "not valid UTF-8 (invalid start byte at byte 10)"),
    (b'{"text": "\\ud800 lone"}', "a string holds an unpaired surrogate (\\ud800)"),
    (b'{"messages": [{"role": "user", "content": "\\udfff"}, {"role": "assistant", "content": "a"}]}',
     "unpaired surrogate (\\udfff)"),
    (b'{"text": 1e999}', '"text" must be a string, got a number'),
    (b'"a string"', "not a JSON object (got a string)"),
    (b'{"text": "a"', "invalid JSON (Expecting ',' delimiter at column 13)"),
    # a huge value is cut in the message, which stays one short line
    (b'{"messages": [{"role": "' + b"x" * 10_000 + b'", "content": "c"}]}', "message 1 has unknown role 'xxx"),
    (b'{"' + b"k" * 10_000 + b'\\n": 1}', "found keys: 'kkkk"),
]


def test_hostile_lines_are_invalid_lines_with_file_and_line(tmp_path):
    path = tmp_path / "train.jsonl"
    good = [b'{"text": "ok"}', b'{"text": "\\ud83d\\ude00 a paired surrogate is fine", "n": NaN}',
            # brackets and commas inside strings (escaped quotes and backslashes too) are not structure
            b'{"text": "' + b'[{,\\\\\\"' * 400_000 + b'", "x": [[[' + b"[" * 90 + b"]" * 93 + b"}"]
    path.write_bytes(b"\n".join(good + [line for line, _ in HOSTILE_LINES]) + b"\n")
    with pytest.raises(DatasetError) as info:
        read_jsonl(path)
    assert len(info.value.problems) == len(HOSTILE_LINES)
    for lineno, (problem, (_, says)) in enumerate(zip(info.value.problems, HOSTILE_LINES), start=len(good) + 1):
        assert problem.startswith(f"{path}:{lineno}: ") and says in problem, (says, problem)
        assert len(problem) < len(str(path)) + 200 and "\n" not in problem
    with pytest.warns(UserWarning):
        assert len(read_jsonl(path, skip_invalid=True)) == len(good)


ROLE_ORDER = [  # (roles, the reason, or None for a valid order)
    (["user", "assistant"], None),
    (["system", "user", "assistant", "user", "assistant"], None),
    (["assistant", "user", "assistant"], "message 1 (assistant): the conversation must start with a user message"),
    (["system", "assistant"], "message 2 (assistant): the conversation must start with a user message"),
    (["user", "user", "assistant"], "message 2 (user): two user messages in a row"),
    (["user", "assistant", "assistant"], "message 3 (assistant): two assistant messages in a row"),
    (["user", "assistant", "user"], "the last message must be an assistant turn, got user (message 3)"),
    (["user", "system", "assistant"], "message 2 (system): a system message must be the first message"),
    (["system", "system", "user", "assistant"], "message 2 (system): a system message must be the first"),
    (["system", "user"], "no assistant turn"),
    (["user", "tool", "assistant"], "message 2 has role 'tool': tool messages are not supported"),
]


def test_chat_role_order_is_checked_and_skip_invalid_counts_it(tmp_path):
    rows = [{"messages": [{"role": r, "content": f"{r} {i}"} for i, r in enumerate(roles)]} for roles, _ in ROLE_ORDER]
    rows.append({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [{}]}]})
    rows.append({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "tools": 3})
    reasons = [why for _, why in ROLE_ORDER] + ['message 2 (assistant): "tool_calls" without "content" are not '
                                                'supported', '"tools" must be a list of objects, got a number']
    path = _write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(DatasetError) as info:
        read_jsonl(path)
    expected = [f"{path}:{n}: {why}" for n, why in enumerate(reasons, start=1) if why]
    assert len(info.value.problems) == len(expected)
    for problem, want in zip(info.value.problems, expected):
        assert problem.startswith(want), (want, problem)
    with pytest.warns(UserWarning, match=f"Skipped {len(expected)} invalid line"):
        split = read_jsonl(path, skip_invalid=True)
    assert split.line_numbers == [1, 2] and split.num_skipped == len(expected)
    # the prompt/completion format is one user and one assistant turn; extra keys and "tools" pass through
    ok = _write_jsonl(tmp_path / "c.jsonl", [{"prompt": "p", "completion": "c", "tools": [{"type": "function"}]}])
    assert read_jsonl(ok).examples[0]["tools"] == [{"type": "function"}]


# ------------------------------------------------------------------------------------------------ merging


def test_merge_datasets_counts_and_dedup(tmp_path):
    a = [_chat("q1", "a1"), _chat("q2", "a2"), _chat("q1", "a1")]  # one duplicate inside a
    # the same objects with another key order and spacing are duplicates too
    b = ['{"messages": [{"content": "q2", "role": "user"}, {"content": "a2", "role": "assistant"}]}',
         _chat("q3", "a3")]
    fa = _make_folder(tmp_path / "a", a, [_chat("v1", "w1")], [_chat("t1", "u1")])
    fb = _make_folder(tmp_path / "b", b, [_chat("v1", "w1"), _chat("v2", "w2")])
    out = tmp_path / "merged"
    counts = merge_datasets([fa, fb], out)
    assert counts == {"train": {"read": 5, "duplicates": 2, "invalid": 0, "written": 3},
                      "valid": {"read": 3, "duplicates": 1, "invalid": 0, "written": 2},
                      "test": {"read": 1, "duplicates": 0, "invalid": 0, "written": 1}}
    merged = read_dataset(out)
    assert [m["messages"][0]["content"] for m in merged["train"].examples] == ["q1", "q2", "q3"]
    assert len(merged["valid"]) == 2 and len(merged["test"]) == 1
    assert sorted(os.listdir(out)) == ["test.jsonl", "train.jsonl", "valid.jsonl"]  # no temp files left


def test_merge_validates_and_skips(tmp_path):
    fa = _make_folder(tmp_path / "a", [_chat("q1", "a1"), "oops"], [_chat("v", "w")])
    fb = _make_folder(tmp_path / "b", [_chat("q2", "a2")],
                      [{"messages": [{"role": "user", "content": "x"}]}, _chat("v2", "w2")])
    with pytest.raises(DatasetError) as info:
        merge_datasets([fa, fb], tmp_path / "m")
    assert "a/train.jsonl:2: invalid JSON" in str(info.value) and "b/valid.jsonl:1: no assistant turn" in str(
        info.value)
    assert not (tmp_path / "m").exists()
    with pytest.warns(UserWarning):
        counts = merge_datasets([fa, fb], tmp_path / "m", skip_invalid=True)
    assert counts["train"] == {"read": 3, "duplicates": 0, "invalid": 1, "written": 2}
    # mixed formats across inputs, and missing folders, are errors
    fc = _make_folder(tmp_path / "c", [{"text": "x"}], [{"text": "y"}])
    fd = _make_folder(tmp_path / "d", [_chat("q", "a")], [_chat("v", "w")])
    with pytest.raises(DatasetError, match="different formats"):
        merge_datasets([fd, fc], tmp_path / "m2")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        merge_datasets([fa, tmp_path / "nowhere"], tmp_path / "m3")
    os.remove(tmp_path / "c" / "train.jsonl")
    with pytest.raises(FileNotFoundError, match=r"c/train\.jsonl"):
        merge_datasets([fa, fc], tmp_path / "m3")


def test_merge_is_atomic(tmp_path, monkeypatch):
    fa = _make_folder(tmp_path / "a", [_chat("new", "data")], [_chat("v", "w")])
    out = _make_folder(tmp_path / "out", [_chat("old", "train")], [_chat("old", "valid")])
    before = {f: (tmp_path / "out" / f).read_bytes() for f in os.listdir(out)}
    calls = {"n": 0}
    real_fsync = os.fsync

    def failing_fsync(fd):
        calls["n"] += 1
        if calls["n"] == 2:  # the second file is half-written when the "crash" happens
            raise OSError("disk full")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        merge_datasets([fa], out)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert {f: (tmp_path / "out" / f).read_bytes() for f in os.listdir(out)} == before  # untouched, no temp files
    merge_datasets([fa], out)
    assert read_dataset(out)["train"].examples == [_chat("new", "data")]
    assert sorted(os.listdir(out)) == ["train.jsonl", "valid.jsonl"]


# ------------------------------------------------------------------------------------------------ tokenization


def test_single_turn_assistant_mask(toks):
    tok = toks["chatml"]
    ex = _chat("Hello world!", "How are you doing today?")
    item = tokenize_example(ex, tok, 512)
    assert item["input_ids"] == tok.apply_chat_template(ex["messages"])
    assert item["attention_mask"] == [1] * len(item["input_ids"])
    assert _labelled_spans(tok, item) == ["How are you doing today?<|im_end|>"]


def test_multi_turn_and_system_masks(toks):
    for name, eot in (("chatml", "<|im_end|>"), ("llama", "<|eot_id|>"), ("gemma", "<end_of_turn>")):
        tok = toks[name]
        msgs = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there!"},
                {"role": "user", "content": "Write a function that reverses a string in Go."},
                {"role": "assistant", "content": "def add(a, b):\n    return a + b"},
                {"role": "user", "content": "Thanks"}, {"role": "assistant", "content": "The quick brown fox."}]
        item = tokenize_example({"messages": msgs}, tok, 1024)
        assert item["input_ids"] == tok.apply_chat_template(msgs)
        assistant = [m["content"] + eot for m in msgs if m["role"] == "assistant"]
        assert _labelled_spans(tok, item) == assistant, name
        # system, user and template tokens are never targets
        text_of_targets = "".join(_labelled_spans(tok, item))
        assert "Hello" not in text_of_targets and "helpful" not in text_of_targets


def test_template_that_renders_the_last_turn_differently(toks):
    tok = toks["chatml"]
    msgs = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there!"},
            {"role": "user", "content": "How are you?"}, {"role": "assistant", "content": "Doing well."}]
    saved = tok.chat_template
    tok.chat_template = QWEN3_LIKE
    try:
        item = tokenize_example({"messages": msgs}, tok, 1024)
        assert item["input_ids"] == tok.apply_chat_template(msgs)
        spans = _labelled_spans(tok, item)
    finally:
        tok.chat_template = saved
    # the earlier turn is found although its prefix rendering differs; the final turn includes the template's
    # think block (what the model is asked to generate after the generation prompt)
    assert spans == ["Hi there!<|im_end|>", "<think>\n\n</think>\n\nDoing well.<|im_end|>"]



def _conversation(n, system=True, pad=""):
    msgs = [{"role": "system", "content": "You are a helpful assistant."}] if system else []
    for i in range(n):
        msgs.append({"role": "user", "content": f"{pad}Write a function that reverses a string {i}.{pad}"})
        msgs.append({"role": "assistant", "content": f"{pad}def add(a, b):\n    return a + {i}{pad}"})
    return msgs


def _count_renders(monkeypatch, tok):
    calls = {"n": 0}
    real = type(tok).apply_chat_template

    def counting(self, *args, **kwargs):
        calls["n"] += 1
        return real(self, *args, **kwargs)
    monkeypatch.setattr(type(tok), "apply_chat_template", counting)
    return calls


def test_assistant_spans_in_a_fixed_number_of_renderings_same_as_every_prefix(toks, monkeypatch):
    cases = [(name, None, sys, pad) for name in ("chatml", "llama", "gemma") for sys in (True, False)
             for pad in ("", " \n")] + [("chatml", QWEN3_LIKE, False, ""), ("chatml", QWEN3_LIKE, True, "")]
    for name, template, system, pad in cases:
        tok = toks[name]
        saved = tok.chat_template
        tok.chat_template = template or saved
        try:
            msgs = _conversation(12, system, pad)
            calls = _count_renders(monkeypatch, tok)
            fast = tokenize_example({"messages": msgs}, tok, None)
            assert calls["n"] == 5, (name, calls["n"])  # whatever the number of turns
            monkeypatch.undo()
            monkeypatch.setattr("peftcpp.data.tokenize._linear_labels", lambda *a: None)  # render every prefix
            slow = tokenize_example({"messages": msgs}, tok, None)
            monkeypatch.undo()
        finally:
            tok.chat_template = saved
        assert fast == slow, (name, template is not None, system, pad)
        assert len(_labelled_spans(tok, fast)) == 12


def test_a_long_conversation_validates_and_tokenizes_in_linear_time(tmp_path, toks):
    import signal
    import time
    msgs = _conversation(10_000, system=True)  # 20,001 messages
    folder = _make_folder(tmp_path / "ds", [{"messages": msgs}], [_chat("q", "a")])

    def too_slow(*_):
        raise TimeoutError("validating and tokenizing 20,001 messages took over 10 s")
    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(10)  # main needed hours (every prefix rendered and tokenized)
    try:
        start = time.perf_counter()
        ds = load_dataset(folder, toks["chatml"], None, max_messages=len(msgs))
        elapsed = time.perf_counter() - start
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert elapsed < 10
    spans = _labelled_spans(toks["chatml"], ds["train"][0])
    assert len(spans) == 10_000 and spans[-1] == msgs[-1]["content"] + "<|im_end|>"


def test_templates_that_change_the_contents(toks, monkeypatch):
    # user contents upper-cased: the placeholders cannot locate them, so short chats render every prefix and
    # long ones search each assistant reply in the rendered text; both find the same spans
    template = CHATML.replace("message['content']", "(message['content'] | upper if message['role'] == 'user' "
                                                    "else message['content'])")
    tok = toks["chatml"]
    saved = tok.chat_template
    tok.chat_template = template
    try:
        for n, renders in ((3, 2 + 2 * 3), (40, 2)):
            msgs = _conversation(n, system=False)
            calls = _count_renders(monkeypatch, tok)
            item = tokenize_example({"messages": msgs}, tok, None)
            monkeypatch.undo()
            assert calls["n"] == renders
            assert _labelled_spans(tok, item) == [m["content"] + "<|im_end|>" for m in msgs[1::2]]
    finally:
        tok.chat_template = saved


def test_mask_prompt_false_trains_all_tokens(toks):
    tok = toks["chatml"]
    item = tokenize_example(_chat("Hello", "Hi", system="Be nice."), tok, 512, mask_prompt=False)
    assert item["labels"] == item["input_ids"]


def test_prompt_completion(toks):
    tok = toks["chatml"]
    item = tokenize_example({"prompt": "Hello world!", "completion": "The lazy dog."}, tok, 512)
    assert item["input_ids"] == tok.apply_chat_template([{"role": "user", "content": "Hello world!"},
                                                         {"role": "assistant", "content": "The lazy dog."}])
    assert _labelled_spans(tok, item) == ["The lazy dog.<|im_end|>"]
    # without a chat template: plain concatenation, the prompt masked, eos appended
    plain = toks["plain"]
    item = tokenize_example({"prompt": "Hello world! ", "completion": "The lazy dog."}, plain, 512)
    assert plain.decode(item["input_ids"]) == "Hello world! The lazy dog.<|endoftext|>"
    assert _labelled_spans(plain, item) == ["The lazy dog.<|endoftext|>"]
    item = tokenize_example({"prompt": "Hello ", "completion": "dog."}, plain, 512, mask_prompt=False)
    assert item["labels"] == item["input_ids"]


def test_text_trains_all_tokens_plus_eos(toks):
    for name in ("chatml", "plain"):
        tok = toks[name]
        item = tokenize_example({"text": "The quick brown fox."}, tok, 512)
        assert item["labels"] == item["input_ids"]
        assert item["input_ids"][-1] == tok.eos_token_id
        assert tok.decode(item["input_ids"][:-1]) == "The quick brown fox."


def test_chat_without_template_is_a_clear_error(toks):
    with pytest.raises(ValueError, match="chat template"):
        tokenize_example(_chat("a", "b"), toks["plain"], 512)


def test_truncation_is_counted_and_warned(tmp_path, toks):
    tok = toks["chatml"]
    short, long_ = _chat("Hi", "Yo"), _chat("Hello", "The quick brown fox jumps over the lazy dog. " * 10)
    folder = _make_folder(tmp_path / "ds", [short, long_, long_, short], [short])
    n_short = len(tokenize_example(short, tok, None)["input_ids"])
    limit = n_short + 8
    with pytest.warns(UserWarning, match=rf"train: 2 of 4 examples truncated to {limit} tokens"):
        ds = load_dataset(folder, tok, max_seq_length=limit)
    assert ds["train"].num_truncated == 2 and ds["validation"].num_truncated == 0
    assert ds["train"].lengths == [n_short, limit, limit, n_short]
    item = ds["train"][1]
    assert len(item["labels"]) == len(item["attention_mask"]) == limit
    # no warning at all when nothing is truncated
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset(folder, tok, max_seq_length=4096)


def test_examples_with_nothing_to_learn_after_truncation_are_dropped(tmp_path, toks):
    tok = toks["chatml"]
    folder = _make_folder(tmp_path / "ds", [_chat("Hi", "Yo"), _chat("The quick brown fox " * 20, "ok")],
                          [_chat("Hi", "Yo")])
    limit = len(tokenize_example(_chat("Hi", "Yo"), tok, None)["input_ids"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(folder, tok, max_seq_length=limit)
    assert [str(w.message).split(" (")[0] for w in caught] == [
        f"train: 1 of 2 examples truncated to {limit} tokens",
        "train: dropped 1 of 2 examples with no trainable token left"]
    assert len(ds["train"]) == 1 and ds["train"].num_dropped == 1
    assert ds["train"].raw == [_chat("Hi", "Yo")]


def test_load_dataset_structure(tmp_path, toks):
    tok = toks["chatml"]
    train = [_chat("Hello", "Hi!"), _chat("How are you?", "Fine.", system="Be brief.")]
    folder = _make_folder(tmp_path / "ds", train, [_chat("Hey", "Yo")], [_chat("Bye", "Ciao")])
    ds = load_dataset(folder, tok)
    assert list(ds) == ["train", "validation", "test"]
    train_ds = ds["train"]
    assert len(train_ds) == 2 and train_ds.raw == train and train_ds.format == "chat"
    item = train_ds[0]
    assert set(item) == {"input_ids", "labels", "attention_mask"}
    assert all(isinstance(item[k], list) and all(type(v) is int for v in item[k]) for k in item)
    assert train_ds["input_ids"] == [it["input_ids"] for it in train_ds]
    assert train_ds[0:1] == [item] and train_ds[-1] == train_ds[1]
    assert _labelled_spans(tok, ds["test"][0]) == ["Ciao<|im_end|>"]
    assert train_ds.num_trained_tokens == sum(len(tok.encode(a, add_special_tokens=False)) + 1 for a in
                                              ("Hi!", "Fine."))
    assert "train" in repr(ds) and "num_rows=2" in repr(train_ds)
    # a single file: only a train split
    single = load_dataset(os.path.join(folder, "train.jsonl"), tok)
    assert list(single) == ["train"] and len(single["train"]) == 2
    # the package re-export
    import peftcpp.data
    assert peftcpp.data.load_dataset is load_dataset


# ------------------------------------------------------------------------------------------------ batching


def _skewed_lengths(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.integers(8, 64, size=int(n * 0.8)), rng.integers(200, 1024, size=n - int(n * 0.8))])


def test_length_grouping_lowers_padding():
    lengths = _skewed_lengths()
    batches = length_grouped_batches(lengths, 8, seed=1)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(lengths)))  # every example exactly once
    assert all(len(b) == 8 for b in batches)
    grouped = padding_fraction(lengths, batches)
    rand = padding_fraction(lengths, random_batches(len(lengths), 8, seed=1))
    assert grouped < 0.1 < 0.5 < rand, (grouped, rand)
    # reproducible with a seed, different with another
    assert length_grouped_batches(lengths, 8, seed=1) == batches
    assert length_grouped_batches(lengths, 8, seed=2) != batches
    # the batch order is shuffled: not sorted by length across the epoch
    maxima = [int(lengths[b].max()) for b in batches]
    assert maxima != sorted(maxima) and maxima != sorted(maxima, reverse=True)


def test_length_grouped_batches_edge_cases():
    lengths = [5, 1, 9, 3, 7]
    assert length_grouped_batches(lengths, 2, seed=0, shuffle=False) == [[2, 4], [0, 3], [1]]
    assert length_grouped_batches(lengths, 2, seed=0, shuffle=False, drop_last=True) == [[2, 4], [0, 3]]
    batches = length_grouped_batches(lengths, 2, seed=3, drop_last=True)
    assert len(batches) == 2 and all(len(b) == 2 for b in batches)
    assert length_grouped_batches([], 4, seed=0) == []
    with pytest.raises(ValueError):
        length_grouped_batches(lengths, 0, seed=0)
    assert padding_fraction([4, 2], [[0, 1]]) == pytest.approx(2 / 8)
    assert padding_fraction([4, 2], [[0], [1]]) == 0.0
    assert padding_fraction([4, 2], [[0, 1]], pad_to_multiple_of=8) == pytest.approx(10 / 16)


def test_pad_batch_never_labels_padding(toks):
    items = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7], "attention_mask": [1, 1, 1]},
             {"input_ids": [9], "labels": [9], "attention_mask": [1]},
             {"input_ids": [3, 4]}]
    out = pad_batch(items, pad_token_id=7)  # the pad id equals a real target token
    assert all(v.dtype == np.int64 and v.shape == (3, 3) for v in out.values())
    assert out["input_ids"].tolist() == [[5, 6, 7], [9, 7, 7], [3, 4, 7]]
    assert out["labels"].tolist() == [[-100, 6, 7], [9, -100, -100], [3, 4, -100]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    out = pad_batch(items, pad_token_id=0, pad_to_multiple_of=4)
    assert out["input_ids"].shape == (3, 4) and (out["labels"][:, 3] == -100).all()
    left = pad_batch(items[1:2] + items[:1], pad_token_id=0, padding_side="left")
    assert left["labels"].tolist() == [[-100, -100, 9], [-100, 6, 7]]
    with pytest.raises(ValueError):
        pad_batch([], 0)


def test_pad_batch_is_the_one_padder():
    """The collators pad through pad_batch: labels default to the attended ids, the width is the longest row
    (capped at max_length) rounded up to pad_to_multiple_of, rows are checked and truncated."""
    from peftcpp.data.batching import pad_rows, padded_width
    from peftcpp.trainer import DataCollatorForCausalLM
    assert padded_width([3, 7, 5]) == 7 and padded_width([]) == 0
    assert padded_width([3, 7], max_length=5) == 5 and padded_width([3, 7], max_length=5, pad_to_multiple_of=4) == 8
    assert pad_rows([[1, 2], [3]], -1, 3, "left").tolist() == [[-1, 1, 2], [-1, -1, 3]]
    items = [{"input_ids": [5, 6, 7, 8], "attention_mask": [1, 1, 1, 0]}, {"input_ids": np.array([9]), "labels": [4]}]
    out = pad_batch(items, pad_token_id=0, max_length=3)
    assert out["input_ids"].tolist() == [[5, 6, 7], [9, 0, 0]]
    assert out["labels"].tolist() == [[5, 6, 7], [4, -100, -100]]
    out = pad_batch(items, pad_token_id=0)
    assert out["labels"][0].tolist() == [5, 6, 7, -100]  # a masked position is never a target
    coll = DataCollatorForCausalLM(pad_token_id=3, max_length=3, padding_side="left")(items)
    for k in out:
        np.testing.assert_array_equal(coll[k], pad_batch(items, 3, max_length=3, padding_side="left")[k])
    with pytest.raises(ValueError, match="labels/attention_mask length"):
        pad_batch([{"input_ids": [1, 2], "labels": [1]}])
    with pytest.raises(KeyError, match="no 'input_ids'"):
        pad_batch([{"labels": [1]}])
    with pytest.raises(ValueError, match="padding_side"):
        pad_batch(items, padding_side="middle")


def test_end_to_end_batches_from_dataset(tmp_path, toks):
    tok = toks["chatml"]
    rng = np.random.default_rng(0)
    words = "the quick brown fox jumps over the lazy dog".split()
    train = [_chat(" ".join(rng.choice(words, int(rng.integers(1, 4)))),
                   " ".join(rng.choice(words, int(rng.integers(1, 40))))) for _ in range(40)]
    ds = load_dataset(_make_folder(tmp_path / "ds", train, train[:4]), tok, max_seq_length=1024)["train"]
    lengths = ds.lengths
    batches = length_grouped_batches(lengths, 4, seed=0)
    assert padding_fraction(lengths, batches) < padding_fraction(lengths, random_batches(len(ds), 4, seed=0))
    for b in batches:
        out = pad_batch([ds[i] for i in b], tok.pad_token_id)
        pad = out["attention_mask"] == 0
        assert (out["labels"][pad] == IGNORE_INDEX).all()
        assert out["input_ids"].shape[1] == max(lengths[i] for i in b)
        # every labelled token is an assistant token (the mask matches the per-example labels)
        for row, i in enumerate(b):
            n = lengths[i]
            assert out["labels"][row, :n].tolist() == ds[i]["labels"]

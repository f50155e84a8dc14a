"""peftcpp.tokenization against transformers' AutoTokenizer loading the same local folders.

The tokenizers are trained here with the `tokenizers` library (byte-level BPE like SmolLM2/Qwen2.5 and Llama 3,
a Metaspace BPE like Gemma) and saved with real chat templates; no network is used.
"""
import json
import os
import time

import numpy as np
import pytest

import tokenizers
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

from peftcpp.tokenization import AutoTokenizer, BatchEncoding, PreTrainedTokenizer  # noqa: E402

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world! How are you doing today?",
    "Parameter-efficient fine-tuning trains small adapters on top of frozen weights.",
    "Héllo wörld, ça va? Grüße aus Köln. 你好，世界。 Emoji: 🙂🚀",
    "def add(a, b):\n    return a + b\n",
    "You are a helpful assistant. The user asks questions and the assistant answers them.",
    "Numbers 0123456789 and symbols: {} [] () <> @ # $ % ^ & * ~",
] * 20

# SmolLM2's ChatML template (verbatim)
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Qwen2.5's ChatML template with tools (uses tojson, whitespace control, loop.last, `is defined`)
QWEN25_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

# Llama 3.x style: bos_token in the template, namespace(), strftime_now, `| trim`, tojson(indent=4)
LLAMA3_TEMPLATE = r"""{{- bos_token }}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(system="") %}
{%- if messages[0]['role'] == 'system' %}
    {%- set ns.system = messages[0]['content'] | trim %}
    {%- set messages = messages[1:] %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none %}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- ns.system }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"""

# Gemma's template (verbatim): raise_exception, role alternation
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)

# ChatML with {% generation %} blocks (for assistant masks)
GENERATION_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}"
    "{% endgeneration %}{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}{{ '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _byte_level_bpe(special_tokens, vocab_size=400):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special_tokens, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def _write(folder, tok, config, extra_files=None):
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"))
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=2)
    for name, content in (extra_files or {}).items():
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            f.write(content if isinstance(content, str) else json.dumps(content))
    return str(folder)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("toks")
    out = {}

    # SmolLM2-like: ChatML specials, no bos added, template in tokenizer_config.json
    tok = _byte_level_bpe(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    out["smol"] = _write(root / "smol", tok, {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
        "pad_token": "<|im_end|>", "unk_token": "<|endoftext|>", "model_max_length": 2048,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"], "clean_up_tokenization_spaces": False,
        "chat_template": SMOLLM2_TEMPLATE})

    # Qwen2.5-like: same tokenizer, tools template, left padding, multiple templates via chat_template list
    out["qwen"] = _write(root / "qwen", tok, {
        "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
        "bos_token": None, "model_max_length": 131072, "padding_side": "left",
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "chat_template": [{"name": "default", "template": QWEN25_TEMPLATE},
                          {"name": "generation", "template": GENERATION_TEMPLATE}]})

    # Llama-3-like: bos added by a TemplateProcessing post-processor, no pad token, template in chat_template.jinja,
    # added_tokens_decoder in the config (the format transformers writes)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tok = _byte_level_bpe(specials)
    bos_id = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos_id)])])
    added = {str(tok.token_to_id(s)): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                                       "single_word": False, "special": True} for s in specials}
    out["llama"] = _write(root / "llama", tok, {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
        "model_max_length": 131072, "added_tokens_decoder": added, "add_bos_token": True},
        {"chat_template.jinja": LLAMA3_TEMPLATE})

    # Gemma-like: Metaspace BPE, <bos> post-processor, special tokens only in special_tokens_map.json (legacy)
    gspecials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, special_tokens=gspecials,
                                                        show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B:1",
                                                       special_tokens=[("<bos>", tok.token_to_id("<bos>"))])
    out["gemma"] = _write(root / "gemma", tok, {
        "tokenizer_class": "PreTrainedTokenizerFast", "padding_side": "left", "model_max_length": 64,
        "chat_template": GEMMA_TEMPLATE},
        {"special_tokens_map.json": {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>",
                                     "unk_token": "<unk>",
                                     "additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]}})
    return out


@pytest.fixture(scope="module")
def pair(folders):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = (AutoTokenizer.from_pretrained(folders[name]),
                           transformers.AutoTokenizer.from_pretrained(folders[name]))
        return cache[name]
    return get


TEXTS = [
    "Hello world!",
    "The quick brown fox jumps over the lazy dog. " * 3,
    "Héllo wörld, ça va? 你好，世界。 🙂🚀 unseen: ζ∑∞",
    "  leading spaces and\ttabs\nand newlines  ",
    "",
]

CHATS = [
    [{"role": "user", "content": "Hi there!"}],
    [{"role": "system", "content": "You are terse."},
     {"role": "user", "content": "What is 2+2?"},
     {"role": "assistant", "content": "4"},
     {"role": "user", "content": "And 3+3? Réponds en français 🙂"}],
]
GEMMA_CHATS = [
    [{"role": "user", "content": "Hi there!"}],
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "  4  "},
     {"role": "user", "content": "And 3+3? 你好"}],
]


# ------------------------------------------------------------------ attributes


@pytest.mark.parametrize("name", ["smol", "qwen", "llama", "gemma"])
def test_attributes_match(pair, name):
    ours, ref = pair(name)
    for attr in ["bos_token", "eos_token", "pad_token", "unk_token", "bos_token_id", "eos_token_id",
                 "pad_token_id", "unk_token_id", "vocab_size", "padding_side", "model_max_length",
                 "all_special_tokens", "all_special_ids", "special_tokens_map", "extra_special_tokens"]:
        assert getattr(ours, attr) == getattr(ref, attr), attr
    assert len(ours) == len(ref)
    assert ours.get_vocab() == ref.get_vocab()
    assert ours.added_tokens_encoder == ref.added_tokens_encoder
    assert ours.additional_special_tokens == ref.extra_special_tokens
    assert ours.num_special_tokens_to_add() == ref.num_special_tokens_to_add()
    assert ours.chat_template == ref.chat_template


def test_add_bos_follows_post_processor(pair):
    ours, ref = pair("llama")
    ids = ours.encode("Hello world")
    assert ids == ref.encode("Hello world")
    assert ids[0] == ours.bos_token_id and ids.count(ours.bos_token_id) == 1  # config's add_bos_token not doubled
    assert ours.add_bos_token and not ours.add_eos_token
    smol, _ = pair("smol")
    assert not smol.add_bos_token and smol.encode("Hello")[0] != smol.bos_token_id


# ------------------------------------------------------------------ encode / decode


@pytest.mark.parametrize("name", ["smol", "llama", "gemma"])
def test_encode_decode_match(pair, name):
    ours, ref = pair(name)
    for text in TEXTS:
        for add in (True, False):
            ids = ours.encode(text, add_special_tokens=add)
            assert ids == ref.encode(text, add_special_tokens=add), (text, add)
            assert ours.decode(ids) == ref.decode(ids)
            assert ours.decode(ids, skip_special_tokens=True) == ref.decode(ids, skip_special_tokens=True)
        assert ours.tokenize(text) == ref.tokenize(text)
        assert ours.convert_ids_to_tokens(ours.encode(text)) == ref.convert_ids_to_tokens(ref.encode(text))
    assert ours.convert_tokens_to_ids(ours.all_special_tokens) == ref.convert_tokens_to_ids(ref.all_special_tokens)
    assert ours.convert_tokens_to_ids("definitely-not-a-token") == ref.convert_tokens_to_ids("definitely-not-a-token")


@pytest.mark.parametrize("name", ["smol", "llama"])
def test_byte_level_round_trip_unicode_and_specials(pair, name):
    ours, _ = pair(name)
    for text in TEXTS:
        assert ours.decode(ours.encode(text, add_special_tokens=False)) == text
    text = f"{ours.eos_token}Héllo 🙂{ours.eos_token} 你好"
    ids = ours.encode(text, add_special_tokens=False)
    assert ours.eos_token_id in ids  # special tokens in text are single tokens
    assert ours.decode(ids) == text
    assert ours.decode(ids, skip_special_tokens=True) == "Héllo 🙂 你好"
    assert ours.convert_ids_to_tokens(ids, skip_special_tokens=True) == \
        [t for t in ours.convert_ids_to_tokens(ids) if t != ours.eos_token]


def test_call_single_and_batch(pair):
    ours, ref = pair("llama")
    a, b = ours("Hello world"), ref("Hello world")
    assert isinstance(a, BatchEncoding)
    assert dict(a) == dict(b)
    assert a.input_ids == a["input_ids"] == b["input_ids"]
    a, b = ours(TEXTS), ref(TEXTS)
    assert a["input_ids"] == b["input_ids"] and a["attention_mask"] == b["attention_mask"]
    assert ours.batch_decode(a["input_ids"]) == ref.batch_decode(b["input_ids"])
    assert ours.decode(a["input_ids"], skip_special_tokens=True) == ref.decode(b["input_ids"],
                                                                               skip_special_tokens=True)
    # text pairs and extra outputs
    a = ours(["Hello", "a b c"], ["world", "d"], return_token_type_ids=True, return_special_tokens_mask=True,
             return_length=True, return_offsets_mapping=True)
    b = ref(["Hello", "a b c"], ["world", "d"], return_token_type_ids=True, return_special_tokens_mask=True,
            return_length=True, return_offsets_mapping=True)
    assert {k: [list(map(tuple, x)) if k == "offset_mapping" else x for x in v] for k, v in a.items()} == \
        {k: [list(map(tuple, x)) if k == "offset_mapping" else x for x in v] for k, v in b.items()}
    assert ours(text_target="Hello")["input_ids"] == ref(text_target="Hello")["input_ids"]
    assert ours("Hi", text_target="Hello")["labels"] == ref("Hi", text_target="Hello")["labels"]


@pytest.mark.parametrize("name,side", [("smol", None), ("smol", "left"), ("qwen", None), ("gemma", None),
                                       ("gemma", "right")])
def test_padding(pair, name, side):
    ours, ref = pair(name)
    batch = ["short", "a somewhat longer sentence here", "mid length one", "Héllo 🙂"]
    a = ours(batch, padding=True, padding_side=side)
    b = ref(batch, padding=True, padding_side=side)
    assert a["input_ids"] == b["input_ids"] and a["attention_mask"] == b["attention_mask"]
    expected_side = side or ours.padding_side
    first = np.array(a["attention_mask"])[:, 0 if expected_side == "left" else -1]
    assert (first == 0).any()  # padding happened on the expected side
    target = max(len(x) for x in a["input_ids"]) + 3
    a = ours(batch, padding="max_length", max_length=target, padding_side=side)
    b = ref(batch, padding="max_length", max_length=target, padding_side=side)
    assert a["input_ids"] == b["input_ids"] and a["attention_mask"] == b["attention_mask"]
    assert all(len(x) == target for x in a["input_ids"])
    a = ours(batch, padding=True, pad_to_multiple_of=8)
    b = ref(batch, padding=True, pad_to_multiple_of=8)
    assert a["input_ids"] == b["input_ids"] and len(a["input_ids"][0]) % 8 == 0


def test_padding_without_pad_token_raises(pair):
    ours, ref = pair("llama")
    with pytest.raises(ValueError, match="padding token"):
        ours(["a", "bb"], padding=True)
    with pytest.raises(ValueError, match="padding token"):
        ref(["a", "bb"], padding=True)
    ours2 = AutoTokenizer.from_pretrained(ours.name_or_path, pad_token="<|end_of_text|>")
    assert ours2.pad_token_id == ours.convert_tokens_to_ids("<|end_of_text|>")
    ours2.pad_token = ours2.eos_token
    assert ours2.pad_token_id == ours2.eos_token_id
    assert len(ours2(["a", "bb bb bb"], padding=True)["input_ids"][0]) > 2


@pytest.mark.parametrize("name", ["smol", "llama", "gemma"])
def test_truncation(pair, name):
    ours, ref = pair(name)
    long = "The quick brown fox jumps over the lazy dog. " * 5
    for kw in [dict(truncation=True, max_length=7), dict(max_length=5), dict(truncation=True),
               dict(truncation=True, max_length=9, padding="max_length")]:
        if "padding" in kw and ours.pad_token is None:
            continue
        a, b = ours([long, "hi"], **kw), ref([long, "hi"], **kw)
        assert a["input_ids"] == b["input_ids"], kw
        assert a["attention_mask"] == b["attention_mask"], kw
    a = ours([long], truncation=True, max_length=7)["input_ids"][0]
    assert len(a) == 7
    if ours.add_bos_token:
        assert a[0] == ours.bos_token_id  # truncation keeps the post-processor's bos
    ours.truncation_side = ref.truncation_side = "left"
    try:
        assert ours(long, truncation=True, max_length=6)["input_ids"] == \
            ref(long, truncation=True, max_length=6)["input_ids"]
    finally:
        ours.truncation_side = ref.truncation_side = "right"


def test_return_tensors(pair):
    import peftcpp

    ours, ref = pair("smol")
    batch = ["short", "a longer sentence"]
    a = ours(batch, padding=True, return_tensors="np")
    b = ref(batch, padding=True, return_tensors="np")
    assert a["input_ids"].dtype == np.int64 and a["attention_mask"].dtype == np.int64
    np.testing.assert_array_equal(a["input_ids"], b["input_ids"])
    np.testing.assert_array_equal(a.attention_mask, b["attention_mask"])
    for kind in ("pc", "peftcpp", "pt"):  # "pt": transformers scripts run unchanged on peftcpp tensors
        c = ours(batch, padding=True, return_tensors=kind)
        assert isinstance(c["input_ids"], peftcpp.Tensor) and c["input_ids"].dtype == peftcpp.int64
        assert tuple(c["input_ids"].shape) == b["input_ids"].shape
        np.testing.assert_array_equal(c["input_ids"].numpy(), b["input_ids"])
        np.testing.assert_array_equal(c.attention_mask.numpy(), b["attention_mask"])
    single = ours("hello", return_tensors="np")["input_ids"]
    assert single.shape == (1, len(ours.encode("hello")))
    assert ours.decode(single[0]) == "hello"
    assert ours.batch_decode(ours(batch, padding=True, return_tensors="pc")["input_ids"],
                             skip_special_tokens=True) == batch
    assert ours("hello", return_tensors="pt").to("cpu")["input_ids"].shape == (1, len(ours.encode("hello")))
    with pytest.raises(ValueError, match="CPU only"):
        ours("hello", return_tensors="pt").to("cuda:0")
    with pytest.raises(ValueError, match="not supported.*'pc'"):
        ours("hello", return_tensors="tf")
    with pytest.raises(ValueError, match="padding"):
        ours(batch, return_tensors="np")  # ragged batch


def test_pad_as_collate(pair):
    ours, ref = pair("smol")
    feats = [{"input_ids": ours.encode(t)} for t in ["a", "a longer text here", "mid text"]]
    a = ours.pad(feats)
    b = ref.pad([dict(f) for f in feats])
    assert a["input_ids"] == b["input_ids"] and a["attention_mask"] == b["attention_mask"]
    longest = max(len(f["input_ids"]) for f in feats)
    a = ours.pad(feats, padding="max_length", max_length=longest + 2, padding_side="left", return_tensors="np")
    b = ref.pad([dict(f) for f in feats], padding="max_length", max_length=longest + 2, padding_side="left",
                return_tensors="np")
    assert a["input_ids"].shape == (3, longest + 2) and (a["attention_mask"][:, :2] == 0).all()
    np.testing.assert_array_equal(a["input_ids"], b["input_ids"])
    np.testing.assert_array_equal(a["attention_mask"], b["attention_mask"])
    # peftcpp tensors in → peftcpp tensors out
    import peftcpp

    pc = ours.pad([{"input_ids": ours("a longer text here", return_tensors="pc")["input_ids"][0]},
                   {"input_ids": ours("a", return_tensors="pc")["input_ids"][0]}])
    assert isinstance(pc["input_ids"], peftcpp.Tensor)
    assert pc["input_ids"].numpy().tolist() == ours(["a longer text here", "a"], padding=True)["input_ids"]
    one = ours.pad({"input_ids": [5, 6]}, padding="max_length", max_length=4)
    assert one["input_ids"] == [5, 6, ours.pad_token_id, ours.pad_token_id] and one["attention_mask"] == [1, 1, 0, 0]


# ------------------------------------------------------------------ chat templates


@pytest.mark.parametrize("name,chats", [("smol", CHATS), ("qwen", CHATS), ("llama", CHATS),
                                        ("gemma", GEMMA_CHATS)])
def test_chat_template_matches(pair, name, chats):
    ours, ref = pair(name)
    for chat in chats:
        for gen in (False, True):
            text = ours.apply_chat_template(chat, tokenize=False, add_generation_prompt=gen)
            assert text == ref.apply_chat_template(chat, tokenize=False, add_generation_prompt=gen)
            assert chat[-1]["content"].strip() in text
            ids = ours.apply_chat_template(chat, add_generation_prompt=gen)
            assert ids == ref.apply_chat_template(chat, add_generation_prompt=gen, return_dict=False)
            assert ids == ours.encode(text, add_special_tokens=False)  # bos only once, from the template
            if ours.bos_token is not None:
                assert ids.count(ours.bos_token_id) == text.count(ours.bos_token)
        out = ours.apply_chat_template(chat, return_dict=True)
        assert out["input_ids"] == ref.apply_chat_template(chat)["input_ids"]
        assert out["attention_mask"] == [1] * len(out["input_ids"])
    # batched conversations, padded tensors
    texts = ours.apply_chat_template(chats, tokenize=False, add_generation_prompt=True)
    assert texts == ref.apply_chat_template(chats, tokenize=False, add_generation_prompt=True)
    assert ours.apply_chat_template(chats) == ref.apply_chat_template(chats, return_dict=False)
    if ours.pad_token is not None:
        a = ours.apply_chat_template(chats, padding=True, return_tensors="np", return_dict=True)
        b = ref.apply_chat_template(chats, padding=True, return_tensors="np", return_dict=True)
        np.testing.assert_array_equal(a["input_ids"], b["input_ids"])
        np.testing.assert_array_equal(a["attention_mask"], b["attention_mask"])


def test_chat_template_generation_prompt_and_system(pair):
    ours, ref = pair("smol")
    plain = ours.apply_chat_template(CHATS[0], tokenize=False)
    prompt = ours.apply_chat_template(CHATS[0], tokenize=False, add_generation_prompt=True)
    assert prompt == plain + "<|im_start|>assistant\n"
    assert "You are a helpful AI assistant named SmolLM" in plain  # default system prompt
    with_system = ours.apply_chat_template(CHATS[1], tokenize=False)
    assert with_system.startswith("<|im_start|>system\nYou are terse.<|im_end|>\n") and "SmolLM" not in with_system
    assert with_system.count("<|im_start|>") == 4


@pytest.mark.parametrize("name,chat", [("smol", CHATS[1]), ("llama", CHATS[1]), ("gemma", GEMMA_CHATS[1])])
def test_continue_final_message(pair, name, chat):
    ours, ref = pair(name)
    chat = chat + [{"role": "assistant", "content": "The answer is "}]
    if name == "gemma":
        chat = chat[:-1]
        chat[-1] = {"role": "user", "content": "The answer is "}
    text = ours.apply_chat_template(chat, tokenize=False, continue_final_message=True)
    assert text == ref.apply_chat_template(chat, tokenize=False, continue_final_message=True)
    assert text.rstrip().endswith("The answer is")
    assert ours.apply_chat_template(chat, continue_final_message=True) == \
        ref.apply_chat_template(chat, continue_final_message=True, return_dict=False)
    with pytest.raises(ValueError, match="not compatible"):
        ours.apply_chat_template(chat, continue_final_message=True, add_generation_prompt=True)


def test_tools_kwargs_and_named_templates(pair):
    ours, ref = pair("qwen")
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Météo <city>",
                                               "parameters": {"type": "object",
                                                              "properties": {"city": {"type": "string"}}}}}]
    chat = CHATS[0] + [{"role": "assistant", "content": None,
                        "tool_calls": [{"type": "function", "function": {"name": "get_weather",
                                                                         "arguments": {"city": "Köln"}}}]},
                       {"role": "tool", "content": "12°C"}]
    text = ours.apply_chat_template(chat, tools=tools, tokenize=False, add_generation_prompt=True)
    assert text == ref.apply_chat_template(chat, tools=tools, tokenize=False, add_generation_prompt=True)
    assert '"Météo <city>"' in text and '{"city": "Köln"}' in text  # tojson: no ascii/HTML escaping
    # a named template, and an explicit template string with an extra variable
    gen = ours.apply_chat_template(CHATS[0], chat_template="generation", tokenize=False)
    assert gen == ref.apply_chat_template(CHATS[0], chat_template="generation", tokenize=False)
    tpl = "{{ greeting }} {% for m in messages %}{{ m['content'] | tojson(indent=2) }}{% endfor %}{{ eos_token }}"
    assert ours.apply_chat_template(CHATS[0], chat_template=tpl, tokenize=False, greeting="Hey") == \
        ref.apply_chat_template(CHATS[0], chat_template=tpl, tokenize=False, greeting="Hey")
    # llama: tools rendered with tojson(indent=4), date_string override
    lo, lr = pair("llama")
    kw = dict(tools=tools, tokenize=False, date_string="01 Jan 2025")
    assert lo.apply_chat_template(CHATS[1], **kw) == lr.apply_chat_template(CHATS[1], **kw)
    assert "Today Date: 01 Jan 2025" in lo.apply_chat_template(CHATS[1], **kw)


def test_assistant_tokens_mask(pair):
    ours, ref = pair("qwen")
    chat = CHATS[1][1:] + [{"role": "assistant", "content": "6, bien sûr."}]
    a = ours.apply_chat_template(chat, chat_template="generation", return_dict=True,
                                 return_assistant_tokens_mask=True)
    b = ref.apply_chat_template(chat, chat_template="generation", return_dict=True,
                                return_assistant_tokens_mask=True)
    assert a["input_ids"] == b["input_ids"]
    assert a["assistant_masks"] == list(b["assistant_masks"])
    assert 0 < sum(a["assistant_masks"]) < len(a["input_ids"])
    masked = [t for t, m in zip(a["input_ids"], a["assistant_masks"]) if m]
    assert "6, bien sûr.<|im_end|>" in ours.decode(masked)


def test_template_errors(pair, folders, tmp_path):
    ours, ref = pair("gemma")
    bad = [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}]
    import jinja2

    with pytest.raises(jinja2.exceptions.TemplateError, match="System role not supported"):
        ours.apply_chat_template(bad)
    with pytest.raises(jinja2.exceptions.TemplateError, match="System role not supported"):
        ref.apply_chat_template(bad)
    with pytest.raises(ValueError, match="empty conversation"):
        ours.apply_chat_template([])
    # the sandbox refuses attribute escapes
    with pytest.raises(jinja2.exceptions.SecurityError):
        ours.apply_chat_template(CHATS[0], chat_template="{{ messages.__class__.__mro__ }}", tokenize=False)
    # a tokenizer without a template
    tok = Tokenizer.from_file(os.path.join(folders["smol"], "tokenizer.json"))
    _write(tmp_path / "notpl", tok, {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|im_end|>"})
    ours = AutoTokenizer.from_pretrained(str(tmp_path / "notpl"))
    ref = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "notpl"))
    assert ours.chat_template is None
    with pytest.raises(ValueError, match="chat_template is not set"):
        ours.apply_chat_template(CHATS[0])
    with pytest.raises(ValueError, match="chat_template is not set"):
        ref.apply_chat_template(CHATS[0])
    with pytest.raises(ValueError, match="multiple chat templates"):
        o2 = AutoTokenizer.from_pretrained(folders["qwen"])
        o2.chat_template = {"a": "x", "b": "y"}
        o2.apply_chat_template(CHATS[0])


# ------------------------------------------------------------------ save / load


@pytest.mark.parametrize("name", ["smol", "qwen", "llama", "gemma"])
def test_save_pretrained_round_trip(pair, name, tmp_path):
    ours, ref = pair(name)
    out = tmp_path / "saved"
    files = ours.save_pretrained(out)
    assert {os.path.basename(f) for f in files} == {"tokenizer.json", "tokenizer_config.json",
                                                    "special_tokens_map.json"}
    config = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["chat_template"]
    again = transformers.AutoTokenizer.from_pretrained(str(out))  # transformers loads what peftcpp saved
    ours_again = AutoTokenizer.from_pretrained(str(out))
    chats = GEMMA_CHATS if name == "gemma" else CHATS
    for tok in (again, ours_again):
        for attr in ["bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id", "padding_side",
                     "model_max_length", "all_special_tokens", "chat_template"]:
            assert getattr(tok, attr) == getattr(ref, attr), attr
        assert len(tok) == len(ref)
        for text in TEXTS:
            assert tok.encode(text) == ref.encode(text)
        assert tok.apply_chat_template(chats[-1], tokenize=False, add_generation_prompt=True) == \
            ref.apply_chat_template(chats[-1], tokenize=False, add_generation_prompt=True)


def test_from_pretrained_kwargs_and_added_tokens(folders, tmp_path):
    tok = AutoTokenizer.from_pretrained(folders["smol"], padding_side="left", model_max_length=16,
                                        chat_template="{{ messages[0]['content'] }}")
    assert tok.padding_side == "left" and tok.model_max_length == 16
    assert tok.apply_chat_template(CHATS[0], tokenize=False) == "Hi there!"
    assert len(tok("word " * 40, truncation=True)["input_ids"]) == 16
    n = len(tok)
    assert tok.add_special_tokens({"extra_special_tokens": ["<|tool|>"]}) == 1 and len(tok) == n + 1
    assert tok.encode("a<|tool|>b", add_special_tokens=False)[1] == n
    assert tok.decode(tok.encode("a<|tool|>b"), skip_special_tokens=True) == "ab"
    assert tok.add_tokens(["zzqq"]) == 1 and tok.convert_tokens_to_ids("zzqq") == n + 1
    out = tmp_path / "added"
    tok.save_pretrained(out)
    ref = transformers.AutoTokenizer.from_pretrained(str(out))
    assert ref.encode("a<|tool|>b zzqq") == tok.encode("a<|tool|>b zzqq")
    assert ref.padding_side == "left" and ref.model_max_length == 16


def test_missing_files_and_offline(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    with pytest.raises(OSError, match=r"no tokenizer\.json.*empty|empty.*no tokenizer\.json"):
        AutoTokenizer.from_pretrained(str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.time()
    with pytest.raises(OSError, match="offline"):
        AutoTokenizer.from_pretrained("peftcpp-test/definitely-not-cached", cache_dir=str(tmp_path / "hub"))
    assert time.time() - start < 5
    with pytest.raises(OSError, match="not in the local Hugging Face cache"):
        AutoTokenizer.from_pretrained("someone/missing", cache_dir=str(tmp_path / "hub"), local_files_only=True)


def test_offline_hub_cache_layout(folders, tmp_path, monkeypatch):
    """A repo id resolves through the huggingface_hub cache (no network: offline with a pre-filled cache)."""
    repo = tmp_path / "hub" / "models--org--tiny"
    commit = "0" * 40
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (snap / f).write_bytes(open(os.path.join(folders["smol"], f), "rb").read())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = AutoTokenizer.from_pretrained("org/tiny", cache_dir=str(tmp_path / "hub"))
    ref = AutoTokenizer.from_pretrained(folders["smol"])
    assert tok.encode("Hello world") == ref.encode("Hello world") and tok.chat_template == SMOLLM2_TEMPLATE


def test_no_torch_or_transformers_import():
    import subprocess
    import sys

    code = ("import sys, peftcpp.tokenization as t; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, "
            "[m for m in sys.modules if m.startswith(('torch', 'transformers'))]; print('ok')")
    env = dict(os.environ)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr


def test_package_exports():
    """The names of the former single-module peftcpp.tokenization stay importable from the package."""
    import peftcpp
    import peftcpp.tokenization as t

    assert peftcpp.AutoTokenizer is t.AutoTokenizer and peftcpp.PreTrainedTokenizer is t.PreTrainedTokenizer
    assert t.PreTrainedTokenizerFast is t.PreTrainedTokenizer and callable(t.render_chat)
    assert (t.TOKENIZER_FILE, t.TOKENIZER_CONFIG_FILE, t.CHAT_TEMPLATE_FILE) == \
        ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
    assert "pad_token" in t.SPECIAL_TOKENS_ATTRIBUTES and t.VERY_LARGE_INTEGER > t.LARGE_INTEGER


def test_instantiation_errors():
    with pytest.raises(EnvironmentError):
        AutoTokenizer()
    with pytest.raises(TypeError):
        PreTrainedTokenizer("not a tokenizer")


def test_pickle(pair):
    import pickle

    ours, _ = pair("llama")
    again = pickle.loads(pickle.dumps(ours))  # datasets.map / DataLoader workers pickle the tokenizer
    assert again.encode("Héllo 🙂") == ours.encode("Héllo 🙂") and again.chat_template == ours.chat_template
    enc = pickle.loads(pickle.dumps(ours(["a", "b c"])))
    assert enc.input_ids == ours(["a", "b c"])["input_ids"] and enc.encodings is not None


def test_template_files(folders, tmp_path):
    tok = Tokenizer.from_file(os.path.join(folders["smol"], "tokenizer.json"))
    base = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|im_end|>"}
    # chat_template.json (processor-style file) is used when nothing else gives a template
    _write(tmp_path / "json", tok, base, {"chat_template.json": {"chat_template": SMOLLM2_TEMPLATE}})
    ours = AutoTokenizer.from_pretrained(str(tmp_path / "json"))
    assert ours.chat_template == SMOLLM2_TEMPLATE
    assert ours.apply_chat_template(CHATS[1], tokenize=False).startswith("<|im_start|>system\nYou are terse.")
    # chat_template.jinja + additional_chat_templates/*.jinja → named templates, like transformers
    folder = tmp_path / "multi"
    _write(folder, tok, dict(base, chat_template="ignored: the .jinja file wins"),
           {"chat_template.jinja": SMOLLM2_TEMPLATE})
    (folder / "additional_chat_templates").mkdir()
    (folder / "additional_chat_templates" / "tool_use.jinja").write_text(QWEN25_TEMPLATE, encoding="utf-8")
    ours = AutoTokenizer.from_pretrained(str(folder))
    ref = transformers.AutoTokenizer.from_pretrained(str(folder))
    assert ours.chat_template == ref.chat_template
    assert set(ours.chat_template) == {"default", "tool_use"}
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    for kw in ({}, {"tools": tools}, {"chat_template": "tool_use"}):
        assert ours.apply_chat_template(CHATS[0], tokenize=False, **kw) == \
            ref.apply_chat_template(CHATS[0], tokenize=False, **kw)
    assert "# Tools" in ours.apply_chat_template(CHATS[0], tokenize=False, tools=tools)

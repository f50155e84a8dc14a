"""Tokenizing dataset examples for causal-LM training: chat templates, loss masks and truncation.

Labels follow Hugging Face's convention: ``labels[i] == input_ids[i]`` where token ``i`` is a training target and
``-100`` elsewhere; the model shifts them. With ``mask_prompt=True`` (the default) only assistant tokens are
targets. The assistant spans are found without ``{% generation %}`` tags (most templates lack them): the
conversation is rendered up to each assistant turn (with the generation prompt) and up to the end of that turn,
and the token prefixes are compared with the full conversation's tokens, as mlx-lm and TRL do. When a template
renders a turn differently once it is no longer the last one (Qwen3's think block), the reply is located in the
rendered text instead. Whitespace the template puts after the end-of-turn token (ChatML's newline) is not a target.
"""
from __future__ import annotations

__all__ = ["IGNORE_INDEX", "tokenize_example", "encode_example"]

IGNORE_INDEX = -100


def _ids(tokenizer, text, add_special_tokens):
    return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])


def _lcp(a, b):
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _has_chat_template(tokenizer):
    return bool(getattr(tokenizer, "chat_template", None))


def _render_ids(tokenizer, messages, add_generation_prompt, tools=None):
    text = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False,
                                         add_generation_prompt=add_generation_prompt)
    return _ids(tokenizer, text, add_special_tokens=False)


def _special_ids(tokenizer):
    ids = set()
    try:
        ids.update(int(i) for i in tokenizer.all_special_ids)
    except Exception:  # noqa: BLE001 - a tokenizer without the attribute
        pass
    try:
        ids.update(int(i) for i in tokenizer.added_tokens_decoder)
    except Exception:  # noqa: BLE001
        pass
    return ids


def _trim_after_end_of_turn(ids, start, end, tokenizer, special):
    """Drop the template's whitespace after the turn's last special token (ChatML's '\\n' after <|im_end|>)."""
    last = None
    for t in range(end - 1, start - 1, -1):
        if ids[t] in special:
            last = t
            break
    if last is None or last == end - 1:
        return end
    tail = tokenizer.decode(ids[last + 1:end])
    return last + 1 if not tail.strip() else end


def _end_by_search(messages, i, ids, start, tokenizer, special, tools):
    """Token index just past assistant message ``i`` (and its end-of-turn token), found in the rendered text."""
    content = messages[i].get("content")
    if not isinstance(content, str) or not content.strip():
        return 0
    text = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=False)
    enc = tokenizer(text, add_special_tokens=False).encodings
    if not enc or list(enc[0].ids) != list(ids):
        return 0
    enc = enc[0]
    begin = enc.offsets[start][0] if start < len(ids) else len(text)
    needle = content.strip()
    pos = text.find(needle, begin)
    if pos < 0:
        return 0
    last = enc.char_to_token(pos + len(needle) - 1)
    if last is None:
        return 0
    end = last + 1
    if end < len(ids) and ids[end] in special:  # the end-of-turn token is a target too
        end += 1
    return end


def _chat_encode(messages, tokenizer, mask_prompt, tools=None):
    """(input_ids, labels) of a conversation rendered with the tokenizer's chat template."""
    ids = _render_ids(tokenizer, messages, add_generation_prompt=False, tools=tools)
    if not mask_prompt:
        return ids, list(ids)
    labels = [IGNORE_INDEX] * len(ids)
    special = _special_ids(tokenizer)
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        start = None
        if i > 0:
            try:
                start = _lcp(_render_ids(tokenizer, messages[:i], True, tools), ids)
            except Exception:  # noqa: BLE001 - templates may refuse some prefixes; fall back below
                try:
                    start = _lcp(_render_ids(tokenizer, messages[:i], False, tools), ids)
                except Exception:  # noqa: BLE001
                    start = None
        if start is None:
            start = 0
        through = _render_ids(tokenizer, messages[:i + 1], False, tools)
        end = _lcp(through, ids)
        if end < len(through):
            # the template renders this turn differently when it is the last one (e.g. Qwen3 adds an empty
            # <think></think> block to the final assistant turn only): find the reply in the full text instead
            end = max(end, _end_by_search(messages, i, ids, start, tokenizer, special, tools))
        if end <= start:
            continue
        end = _trim_after_end_of_turn(ids, start, end, tokenizer, special)
        labels[start:end] = ids[start:end]
    return ids, labels


def _eos_id(tokenizer):
    eos = getattr(tokenizer, "eos_token_id", None)
    return int(eos) if eos is not None else None


def encode_example(example, tokenizer, mask_prompt=True):
    """Tokenize one validated example without truncation: (input_ids, labels)."""
    tools = example.get("tools")
    if "messages" in example:
        if not _has_chat_template(tokenizer):
            raise ValueError("Chat-format examples need a tokenizer with a chat template, and this tokenizer "
                             f"({getattr(tokenizer, 'name_or_path', '') or 'unnamed'}) has none. Set "
                             "tokenizer.chat_template, or use {\"prompt\", \"completion\"} or {\"text\"} lines.")
        return _chat_encode(example["messages"], tokenizer, mask_prompt, tools)
    if "prompt" in example or "completion" in example:
        prompt, completion = example.get("prompt", ""), example.get("completion", "")
        if _has_chat_template(tokenizer):
            messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
            return _chat_encode(messages, tokenizer, mask_prompt, tools)
        ids = _ids(tokenizer, prompt + completion, add_special_tokens=True)
        eos = _eos_id(tokenizer)
        if eos is not None and (not ids or ids[-1] != eos):
            ids.append(eos)
        if not mask_prompt:
            return ids, list(ids)
        start = _lcp(_ids(tokenizer, prompt, add_special_tokens=True), ids)
        return ids, [IGNORE_INDEX] * start + ids[start:]
    if "text" in example:
        ids = _ids(tokenizer, example["text"], add_special_tokens=True)
        eos = _eos_id(tokenizer)
        if eos is not None and (not ids or ids[-1] != eos):
            ids.append(eos)
        return ids, list(ids)
    raise ValueError(f"Unrecognized example (keys: {sorted(example)}); expected 'messages', 'prompt'+'completion' "
                     "or 'text'.")


def tokenize_example(example, tokenizer, max_seq_length=2048, mask_prompt=True, return_truncated=False):
    """One example -> {"input_ids", "labels", "attention_mask"} (Python lists), truncated to ``max_seq_length``.

    With ``return_truncated=True`` returns (item, original_length) so callers can count truncations.
    """
    ids, labels = encode_example(example, tokenizer, mask_prompt=mask_prompt)
    length = len(ids)
    if max_seq_length is not None and length > max_seq_length:
        ids, labels = ids[:max_seq_length], labels[:max_seq_length]
    item = {"input_ids": ids, "labels": labels, "attention_mask": [1] * len(ids)}
    return (item, length) if return_truncated else item

"""Tokenizing dataset examples for causal-LM training: chat templates, loss masks and truncation.

Labels follow Hugging Face's convention: ``labels[i] == input_ids[i]`` where token ``i`` is a training target and
``-100`` elsewhere; the model shifts them. With ``mask_prompt=True`` (the default) only assistant tokens are
targets. The assistant spans are found without ``{% generation %}`` tags (most templates lack them). The target of
an assistant turn is what follows the conversation up to that turn rendered with the generation prompt, through
the end of the conversation up to and including that turn, as mlx-lm and TRL compute it by rendering each prefix.

Rendering every prefix costs time in the square of the number of messages, so the spans are found in linear time:
the conversation is rendered once as it is and once with a placeholder for each message's content; the
placeholders locate each content in the real rendering, and the generation prompt and an assistant turn's closing
come from rendering the conversation up to its first assistant turn. When a template does not copy the contents
verbatim (or stripped), the prefix renderings are used for conversations of up to 64 messages, and beyond that each
assistant content is searched for in the rendered text. When a template renders a turn differently once it is no
longer the last one (Qwen3's think block), the reply is located in the rendered text. Whitespace the template puts
after the end-of-turn token (ChatML's newline) is not a target.
"""
from __future__ import annotations

import bisect
import re

from ..tokenization.template_budget import TemplateBudgetError

__all__ = ["IGNORE_INDEX", "tokenize_example", "encode_example"]

IGNORE_INDEX = -100
_PLACEHOLDER = "\ue000{}\ue001"  # private-use characters: no template or tokenizer treats them specially
_PLACEHOLDER_RE = re.compile("\ue000([0-9]+)\ue001")
_PREFIX_RENDER_LIMIT = 64  # messages: beyond this, rendering every prefix is too slow (quadratic)


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


def _render_text(tokenizer, messages, add_generation_prompt, tools):
    return tokenizer.apply_chat_template(messages, tools=tools, tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def _token_ends(tokenizer, text):
    """(ids, end character of each token) of a rendered text; ends is None without usable offsets."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    try:
        ends = [int(e) for _, e in enc["offset_mapping"]]
    except (KeyError, TypeError, ValueError):
        return ids, None
    if len(ends) != len(ids) or any(a > b for a, b in zip(ends, ends[1:])):
        return ids, None
    return ids, ends


def _content_spans(messages, text, tokenizer, tools):
    """{message index: (glue start, content start, content end)}: where the template put each message's content in
    ``text``, found by rendering the conversation with placeholder contents. None when the template does not copy
    the contents verbatim (or stripped) or the placeholders are not in order."""
    contents = [m.get("content") for m in messages]
    if not all(isinstance(c, str) for c in contents):
        return None
    skeleton = _render_text(tokenizer, [dict(m, content=_PLACEHOLDER.format(i)) for i, m in enumerate(messages)],
                            False, tools)
    spans, pos, prev, last = {}, 0, 0, -1
    for match in _PLACEHOLDER_RE.finditer(skeleton):
        k = int(match.group(1))
        if not last < k < len(messages):
            return None
        glue = skeleton[prev:match.start()]
        if not text.startswith(glue, pos):
            return None
        glue_start, pos = pos, pos + len(glue)
        for candidate in (contents[k], contents[k].strip(), contents[k].lstrip(), contents[k].rstrip()):
            if text.startswith(candidate, pos):
                break
        else:
            return None
        spans[k] = (glue_start, pos, pos + len(candidate))
        pos, prev, last = pos + len(candidate), match.end(), k
    if len(text) - pos != len(skeleton) - prev or not text.startswith(skeleton[prev:], pos):
        return None
    return spans


def _turn_frame(messages, first, tokenizer, tools):
    """(generation prompt, closing of an assistant turn), from renderings of the conversation up to its first
    assistant turn (``first``) with placeholder contents; None when they cannot be told apart."""
    marked = [dict(m, content=_PLACEHOLDER.format(i)) for i, m in enumerate(messages[:first + 1])]
    before = _render_text(tokenizer, marked[:first], False, tools)
    prompt = _render_text(tokenizer, marked[:first], True, tools)
    through = _render_text(tokenizer, marked, False, tools)
    placeholder = _PLACEHOLDER.format(first)
    at = through.rfind(placeholder)
    if len(prompt) <= len(before) or not prompt.startswith(before) or at < 0:
        return None
    return prompt[len(before):], through[at + len(placeholder):]


def _common_prefix(text, pos, other):
    n = min(len(other), len(text) - pos)
    i = 0
    while i < n and text[pos + i] == other[i]:
        i += 1
    return i


def _linear_labels(messages, text, ids, ends, tokenizer, special, tools):
    """The labels in time linear in the conversation's length, or None (see the module docstring)."""
    assistants = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    labels = [IGNORE_INDEX] * len(ids)
    if not assistants:
        return labels
    if ends is None or assistants[0] == 0:
        return None
    try:
        spans = _content_spans(messages, text, tokenizer, tools)
        frame = _turn_frame(messages, assistants[0], tokenizer, tools) if spans else None
    except TemplateBudgetError:  # a hostile template stops here, not after each slower way
        raise
    except Exception:  # noqa: BLE001 - a template that refuses placeholders or a prefix: the slower ways
        return None
    if frame is None or any(i not in spans for i in assistants):
        return None
    gen, close = frame
    for i in assistants:
        glue_start, content_start, content_end = spans[i]
        g = text.rfind(gen, glue_start, content_start)
        if g < 0:
            return None
        start = bisect.bisect_right(ends, g + len(gen))
        closing = _common_prefix(text, content_end, close)
        end = bisect.bisect_right(ends, content_end + closing)
        if closing < len(close):  # this turn closes differently from the first one: its reply and end of turn
            after = bisect.bisect_left(ends, content_end)
            if after < len(ids):
                end = max(end, after + 1 + (after + 1 < len(ids) and ids[after + 1] in special))
        if end <= start:
            continue
        end = _trim_after_end_of_turn(ids, start, end, tokenizer, special)
        labels[start:end] = ids[start:end]
    return labels


def _searched_labels(messages, text, ids, ends, tokenizer, special):
    """Each assistant content located in the rendered text, in order, with the special token after it (long
    conversations with templates that change the contents)."""
    labels = [IGNORE_INDEX] * len(ids)
    pos = 0
    for message in messages:
        content = message.get("content")
        needle = content.strip() if isinstance(content, str) else ""
        at = text.find(needle, pos) if needle else -1
        if at < 0:
            continue
        pos = at + len(needle)
        if message.get("role") != "assistant":
            continue
        start = bisect.bisect_right(ends, at)
        end = bisect.bisect_left(ends, pos) + 1
        if end < len(ids) and ids[end] in special:
            end += 1
        end = min(end, len(ids))
        if end > start:
            labels[start:end] = ids[start:end]
    return labels


def _prefix_labels(messages, ids, tokenizer, special, tools):
    """The labels from renderings of every prefix (time in the square of the number of messages)."""
    labels = [IGNORE_INDEX] * len(ids)
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        start = None
        if i > 0:
            try:
                start = _lcp(_render_ids(tokenizer, messages[:i], True, tools), ids)
            except TemplateBudgetError:
                raise
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
    return labels


def _chat_encode(messages, tokenizer, mask_prompt, tools=None):
    """(input_ids, labels) of a conversation rendered with the tokenizer's chat template."""
    text = _render_text(tokenizer, messages, False, tools)
    if not mask_prompt:
        ids = _ids(tokenizer, text, add_special_tokens=False)
        return ids, list(ids)
    ids, ends = _token_ends(tokenizer, text)
    special = _special_ids(tokenizer)
    labels = _linear_labels(messages, text, ids, ends, tokenizer, special, tools)
    if labels is None:
        if len(messages) <= _PREFIX_RENDER_LIMIT or ends is None:
            labels = _prefix_labels(messages, ids, tokenizer, special, tools)
        else:
            labels = _searched_labels(messages, text, ids, ends, tokenizer, special)
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

"""Chat templates: conversations rendered with the model's jinja template the way transformers does
(``apply_chat_template``), including ``continue_final_message`` and the assistant-token masks that the
template's ``{% generation %}`` blocks mark."""
from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext

import numpy as np

__all__ = ["render_chat", "assistant_token_masks", "ChatTemplateMixin"]

_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
_CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "


def _plain(value):
    """Rebuild template inputs from plain JSON types (the sandbox must not see rich objects)."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, np.generic):
        return _plain(value.item())
    if callable(getattr(value, "model_dump", None)):
        return _plain(value.model_dump())
    return f"<{type(value).__name__}>"


def _alias_reasoning(chat):
    out = []
    for message in chat:
        if isinstance(message, dict):
            reasoning = next((message[k] for k in _REASONING_FIELDS if message.get(k) is not None), None)
            if reasoning is not None:
                message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        out.append(message)
    return out


def _plain_chat(chat):
    if hasattr(chat, "messages"):
        chat = chat.messages
    chat = _plain(list(chat))
    for message in chat:
        if not isinstance(message, dict):
            raise TypeError(f"Chat messages should be dicts, but got {message!r}.")
    return _alias_reasoning(chat)


def _mark_final_message(chat, continue_final_message, chat_template):
    """Append the continue tag to the text of the last message; returns that text (before the tag)."""
    if not chat:
        raise ValueError("continue_final_message is set but the conversation is empty!")
    field = continue_final_message if isinstance(continue_final_message, str) else "content"
    final_message = chat[-1].get(field)
    if final_message is None:
        raise ValueError(f'continue_final_message is set but the final message has no "{field}" to continue!')
    fields = [field]
    if field in _REASONING_FIELDS:
        fields = [f for f in _REASONING_FIELDS if chat[-1].get(f) == final_message]
    if not any(f in chat_template for f in fields):
        raise ValueError(f'continue_final_message is set to "{field}" but this is not an accepted field in '
                         "the chat_template")
    if isinstance(final_message, (list, tuple)):
        for block in reversed(final_message):
            if "text" in block:
                final_message = block["text"]
                block["text"] = block["text"] + _CONTINUE_TAG
                return final_message
        raise ValueError("continue_final_message is set but we could not find any text to continue in "
                         "the final message!")
    for f in fields:
        chat[-1][f] = chat[-1][f] + _CONTINUE_TAG
    return final_message


def _cut_at_final_message(text, final_message):
    """The rendered text up to where the final message ends (what follows it is the template's closing)."""
    tag = _CONTINUE_TAG.strip()
    if final_message.strip() not in text or tag not in text:
        raise ValueError(
            "continue_final_message is set but the final message does not appear in the chat after applying "
            "the chat template! This can happen if the chat template deletes portions of the final message. "
            f"Final message to continue: {final_message.strip()}\nRendered chat:\n{text}")
    loc = text.rindex(tag)
    return text[:loc] if text[loc:loc + len(_CONTINUE_TAG)] == _CONTINUE_TAG else text[:loc].rstrip()


def _render(compiled, variables, track_generation, source):
    """(text, generation character spans), within one render budget."""
    from .template_budget import render_budget
    spans = []
    with render_budget(source) as budget:
        blocks = []
        with compiled.environment.track_generation(blocks, spans) if track_generation else nullcontext():
            for block in compiled.generate(**variables):
                blocks.append(block)
                budget.emitted += len(block)  # the top level's output, counted as it streams out
                if budget.emitted > budget.emit_limit:
                    budget.emit(0)
        text = "".join(blocks)
        budget.check_size(text, "a rendered text")
    return text, spans


def _compile(chat_template, source):
    from .template_budget import LIMITS, TemplateBudgetError
    from .template_env import compile_template  # jinja2 is imported on the first rendering only
    if not isinstance(chat_template, str):
        raise TypeError(f"{source}: the chat template must be a string, got {type(chat_template).__name__}")
    if len(chat_template) > LIMITS["template_chars"]:
        raise TemplateBudgetError(f"{source}: the chat template has {len(chat_template):,} characters (limit "
                                  f"{LIMITS['template_chars']:,})")
    try:
        return compile_template(chat_template)
    except (RecursionError, MemoryError):
        raise TemplateBudgetError(f"{source}: the chat template nests too deeply to compile") from None


def render_chat(conversations, chat_template, tools=None, documents=None, add_generation_prompt=False,
                continue_final_message=False, track_generation=False, template_source=None, **template_kwargs):
    """Render each conversation; returns (texts, generation character spans per conversation).
    `template_source` names where the template came from in errors (tokenizer_config.json, ...)."""
    source = template_source or "the chat template"
    compiled = _compile(chat_template, source)
    if tools is not None:
        for tool in tools:
            if not isinstance(tool, dict):
                raise ValueError("Tools must be JSON schemas (dicts); peftcpp does not convert Python functions.")
    if documents is not None:
        for document in documents:
            if not isinstance(document, dict):
                raise TypeError("Documents should be a list of dicts with 'title' and 'text' keys!")
    tools, documents, template_kwargs = _plain(tools), _plain(documents), _plain(template_kwargs)

    rendered, all_spans = [], []
    for chat in conversations:
        chat = _plain_chat(chat)
        final_message = None
        if continue_final_message:
            final_message = _mark_final_message(chat, continue_final_message, chat_template)
        variables = dict(template_kwargs, messages=chat, tools=tools, documents=documents,
                         add_generation_prompt=add_generation_prompt)
        text, spans = _render(compiled, variables, track_generation, source)
        if continue_final_message:
            text = _cut_at_final_message(text, final_message)
        rendered.append(text)
        all_spans.append(spans)
    return rendered, all_spans


def assistant_token_masks(encodings, spans):
    """Per encoding, 1 on the tokens inside the generation character spans of its rendered text."""
    masks = []
    for i, enc in enumerate(encodings):
        mask = [0] * len(enc.ids)
        for start, end in spans[i]:
            s = enc.char_to_token(start)
            e = enc.char_to_token(end - 1)
            if s is None:
                break
            for t in range(s, e + 1 if e is not None else len(mask)):
                mask[t] = 1
        masks.append(mask)
    return masks


def _as_conversations(conversation):
    """(list of conversations without None-valued message keys, whether the input was a batch)."""
    if isinstance(conversation, (list, tuple)) and len(conversation) == 0:
        raise ValueError("Cannot apply chat template to an empty conversation. Provide at least one message.")
    if isinstance(conversation, (list, tuple)) and (isinstance(conversation[0], (list, tuple))
                                                    or hasattr(conversation[0], "messages")):
        conversations, batched = list(conversation), True
    else:
        conversations, batched = [conversation], False
    conversations = [[{k: v for k, v in m.items() if v is not None} if isinstance(m, Mapping) else m
                      for m in getattr(c, "messages", c)] for c in conversations]
    return conversations, batched


class ChatTemplateMixin:
    """``get_chat_template`` / ``apply_chat_template`` of a tokenizer with ``chat_template``, ``name_or_path``,
    ``special_tokens_map`` and ``__call__``."""

    def get_chat_template(self, chat_template=None, tools=None):
        if isinstance(self.chat_template, dict):
            templates = self.chat_template
            if chat_template is not None and chat_template in templates:
                return templates[chat_template]
            if chat_template is None:
                if tools is not None and "tool_use" in templates:
                    return templates["tool_use"]
                if "default" in templates:
                    return templates["default"]
                raise ValueError("This model has multiple chat templates with no default specified! Please either "
                                 "pass a chat template or the name of the template you wish to use to the "
                                 f"`chat_template` argument. Available template names are {sorted(templates)}.")
            return chat_template
        if chat_template is None:
            if self.chat_template is None:
                raise ValueError(
                    "Cannot use chat template functions because tokenizer.chat_template is not set and no template "
                    f"argument was passed! (tokenizer: {self.name_or_path or 'unnamed'}) Set "
                    "tokenizer.chat_template to a Jinja template string, or pass chat_template=... "
                    "(see https://huggingface.co/docs/transformers/main/en/chat_templating).")
            return self.chat_template
        return chat_template

    def chat_template_source(self, template):
        """Where `template` came from, for error messages: the file it was read from (the GGUF for an
        imported model), else how it was given."""
        source = getattr(self, "chat_template_sources", {}).get(template) if isinstance(template, str) else None
        if source:
            return source
        current = self.chat_template
        if template == current or (isinstance(current, dict) and template in current.values()):
            return f"tokenizer.chat_template of {self.name_or_path or 'the tokenizer'}"
        return "the chat_template argument"

    def apply_chat_template(self, conversation, tools=None, documents=None, chat_template=None,
                            add_generation_prompt=False, continue_final_message=False, tokenize=True, padding=False,
                            truncation=False, max_length=None, return_tensors=None, return_dict=False,
                            return_assistant_tokens_mask=False, tokenizer_kwargs=None, **kwargs):
        """Render a conversation (list of {"role", "content"} dicts, or a batch of them) with the chat template.

        Returns the text (tokenize=False), the token ids (default), or with return_dict=True a BatchEncoding
        (input_ids, attention_mask and, with return_assistant_tokens_mask=True, assistant_masks: 1 on the tokens
        inside the template's {% generation %} blocks). Extra kwargs are template variables.
        Note: transformers 5 defaults to return_dict=True; peftcpp keeps the list-of-ids default.
        """
        if kwargs.pop("sanitize_control_tokens", False):
            raise NotImplementedError("sanitize_control_tokens=True is not supported by peftcpp's tokenizer")
        if not tokenize:
            return_dict = False
        if return_assistant_tokens_mask and not (return_dict and tokenize):
            raise ValueError("`return_assistant_tokens_mask=True` requires `return_dict=True` and `tokenize=True`")
        template = self.get_chat_template(chat_template, tools)
        conversations, batched = _as_conversations(conversation)
        if continue_final_message:
            if add_generation_prompt:
                raise ValueError("continue_final_message and add_generation_prompt are not compatible. Use "
                                 "continue_final_message when you want the model to continue the final message, "
                                 "and add_generation_prompt when you want to add a header that will prompt it to "
                                 "start a new assistant message instead.")
            if return_assistant_tokens_mask:
                raise ValueError("continue_final_message is not compatible with return_assistant_tokens_mask.")
        template_kwargs = {**self.special_tokens_map, **kwargs}
        rendered, spans = render_chat(conversations, template, tools=tools, documents=documents,
                                      add_generation_prompt=add_generation_prompt,
                                      continue_final_message=continue_final_message,
                                      track_generation=return_assistant_tokens_mask,
                                      template_source=self.chat_template_source(template), **template_kwargs)
        if not batched:
            rendered = rendered[0]
        if not tokenize:
            return rendered
        out = self(rendered, padding=padding, truncation=truncation, max_length=max_length,
                   add_special_tokens=False, return_tensors=return_tensors, **(tokenizer_kwargs or {}))
        if not return_dict:
            return out["input_ids"]
        if return_assistant_tokens_mask:
            masks = assistant_token_masks(out.encodings, spans)
            if not batched and not return_tensors:
                masks = masks[0]
            out["assistant_masks"] = masks
            if return_tensors:
                out.convert_to_tensors(return_tensors)
        return out

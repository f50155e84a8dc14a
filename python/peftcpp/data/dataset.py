"""Reading, validating and merging JSONL datasets (DonkeyTune / mlx-lm layout).

A dataset is a folder with ``train.jsonl``, ``valid.jsonl`` and optionally ``test.jsonl``, or a single ``.jsonl``
file (used as the training split). Each non-blank line is one JSON object in one of three formats:

- chat: ``{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}``, optionally with a
  ``"tools"`` list that is passed to the chat template. The roles must be in order: an optional system message
  first (once), then user and assistant turns alternating, starting with user and ending with assistant. Every
  message needs a non-empty ``"content"`` string. Tool messages (role ``"tool"``/``"function"``/``"ipython"``)
  and content-less assistant ``"tool_calls"`` (mlx-lm's tools format) are not supported: such lines are invalid.
- completion: ``{"prompt": "...", "completion": "..."}`` (one user turn and one assistant turn)
- text: ``{"text": "..."}``

All lines of one file must use the same format. Validation reports every bad line with the file, the line number
and what is wrong; by default it raises :class:`DatasetError`, with ``skip_invalid=True`` bad lines are skipped,
counted and reported in a warning.

Limits checked before any work: a line longer than ``max_line_bytes`` is refused without being parsed (it is read
in bounded chunks), and so is JSON nested deeper than :data:`MAX_DEPTH` levels or with more than
:data:`MAX_VALUES` values; an example with more than ``max_messages`` messages is refused before its messages are
looked at. Validation is linear in the size of the line.
"""
from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass, field

from ..fileio import atomic_files

__all__ = ["DatasetError", "JsonlSplit", "SPLIT_FILES", "VALID_ROLES", "DEFAULT_MAX_LINE_BYTES",
           "DEFAULT_MAX_MESSAGES", "MAX_DEPTH", "MAX_VALUES", "detect_format", "validate_example", "read_jsonl",
           "read_dataset", "merge_datasets"]

SPLIT_FILES = {"train": "train.jsonl", "valid": "valid.jsonl", "test": "test.jsonl"}
REQUIRED_SPLITS = ("train", "valid")
VALID_ROLES = ("system", "user", "assistant")
TOOL_ROLES = ("tool", "function", "ipython")  # OpenAI/Llama tool results: not supported (see the module docstring)
FORMATS = ("chat", "completion", "text")
MAX_LISTED = 20  # problems quoted in an error message
# Far above real data (a long chat is tens of turns, a long document a few MB; both are truncated to
# max_seq_length tokens anyway), low enough that reading one hostile line costs at most ~1 s and ~150 MB.
DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_MESSAGES = 1000
# Checked on the line's brackets and commas before parsing. Tool schemas are ~6 levels deep, and Python's json and
# jinja recurse; a real line has a few thousand JSON values (1000 messages: ~4000 commas and brackets), while
# 16 MiB of "[]," would parse into ~1 GB; under the limit a 16 MiB line parses into at most ~150 MB.
MAX_DEPTH = 100
MAX_VALUES = 1_000_000
_CHUNK = 1 << 20  # bytes read at a time when skipping the rest of an oversized line
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b"[]{},")))


class DatasetError(ValueError):
    """A dataset that cannot be used: missing/empty file or invalid lines (``problems`` lists them all, each
    "file:line: what"; ``invalid_lines`` maps each file to its number of invalid lines)."""

    def __init__(self, message, problems=None, invalid_lines=None):
        super().__init__(message)
        self.problems = list(problems or [])
        self.invalid_lines = dict(invalid_lines or {})

    @property
    def count(self):
        return len(self.problems)


class DatasetFileNotFoundError(DatasetError, FileNotFoundError):
    """A dataset file or folder that does not exist."""


def _kind(value):
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _short(value, limit=60):
    """repr(value), cut to ``limit`` characters: a hostile line must not make a huge error message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def detect_format(obj):
    """'chat', 'completion' or 'text' from an example's keys (mlx-lm's order), or None."""
    if "messages" in obj:
        return "chat"
    if "prompt" in obj or "completion" in obj:
        return "completion"
    if "text" in obj:
        return "text"
    return None


def _check_string(obj, key, what):
    if key not in obj:
        return f"missing {what}"
    value = obj[key]
    if not isinstance(value, str):
        return f"{what} must be a string, got {_kind(value)}"
    if not value.strip():
        return f"empty {what}"
    return None


def _check_message(i, message, previous):
    """What is wrong with message ``i`` (0-based) given the role of the message before it (None for the first)."""
    where = f"message {i + 1}"
    if not isinstance(message, dict):
        return f"{where} is not an object (got {_kind(message)})"
    if "role" not in message:
        return f'{where} has no "role"'
    role = message["role"]
    if role in TOOL_ROLES:
        return (f"{where} has role {_short(role)}: tool messages are not supported (expected one of: "
                f"{', '.join(VALID_ROLES)})")
    if role not in VALID_ROLES:
        return f"{where} has unknown role {_short(role)} (expected one of: {', '.join(VALID_ROLES)})"
    if "content" not in message and "tool_calls" in message:
        return f'{where} ({role}): "tool_calls" without "content" are not supported'
    problem = _check_string(message, "content", '"content"')
    if problem:
        return f"{where} ({role}): {problem}"
    if role == "system":
        if i > 0:
            return f"{where} (system): a system message must be the first message, and only one is allowed"
    elif previous in (None, "system"):
        if role != "user":
            return f"{where} ({role}): the conversation must start with a user message (after an optional system one)"
    elif role == previous:
        return f"{where} ({role}): two {role} messages in a row; user and assistant turns must alternate"
    return None


def _check_chat(messages, max_messages):
    if not isinstance(messages, list):
        return f'"messages" must be a list, got {_kind(messages)}'
    if not messages:
        return '"messages" is empty'
    if len(messages) > max_messages:  # before looking at any message
        return f'{len(messages)} messages, more than the limit of {max_messages} (max_messages)'
    previous = None
    for i, message in enumerate(messages):
        problem = _check_message(i, message, previous)
        if problem:
            return problem
        previous = message["role"]
    if previous != "assistant":
        if not any(m["role"] == "assistant" for m in messages):
            return 'no assistant turn (a chat example needs at least one message with role "assistant")'
        return f"the last message must be an assistant turn, got {previous} (message {len(messages)})"
    return None


def validate_example(obj, max_messages=DEFAULT_MAX_MESSAGES):
    """Check one parsed line. Returns (format, None) or (format_or_None, 'what is wrong').

    Chat examples: at most ``max_messages`` messages; roles in order (optional system first, then user and
    assistant alternating, starting with user, ending with assistant); ``"tools"``, when present, a list of
    objects. Completion examples: non-empty "prompt" and "completion" strings. Text examples: a non-empty "text".
    """
    if not isinstance(obj, dict):
        return None, f"not a JSON object (got {_kind(obj)})"
    fmt = detect_format(obj)
    if fmt is None:
        keys = ", ".join(k if len(k) <= 40 and k.isprintable() else _short(k, 40) for k in sorted(obj)[:10]) or "none"
        keys += f" and {len(obj) - 10} more" if len(obj) > 10 else ""
        return None, ('unrecognized format: expected "messages" (chat), "prompt"+"completion" or "text"; '
                      f"found keys: {keys}")
    if fmt == "completion":
        for key in ("prompt", "completion"):
            problem = _check_string(obj, key, f'"{key}"')
            if problem:
                return fmt, problem
        return fmt, _check_tools(obj)
    if fmt == "text":
        return fmt, _check_string(obj, "text", '"text"')
    return fmt, _check_chat(obj["messages"], max_messages) or _check_tools(obj)


def _check_tools(obj):
    tools = obj.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        return f'"tools" must be a list of objects, got {_kind(tools)}'
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            return f'"tools" item {i + 1} must be an object, got {_kind(tool)}'
    return None


def _outside_strings(raw):
    """The brackets and commas of a JSON line that are outside its strings, scanned in bounded pieces (C-speed
    operations only, no object per string)."""
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")  # then every '"' opens or closes a string
    out, inside = [], 0
    for at in range(0, len(unescaped), _CHUNK):
        parts = unescaped[at:at + _CHUNK].split(b'"')
        out.append(b"".join(parts[inside::2]).translate(None, _NOT_STRUCTURE))
        inside = (inside + len(parts) - 1) % 2
    return b"".join(out)


def _shape_problem(raw):
    """Before parsing: more than MAX_VALUES values (arrays, objects, items: the commas and opening brackets) or
    nesting deeper than MAX_DEPTH, seen on the structure outside strings. Linear in the line's length."""
    if raw.count(b",") + raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return None  # too few to break either limit, wherever they are
    structure = _outside_strings(raw)
    if structure.count(b",") + structure.count(b"[") + structure.count(b"{") > MAX_VALUES:
        return f"too many JSON values (more than {MAX_VALUES} commas and opening brackets)"
    brackets = structure.translate(None, b",")
    for _ in range(MAX_DEPTH):  # each pass removes one level: the empty pairs (marked, so that no new pair forms)
        if not brackets:
            return None
        shorter = brackets.replace(b"[]", b"\0").replace(b"{}", b"\0").replace(b"\0", b"")
        if len(shorter) == len(brackets):
            return None  # unbalanced: the JSON parser says what is wrong
        brackets = shorter
    return f"nested deeper than {MAX_DEPTH} levels" if brackets else None


def _surrogate_problem(obj, raw):
    """A string with an unpaired surrogate (from a ``\\ud800`` escape): not Unicode, no tokenizer accepts it."""
    if _SURROGATE_ESCAPE.search(raw) is None:
        return None
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")  # the depth is checked: no deep recursion here
    except UnicodeEncodeError as e:
        return f"a string holds an unpaired surrogate (\\u{ord(e.object[e.start]):04x}), which is not valid Unicode"
    return None


@dataclass
class JsonlSplit:
    """The valid examples of one JSONL file, with where they came from."""

    path: str
    format: str | None
    examples: list = field(default_factory=list)
    line_numbers: list = field(default_factory=list)
    lines: list = field(default_factory=list)  # the original text of each valid line
    problems: list = field(default_factory=list)  # "file:line: what" for every bad line
    num_lines: int = 0  # non-blank lines read

    @property
    def num_skipped(self):
        return len(self.problems)

    def __len__(self):
        return len(self.examples)


def _error_message(path, problems, total, hint=True):
    shown = "\n".join(f"  {p}" for p in problems[:MAX_LISTED])
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return (f"{len(problems)} invalid line(s) of {total} in {path}:\n{shown}{more}"
            + ("\nFix these lines, or pass skip_invalid=True to skip them." if hint else ""))


def _check_limit(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _raw_lines(f, max_line_bytes):
    """(bytes of each line without its end of line, or None when it is longer than max_line_bytes; its size).

    A line over the limit is skipped in bounded chunks, never held whole in memory."""
    limit = max_line_bytes + 2  # room for the "\r\n"
    while True:
        raw = f.readline(limit)
        if not raw:
            return
        if raw.endswith(b"\n") or len(raw) < limit:  # the whole line (the last one may lack its "\n")
            body = raw.removesuffix(b"\n")
            if len(body) < len(raw):
                body = body.removesuffix(b"\r")
            yield (body if len(body) <= max_line_bytes else None), len(body)
            continue
        size, last = len(raw), raw[-1:]
        while True:  # longer than the limit: count the rest without keeping it
            chunk = f.readline(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if chunk.endswith(b"\n"):
                size -= 2 if (last + chunk)[-2:] == b"\r\n" else 1
                break
            last = chunk[-1:]
        yield None, size


_BLANK = object()


def _parse_line(raw):
    """(object, None) or (None, what is wrong) for one line's bytes; (_BLANK, None) for a blank line. The
    object's format is not checked yet."""
    if b"\x00" in raw:
        return None, "contains a NUL byte (a binary file?)"
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, f"not valid UTF-8 ({e.reason} at byte {e.start})"
    if line.startswith("\ufeff"):
        return None, "starts with a byte order mark (BOM); save the file as UTF-8 without BOM"
    if not line.strip():
        return _BLANK, None
    problem = _shape_problem(raw)
    if problem:
        return None, problem
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        return None, f"invalid JSON ({e.msg} at column {e.colno})"
    except RecursionError:
        return None, "invalid JSON (nested too deeply to parse)"
    except ValueError as e:
        if "integer string conversion" in str(e):  # Python's limit on the digits of an int (4300)
            return None, "invalid JSON (a number with too many digits)"
        return None, f"invalid JSON ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
    return obj, None


def read_jsonl(path, skip_invalid=False, name=None, max_line_bytes=DEFAULT_MAX_LINE_BYTES,
               max_messages=DEFAULT_MAX_MESSAGES):
    """Read and validate one JSONL file. Raises DatasetError (or warns and skips with ``skip_invalid``).

    Lines over ``max_line_bytes`` bytes (without the end of line) and chat examples with more than
    ``max_messages`` messages are invalid lines; the file is read line by line, so memory stays bounded by the
    limit.
    """
    _check_limit("max_line_bytes", max_line_bytes)
    _check_limit("max_messages", max_messages)
    path = os.fspath(path)
    name = name or path
    if not os.path.exists(path):
        raise DatasetFileNotFoundError(f"Dataset file not found: {path}")
    if not os.path.isfile(path):
        raise DatasetError(f"Dataset path is not a file: {path}")
    split = JsonlSplit(path=path, format=None)
    first_line = None
    with open(path, "rb") as f:
        for lineno, (raw, size) in enumerate(_raw_lines(f, max_line_bytes), start=1):
            if raw is None:
                split.num_lines += 1
                split.problems.append(f"{name}:{lineno}: line of {size} bytes, more than the limit of "
                                      f"{max_line_bytes} (max_line_bytes)")
                continue
            obj, problem = _parse_line(raw)
            if obj is _BLANK:
                continue
            split.num_lines += 1
            fmt = None
            if problem is None:
                fmt, problem = validate_example(obj, max_messages=max_messages)
            if problem is None:
                problem = _surrogate_problem(obj, raw)
            if problem is None and split.format is not None and fmt != split.format:
                problem = (f"mixed formats: this line is {fmt!r} but the file's first example (line {first_line}) "
                           f"is {split.format!r}")
            if problem is not None:
                split.problems.append(f"{name}:{lineno}: {problem}")
                continue
            if split.format is None:
                split.format, first_line = fmt, lineno
            split.examples.append(obj)
            split.line_numbers.append(lineno)
            split.lines.append(raw.decode("utf-8"))
    if split.num_lines == 0:
        raise DatasetError(f"Dataset file is empty: {path}")
    if split.problems:
        if not skip_invalid or not split.examples:
            msg = _error_message(path, split.problems, split.num_lines, hint=not skip_invalid)
            if skip_invalid:
                msg = f"No valid line in {path}: " + msg
            raise DatasetError(msg, split.problems, {path: len(split.problems)})
        warnings.warn(f"Skipped {split.num_skipped} invalid line(s) of {split.num_lines} in {path} "
                      f"(first: {split.problems[0]})", stacklevel=2)
    return split


def _split_paths(path, require=REQUIRED_SPLITS):
    """{split: file} for a dataset folder or a single .jsonl file."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return {"train": path}
    if not os.path.exists(path):
        raise DatasetFileNotFoundError(f"Dataset not found: {path} (expected a folder with train.jsonl and "
                                       "valid.jsonl, or a .jsonl file)")
    out = {}
    for split, fname in SPLIT_FILES.items():
        file = os.path.join(path, fname)
        if os.path.exists(file):
            out[split] = file
        elif split in require:
            raise DatasetFileNotFoundError(f"Dataset file not found: {file} (a dataset folder needs "
                                           + " and ".join(SPLIT_FILES[s] for s in require)
                                           + f", optionally {SPLIT_FILES['test']})")
    return out


def _combined(errors, prefix=""):
    invalid = {}
    for e in errors:
        invalid.update(e.invalid_lines)
    return DatasetError(prefix + "\n".join(str(e) for e in errors), [p for e in errors for p in e.problems],
                        invalid)


def read_dataset(path, skip_invalid=False, max_line_bytes=DEFAULT_MAX_LINE_BYTES, max_messages=DEFAULT_MAX_MESSAGES):
    """Read and validate every split of a dataset folder (or one .jsonl file as 'train').

    Returns {'train': JsonlSplit, 'valid': ..., 'test': ...} (splits that exist). All files are checked before
    raising, so one error lists the problems of every file. ``max_line_bytes`` and ``max_messages``: see
    :func:`read_jsonl`.
    """
    splits, errors = {}, []
    for split, file in _split_paths(path).items():
        try:
            splits[split] = read_jsonl(file, skip_invalid=skip_invalid, max_line_bytes=max_line_bytes,
                                       max_messages=max_messages)
        except DatasetFileNotFoundError:
            raise
        except DatasetError as e:
            errors.append(e)
    if errors:
        if len(errors) == 1:
            raise errors[0]
        raise _combined(errors)
    return splits


# --------------------------------------------------------------------------------------------------------------------
# merging


def _canonical(obj):
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _merge_split(files, skip_invalid, errors, formats, limits):
    """One split of several folders: its lines without exact duplicates (the first kept) and the counts. Files
    that fail validation go to ``errors``, each file's format to ``formats``."""
    seen, kept = set(), []
    stats = {"read": 0, "duplicates": 0, "invalid": 0, "written": 0}
    for file in files:
        try:
            part = read_jsonl(file, skip_invalid=skip_invalid, **limits)
        except DatasetFileNotFoundError:
            raise
        except DatasetError as e:
            errors.append(e)
            continue
        stats["read"] += part.num_lines
        stats["invalid"] += part.num_skipped
        formats.setdefault(part.format, []).append(file)
        for obj, line in zip(part.examples, part.lines):
            key = _canonical(obj)
            if key in seen:
                stats["duplicates"] += 1
                continue
            seen.add(key)
            kept.append(line)
    stats["written"] = len(kept)
    return stats, "".join(line + "\n" for line in kept)


def merge_datasets(folders, out_dir, skip_invalid=False, max_line_bytes=DEFAULT_MAX_LINE_BYTES,
                   max_messages=DEFAULT_MAX_MESSAGES):
    """Concatenate train/valid/test of several dataset folders into ``out_dir`` (DonkeyTune's ``merge-data``).

    Every line is validated first (bad lines raise DatasetError, or are skipped with ``skip_invalid``). Exact
    duplicates (same JSON object, key order ignored) are dropped within each split, keeping the first. The output
    files are written to temporary names and renamed, so ``out_dir`` never holds a half-written file.
    Returns {split: {"read", "duplicates", "invalid", "written"}} for the splits present in some input.
    ``max_line_bytes`` and ``max_messages``: see :func:`read_jsonl`.
    """
    limits = {"max_line_bytes": max_line_bytes, "max_messages": max_messages}
    if isinstance(folders, (str, os.PathLike)):
        folders = [folders]
    folders = [os.fspath(f) for f in folders]
    if not folders:
        raise ValueError("merge_datasets needs at least one dataset folder")
    inputs = []
    for folder in folders:
        if not os.path.isdir(folder):
            raise DatasetFileNotFoundError(f"Dataset folder not found: {folder}")
        inputs.append(_split_paths(folder, require=("train",)))

    counts, contents, errors, formats = {}, {}, [], {}
    for split, fname in SPLIT_FILES.items():
        files = [paths[split] for paths in inputs if split in paths]
        if files:
            counts[split], contents[fname] = _merge_split(files, skip_invalid, errors, formats, limits)
    if errors:
        raise _combined(errors, "Not merging: invalid input.\n")
    if len(formats) > 1:
        detail = "; ".join(f"{fmt}: {', '.join(files)}" for fmt, files in sorted(formats.items()))
        raise DatasetError(f"Not merging: the inputs use different formats ({detail}); a merged dataset must use "
                           "one format.")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    atomic_files(out_dir, contents)
    stale = [f for s, f in SPLIT_FILES.items() if s not in counts and os.path.exists(os.path.join(out_dir, f))]
    if stale:
        warnings.warn(f"{out_dir} still holds {', '.join(stale)} from before; no input had that split, so it was "
                      "left untouched (delete it if it does not belong to the merged dataset)", stacklevel=2)
    return counts

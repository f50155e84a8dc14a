"""Reading, validating and merging JSONL datasets (DonkeyTune / mlx-lm layout).

A dataset is a folder with ``train.jsonl``, ``valid.jsonl`` and optionally ``test.jsonl``, or a single ``.jsonl``
file (used as the training split). Each non-blank line is one JSON object in one of three formats:

- chat: ``{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}`` (several turns allowed,
  at least one assistant turn)
- completion: ``{"prompt": "...", "completion": "..."}``
- text: ``{"text": "..."}``

All lines of one file must use the same format. Validation reports every bad line with the file, the line number
and what is wrong; by default it raises :class:`DatasetError`, with ``skip_invalid=True`` bad lines are skipped,
counted and reported in a warning.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field

from ..fileio import atomic_files

__all__ = ["DatasetError", "JsonlSplit", "SPLIT_FILES", "VALID_ROLES", "detect_format", "validate_example",
           "read_jsonl", "read_dataset", "merge_datasets"]

SPLIT_FILES = {"train": "train.jsonl", "valid": "valid.jsonl", "test": "test.jsonl"}
REQUIRED_SPLITS = ("train", "valid")
VALID_ROLES = ("system", "user", "assistant")
FORMATS = ("chat", "completion", "text")
MAX_LISTED = 5  # problems quoted in an error message


class DatasetError(ValueError):
    """A dataset that cannot be used: missing/empty file or invalid lines (``problems`` lists them all)."""

    def __init__(self, message, problems=None):
        super().__init__(message)
        self.problems = list(problems or [])

    @property
    def count(self):
        return len(self.problems)


class DatasetFileNotFoundError(DatasetError, FileNotFoundError):
    """A dataset file or folder that does not exist."""


def _kind(value):
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


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


def validate_example(obj):
    """Check one parsed line. Returns (format, None) or (format_or_None, 'what is wrong')."""
    if not isinstance(obj, dict):
        return None, f"not a JSON object (got {_kind(obj)})"
    fmt = detect_format(obj)
    if fmt is None:
        keys = ", ".join(sorted(obj)) or "none"
        return None, ('unrecognized format: expected "messages" (chat), "prompt"+"completion" or "text"; '
                      f"found keys: {keys}")
    if fmt == "completion":
        for key in ("prompt", "completion"):
            problem = _check_string(obj, key, f'"{key}"')
            if problem:
                return fmt, problem
        return fmt, None
    if fmt == "text":
        return fmt, _check_string(obj, "text", '"text"')
    messages = obj["messages"]
    if not isinstance(messages, list):
        return fmt, f'"messages" must be a list, got {_kind(messages)}'
    if not messages:
        return fmt, '"messages" is empty'
    has_assistant = False
    for i, message in enumerate(messages):
        where = f"message {i + 1}"
        if not isinstance(message, dict):
            return fmt, f"{where} is not an object (got {_kind(message)})"
        if "role" not in message:
            return fmt, f'{where} has no "role"'
        role = message["role"]
        if role not in VALID_ROLES:
            return fmt, f"{where} has unknown role {role!r} (expected one of: {', '.join(VALID_ROLES)})"
        problem = _check_string(message, "content", '"content"')
        if problem:
            return fmt, f"{where} ({role}): {problem}"
        has_assistant = has_assistant or role == "assistant"
    if not has_assistant:
        return fmt, 'no assistant turn (a chat example needs at least one message with role "assistant")'
    return fmt, None


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


def read_jsonl(path, skip_invalid=False, name=None):
    """Read and validate one JSONL file. Raises DatasetError (or warns and skips with ``skip_invalid``)."""
    path = os.fspath(path)
    name = name or path
    if not os.path.exists(path):
        raise DatasetFileNotFoundError(f"Dataset file not found: {path}")
    if not os.path.isfile(path):
        raise DatasetError(f"Dataset path is not a file: {path}")
    split = JsonlSplit(path=path, format=None)
    first_line = None
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                split.num_lines += 1
                split.problems.append(f"{name}:{lineno}: not valid UTF-8 ({e.reason} at byte {e.start})")
                continue
            if not line.strip():
                continue
            split.num_lines += 1
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                split.problems.append(f"{name}:{lineno}: invalid JSON ({e.msg} at column {e.colno})")
                continue
            fmt, problem = validate_example(obj)
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
            split.lines.append(line.rstrip("\r\n"))
    if split.num_lines == 0:
        raise DatasetError(f"Dataset file is empty: {path}")
    if split.problems:
        if not skip_invalid or not split.examples:
            msg = _error_message(path, split.problems, split.num_lines, hint=not skip_invalid)
            if skip_invalid:
                msg = f"No valid line in {path}: " + msg
            raise DatasetError(msg, split.problems)
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


def read_dataset(path, skip_invalid=False):
    """Read and validate every split of a dataset folder (or one .jsonl file as 'train').

    Returns {'train': JsonlSplit, 'valid': ..., 'test': ...} (splits that exist). All files are checked before
    raising, so one error lists the problems of every file.
    """
    splits, errors = {}, []
    for split, file in _split_paths(path).items():
        try:
            splits[split] = read_jsonl(file, skip_invalid=skip_invalid)
        except DatasetFileNotFoundError:
            raise
        except DatasetError as e:
            errors.append(e)
    if errors:
        if len(errors) == 1:
            raise errors[0]
        raise DatasetError("\n".join(str(e) for e in errors), [p for e in errors for p in e.problems])
    return splits


# --------------------------------------------------------------------------------------------------------------------
# merging


def _canonical(obj):
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _merge_split(files, skip_invalid, errors, formats):
    """One split of several folders: its lines without exact duplicates (the first kept) and the counts. Files
    that fail validation go to ``errors``, each file's format to ``formats``."""
    seen, kept = set(), []
    stats = {"read": 0, "duplicates": 0, "invalid": 0, "written": 0}
    for file in files:
        try:
            part = read_jsonl(file, skip_invalid=skip_invalid)
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


def merge_datasets(folders, out_dir, skip_invalid=False):
    """Concatenate train/valid/test of several dataset folders into ``out_dir`` (DonkeyTune's ``merge-data``).

    Every line is validated first (bad lines raise DatasetError, or are skipped with ``skip_invalid``). Exact
    duplicates (same JSON object, key order ignored) are dropped within each split, keeping the first. The output
    files are written to temporary names and renamed, so ``out_dir`` never holds a half-written file.
    Returns {split: {"read", "duplicates", "invalid", "written"}} for the splits present in some input.
    """
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
            counts[split], contents[fname] = _merge_split(files, skip_invalid, errors, formats)
    if errors:
        raise DatasetError("Not merging: invalid input.\n" + "\n".join(str(e) for e in errors),
                           [p for e in errors for p in e.problems])
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

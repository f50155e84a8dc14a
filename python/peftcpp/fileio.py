"""The one way peftcpp writes a user's file: to a temporary name beside it,
flushed and fsynced, then renamed over the target, and the folder fsynced so
the rename survives a crash. Readers see the old file or the new one, never a
part; a failure leaves the old file and no temporary behind.

Single files: :func:`atomic_write` (a context manager giving the open file),
:func:`write_text_atomic`, :func:`write_json_atomic`.
File sets: :func:`atomic_files` (every file written, then all renamed) and
:func:`atomic_folder` (a whole folder built under a temporary name, then renamed).
The C++ writers (safetensors, GGUF) follow the same protocol in
``csrc/io/atomic_file.cpp``.
"""
import contextlib
import json
import os
import shutil

__all__ = ["atomic_write", "write_text_atomic", "write_json_atomic", "atomic_files",
           "atomic_folder", "fsync_dir", "fsync_file", "read_json_object"]


def fsync_dir(path):
    """Makes renames inside folder ``path`` durable (best effort: some file
    systems refuse to fsync a folder, which loses nothing already written)."""
    try:
        fd = os.open(path or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _temp_name(path):
    return f"{path}.tmp-{os.getpid()}"


@contextlib.contextmanager
def atomic_write(path, mode="wb", encoding=None, newline=None):
    """``with atomic_write(path, "w", encoding="utf-8") as f: f.write(...)``:
    the content replaces ``path`` only if the block finishes."""
    path = os.fspath(path)
    tmp = _temp_name(path)
    try:
        with open(tmp, mode, encoding=encoding, newline=newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def write_text_atomic(path, text):
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_json_atomic(path, obj, indent=2, sort_keys=False, ensure_ascii=False, trailing_newline=True):
    """json.dumps(obj) (serialised before the file is touched) written with
    write_text_atomic."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, ensure_ascii=ensure_ascii)
    write_text_atomic(path, text + ("\n" if trailing_newline else ""))


def atomic_files(out_dir, files, encoding="utf-8", newline="\n"):
    """Writes ``{file name: text}`` into ``out_dir``: every file to a
    temporary name first, then all renamed, so ``out_dir`` never holds a
    half-written file (if a write fails, none is replaced)."""
    temps = []
    try:
        for name, text in files.items():
            final = os.path.join(out_dir, name)
            tmp = os.path.join(out_dir, f".{name}.tmp-{os.getpid()}")
            temps.append((tmp, final))
            with open(tmp, "w", encoding=encoding, newline=newline) as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        for tmp, final in temps:
            os.replace(tmp, final)
    finally:
        for tmp, _ in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)
    fsync_dir(out_dir)


class atomic_folder:
    """``with atomic_folder(final) as tmp: write files into tmp``: on a clean
    exit every file in ``tmp`` is fsynced and ``tmp`` is renamed to ``final``
    (an existing ``final`` is moved aside to ``old`` first and removed after,
    so a kill at any point leaves either the old folder or the new one). The
    temporary names default to ``.tmp-<name>-<pid>`` and ``.old-<name>-<pid>``
    beside ``final``; on an error ``tmp`` is removed."""

    def __init__(self, final, tmp=None, old=None):
        self.final = os.path.abspath(os.fspath(final))
        self.parent = os.path.dirname(self.final)
        base = f"{os.path.basename(self.final)}-{os.getpid()}"
        self.tmp = tmp or os.path.join(self.parent, f".tmp-{base}")
        self.old = old or os.path.join(self.parent, f".old-{base}")

    def __enter__(self):
        if os.path.exists(self.tmp):
            shutil.rmtree(self.tmp)
        os.makedirs(self.tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        for name in os.listdir(self.tmp):  # flush every file before the folder appears
            p = os.path.join(self.tmp, name)
            if os.path.isfile(p):
                fsync_file(p)
        fsync_dir(self.tmp)
        moved = os.path.exists(self.final)
        if moved:
            os.rename(self.final, self.old)
        os.rename(self.tmp, self.final)
        fsync_dir(self.parent)
        if moved:
            shutil.rmtree(self.old, ignore_errors=True)
        return False


def read_json_object(path):
    """The JSON object in `path`; errors name the file, line and column."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(d).__name__}")
    return d

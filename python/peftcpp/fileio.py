"""The one way peftcpp writes a user's file: to a temporary name beside it,
flushed and fsynced, then renamed over the target, and the folder fsynced so
the rename survives a crash. Readers see the old file or the new one, never a
part; a failure leaves the old file and no temporary behind.

Single files: :func:`atomic_write` (a context manager giving the open file),
:func:`write_text_atomic`, :func:`write_json_atomic`.
File sets: :func:`atomic_files` (every file written, then all renamed) and
:func:`atomic_folder` (a whole folder built under a temporary name, then renamed).
One writer per output folder: :func:`folder_lock`. Paths read from a file
stay inside its folder: :func:`path_inside`, :func:`safetensors_index_shards`.
The C++ writers (safetensors, GGUF) follow the same protocol in
``csrc/io/atomic_file.cpp``.
"""
import contextlib
import errno
import fcntl
import json
import os
import shutil
import time

__all__ = ["atomic_write", "write_text_atomic", "write_json_atomic", "atomic_files",
           "atomic_folder", "fsync_dir", "fsync_file", "read_json_object", "folder_lock", "folder_lock_holder",
           "lock_file_path", "FolderInUseError", "path_inside", "safetensors_index_shards"]


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


class FolderInUseError(RuntimeError):
    """Another process holds the folder's lock (see :func:`folder_lock`)."""


def lock_file_path(path):
    """The lock file of folder ``path``: ``.<name>.peftcpp.lock`` beside it, so
    that the folder itself holds only its own files (an adapter uploaded as
    it is, a model folder that :class:`atomic_folder` replaces whole, which
    would swap a lock file inside it for an unlocked one). Symlinks are
    resolved so that every spelling of the folder meets the same lock."""
    real = os.path.realpath(os.fspath(path))
    parent, name = os.path.split(real)
    return os.path.join(parent, f".{name or 'root'}.peftcpp.lock")


def _read_pid(fd):
    for _ in range(20):  # the holder writes its PID just after taking the lock
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return text
        time.sleep(0.005)
    return "unknown"


@contextlib.contextmanager
def folder_lock(path, what=None):
    """``with folder_lock("output/adapters", "--adapter-path"):`` holds an
    exclusive advisory lock on the folder for the block: ``flock`` on
    :func:`lock_file_path` (made with its parent folder if needed; the folder
    itself need not exist yet), which holds the holder's PID and is removed
    when the block ends. The operating system releases the lock when the
    process ends, even by ``kill -9`` (the file then stays, unlocked, and the
    next holder takes it over). If another process holds it, raises
    :class:`FolderInUseError` at once, naming the folder and that PID;
    ``what`` names the option that chooses the folder."""
    shown = os.fspath(path)
    lock_path = lock_file_path(shown)
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise OSError(e.errno, f"cannot create the lock file {lock_path} that keeps other peftcpp processes "
                                   f"out of {shown}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            pid = _read_pid(fd) if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES) else None
            os.close(fd)
            if pid is None:
                raise
            other = f"choose another {what}" if what else "choose another folder"
            raise FolderInUseError(f"{shown} is in use by another peftcpp process (PID {pid}); wait for it to "
                                   f"finish or {other}") from None
        try:  # the holder before us may have removed the file we opened: then lock the new one
            same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        # written in place: replacing the file would give it a new, unlocked inode
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield lock_path
    finally:
        try:
            os.unlink(lock_path)  # while still locked: whoever opened it meanwhile sees it gone and retries
        except OSError:
            pass
        os.close(fd)


def folder_lock_holder(path):
    """The PID (a string) of the process holding ``path``'s :func:`folder_lock`,
    or None when nobody holds it."""
    try:
        fd = os.open(lock_file_path(path), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return _read_pid(fd)
            raise
        return None
    finally:
        os.close(fd)


def path_inside(folder, name, what):
    """``folder/name`` for a ``name`` read from a file in ``folder``: a
    ValueError starting with ``what`` when it is absolute or leads out of the
    folder (by ``..`` or through a linked sub-folder), so that a hostile file
    cannot make peftcpp read (and quote in an error) a file elsewhere. The
    last part may be a symbolic link: the Hugging Face cache's snapshot
    folders are made of them, and a model folder's own files are trusted."""
    norm = os.path.normpath(name) if isinstance(name, str) and name and "\0" not in name else os.curdir
    if norm == os.curdir:
        raise ValueError(f"{what} is not a file name")
    if os.path.isabs(name) or name.startswith(("/", "\\")) or os.path.splitdrive(name)[0]:
        raise ValueError(f"{what} is an absolute path; only file names inside {folder} are followed")
    if norm == os.pardir or norm.startswith(os.pardir + os.sep):
        raise ValueError(f"{what} leads outside {folder}; only file names inside it are followed")
    root = os.path.realpath(folder)
    parent = os.path.realpath(os.path.join(folder, os.path.dirname(norm)))
    if os.path.commonpath([root, parent]) != root:
        raise ValueError(f"{what} resolves outside {folder} (through a linked folder); only file names inside it "
                         "are followed")
    return os.path.join(folder, norm)


def safetensors_index_shards(index_path):
    """The shard files a ``model.safetensors.index.json`` maps its tensors
    to, as sorted names relative to its folder, each checked with
    :func:`path_inside`; errors name the index file and the entry."""
    index_path = os.fspath(index_path)
    weight_map = read_json_object(index_path).get("weight_map")
    if not isinstance(weight_map, dict):
        raise ValueError(f"{index_path}: no 'weight_map' object; not a safetensors index")
    folder = os.path.dirname(index_path) or "."
    shards = {}
    for tensor, shard in weight_map.items():
        if isinstance(shard, str) and shard in shards:
            continue
        path_inside(folder, shard, f"{index_path}: weight_map[{_short(tensor)}] = {_short(shard)}")
        shards[shard] = tensor
    return sorted(shards)


def _short(value, limit=120):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...'"

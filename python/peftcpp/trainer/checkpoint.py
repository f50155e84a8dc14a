"""Atomic checkpoints: ``output_dir/checkpoint-N/`` is built as a temporary
folder (each file itself written to a temporary name and renamed) and renamed
into place last, so a kill at any instant leaves every earlier checkpoint
intact and never a half-written ``checkpoint-N``."""
import json
import os
import re
import shutil

__all__ = ["atomic_write_json", "get_last_checkpoint", "list_checkpoints", "CheckpointWriter",
           "PREFIX_CHECKPOINT_DIR", "COMPLETE_MARKER"]

PREFIX_CHECKPOINT_DIR = "checkpoint"
COMPLETE_MARKER = "trainer_state.json"  # written last inside the temp folder
_TMP_PREFIX = ".tmp-checkpoint-"
_OLD_PREFIX = ".old-checkpoint-"
_CKPT_RE = re.compile(r"^" + PREFIX_CHECKPOINT_DIR + r"-(\d+)$")


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path, data):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path, obj):
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def list_checkpoints(output_dir):
    """Complete checkpoints under ``output_dir``, oldest (lowest step) first."""
    if not output_dir or not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        m = _CKPT_RE.match(name)
        path = os.path.join(output_dir, name)
        if m and os.path.isfile(os.path.join(path, COMPLETE_MARKER)):
            found.append((int(m.group(1)), path))
    return [p for _, p in sorted(found)]


def get_last_checkpoint(output_dir):
    """The latest complete ``checkpoint-N`` folder, or None (transformers'
    ``get_last_checkpoint``)."""
    ckpts = list_checkpoints(output_dir)
    return ckpts[-1] if ckpts else None


def clean_leftovers(output_dir):
    """Removes temporary folders a killed run left (never a checkpoint)."""
    if not output_dir or not os.path.isdir(output_dir):
        return
    for name in os.listdir(output_dir):
        if name.startswith((_TMP_PREFIX, _OLD_PREFIX)):
            shutil.rmtree(os.path.join(output_dir, name), ignore_errors=True)


class CheckpointWriter:
    """``with CheckpointWriter(output_dir, step) as tmp: write files into tmp``;
    on a clean exit the folder becomes ``checkpoint-<step>`` atomically, on an
    exception it is removed."""

    def __init__(self, output_dir, step):
        self.output_dir = output_dir
        self.step = int(step)
        self.final = os.path.join(output_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.step}")
        self.tmp = os.path.join(output_dir, f"{_TMP_PREFIX}{self.step}-{os.getpid()}")

    def __enter__(self):
        os.makedirs(self.output_dir, exist_ok=True)
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
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        _fsync_dir(self.tmp)
        old = None
        if os.path.exists(self.final):
            old = os.path.join(self.output_dir, f"{_OLD_PREFIX}{self.step}-{os.getpid()}")
            os.rename(self.final, old)
        os.rename(self.tmp, self.final)
        _fsync_dir(self.output_dir)
        if old:
            shutil.rmtree(old, ignore_errors=True)
        return False


def prune_checkpoints(output_dir, save_total_limit, keep=()):
    """Deletes the oldest complete checkpoints beyond ``save_total_limit``
    (never one listed in ``keep``)."""
    if not save_total_limit:
        return []
    ckpts = list_checkpoints(output_dir)
    removed = []
    keep = {os.path.abspath(k) for k in keep if k}
    excess = len(ckpts) - int(save_total_limit)
    for path in ckpts:
        if excess <= 0:
            break
        if os.path.abspath(path) in keep:
            continue
        # rename first so that a kill mid-delete never leaves a partial checkpoint-N
        doomed = os.path.join(output_dir, _OLD_PREFIX + os.path.basename(path) + f"-{os.getpid()}")
        os.rename(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        removed.append(path)
        excess -= 1
    return removed

"""Atomic checkpoints: ``output_dir/checkpoint-N/`` is built as a temporary
folder (each file itself written to a temporary name and renamed) and renamed
into place last, so a kill at any instant leaves every earlier checkpoint
intact and never a half-written ``checkpoint-N``."""
import json
import os
import re
import shutil

import numpy as np

from .. import _core
from .. import serialization
from ..fileio import atomic_folder, write_json_atomic
from ..peft import set_peft_model_state_dict

__all__ = ["atomic_write_json", "get_last_checkpoint", "list_checkpoints", "CheckpointWriter",
           "PREFIX_CHECKPOINT_DIR", "COMPLETE_MARKER", "rng_state_dict", "restore_rng_state",
           "load_model_weights", "load_optimizer_state"]

PREFIX_CHECKPOINT_DIR = "checkpoint"
COMPLETE_MARKER = "trainer_state.json"  # written last inside the temp folder
TRAINER_STATE_NAME = COMPLETE_MARKER
OPTIMIZER_NAME = "optimizer.safetensors"
SCHEDULER_NAME = "scheduler.json"
RNG_STATE_NAME = "rng_state.json"
TRAINING_ARGS_NAME = "training_args.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
MODEL_WEIGHTS = "model.safetensors"
_TMP_PREFIX = ".tmp-checkpoint-"
_OLD_PREFIX = ".old-checkpoint-"
_CKPT_RE = re.compile(r"^" + PREFIX_CHECKPOINT_DIR + r"-(\d+)$")


def atomic_write_json(path, obj):
    """The checkpoint's JSON files: sorted keys, ASCII (as transformers writes them)."""
    write_json_atomic(path, obj, sort_keys=True, ensure_ascii=True)


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


class CheckpointWriter(atomic_folder):
    """``with CheckpointWriter(output_dir, step) as tmp: write files into tmp``;
    on a clean exit the folder becomes ``checkpoint-<step>`` atomically, on an
    exception it is removed. The temporary names carry prefixes that
    :func:`clean_temporaries` recognises after a kill."""

    def __init__(self, output_dir, step):
        self.output_dir = output_dir
        self.step = int(step)
        pid = os.getpid()
        super().__init__(os.path.join(output_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.step}"),
                         tmp=os.path.join(output_dir, f"{_TMP_PREFIX}{self.step}-{pid}"),
                         old=os.path.join(output_dir, f"{_OLD_PREFIX}{self.step}-{pid}"))

    def __enter__(self):
        os.makedirs(self.output_dir, exist_ok=True)
        return super().__enter__()


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


def rng_state_dict(data_seed, epoch, step_in_epoch):
    """rng_state.json: the engine's and numpy's generators, and where in the
    data the run stands (the epoch order is a pure function of seed and epoch)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"peftcpp": list(_core.get_rng_state()),
            "numpy": [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
            "sampler": {"kind": "numpy.default_rng([seed, epoch]).permutation", "seed": data_seed},
            "epoch": epoch, "step_in_epoch": step_in_epoch}


def restore_rng_state(path, epoch, step_in_epoch):
    """Sets the generators from ``path`` (rng_state.json); returns its data
    position, or the given one when it has none."""
    with open(path) as f:
        r = json.load(f)
    _core.set_rng_state(int(r["peftcpp"][0]), int(r["peftcpp"][1]))
    if "numpy" in r:
        name, keys, pos, has_gauss, cached = r["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    return r.get("epoch", epoch), r.get("step_in_epoch", step_in_epoch)


def load_model_weights(model, path):
    """The adapter (a PEFT model) or the full model's weights from a
    checkpoint folder."""
    if hasattr(model, "peft_config") and hasattr(model, "get_base_model"):
        f = os.path.join(path, ADAPTER_WEIGHTS)
        if not os.path.isfile(f):
            raise ValueError(f"{path} has no {ADAPTER_WEIGHTS} to resume the adapter from")
        name = getattr(model, "active_adapter", "default")
        set_peft_model_state_dict(model, serialization.load_file(f), adapter_name=name)
    else:
        f = os.path.join(path, MODEL_WEIGHTS)
        if not os.path.isfile(f):
            raise ValueError(f"{path} has no {MODEL_WEIGHTS} to resume the model from")
        model.load_state_dict(serialization.load_file(f), strict=False)


def load_optimizer_state(path, optimizer, lr_scheduler):
    """The optimizer moments and the schedule's position, where the checkpoint
    has them (the learning rates follow the schedule)."""
    opt = os.path.join(path, OPTIMIZER_NAME)
    if os.path.isfile(opt):
        optimizer.load_state(opt)
    sch = os.path.join(path, SCHEDULER_NAME)
    if os.path.isfile(sch):
        with open(sch) as f:
            lr_scheduler.load_state_dict(json.load(f))
        for g, lr in zip(optimizer.param_groups, lr_scheduler.get_last_lr()):
            g["lr"] = lr

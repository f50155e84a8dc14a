"""How a run is cut into steps: the micro-batches of an epoch (a seeded
order, or length-grouped), optimizer steps per epoch, the run's steps and
epochs, and the token counts that weigh accumulated micro-batches. All pure
functions of the arguments, so a resumed run repeats them exactly."""
import math
from collections import namedtuple

import numpy as np

from ..data.batching import length_grouped_batches

__all__ = ["StepPlan", "plan_steps", "steps_per_epoch", "epoch_order", "dataset_lengths",
           "length_grouped_epoch", "count_label_tokens", "count_input_tokens"]

StepPlan = namedtuple("StepPlan", ["steps_per_epoch", "max_steps", "num_epochs"])


def steps_per_epoch(n_batches, gradient_accumulation_steps):
    gas = gradient_accumulation_steps
    return max(n_batches // gas + int(n_batches % gas > 0), 1)


def plan_steps(n_batches, args):
    """Optimizer steps per epoch, in all (``max_steps`` or the epochs'), and
    the number of epochs to run."""
    if n_batches == 0:
        raise ValueError("train_dataset is smaller than one batch and dataloader_drop_last=True")
    per_epoch = steps_per_epoch(n_batches, args.gradient_accumulation_steps)
    if args.max_steps > 0:
        max_steps = int(args.max_steps)
        return StepPlan(per_epoch, max_steps, math.ceil(max_steps / per_epoch))
    return StepPlan(per_epoch, math.ceil(args.num_train_epochs * per_epoch), math.ceil(args.num_train_epochs))


def epoch_order(seed, epoch, n):
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def length_grouped_epoch(lengths, batch_size, seed, epoch, drop_last):
    return length_grouped_batches(lengths, batch_size, seed=int(seed) * 1000003 + int(epoch), drop_last=drop_last)


def dataset_lengths(ds):
    lengths = getattr(ds, "lengths", None)
    if lengths is not None:
        return list(lengths)
    return [len(ds[i]["input_ids"]) for i in range(len(ds))]


def count_label_tokens(batch, is_encoder_decoder=False):
    # Causal LMs predict labels[1:] (the loss shifts); encoder-decoders
    # predict every label; a classifier has one label per row ([B] class ids,
    # or float rows for multi-label / regression), and the ignored ones (-100)
    # do not count.
    labels = np.asarray(batch["labels"])
    if labels.ndim == 1:
        return int((labels != -100).sum()) if labels.dtype.kind in "iu" else int(labels.shape[0])
    if labels.dtype.kind == "f":
        return int(labels.shape[0])
    if is_encoder_decoder:
        return int((labels != -100).sum())
    return int((labels[..., 1:] != -100).sum())


def count_input_tokens(batch):
    m = batch.get("attention_mask")
    if m is not None:
        return int(np.asarray(m).sum())
    return int(np.asarray(batch["input_ids"]).size)

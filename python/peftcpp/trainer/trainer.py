"""Trainer: Hugging Face's Trainer API over peftcpp models (LoRA adapters
or full fine-tuning), with mlx-lm-style progress lines, atomic checkpoints
and exact resume (same per-step losses as an uninterrupted run)."""
import json
import math
import os
import resource
import sys
import time
from collections import namedtuple

import numpy as np

from .. import _core
from .. import serialization
from .._tensor import manual_seed, no_grad
from ..optim import AdamW, clip_grad_norm_, get_scheduler
from . import checkpoint as ckpt
from .collators import DataCollatorForCausalLM
from .training_args import TrainingArguments

__all__ = ["Trainer", "TrainOutput", "TrainingDivergedError"]

TrainOutput = namedtuple("TrainOutput", ["global_step", "training_loss", "metrics"])

TRAINER_STATE_NAME = "trainer_state.json"
OPTIMIZER_NAME = "optimizer.safetensors"
SCHEDULER_NAME = "scheduler.json"
RNG_STATE_NAME = "rng_state.json"
TRAINING_ARGS_NAME = "training_args.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
MODEL_WEIGHTS = "model.safetensors"


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; training stopped before the update."""


class TrainerState:
    def __init__(self):
        self.global_step = 0
        self.epoch = 0.0
        self.max_steps = 0
        self.num_train_epochs = 0
        self.log_history = []
        self.train_batch_size = None
        self.total_flos = 0
        self.trained_tokens = 0
        self.padding_fraction = None
        self.best_model_checkpoint = None

    def to_dict(self):
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d):
        s = cls()
        for k, v in d.items():
            setattr(s, k, v)
        return s


def _is_peft(model):
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def _peak_rss_gb():
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb * (1 if sys.platform == "darwin" else 1024) / 1e9


class _Progress:
    def __init__(self, total, initial, disable):
        self.bar = None
        if not disable:
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=total, initial=initial, desc="Training", dynamic_ncols=True,
                                file=sys.stderr)
            except Exception:  # tqdm missing: lines only
                self.bar = None

    def update(self, n=1):
        if self.bar is not None:
            self.bar.update(n)

    def write(self, line):
        if self.bar is not None:
            from tqdm.auto import tqdm
            tqdm.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class Trainer:
    """``Trainer(model, args, train_dataset, eval_dataset, data_collator,
    tokenizer)`` as in transformers. ``train_dataset`` is anything indexable
    (``len`` + ``__getitem__``) of dicts with ``input_ids`` and optionally
    ``labels`` / ``attention_mask``."""

    def __init__(self, model=None, args=None, data_collator=None, train_dataset=None, eval_dataset=None,
                 tokenizer=None, processing_class=None, optimizers=(None, None), callbacks=None, **kwargs):
        if model is None:
            raise ValueError("Trainer requires a model")
        for k in kwargs:
            if k not in ("compute_metrics", "model_init", "preprocess_logits_for_metrics", "compute_loss_func"):
                raise TypeError(f"Trainer.__init__() got an unexpected keyword argument '{k}'")
            if kwargs[k] is not None:
                print(f"peftcpp: Trainer argument {k} is not supported and is ignored", file=sys.stderr)
        if data_collator is not None and not callable(data_collator) and hasattr(data_collator, "__len__"):
            # Trainer(model, args, train_dataset[, eval_dataset]) positionally: HF's third slot is the
            # collator, but a dataset there is unambiguous
            if train_dataset is not None and eval_dataset is None:
                eval_dataset = train_dataset
            train_dataset, data_collator = data_collator, None
        self.model = model
        self.args = args if args is not None else TrainingArguments()
        if not isinstance(self.args, TrainingArguments):
            raise TypeError(f"args must be a peftcpp TrainingArguments, got {type(self.args).__name__}")
        self.tokenizer = processing_class if processing_class is not None else tokenizer
        self.processing_class = self.tokenizer
        self.data_collator = data_collator or DataCollatorForCausalLM(self.tokenizer)
        self.train_dataset = train_dataset
        self.eval_dataset = eval_dataset
        self.optimizer, self.lr_scheduler = optimizers
        self._given_optimizers = tuple(optimizers)
        self.callbacks = list(callbacks or [])
        self.state = TrainerState()
        self.step_losses = []  # the loss of every optimizer step of the last train() call

    # ------------------------------------------------------------ helpers

    def _trainable(self):
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    def _no_decay_names(self):
        """HF's grouping: no weight decay for biases and normalization weights."""
        import re
        norm_params = set()
        for mname, mod in self.model.named_modules():
            if "norm" in type(mod).__name__.lower():
                for pname, _ in mod.named_parameters():
                    norm_params.add(f"{mname}.{pname}" if mname else pname)
        pat = re.compile(r"bias|layernorm|rmsnorm|(?:^|\.)norm(?:$|\.)|_norm(?:$|\.)|(?:^|\.)ln_")
        return {n for n, _ in self._trainable() if n in norm_params or pat.search(n.lower())}

    def _own_trainable_weights(self):
        """Trainable weights that view a read-only (memory-mapped) checkpoint
        are copied into owned memory first, keeping tied weights tied."""
        from ..nn import Parameter
        replaced = {}
        for _, mod in self.model.named_modules():
            for name, p in list(mod._parameters.items()):
                if p is None or not p.requires_grad:
                    continue
                if id(p) not in replaced:
                    if p._storage_is_owned():
                        continue
                    replaced[id(p)] = Parameter(p.detach()._clone_raw(), requires_grad=True)
                mod._parameters[name] = replaced[id(p)]
        if replaced and self._given_optimizers[0] is not None:
            raise ValueError("the model's trainable weights were read-only (memory-mapped) and had to be copied; "
                             "create the optimizer after the Trainer, or pass optimizers=(None, None)")

    def create_optimizer(self):
        if self.optimizer is None:
            params = self._trainable()
            if not params:
                raise ValueError("the model has no trainable parameters (requires_grad=False everywhere)")
            nd = self._no_decay_names()
            groups = [{"params": [p for n, p in params if n not in nd], "weight_decay": self.args.weight_decay},
                      {"params": [p for n, p in params if n in nd], "weight_decay": 0.0}]
            groups = [g for g in groups if g["params"]]
            self.optimizer = AdamW(groups, lr=self.args.learning_rate,
                                   betas=(self.args.adam_beta1, self.args.adam_beta2), eps=self.args.adam_epsilon,
                                   weight_decay=self.args.weight_decay)
        return self.optimizer

    def create_scheduler(self, num_training_steps, optimizer=None):
        if self.lr_scheduler is None:
            self.lr_scheduler = get_scheduler(
                self.args.lr_scheduler_type, optimizer or self.optimizer,
                num_warmup_steps=self.args.get_warmup_steps(num_training_steps),
                num_training_steps=num_training_steps,
                scheduler_specific_kwargs=self.args.lr_scheduler_kwargs)
        return self.lr_scheduler

    def _epoch_order(self, epoch, n):
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return np.random.default_rng([int(seed), int(epoch)]).permutation(n)

    def _train_batches(self, epoch):
        """The list of micro-batches (lists of dataset indices) of one epoch:
        a seeded shuffle cut in order, or with group_by_length, batches of
        similar lengths (in a seeded order) so little compute goes to padding.
        Either way a pure function of (seed, epoch), so resuming is exact."""
        n = len(self.train_dataset)
        bs = self.args.per_device_train_batch_size
        if self.args.group_by_length:
            from ..data.batching import length_grouped_batches
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return length_grouped_batches(self._train_lengths(), bs, seed=int(seed) * 1000003 + int(epoch),
                                          drop_last=bool(self.args.dataloader_drop_last))
        order = self._get_train_order(epoch, n)
        batches = [order[i:i + bs] for i in range(0, n, bs)]
        if self.args.dataloader_drop_last and batches and len(batches[-1]) < bs:
            batches.pop()
        return batches

    def _train_lengths(self):
        ds = self.train_dataset
        lengths = getattr(ds, "lengths", None)
        if lengths is not None:
            return list(lengths)
        return [len(ds[i]["input_ids"]) for i in range(len(ds))]

    def _get_train_order(self, epoch, n):
        """Overridable (like HF's _get_train_sampler): the index order of an epoch."""
        return self._epoch_order(epoch, n)

    def _collate(self, indices):
        return self.data_collator([self.train_dataset[int(i)] for i in indices])

    def _count_label_tokens(self, batch):
        # Causal LMs predict labels[1:] (the loss shifts); encoder-decoders
        # predict every label. The count weighs accumulated micro-batches.
        labels = np.asarray(batch["labels"])
        config = getattr(self.model, "config", None)
        if getattr(config, "is_encoder_decoder", False):
            return int((labels != -100).sum())
        return int((labels[..., 1:] != -100).sum())

    @staticmethod
    def _count_input_tokens(batch):
        m = batch.get("attention_mask")
        if m is not None:
            return int(np.asarray(m).sum())
        return int(np.asarray(batch["input_ids"]).size)

    def compute_loss(self, model, inputs, return_outputs=False):
        out = model(**inputs)
        loss = out.loss if hasattr(out, "loss") else out[0]
        if loss is None:
            raise ValueError("the model returned no loss: the batch needs 'labels'")
        return (loss, out) if return_outputs else loss

    def _nonfinite(self, value, where):
        last = ckpt.get_last_checkpoint(self.args.output_dir)
        keep = f"the last good checkpoint is {last}" if last else "no checkpoint was saved before it"
        raise TrainingDivergedError(
            f"Loss is {value} at step {where}; training stopped before applying the update. {keep}. "
            "Try a lower learning_rate, a max_grad_norm, or check the data.")

    # ---------------------------------------------------------- training

    def train(self, resume_from_checkpoint=None, **kwargs):
        args = self.args
        if kwargs:
            raise TypeError(f"train() got unexpected keyword arguments: {sorted(kwargs)}")
        if self.train_dataset is None:
            raise ValueError("Trainer.train() needs a train_dataset")
        if resume_from_checkpoint is None:
            resume_from_checkpoint = args.resume_from_checkpoint
        if resume_from_checkpoint is False:
            resume_from_checkpoint = None
        n = len(self.train_dataset)
        if n == 0:
            raise ValueError("train_dataset is empty")
        manual_seed(args.seed)
        if args.gradient_checkpointing:
            enable = getattr(self.model, "gradient_checkpointing_enable", None)
            if enable is None:
                raise ValueError("gradient_checkpointing=True but the model has no gradient_checkpointing_enable()")
            enable(args.gradient_checkpointing_kwargs)

        ckpt.clean_leftovers(args.output_dir)
        if resume_from_checkpoint is True:
            resume_from_checkpoint = ckpt.get_last_checkpoint(args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(f"resume_from_checkpoint=True but no valid checkpoint found in output directory "
                                 f"({args.output_dir})")
        if resume_from_checkpoint is not None and not os.path.isdir(resume_from_checkpoint):
            raise ValueError(f"Can't find a valid checkpoint at {resume_from_checkpoint}")

        self._own_trainable_weights()
        full_resume = resume_from_checkpoint is not None and os.path.isfile(
            os.path.join(resume_from_checkpoint, TRAINER_STATE_NAME))
        if resume_from_checkpoint is not None:
            self._load_model_weights(resume_from_checkpoint)

        gas = args.gradient_accumulation_steps
        n_batches = len(self._train_batches(0))
        if n_batches == 0:
            raise ValueError("train_dataset is smaller than one batch and dataloader_drop_last=True")
        steps_per_epoch = max(n_batches // gas + int(n_batches % gas > 0), 1)
        if args.max_steps > 0:
            max_steps = int(args.max_steps)
            num_epochs = math.ceil(max_steps / steps_per_epoch)
        else:
            max_steps = math.ceil(args.num_train_epochs * steps_per_epoch)
            num_epochs = math.ceil(args.num_train_epochs)

        # each train() builds a fresh optimizer and schedule unless the user gave them (optimizers=(opt, sched))
        self.optimizer, self.lr_scheduler = self._given_optimizers
        self.create_optimizer()
        self.create_scheduler(max_steps)

        self.state = TrainerState()
        self.state.max_steps = max_steps
        self.state.num_train_epochs = num_epochs
        self.state.train_batch_size = args.per_device_train_batch_size
        start_epoch, start_step = 0, 0
        if full_resume:
            start_epoch, start_step = self._load_training_state(resume_from_checkpoint)

        log_every = args._steps(args.logging_steps, max_steps) if args.logging_strategy == "steps" else None
        eval_every = args._steps(args.eval_steps, max_steps) if args.eval_strategy == "steps" else None
        save_every = args._steps(args.save_steps, max_steps) if args.save_strategy == "steps" else None

        self.step_losses = []
        self.model.train()
        bar = _Progress(max_steps, self.state.global_step, args.disable_tqdm)
        self._bar = bar
        win = {"loss": 0.0, "steps": 0, "tokens": 0, "time": 0.0}
        total_loss, total_steps = 0.0, 0
        t_start = t_last = time.perf_counter()
        stop = self.state.global_step >= max_steps
        try:
            for epoch in range(start_epoch, num_epochs):
                if stop:
                    break
                batches = self._train_batches(epoch)
                if epoch == start_epoch:
                    from ..data.batching import padding_fraction
                    self.state.padding_fraction = float(padding_fraction(self._train_lengths(), batches))
                    bar.write(f"Padding: {100 * self.state.padding_fraction:.1f}% of the batched positions "
                              f"are padding{' (length-grouped batches)' if args.group_by_length else ''}")
                first = start_step if epoch == start_epoch else 0
                for step_in_epoch in range(first, steps_per_epoch):
                    micro = batches[step_in_epoch * gas:(step_in_epoch + 1) * gas]
                    inputs = [self._collate(b) for b in micro]
                    n_items = sum(self._count_label_tokens(b) for b in inputs)
                    step_loss = 0.0
                    for b in inputs:
                        loss = self.compute_loss(self.model, b)
                        lv = float(loss.item())
                        if not math.isfinite(lv):
                            self.optimizer.zero_grad()
                            self._nonfinite(lv, self.state.global_step + 1)
                        k = self._count_label_tokens(b)
                        w = (k / n_items) if n_items > 0 else 1.0 / len(inputs)
                        (loss * w).backward() if w != 1.0 else loss.backward()
                        step_loss += lv * w
                        win["tokens"] += self._count_input_tokens(b)
                    if args.max_grad_norm and args.max_grad_norm > 0:
                        norm = float(clip_grad_norm_([p for _, p in self._trainable()], args.max_grad_norm).item())
                        if not math.isfinite(norm):
                            self.optimizer.zero_grad()
                            self._nonfinite(f"finite but its gradient norm is {norm}", self.state.global_step + 1)
                    self.optimizer.step()
                    self.lr_scheduler.step()
                    self.optimizer.zero_grad()

                    self.state.global_step += 1
                    gs = self.state.global_step
                    self.state.epoch = epoch + (step_in_epoch + 1) / steps_per_epoch
                    self._position = (epoch, step_in_epoch + 1)
                    self.step_losses.append(step_loss)
                    win["loss"] += step_loss
                    win["steps"] += 1
                    total_loss += step_loss
                    total_steps += 1
                    bar.update(1)

                    last_step = gs >= max_steps
                    epoch_end = step_in_epoch + 1 == steps_per_epoch
                    if (log_every and gs % log_every == 0) or (args.logging_strategy == "epoch" and epoch_end) \
                            or (args.logging_first_step and gs == 1) or (last_step and win["steps"] and args.logging_strategy != "no"):
                        now = time.perf_counter()
                        win["time"] += now - t_last
                        t_last = now
                        self._log_train(win)
                        win = {"loss": 0.0, "steps": 0, "tokens": 0, "time": 0.0}
                    if self.eval_dataset is not None and (
                            (eval_every and gs % eval_every == 0) or (args.eval_strategy == "epoch" and epoch_end)):
                        win["time"] += time.perf_counter() - t_last
                        self.evaluate()
                        self.model.train()
                        t_last = time.perf_counter()
                    if (save_every and (gs % save_every == 0 or last_step)) or \
                            (args.save_strategy == "epoch" and (epoch_end or last_step)):
                        win["time"] += time.perf_counter() - t_last
                        self._save_checkpoint()
                        t_last = time.perf_counter()
                    if last_step:
                        stop = True
                        break
        finally:
            bar.close()
            self._write_final_state()
        train_loss = total_loss / max(total_steps, 1)
        metrics = {"train_runtime": time.perf_counter() - t_start, "train_loss": train_loss,
                   "epoch": self.state.epoch}
        self.state.log_history.append({**metrics, "step": self.state.global_step})
        self._write_final_state()
        return TrainOutput(self.state.global_step, train_loss, metrics)

    def _log_train(self, win):
        gs = self.state.global_step
        loss = win["loss"] / max(win["steps"], 1)
        lr = float(self.lr_scheduler.get_last_lr()[0])
        self.state.trained_tokens += win["tokens"]
        dt = max(win["time"], 1e-9)
        its, tps = win["steps"] / dt, win["tokens"] / dt
        peak = _peak_rss_gb()
        self.state.log_history.append({"loss": loss, "learning_rate": lr, "epoch": self.state.epoch, "step": gs,
                                       "it_per_sec": its, "tokens_per_sec": tps,
                                       "trained_tokens": self.state.trained_tokens, "peak_mem_gb": peak})
        self._bar.write(f"Iter {gs}: Train loss {loss:.3f}, Learning Rate {lr:.3e}, It/sec {its:.3f}, "
                        f"Tokens/sec {tps:.3f}, Trained Tokens {self.state.trained_tokens}, Peak mem {peak:.3f} GB")

    def log(self, logs):
        entry = dict(logs)
        entry.setdefault("epoch", self.state.epoch)
        entry.setdefault("step", self.state.global_step)
        self.state.log_history.append(entry)

    # -------------------------------------------------------- evaluation

    def evaluate(self, eval_dataset=None, metric_key_prefix="eval"):
        ds = eval_dataset if eval_dataset is not None else self.eval_dataset
        if ds is None:
            raise ValueError("Trainer.evaluate() needs an eval_dataset")
        t0 = time.perf_counter()
        was_training = getattr(self.model, "training", True)
        self.model.eval()
        bs = self.args.per_device_eval_batch_size
        total, count = 0.0, 0
        try:
            with no_grad():
                for i in range(0, len(ds), bs):
                    batch = self.data_collator([ds[j] for j in range(i, min(i + bs, len(ds)))])
                    loss = float(self.compute_loss(self.model, batch).item())
                    nb = len(batch["input_ids"])
                    total += loss * nb
                    count += nb
        finally:
            if was_training:
                self.model.train()
        took = time.perf_counter() - t0
        val = total / max(count, 1)
        metrics = {f"{metric_key_prefix}_loss": val, f"{metric_key_prefix}_runtime": took}
        self.log({**metrics})
        line = f"Iter {self.state.global_step}: Val loss {val:.3f}, Val took {took:.3f}s"
        bar = getattr(self, "_bar", None)
        if bar is not None:
            bar.write(line)
        else:
            print(line, flush=True)
        return metrics

    # -------------------------------------------------------- checkpoints

    def save_model(self, output_dir=None):
        """The adapter (PEFT format) or, for a plain model, the full model."""
        output_dir = output_dir or self.args.output_dir
        os.makedirs(output_dir, exist_ok=True)
        self.model.save_pretrained(output_dir)
        self._save_tokenizer(output_dir)

    def _save_tokenizer(self, output_dir):
        save = getattr(self.tokenizer, "save_pretrained", None)
        if save is not None:
            try:
                save(output_dir)
            except Exception as e:  # a checkpoint is still complete without the tokenizer files
                print(f"peftcpp: could not save the tokenizer to {output_dir}: {e}", file=sys.stderr)

    def _save_checkpoint(self):
        args = self.args
        gs = self.state.global_step
        epoch, step_in_epoch = self._position
        with ckpt.CheckpointWriter(args.output_dir, gs) as tmp:
            self.model.save_pretrained(tmp)
            self._save_tokenizer(tmp)
            self.optimizer.save_state(os.path.join(tmp, OPTIMIZER_NAME))
            ckpt.atomic_write_json(os.path.join(tmp, SCHEDULER_NAME), self.lr_scheduler.state_dict())
            ckpt.atomic_write_json(os.path.join(tmp, RNG_STATE_NAME), {
                "peftcpp": list(_core.get_rng_state()),
                "numpy": _np_state_jsonable(np.random.get_state()),
                "sampler": {"kind": "numpy.default_rng([seed, epoch]).permutation",
                            "seed": args.data_seed if args.data_seed is not None else args.seed},
                "epoch": epoch, "step_in_epoch": step_in_epoch})
            ckpt.atomic_write_json(os.path.join(tmp, TRAINING_ARGS_NAME), args.to_dict())
            state = self.state.to_dict()
            state["epoch_index"], state["step_in_epoch"] = epoch, step_in_epoch
            ckpt.atomic_write_json(os.path.join(tmp, TRAINER_STATE_NAME), state)  # last: marks it complete
        final = os.path.join(args.output_dir, f"{ckpt.PREFIX_CHECKPOINT_DIR}-{gs}")
        ckpt.prune_checkpoints(args.output_dir, args.save_total_limit, keep=[final])
        return final

    def _load_model_weights(self, path):
        if _is_peft(self.model):
            from ..peft import set_peft_model_state_dict
            f = os.path.join(path, ADAPTER_WEIGHTS)
            if not os.path.isfile(f):
                raise ValueError(f"{path} has no {ADAPTER_WEIGHTS} to resume the adapter from")
            name = getattr(self.model, "active_adapter", "default")
            set_peft_model_state_dict(self.model, serialization.load_file(f), adapter_name=name)
        else:
            f = os.path.join(path, MODEL_WEIGHTS)
            if not os.path.isfile(f):
                raise ValueError(f"{path} has no {MODEL_WEIGHTS} to resume the model from")
            self.model.load_state_dict(serialization.load_file(f), strict=False)

    def _load_training_state(self, path):
        opt = os.path.join(path, OPTIMIZER_NAME)
        if os.path.isfile(opt):
            self.optimizer.load_state(opt)
        sch = os.path.join(path, SCHEDULER_NAME)
        if os.path.isfile(sch):
            with open(sch) as f:
                self.lr_scheduler.load_state_dict(json.load(f))
            for g, lr in zip(self.optimizer.param_groups, self.lr_scheduler.get_last_lr()):
                g["lr"] = lr
        with open(os.path.join(path, TRAINER_STATE_NAME)) as f:
            saved = json.load(f)
        epoch, step_in_epoch = saved.pop("epoch_index", 0), saved.pop("step_in_epoch", 0)
        max_steps, n_epochs = self.state.max_steps, self.state.num_train_epochs
        self.state = TrainerState.from_dict(saved)
        self.state.max_steps, self.state.num_train_epochs = max_steps, n_epochs
        rng = os.path.join(path, RNG_STATE_NAME)
        if os.path.isfile(rng):
            with open(rng) as f:
                r = json.load(f)
            _core.set_rng_state(int(r["peftcpp"][0]), int(r["peftcpp"][1]))
            if "numpy" in r:
                np.random.set_state(_np_state_from_json(r["numpy"]))
            epoch, step_in_epoch = r.get("epoch", epoch), r.get("step_in_epoch", step_in_epoch)
        n_batches = len(self._train_batches(epoch))
        gas = self.args.gradient_accumulation_steps
        steps_per_epoch = max(n_batches // gas + int(n_batches % gas > 0), 1)
        if step_in_epoch >= steps_per_epoch:
            epoch, step_in_epoch = epoch + 1, 0
        return epoch, step_in_epoch

    def _write_final_state(self):
        out = self.args.output_dir
        if not out:
            return
        try:
            os.makedirs(out, exist_ok=True)
            ckpt.atomic_write_json(os.path.join(out, TRAINER_STATE_NAME), self.state.to_dict())
            _plot_losses(self.state.log_history, os.path.join(out, "loss.png"))
        except OSError as e:
            print(f"peftcpp: could not write the training state to {out}: {e}", file=sys.stderr)


def _np_state_jsonable(st):
    name, keys, pos, has_gauss, cached = st
    return [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)]


def _np_state_from_json(st):
    name, keys, pos, has_gauss, cached = st
    return (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)


def _plot_losses(history, path):
    """loss.png: the train and validation curves."""
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    tr = [(h["step"], h["loss"]) for h in history if "loss" in h]
    ev = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if not tr and not ev:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    if tr:
        ax.plot(*zip(*tr), label="train")
    if ev:
        ax.plot(*zip(*ev), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    tmp = f"{path}.tmp-{os.getpid()}.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)

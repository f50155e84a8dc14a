"""Trainer: Hugging Face's Trainer API over peftcpp models (LoRA adapters
or full fine-tuning), with mlx-lm-style progress lines, atomic checkpoints
and exact resume (same per-step losses as an uninterrupted run).

One ``train()``: plan the steps (step_plan.py), build the optimizer and
schedule (optimization.py), load a checkpoint's state (checkpoint.py), then
for each optimizer step ``training_step`` on every accumulated micro-batch,
the update, and what the callbacks decide (callbacks.py,
``DefaultFlowCallback``): log, evaluate, save, stop. ``evaluate()`` and
``predict()`` run the evaluation loop (evaluation.py's arrays and names):
the mean loss, and with ``compute_metrics`` the predictions and labels
gathered for it."""
import inspect
import json
import math
import os
import sys
import time
from collections import namedtuple

from .._tensor import manual_seed, no_grad
from ..data.batching import cut_batches, padding_fraction
from ..optim import clip_grad_norm_, get_scheduler
from . import checkpoint as ckpt
from .callbacks import CallbackHandler, DefaultFlowCallback, LossPlotCallback, PrinterCallback, ProgressCallback
from .collators import DataCollatorForCausalLM, DataCollatorWithPadding
from .evaluation import EvalLoopOutput, EvalPrediction, PredictionOutput, nested_concat, nested_numpify, \
    prefixed_metrics
from .optimization import create_adamw, own_trainable_weights, trainable_parameters
from .step_plan import (count_input_tokens, count_label_tokens, dataset_lengths, epoch_order,
                        length_grouped_epoch, plan_steps, steps_per_epoch)
from .trainer_state import StepWindow, TrainerControl, TrainerState, peak_rss_gb
from .training_args import TrainingArguments

__all__ = ["Trainer", "TrainOutput", "TrainingDivergedError"]

TrainOutput = namedtuple("TrainOutput", ["global_step", "training_loss", "metrics"])

UNSUPPORTED_ARGS = ("model_init", "compute_loss_func")


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; training stopped before the update."""


class Trainer:
    """``Trainer(model, args, train_dataset, eval_dataset, data_collator,
    tokenizer, callbacks, compute_metrics)`` as in transformers. ``train_dataset``
    is anything indexable (``len`` + ``__getitem__``) of dicts with
    ``input_ids`` and optionally ``labels`` (or ``label``) / ``attention_mask``;
    with ``args.remove_unused_columns`` the keys the model's forward does not
    take are dropped before collating, as transformers does."""

    def __init__(self, model=None, args=None, data_collator=None, train_dataset=None, eval_dataset=None,
                 tokenizer=None, processing_class=None, optimizers=(None, None), callbacks=None,
                 compute_metrics=None, preprocess_logits_for_metrics=None, **kwargs):
        if model is None:
            raise ValueError("Trainer requires a model")
        for k in kwargs:
            if k not in UNSUPPORTED_ARGS:
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
        self.data_collator = data_collator or self._default_collator()
        self.compute_metrics = compute_metrics
        self.preprocess_logits_for_metrics = preprocess_logits_for_metrics
        self._signature_columns = None
        self.train_dataset = train_dataset
        self.eval_dataset = eval_dataset
        self.optimizer, self.lr_scheduler = optimizers
        self._given_optimizers = tuple(optimizers)
        self.state = TrainerState()
        self.control = TrainerControl()
        self.step_losses = []  # the loss of every optimizer step of the last train() call
        self._init_callbacks(callbacks)

    def _init_callbacks(self, callbacks):
        # transformers' order: the flow, the user's, then the printer or the bar; the plot after the bar closes
        self.callback_handler = CallbackHandler([DefaultFlowCallback] + list(callbacks or []), self.model,
                                                self.processing_class, self.optimizer, self.lr_scheduler)
        self.add_callback(PrinterCallback if self.args.disable_tqdm else ProgressCallback)
        self.add_callback(LossPlotCallback)
        self.control = self.callback_handler.on_init_end(self.args, self.state, self.control)

    def _default_collator(self):
        """A classifier's batches are padded like transformers'
        DataCollatorWithPadding (labels are one per row); a language
        model's by DataCollatorForCausalLM."""
        base = getattr(self.model, "get_base_model", lambda: self.model)()
        if getattr(base, "score", None) is not None and hasattr(base, "num_labels"):
            pad = getattr(base.config, "pad_token_id", None)
            return DataCollatorWithPadding(self.tokenizer, pad_token_id=None if self.tokenizer else pad)
        return DataCollatorForCausalLM(self.tokenizer)

    def add_callback(self, callback):
        """Adds a ``TrainerCallback`` (a class or an instance)."""
        self.callback_handler.add_callback(callback)

    def pop_callback(self, callback):
        """Removes a callback (a class or an instance) and returns it."""
        return self.callback_handler.pop_callback(callback)

    def remove_callback(self, callback):
        """Removes a callback (a class or an instance)."""
        self.callback_handler.remove_callback(callback)

    # ------------------------------------------------------ optimization

    def create_optimizer(self):
        if self.optimizer is None:
            self.optimizer = create_adamw(self.model, self.args)
        return self.optimizer

    def create_scheduler(self, num_training_steps, optimizer=None):
        if self.lr_scheduler is None:
            self.lr_scheduler = get_scheduler(
                self.args.lr_scheduler_type, optimizer or self.optimizer,
                num_warmup_steps=self.args.get_warmup_steps(num_training_steps),
                num_training_steps=num_training_steps,
                scheduler_specific_kwargs=self.args.lr_scheduler_kwargs)
        return self.lr_scheduler

    def create_optimizer_and_scheduler(self, num_training_steps):
        self.create_optimizer()
        self.create_scheduler(num_training_steps)

    # ------------------------------------------------------- data order

    def _data_seed(self):
        return self.args.data_seed if self.args.data_seed is not None else self.args.seed

    def _train_batches(self, epoch):
        """The micro-batches (lists of dataset indices) of one epoch: a seeded
        shuffle cut in order, or with group_by_length, batches of similar
        lengths (in a seeded order) so little compute goes to padding."""
        bs, drop_last = self.args.per_device_train_batch_size, bool(self.args.dataloader_drop_last)
        if self.args.group_by_length:
            return length_grouped_epoch(dataset_lengths(self.train_dataset), bs, self._data_seed(), epoch, drop_last)
        return cut_batches(self._get_train_order(epoch, len(self.train_dataset)), bs, drop_last)

    def _get_train_order(self, epoch, n):
        """Overridable (like HF's _get_train_sampler): the index order of an epoch."""
        return epoch_order(self._data_seed(), epoch, n)

    def _collate(self, indices, dataset=None):
        ds = self.train_dataset if dataset is None else dataset
        return self.data_collator(self._remove_unused_columns([ds[int(i)] for i in indices]))

    def _label_names(self):
        return list(self.args.label_names) if self.args.label_names else ["labels"]

    def _remove_unused_columns(self, features):
        """transformers' RemoveColumnsCollator: only the keys the model's
        forward takes (and the labels) reach the collator."""
        if not self.args.remove_unused_columns or not features or not isinstance(features[0], dict):
            return features
        if self._signature_columns is None:
            base = getattr(self.model, "get_base_model", lambda: self.model)()
            try:
                params = inspect.signature(base.forward).parameters.values()
            except (TypeError, ValueError):
                params = None
            self._signature_columns = None if params is None else \
                {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)} | \
                {"label", "label_ids"} | set(self._label_names())
        keep = self._signature_columns
        if keep is None or not any(k in keep for k in features[0]):
            return features  # nothing would be left: the collator sees what the user gave
        return [{k: v for k, v in f.items() if k in keep} for f in features]

    def _count_label_tokens(self, batch):
        return count_label_tokens(batch, getattr(getattr(self.model, "config", None), "is_encoder_decoder", False))

    # ------------------------------------------------------------- steps

    def compute_loss(self, model, inputs, return_outputs=False):
        out = model(**inputs)
        loss = out.loss if hasattr(out, "loss") else out[0]
        if loss is None:
            raise ValueError("the model returned no loss: the batch needs 'labels'")
        return (loss, out) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None, num_batches=1):
        """One forward and backward pass of one micro-batch. Its loss is
        weighed by its share of the step's label tokens (``num_items_in_batch``;
        without any, 1/``num_batches``), so accumulated micro-batches give the
        gradient of one big batch. Returns the weighed loss (a float)."""
        loss = self.compute_loss(model, inputs)
        lv = float(loss.item())
        if not math.isfinite(lv):
            self.optimizer.zero_grad()
            self._nonfinite(lv, self.state.global_step + 1)
        k = self._count_label_tokens(inputs)
        w = (k / num_items_in_batch) if num_items_in_batch else 1.0 / num_batches
        (loss * w).backward() if w != 1.0 else loss.backward()
        return lv * w

    def _optimizer_step(self):
        """Clips the gradients, updates, advances the schedule."""
        max_norm = self.args.max_grad_norm
        if max_norm and max_norm > 0:
            norm = float(clip_grad_norm_([p for _, p in trainable_parameters(self.model)], max_norm).item())
            if not math.isfinite(norm):
                self.optimizer.zero_grad()
                self._nonfinite(f"finite but its gradient norm is {norm}", self.state.global_step + 1)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad()

    def _nonfinite(self, value, where):
        # the NaN stop: raised inside the step, before the update, which no callback event can do
        last = ckpt.get_last_checkpoint(self.args.output_dir)
        keep = f"the last good checkpoint is {last}" if last else "no checkpoint was saved before it"
        raise TrainingDivergedError(
            f"Loss is {value} at step {where}; training stopped before applying the update. {keep}. "
            "Try a lower learning_rate, a max_grad_norm, or check the data.")

    def _step_on(self, micro_batches):
        """One optimizer step over the accumulated micro-batches (lists of
        dataset indices): returns its loss and its input token count."""
        inputs = [self._collate(b) for b in micro_batches]
        n_items = sum(self._count_label_tokens(b) for b in inputs)
        step_loss = 0.0
        for b in inputs:
            step_loss += self.training_step(self.model, b, n_items, len(inputs))
        self._optimizer_step()
        return step_loss, sum(count_input_tokens(b) for b in inputs)

    # ---------------------------------------------------------- training

    def train(self, resume_from_checkpoint=None, **kwargs):
        """Trains for ``args.max_steps`` (or ``num_train_epochs``).
        ``resume_from_checkpoint``: a checkpoint folder, or True for the last
        one in ``output_dir``; the run continues exactly (optimizer, schedule,
        random state, data order)."""
        if kwargs:
            raise TypeError(f"train() got unexpected keyword arguments: {sorted(kwargs)}")
        checkpoint = self._prepare_training(resume_from_checkpoint)
        plan = plan_steps(len(self._train_batches(0)), self.args)
        # each train() builds a fresh optimizer and schedule unless the user gave them (optimizers=(opt, sched))
        self.optimizer, self.lr_scheduler = self._given_optimizers
        self.create_optimizer_and_scheduler(plan.max_steps)
        start_epoch, start_step = self._init_state(plan, checkpoint)
        return self._inner_training_loop(plan, start_epoch, start_step)

    def _prepare_training(self, resume_from_checkpoint):
        """Checks, seeds, and loads a checkpoint's weights; returns the
        checkpoint folder to resume from, or None."""
        args = self.args
        if self.train_dataset is None:
            raise ValueError("Trainer.train() needs a train_dataset")
        if resume_from_checkpoint is None:
            resume_from_checkpoint = args.resume_from_checkpoint
        if resume_from_checkpoint is False:
            resume_from_checkpoint = None
        if len(self.train_dataset) == 0:
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
        if own_trainable_weights(self.model) and self._given_optimizers[0] is not None:
            raise ValueError("the model's trainable weights were read-only (memory-mapped) and had to be copied; "
                             "create the optimizer after the Trainer, or pass optimizers=(None, None)")
        if resume_from_checkpoint is not None:
            ckpt.load_model_weights(self.model, resume_from_checkpoint)
        return resume_from_checkpoint

    def _init_state(self, plan, checkpoint):
        """A fresh state, or the checkpoint's; returns the (epoch, step in
        epoch) to start at."""
        self.state = TrainerState(max_steps=plan.max_steps, num_train_epochs=plan.num_epochs,
                                  train_batch_size=self.args.per_device_train_batch_size)
        self._resumed_window = {}
        if checkpoint is not None and os.path.isfile(os.path.join(checkpoint, ckpt.TRAINER_STATE_NAME)):
            return self._load_training_state(checkpoint)
        return 0, 0

    def _inner_training_loop(self, plan, start_epoch, start_step):
        self.step_losses = []
        self.model.train()
        handler = self.callback_handler
        handler.model, handler.optimizer, handler.lr_scheduler = self.model, self.optimizer, self.lr_scheduler
        self._window = window = StepWindow()
        window.load_state_dict(self._resumed_window)  # a checkpoint's unlogged steps
        t_start = window.since
        self.control = handler.on_train_begin(self.args, self.state, self.control)
        try:
            if self.state.global_step < plan.max_steps and not self.control.should_training_stop:
                for epoch in range(start_epoch, plan.num_epochs):
                    self._train_epoch(plan, epoch, start_step if epoch == start_epoch else 0, epoch == start_epoch)
                    if self.control.should_training_stop:
                        break
            train_loss = window.total_loss / max(window.total_steps, 1)
            metrics = {"train_runtime": time.perf_counter() - t_start, "train_loss": train_loss,
                       "epoch": self.state.epoch}
            self.state.log_history.append({**metrics, "step": self.state.global_step})
        finally:
            self._end_training()
        return TrainOutput(self.state.global_step, train_loss, metrics)

    def _train_epoch(self, plan, epoch, first_step, first_epoch):
        batches = self._train_batches(epoch)
        if first_epoch:
            self.state.padding_fraction = float(padding_fraction(dataset_lengths(self.train_dataset), batches))
        handler, gas = self.callback_handler, self.args.gradient_accumulation_steps
        self.control = handler.on_epoch_begin(self.args, self.state, self.control)
        for step in range(first_step, plan.steps_per_epoch):
            self.control = handler.on_step_begin(self.args, self.state, self.control)
            step_loss, tokens = self._step_on(batches[step * gas:(step + 1) * gas])
            self.state.global_step += 1
            self.state.epoch = epoch + (step + 1) / plan.steps_per_epoch
            self._position = (epoch, step + 1)
            self.step_losses.append(step_loss)
            self._window.add(step_loss, tokens)
            self.control = handler.on_step_end(self.args, self.state, self.control)
            if step + 1 == plan.steps_per_epoch:
                self.control = handler.on_epoch_end(self.args, self.state, self.control)
            self._maybe_log_save_evaluate()
            if self.control.should_epoch_stop or self.control.should_training_stop:
                break

    def _maybe_log_save_evaluate(self):
        win = self._window
        if self.control.should_log:
            win.pause()  # the window's time up to now
            win.resume()
            self._log_train(win)
            win.reset()
        if self.control.should_evaluate and self.eval_dataset is not None:
            win.pause()
            self.evaluate()
            self.model.train()
            win.resume()
        if self.control.should_save:
            win.pause()
            self._save_checkpoint()
            self.control = self.callback_handler.on_save(self.args, self.state, self.control)
            win.resume()

    def _end_training(self):
        # also after an error: trainer_state.json and loss.png show the run up to there
        out = self.args.output_dir
        if out:
            try:
                os.makedirs(out, exist_ok=True)
                self.save_state()
            except OSError as e:
                print(f"peftcpp: could not write the training state to {out}: {e}", file=sys.stderr)
        self.control = self.callback_handler.on_train_end(self.args, self.state, self.control)

    def _log_train(self, win):
        self.state.trained_tokens += win.tokens
        dt = max(win.time, 1e-9)
        self.log({"loss": win.loss / max(win.steps, 1), "learning_rate": float(self.lr_scheduler.get_last_lr()[0]),
                  "it_per_sec": win.steps / dt, "tokens_per_sec": win.tokens / dt,
                  "trained_tokens": self.state.trained_tokens, "peak_mem_gb": peak_rss_gb()})

    def log(self, logs):
        """Adds an entry (with epoch and step) to ``state.log_history``."""
        entry = dict(logs)
        entry.setdefault("epoch", self.state.epoch)
        entry.setdefault("step", self.state.global_step)
        self.state.log_history.append(entry)
        self.control = self.callback_handler.on_log(self.args, self.state, self.control, dict(entry))

    # -------------------------------------------------------- evaluation

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        """The mean loss over the evaluation set, and with ``compute_metrics``
        its metrics, all named ``<metric_key_prefix>_...``; logged and
        returned."""
        ds = eval_dataset if eval_dataset is not None else self.eval_dataset
        if ds is None:
            raise ValueError("Trainer.evaluate() needs an eval_dataset")
        t0 = time.perf_counter()
        output = self.evaluation_loop(ds, "Evaluation", prediction_loss_only=self.compute_metrics is None,
                                      ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        metrics = dict(output.metrics)
        metrics[f"{metric_key_prefix}_runtime"] = time.perf_counter() - t0
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def predict(self, test_dataset, ignore_keys=None, metric_key_prefix="test"):
        """PredictionOutput(predictions, label_ids, metrics) over
        ``test_dataset``: the logits of every row (numpy, in dataset order),
        its labels when it has them, and the loss / ``compute_metrics``'
        metrics named ``<metric_key_prefix>_...``."""
        t0 = time.perf_counter()
        output = self.evaluation_loop(test_dataset, "Prediction", prediction_loss_only=False,
                                      ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        metrics = dict(output.metrics)
        metrics[f"{metric_key_prefix}_runtime"] = time.perf_counter() - t0
        self.control = self.callback_handler.on_predict(self.args, self.state, self.control, metrics)
        return PredictionOutput(predictions=output.predictions, label_ids=output.label_ids, metrics=metrics)

    def evaluation_loop(self, dataset, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        """Batches of ``per_device_eval_batch_size`` in order, the model in
        eval mode without gradients: the loss weighed by rows, and unless
        ``prediction_loss_only`` the predictions and labels for
        ``compute_metrics``."""
        if prediction_loss_only is None:
            prediction_loss_only = self.compute_metrics is None
        was_training = getattr(self.model, "training", True)
        self.model.eval()
        bs = self.args.per_device_eval_batch_size
        total, count, preds, labels = 0.0, 0, None, None
        try:
            with no_grad():
                for i in range(0, len(dataset), bs):
                    batch = self._collate(range(i, min(i + bs, len(dataset))), dataset)
                    loss, logits, lab = self.prediction_step(self.model, batch, prediction_loss_only, ignore_keys)
                    if loss is not None:
                        nb = len(batch["input_ids"])
                        total += float(loss.item()) * nb
                        count += nb
                    if logits is not None:
                        if self.preprocess_logits_for_metrics is not None:
                            logits = self.preprocess_logits_for_metrics(logits, lab)
                        preds = nested_concat(preds, nested_numpify(logits))
                    if lab is not None:
                        labels = nested_concat(labels, nested_numpify(lab))
        finally:
            if was_training:
                self.model.train()
        metrics = {}
        if self.compute_metrics is not None and preds is not None and labels is not None:
            metrics = dict(self.compute_metrics(EvalPrediction(predictions=preds, label_ids=labels)) or {})
        if count:
            metrics["loss"] = total / count
        metrics = prefixed_metrics(metrics, metric_key_prefix)
        loss_key = f"{metric_key_prefix}_loss"
        if loss_key in metrics:  # first, as transformers' logs have it
            metrics = {loss_key: metrics.pop(loss_key), **metrics}
        return EvalLoopOutput(predictions=preds, label_ids=labels, metrics=metrics, num_samples=len(dataset))

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """(loss or None, logits or None, labels or None) of one batch."""
        label_names = self._label_names()
        has_labels = all(inputs.get(k) is not None for k in label_names)
        labels = None
        if has_labels:
            labels = inputs[label_names[0]] if len(label_names) == 1 else tuple(inputs[k] for k in label_names)
        out = model(**inputs)
        loss = getattr(out, "loss", None) if has_labels else None
        if prediction_loss_only:
            return loss, None, None
        logits = getattr(out, "logits", None)
        if logits is None and isinstance(out, (tuple, list)):
            logits = out[1] if has_labels else out[0]
        return loss, logits, labels

    # -------------------------------------------------------- checkpoints

    def save_model(self, output_dir=None):
        """The adapter (PEFT format) or, for a plain model, the full model."""
        output_dir = output_dir or self.args.output_dir
        os.makedirs(output_dir, exist_ok=True)
        self.model.save_pretrained(output_dir)
        self._save_tokenizer(output_dir)

    def save_state(self):
        """``output_dir/trainer_state.json``."""
        self.state.save_to_json(os.path.join(self.args.output_dir, ckpt.TRAINER_STATE_NAME))

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
            self.optimizer.save_state(os.path.join(tmp, ckpt.OPTIMIZER_NAME))
            ckpt.atomic_write_json(os.path.join(tmp, ckpt.SCHEDULER_NAME), self.lr_scheduler.state_dict())
            ckpt.atomic_write_json(os.path.join(tmp, ckpt.RNG_STATE_NAME),
                                   ckpt.rng_state_dict(self._data_seed(), epoch, step_in_epoch))
            ckpt.atomic_write_json(os.path.join(tmp, ckpt.TRAINING_ARGS_NAME), args.to_dict())
            state = self.state.to_dict()
            state["epoch_index"], state["step_in_epoch"] = epoch, step_in_epoch
            state["log_window"] = self._window.state_dict()
            ckpt.atomic_write_json(os.path.join(tmp, ckpt.TRAINER_STATE_NAME), state)  # last: marks it complete
        final = os.path.join(args.output_dir, f"{ckpt.PREFIX_CHECKPOINT_DIR}-{gs}")
        ckpt.prune_checkpoints(args.output_dir, args.save_total_limit, keep=[final])
        return final

    def _load_training_state(self, path):
        """Optimizer, schedule, state and random state of a checkpoint;
        returns the (epoch, step in epoch) after its last step."""
        ckpt.load_optimizer_state(path, self.optimizer, self.lr_scheduler)
        with open(os.path.join(path, ckpt.TRAINER_STATE_NAME)) as f:
            saved = json.load(f)
        epoch, step_in_epoch = saved.pop("epoch_index", 0), saved.pop("step_in_epoch", 0)
        self._resumed_window = saved.pop("log_window", None) or {}
        max_steps, n_epochs = self.state.max_steps, self.state.num_train_epochs
        self.state = TrainerState.from_dict(saved)
        self.state.max_steps, self.state.num_train_epochs = max_steps, n_epochs
        rng = os.path.join(path, ckpt.RNG_STATE_NAME)
        if os.path.isfile(rng):
            epoch, step_in_epoch = ckpt.restore_rng_state(rng, epoch, step_in_epoch)
        if step_in_epoch >= steps_per_epoch(len(self._train_batches(epoch)), self.args.gradient_accumulation_steps):
            epoch, step_in_epoch = epoch + 1, 0
        return epoch, step_in_epoch

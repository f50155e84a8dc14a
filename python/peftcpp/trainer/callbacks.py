"""Callbacks with transformers' names: ``TrainerCallback`` events, the
``CallbackHandler`` that calls them in order, and the built-in ones —
``DefaultFlowCallback`` (when to log, evaluate, save, stop), ``PrinterCallback``
/ ``ProgressCallback`` (the mlx-lm style ``Iter ...`` lines, with or without
a tqdm bar on the same stream) and ``LossPlotCallback`` (loss.png)."""
import os
import sys
import warnings

from ..fileio import atomic_write

__all__ = ["TrainerCallback", "CallbackHandler", "DefaultFlowCallback", "PrinterCallback", "ProgressCallback",
           "LossPlotCallback"]

class TrainerCallback:
    """Override any event; each gets ``(args, state, control, **kwargs)``
    (kwargs: model, processing_class, optimizer, lr_scheduler, and metrics for
    on_evaluate, logs for on_log) and may return a changed ``control``."""

    def on_init_end(self, args, state, control, **kwargs):
        """End of ``Trainer.__init__``."""

    def on_train_begin(self, args, state, control, **kwargs):
        """Start of ``train()``, after a resumed state is loaded."""

    def on_train_end(self, args, state, control, **kwargs):
        """End of ``train()``: also when it stops with an error, so that the
        files describe the run up to there."""

    def on_epoch_begin(self, args, state, control, **kwargs):
        """Start of an epoch."""

    def on_epoch_end(self, args, state, control, **kwargs):
        """After the last step of an epoch, before that step logs, evaluates
        or saves (so a step's lines keep the order log, eval, save)."""

    def on_step_begin(self, args, state, control, **kwargs):
        """Start of an optimizer step (all its accumulated micro-batches)."""

    def on_step_end(self, args, state, control, **kwargs):
        """After the optimizer step; ``state.global_step`` counts it."""

    def on_evaluate(self, args, state, control, **kwargs):
        """After an evaluation (kwarg ``metrics``)."""

    def on_predict(self, args, state, control, **kwargs):
        """After ``Trainer.predict()`` (kwarg ``metrics``)."""

    def on_save(self, args, state, control, **kwargs):
        """After a checkpoint is saved."""

    def on_log(self, args, state, control, **kwargs):
        """After an entry joined ``state.log_history`` (kwarg ``logs``)."""


class CallbackHandler(TrainerCallback):
    """Calls the callbacks in order; a callback given as a class is
    instantiated."""

    def __init__(self, callbacks, model, processing_class, optimizer, lr_scheduler):
        self.callbacks = []
        for cb in callbacks:
            self.add_callback(cb)
        self.model = model
        self.processing_class = processing_class
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler

    def add_callback(self, callback):
        cb = callback() if isinstance(callback, type) else callback
        cb_class = callback if isinstance(callback, type) else type(callback)
        if cb_class in [type(c) for c in self.callbacks]:
            warnings.warn(f"adding a {cb_class.__name__} to the Trainer's callbacks, which already has one; "
                          f"the callbacks are: {self.callback_list}", stacklevel=3)
        self.callbacks.append(cb)

    def pop_callback(self, callback):
        """Removes and returns the first callback that is ``callback`` (an
        instance) or an instance of it (a class); None when there is none."""
        for cb in self.callbacks:
            if (isinstance(callback, type) and isinstance(cb, callback)) or cb is callback:
                self.callbacks.remove(cb)
                return cb
        return None

    def remove_callback(self, callback):
        self.pop_callback(callback)

    @property
    def callback_list(self):
        return "\n".join(type(cb).__name__ for cb in self.callbacks)

    def call_event(self, event, args, state, control, **kwargs):
        for cb in self.callbacks:
            result = getattr(cb, event)(args, state, control, model=self.model,
                                        processing_class=self.processing_class, optimizer=self.optimizer,
                                        lr_scheduler=self.lr_scheduler, **kwargs)
            if result is not None:  # a callback need not return an unchanged control
                control = result
        return control

    def on_init_end(self, args, state, control):
        return self.call_event("on_init_end", args, state, control)

    def on_train_begin(self, args, state, control):
        control.should_training_stop = False
        return self.call_event("on_train_begin", args, state, control)

    def on_train_end(self, args, state, control):
        return self.call_event("on_train_end", args, state, control)

    def on_epoch_begin(self, args, state, control):
        control.should_epoch_stop = False
        return self.call_event("on_epoch_begin", args, state, control)

    def on_epoch_end(self, args, state, control):
        return self.call_event("on_epoch_end", args, state, control)

    def on_step_begin(self, args, state, control):
        control.should_log = control.should_evaluate = control.should_save = False
        return self.call_event("on_step_begin", args, state, control)

    def on_step_end(self, args, state, control):
        return self.call_event("on_step_end", args, state, control)

    def on_evaluate(self, args, state, control, metrics):
        control.should_evaluate = False
        return self.call_event("on_evaluate", args, state, control, metrics=metrics)

    def on_predict(self, args, state, control, metrics):
        return self.call_event("on_predict", args, state, control, metrics=metrics)

    def on_save(self, args, state, control):
        control.should_save = False
        return self.call_event("on_save", args, state, control)

    def on_log(self, args, state, control, logs):
        control.should_log = False
        return self.call_event("on_log", args, state, control, logs=logs)


class DefaultFlowCallback(TrainerCallback):
    """When to log, evaluate, save and stop, from the ``*_strategy`` and
    ``*_steps`` arguments. The last step always logs (unless logging is "no")
    and, with a save strategy, saves."""

    def on_step_end(self, args, state, control, **kwargs):
        step, last = state.global_step, state.global_step >= state.max_steps
        log_every = args.interval_steps(args.logging_steps, state.max_steps)
        eval_every = args.interval_steps(args.eval_steps, state.max_steps)
        save_every = args.interval_steps(args.save_steps, state.max_steps)
        if (args.logging_strategy == "steps" and log_every and step % log_every == 0) \
                or (args.logging_first_step and step == 1) or (last and args.logging_strategy != "no"):
            control.should_log = True
        if args.eval_strategy == "steps" and eval_every and step % eval_every == 0:
            control.should_evaluate = True
        if (args.save_strategy == "steps" and save_every and (step % save_every == 0 or last)) \
                or (args.save_strategy == "epoch" and last):
            control.should_save = True
        if last:
            control.should_training_stop = True
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        if args.logging_strategy == "epoch":
            control.should_log = True
        if args.eval_strategy == "epoch":
            control.should_evaluate = True
        if args.save_strategy == "epoch":
            control.should_save = True
        return control


TRAIN_LOG_KEYS = ("loss", "learning_rate", "it_per_sec", "tokens_per_sec", "trained_tokens", "peak_mem_gb")


def progress_lines(args, state, event, logs=None, metrics=None):
    """The mlx-lm style lines an event prints: the padding share at the first
    epoch, ``Iter N: Train loss ...`` for a training log entry and
    ``Iter N: Val loss ...`` after an evaluation (with the metrics of
    compute_metrics, when there are any)."""
    if event == "on_epoch_begin" and state.padding_fraction is not None:
        grouped = " (length-grouped batches)" if args.group_by_length else ""
        return [f"Padding: {100 * state.padding_fraction:.1f}% of the batched positions are padding{grouped}"]
    if event == "on_log" and all(k in logs for k in TRAIN_LOG_KEYS):
        return [f"Iter {state.global_step}: Train loss {logs['loss']:.3f}, Learning Rate {logs['learning_rate']:.3e}, "
                f"It/sec {logs['it_per_sec']:.3f}, Tokens/sec {logs['tokens_per_sec']:.3f}, "
                f"Trained Tokens {logs['trained_tokens']}, Peak mem {logs['peak_mem_gb']:.3f} GB"]
    if event == "on_evaluate":
        parts = []
        for k, v in metrics.items():
            name = k.split("_", 1)[1] if "_" in k else k  # eval_accuracy -> accuracy
            if name != "runtime" and isinstance(v, (int, float)):
                parts.append(f"Val {name} {v:.3f}")
        took = next((v for k, v in metrics.items() if k.endswith("_runtime")), 0.0)
        return [f"Iter {state.global_step}: {', '.join(parts + [f'Val took {took:.3f}s'])}"]
    return []


class PrinterCallback(TrainerCallback):
    """Prints the progress lines (used with ``disable_tqdm=True``)."""

    def __init__(self):
        self.padding_pending = False  # the padding line: once per train(), at its first epoch

    def write(self, line):
        print(line, flush=True)

    def _print(self, args, state, event, **kwargs):
        for line in progress_lines(args, state, event, **kwargs):
            self.write(line)

    def on_train_begin(self, args, state, control, **kwargs):
        self.padding_pending = True

    def on_epoch_begin(self, args, state, control, **kwargs):
        if self.padding_pending:
            self.padding_pending = False
            self._print(args, state, "on_epoch_begin")

    def on_log(self, args, state, control, logs=None, **kwargs):
        self._print(args, state, "on_log", logs=logs)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self._print(args, state, "on_evaluate", metrics=metrics)


class ProgressCallback(PrinterCallback):
    """A tqdm bar during training, with the progress lines written above it
    (tqdm.write). The bar goes to standard output, the lines' stream, so that
    the two never interleave (transformers draws it on stderr), and only when
    that is a terminal (tqdm's ``disable=None``): a file or a pipe gets the
    lines only. Without tqdm installed, the lines only."""

    def __init__(self):
        super().__init__()
        self.training_bar = None
        self.tqdm = None  # set once a bar was made: lines then go through tqdm.write

    def write(self, line):
        if self.tqdm is None:
            super().write(line)
        else:
            self.tqdm.write(line, file=sys.stdout)
            sys.stdout.flush()  # in a log, before what goes to stderr next

    def on_train_begin(self, args, state, control, **kwargs):
        super().on_train_begin(args, state, control)
        self.current_step = state.global_step
        try:
            from tqdm.auto import tqdm
            self.training_bar = tqdm(total=state.max_steps, initial=state.global_step, desc="Training",
                                     dynamic_ncols=True, file=sys.stdout, disable=None)
        except Exception:  # no tqdm: lines only
            return
        self.tqdm = tqdm

    def on_step_end(self, args, state, control, **kwargs):
        if self.training_bar is not None:
            self.training_bar.update(state.global_step - self.current_step)
            self.current_step = state.global_step

    def on_train_end(self, args, state, control, **kwargs):
        if self.training_bar is not None:
            self.training_bar.close()
            self.training_bar = None


class LossPlotCallback(TrainerCallback):
    """``output_dir/loss.png``: the train and validation loss curves, drawn
    when training ends."""

    def on_train_end(self, args, state, control, **kwargs):
        out = args.output_dir
        # an output_dir the trainer could not write trainer_state.json into was reported already
        if not out or not os.path.isdir(out) or not os.access(out, os.W_OK):
            return
        try:
            plot_losses(state.log_history, os.path.join(out, "loss.png"))
        except OSError as e:
            print(f"peftcpp: could not write the training state to {out}: {e}", file=sys.stderr)


def plot_losses(history, path):
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
    try:
        with atomic_write(path, "wb") as f:
            fig.savefig(f, format="png")
    finally:
        plt.close(fig)

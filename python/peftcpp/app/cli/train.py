"""`peftcpp train`: LoRA (or full) fine-tuning of a model on a dataset folder
with mlx_lm.lora's option names and DonkeyTune's defaults, through the
Trainer (progress lines, checkpoints, exact --resume)."""
import datetime
import os
import sys

from . import console
from .common import ADAPTER_WEIGHTS, TRAIN_RECORD, CLIError, dataset_error, load_base, model_label, read_record
from .config import TRAIN_DEFAULTS, resolve_train_settings

CHECKPOINTS = "checkpoints"  # inside --adapter-path
_HELP = {
    "model": "base model: a folder, a Hugging Face repo id or a .gguf file (default: the embedded default model, "
             "SmolLM2-135M-Instruct)",
    "data": "dataset folder with train.jsonl and valid.jsonl (default: ./data)",
    "iters": "training iterations (default: 600)",
    "batch_size": "examples per iteration (default: 4)",
    "num_layers": "LoRA on every linear layer of the last N blocks; -1 for all (default: 8)",
    "learning_rate": "Adam learning rate, constant (default: 1e-5)",
    "rank": "LoRA rank (default: 8)",
    "scale": "LoRA output multiplier, mlx-lm's scale: lora_alpha = scale x rank (default: 10.0)",
    "dropout": "LoRA dropout (default: 0.05)",
    "max_seq_length": "longer examples are truncated (default: 2048)",
    "steps_per_report": "iterations between progress lines (default: 10)",
    "steps_per_eval": "iterations between validation losses (default: 50)",
    "save_every": "iterations between checkpoints (default: 100)",
    "val_batches": "validation batches per evaluation; -1 for the whole validation set (default: 25)",
    "seed": "random seed (default: 0)",
    "adapter_path": "where the adapter goes (default: output/adapters); checkpoints in its checkpoints/ folder",
    "resume_from": "start from the weights of this adapter folder or adapter_model.safetensors (new optimizer)",
    "max_line_bytes": "dataset lines longer than this many bytes are invalid, refused before parsing "
                      f"(default: {TRAIN_DEFAULTS['max_line_bytes']}, 16 MiB)",
    "max_messages": f"chat examples with more messages are invalid (default: {TRAIN_DEFAULTS['max_messages']})",
}


def add_parser(sub):
    p = sub.add_parser("train", help="LoRA fine-tuning on a dataset folder",
                       description="LoRA fine-tuning on a dataset folder (mlx_lm.lora's options, DonkeyTune's "
                                   "defaults). Command line > --config file > defaults.")
    for key, typ in (("model", str), ("data", str), ("iters", int), ("batch_size", int), ("num_layers", int),
                     ("learning_rate", float), ("rank", int), ("scale", float), ("dropout", float),
                     ("max_seq_length", int), ("steps_per_report", int), ("steps_per_eval", int),
                     ("save_every", int), ("val_batches", int), ("seed", int), ("adapter_path", str),
                     ("resume_from", str), ("max_line_bytes", int), ("max_messages", int)):
        p.add_argument("--" + key.replace("_", "-"), dest=key, type=typ, default=None, help=_HELP[key])
    p.add_argument("--fine-tune-type", dest="fine_tune_type", choices=("lora", "dora", "full"), default=None,
                   help="lora (default) or full; dora is not supported yet")
    p.add_argument("--grad-checkpoint", dest="grad_checkpoint", action="store_const", const=True, default=None,
                   help="recompute activations in the backward pass (less memory, slower)")
    p.add_argument("--mask-prompt", dest="mask_prompt", action="store_const", const=True, default=None,
                   help="train on the assistant's tokens only (default)")
    p.add_argument("--no-mask-prompt", dest="mask_prompt", action="store_const", const=False,
                   help="train on every token, prompt included")
    p.add_argument("--group-by-length", dest="group_by_length", action="store_const", const=True, default=None,
                   help="batches of similar lengths, less padding (default)")
    p.add_argument("--no-group-by-length", dest="group_by_length", action="store_const", const=False,
                   help="randomly shuffled batches")
    p.add_argument("--skip-invalid", dest="skip_invalid", action="store_const", const=True, default=None,
                   help="skip invalid dataset lines (they are counted) instead of stopping")
    p.add_argument("--resume", dest="resume", action="store_const", const=True, default=None,
                   help="continue the interrupted run in --adapter-path exactly (optimizer, schedule, data order)")
    p.add_argument("-c", "--config", dest="config", default=None,
                   help="YAML file with the same keys (command line wins)")
    console.add_quiet_option(p)
    p.set_defaults(func=run)
    return p


def _check(s):
    if s["fine_tune_type"] == "dora":
        raise CLIError("--fine-tune-type dora is not supported yet; use lora (the default) or full")
    for key in ("iters", "batch_size", "rank", "steps_per_report", "steps_per_eval", "save_every",
                "max_seq_length", "max_line_bytes", "max_messages"):
        if s[key] < 1:
            raise CLIError(f"--{key.replace('_', '-')} must be at least 1, got {s[key]}")
    if s["num_layers"] == 0 or s["num_layers"] < -1:
        raise CLIError(f"--num-layers must be a positive number of blocks or -1 for all, got {s['num_layers']}")
    if s["val_batches"] == 0 or s["val_batches"] < -1:
        raise CLIError(f"--val-batches must be positive or -1 for all, got {s['val_batches']}")
    if not 0.0 <= s["dropout"] < 1.0:
        raise CLIError(f"--dropout must be in [0, 1), got {s['dropout']}")
    if s["learning_rate"] <= 0:
        raise CLIError(f"--learning-rate must be positive, got {s['learning_rate']}")
    if s["resume"] and s["resume_from"]:
        raise CLIError("--resume (continue this run) and --resume-from (start from other weights) exclude each other")
    if s["resume_from"] and s["fine_tune_type"] != "lora":
        raise CLIError("--resume-from loads adapter weights; it needs --fine-tune-type lora")


def find_blocks(model):
    """(attribute path, attribute name, count) of the model's transformer blocks."""
    from ...peft.tuners.target_selection import BlocksNotFoundError, find_blocks as library_find_blocks
    try:
        return library_find_blocks(model)
    except BlocksNotFoundError as e:
        raise CLIError(str(e)) from None


def lora_targets(model, num_layers):
    """Every linear layer inside the last num_layers blocks (all for -1):
    (module names, layer indices or None, pattern, number of blocks)."""
    from ...peft.tuners.target_selection import BlocksNotFoundError, last_blocks_linear_targets
    try:
        return last_blocks_linear_targets(model, num_layers)
    except BlocksNotFoundError as e:
        raise CLIError(str(e)) from None


def _system_prompt(raw_examples):
    """The system prompt every training example shares, else None."""
    seen = set()
    for ex in raw_examples:
        msgs = ex.get("messages") if isinstance(ex, dict) else None
        if not msgs:
            return None
        sys_msgs = [m.get("content") for m in msgs if m.get("role") == "system"]
        seen.add(sys_msgs[0] if sys_msgs else None)
        if len(seen) > 1:
            return None
    return next(iter(seen)) if seen else None


def _test_prompts(data):
    # recorded, so that `peftcpp test` need not follow a data path read from the record
    # (as many as `peftcpp convert`'s agreement report answers; `peftcpp test` takes the first three)
    from .export import REPORT_PROMPTS
    from .generate import valid_prompts
    return valid_prompts(data, REPORT_PROMPTS) if os.path.isfile(os.path.join(data, "valid.jsonl")) else []


def _record(s, status, **extra):
    d = {"status": status, "settings": {k: s[k] for k in TRAIN_DEFAULTS},
         "model": s["model"], "data": os.path.abspath(s["data"]), "iters": s["iters"],
         "updated": datetime.datetime.now().isoformat(timespec="seconds")}
    from ... import __version__
    d["peftcpp_version"] = __version__
    d.update(extra)
    return d


def _write_record(adapter_path, record):
    from ...fileio import write_json_atomic
    os.makedirs(adapter_path, exist_ok=True)
    write_json_atomic(os.path.join(adapter_path, TRAIN_RECORD), record, sort_keys=True)


def _load_resume_weights(model, path):
    """--resume-from: copy an adapter's LoRA weights into the new adapter."""
    from ... import serialization
    from ...peft import set_peft_model_state_dict
    f = path
    if os.path.isdir(path):
        f = os.path.join(path, ADAPTER_WEIGHTS)
        if not os.path.isfile(f):
            raise CLIError(f"--resume-from: {path} has no {ADAPTER_WEIGHTS}")
    elif not os.path.isfile(path):
        raise CLIError(f"--resume-from: adapter not found: {path}")
    try:
        set_peft_model_state_dict(model, serialization.load_file(f))
    except ValueError as e:
        raise CLIError(f"--resume-from {path} does not fit this model and these LoRA settings (same --model, "
                       f"--rank and --num-layers as its training?): {e}") from None
    console.info(f"Loaded the adapter weights of {f} (new optimizer and schedule)")


def run(args):
    from ...fileio import folder_lock
    cli = {k: getattr(args, k, None) for k in TRAIN_DEFAULTS}
    s, sources = resolve_train_settings(cli, args.config)
    adapter_path = s["adapter_path"]
    if s["resume"]:
        # settings not given again come from the interrupted run, so that it continues exactly
        prev = read_record(adapter_path).get("settings", {})
        for k, v in prev.items():
            if k in s and sources[k] == "default" and k not in ("resume", "resume_from"):
                s[k] = v
    _check(s)
    # one run per folder, from the first checkpoint to the final save
    with folder_lock(adapter_path, "--adapter-path"):
        _train(s)


def _train(s):
    from ...data import DatasetError, load_dataset
    from ...peft import LoraConfig, get_peft_model
    from ...trainer import Trainer, TrainingArguments, get_last_checkpoint
    from . import memory

    adapter_path = s["adapter_path"]
    ckpt_dir = os.path.join(adapter_path, CHECKPOINTS)
    if s["resume"] and get_last_checkpoint(ckpt_dir) is None:
        raise CLIError(f"--resume: no checkpoint in {ckpt_dir} to continue from (train without --resume first)")
    data = s["data"]
    if not os.path.exists(data):
        raise CLIError(f"data folder not found: {data} (it needs train.jsonl and valid.jsonl; pass --data DIR)")

    # the data is checked before the (slower) model load
    from ...data import read_dataset
    limits = {"max_line_bytes": s["max_line_bytes"], "max_messages": s["max_messages"]}
    try:
        read_dataset(data, skip_invalid=s["skip_invalid"], **limits)
    except DatasetError as e:
        raise dataset_error(e, s["skip_invalid"]) from None

    console.info(f"Loading {model_label(s['model'])}")
    full = s["fine_tune_type"] == "full"
    model, tok = load_base(s["model"], dtype="float32" if full else None)
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = load_dataset(data, tok, max_seq_length=s["max_seq_length"], mask_prompt=s["mask_prompt"],
                              skip_invalid=s["skip_invalid"], **limits)
        except DatasetError as e:
            raise dataset_error(e, s["skip_invalid"]) from None
        except ValueError as e:  # e.g. chat data and a tokenizer without a chat template
            raise CLIError(str(e).splitlines()[0]) from None
    for w in caught:
        if "Skipped" not in str(w.message):
            print(f"warning: {w.message}", file=sys.stderr)
    train_ds, valid_ds = ds["train"], ds.get("validation")
    skipped = train_ds.num_skipped + (valid_ds.num_skipped if valid_ds is not None else 0)
    console.info(f"Dataset {data}: {len(train_ds)} train, {len(valid_ds) if valid_ds is not None else 0} validation "
          f"examples ({train_ds.format})" + (f"; skipped {skipped} invalid line(s)" if skipped else ""))
    if s["val_batches"] != -1 and valid_ds is not None:
        keep = s["val_batches"] * s["batch_size"]
        if keep < len(valid_ds):
            valid_ds = valid_ds[:keep]

    num_layers = s["num_layers"]
    info = {}
    if full:
        path, leaf, n = find_blocks(model)
        first = 0 if num_layers == -1 else max(0, n - num_layers)
        model.requires_grad_(False)
        blocks = model.get_submodule(path)
        for i in range(first, n):
            blocks[i].requires_grad_(True)
        info.update(layers=list(range(first, n)), num_blocks=n)
        train_model = model
    else:
        names, layers, leaf, n = lora_targets(model, num_layers)
        alpha = s["scale"] * s["rank"]
        alpha = int(alpha) if float(alpha).is_integer() else alpha
        cfg = LoraConfig(task_type="CAUSAL_LM", r=s["rank"], lora_alpha=alpha, lora_dropout=s["dropout"],
                         target_modules=names, layers_to_transform=layers,
                         layers_pattern=leaf if layers is not None else None)
        import peftcpp
        peftcpp.manual_seed(s["seed"])  # --seed fixes lora_A's initialisation too
        train_model = get_peft_model(model, cfg)
        info.update(layers=layers if layers is not None else list(range(n)), num_blocks=n, target_modules=names,
                    lora_alpha=alpha)
        if s["resume_from"]:
            _load_resume_weights(train_model, s["resume_from"])

    trainable = sum(p.numel() for p in train_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in train_model.parameters())
    console.info(f"Trainable parameters: {100 * trainable / max(total, 1):.3f}% ({trainable / 1e6:.3f}M/"
          f"{total / 1e6:.3f}M)")

    seq = min(max(train_ds.lengths), s["max_seq_length"])
    est = memory.estimate(train_model, s["batch_size"], seq, s["grad_checkpoint"])
    line, warn = memory.report(est, memory.mem_available(), s["fine_tune_type"])
    console.info(line + f" for batch {s['batch_size']} x {seq} tokens")
    if warn:
        print(warn, file=sys.stderr)

    targs = TrainingArguments(
        output_dir=ckpt_dir, max_steps=s["iters"], per_device_train_batch_size=s["batch_size"],
        per_device_eval_batch_size=s["batch_size"], learning_rate=s["learning_rate"],
        lr_scheduler_type="constant", weight_decay=0.0, logging_steps=s["steps_per_report"],
        eval_strategy="steps" if valid_ds is not None else "no", eval_steps=s["steps_per_eval"],
        save_strategy="steps", save_steps=s["save_every"], save_total_limit=2, seed=s["seed"],
        gradient_checkpointing=s["grad_checkpoint"], group_by_length=s["group_by_length"],
        disable_tqdm=not console.bars(), report_to="none")
    trainer = Trainer(model=train_model, args=targs, train_dataset=train_ds, eval_dataset=valid_ds,
                      processing_class=tok)
    if console.is_quiet():
        from ...trainer import PrinterCallback
        trainer.remove_callback(PrinterCallback)  # transformers' way to silence the log lines
    system_prompt = _system_prompt(train_ds.raw)
    base_name = getattr(model, "name_or_path", None)
    common = dict(base_model=base_name, fine_tune_type=s["fine_tune_type"], rank=s["rank"], scale=s["scale"],
                  dropout=s["dropout"], num_layers=num_layers, system_prompt=system_prompt,
                  train_examples=len(train_ds), valid_examples=len(ds["validation"]) if "validation" in ds else 0,
                  test_prompts=_test_prompts(data), **info)
    if not s["resume"] and os.path.isdir(ckpt_dir):
        import shutil
        shutil.rmtree(ckpt_dir)  # a previous run's checkpoints would be mistaken for this run's by --resume
    _write_record(adapter_path, _record(s, "running", **common))
    console.info(f"Starting training..., iters: {s['iters']}" + (" (resuming)" if s["resume"] else ""))
    try:
        out = trainer.train(resume_from_checkpoint=True if s["resume"] else None)
        trainer.save_model(adapter_path)
        st = trainer.state
        evals = [h["eval_loss"] for h in st.log_history if "eval_loss" in h]
        _write_record(adapter_path, _record(
            s, "complete", trained_tokens=st.trained_tokens, global_step=st.global_step, train_loss=out.training_loss,
            val_loss=evals[-1] if evals else None, padding_fraction=st.padding_fraction, **common))
    except BaseException as e:
        _record_stop(s, common, e, get_last_checkpoint(ckpt_dir))
        raise
    what = ADAPTER_WEIGHTS if not full else "model.safetensors"
    print(f"Saved final weights to {os.path.join(adapter_path, what)}.")


def _record_stop(s, common, e, last):
    """A run that did not finish: its record says 'interrupted' (Ctrl-C) or
    'failed' with the error, so that no command takes the folder for a
    running or finished run; the --resume hint where a checkpoint exists."""
    from ...trainer import TrainingDivergedError
    adapter_path = s["adapter_path"]
    status = "interrupted" if isinstance(e, (KeyboardInterrupt, SystemExit)) else "failed"
    text = str(e).strip().splitlines()
    error = f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
    try:
        _write_record(adapter_path, _record(s, status, error=error, last_checkpoint=last, **common))
    except Exception as w:  # noqa: BLE001 - e.g. the disk is still full: say so, then report the run's own error
        print(f"warning: could not mark {os.path.join(adapter_path, TRAIN_RECORD)} as {status}: {w}",
              file=sys.stderr)
    if last and not isinstance(e, TrainingDivergedError):  # resuming a divergence diverges again
        print(f"`peftcpp train --resume --adapter-path {adapter_path}` continues from {last}", file=sys.stderr)

"""`peftcpp info ADAPTER_DIR` and `peftcpp clean-output`."""
import os
import shutil

from .common import (ADAPTER_CONFIG, TRAIN_RECORD, CLIError, adapter_config, check_adapter_dir, read_record,
                     run_status)


def add_parsers(sub):
    p = sub.add_parser("info", help="what an adapter was trained on and with which settings")
    p.add_argument("adapter_dir", nargs="?", default="output/adapters",
                   help="adapter folder (default: output/adapters)")
    p.set_defaults(func=run_info)
    c = sub.add_parser("clean-output", help="remove ./output (adapters, fused model, GGUF files)")
    c.add_argument("--output-dir", default="output", help="the folder to remove (default: output)")
    c.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    c.set_defaults(func=run_clean)


def run_info(args):
    d = args.adapter_dir
    if not (os.path.isdir(d) and read_record(d)):  # a run that never saved an adapter still has its record
        d = check_adapter_dir(d, flag="ADAPTER_DIR")
    rec = read_record(d)
    status, problem = run_status(d, rec)
    rows = []
    cfg = adapter_config(d).to_dict() if os.path.isfile(os.path.join(d, ADAPTER_CONFIG)) else {}
    base = cfg.get("base_model_name_or_path") or rec.get("base_model")
    if rec and rec.get("model") is None:
        from ..default_model import DEFAULT_MODEL_NAME
        base = f"{DEFAULT_MODEL_NAME} (the default model: {base})"
    rows.append(("Base model", base or "not recorded"))
    rows.append(("Fine-tune type", rec.get("fine_tune_type") or ("lora" if cfg else "full")))
    if cfg:
        rows.append(("Rank", cfg.get("r")))
        alpha, r = cfg.get("lora_alpha"), cfg.get("r")
        rows.append(("Alpha", f"{alpha} (scale {alpha / r:g})" if alpha and r else alpha))
        rows.append(("Dropout", cfg.get("lora_dropout")))
        tm = cfg.get("target_modules")
        rows.append(("Target modules", ", ".join(sorted(tm)) if isinstance(tm, (list, tuple)) else tm))
    layers = rec.get("layers", cfg.get("layers_to_transform"))
    if layers:
        n = rec.get("num_blocks")
        rows.append(("Layers", f"{_ranges(layers)}" + (f" ({len(layers)} of {n} blocks)" if n else "")))
    elif cfg:
        rows.append(("Layers", "all"))
    for key, label in (("data", "Data"), ("iters", "Iterations"), ("global_step", "Steps done"),
                       ("trained_tokens", "Trained tokens"), ("train_loss", "Train loss"),
                       ("val_loss", "Validation loss"), ("system_prompt", "System prompt"),
                       ("status", "Status")):
        if rec.get(key) is not None:
            v = rec[key] if key != "status" else status  # 'stopped' when killed while running
            rows.append((label, f"{v:.4f}" if isinstance(v, float) else v))
    if problem:
        rows.append(("Note", problem))
    if rec:
        st = rec.get("settings", {})
        rows.append(("Settings", ", ".join(f"{k}={st[k]}" for k in ("batch_size", "learning_rate",
                                                                       "max_seq_length", "seed") if k in st)))
    else:
        rows.append(("Training record", f"none ({TRAIN_RECORD} missing: not trained by `peftcpp train`)"))
    width = max(len(k) for k, _ in rows)
    print(f"Adapter: {d}")
    for k, v in rows:
        print(f"  {k + ':':<{width + 1}} {v}")


def _ranges(xs):
    xs = sorted(int(x) for x in xs)
    out, start, prev = [], xs[0], xs[0]
    for x in xs[1:] + [None]:
        if x is not None and x == prev + 1:
            prev = x
            continue
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
        if x is not None:
            start = prev = x
    return ", ".join(out)


_OURS = ("adapters", "fused_model", "fused", "gguf", "demo", "merged-data")


def run_clean(args):
    out = args.output_dir
    if not os.path.exists(out):
        print(f"{out}: nothing to remove")
        return
    if not os.path.isdir(out):
        raise CLIError(f"{out} is a file, not peftcpp's output folder; not removing it")
    entries = sorted(os.listdir(out))
    from ...fileio import folder_lock_holder
    for e in entries:
        pid = folder_lock_holder(os.path.join(out, e))
        if pid:
            raise CLIError(f"{os.path.join(out, e)} is in use by a peftcpp process (PID {pid}); not removing {out}")
    # the lock files peftcpp commands leave beside their folders (fileio.lock_file_path)
    entries = [e for e in entries if not (e.startswith(".") and e.endswith(".peftcpp.lock"))]
    strangers = [e for e in entries if e not in _OURS]
    ours = [e for e in entries if e in _OURS]
    if entries and not ours:
        raise CLIError(f"{out} does not look like peftcpp's output folder (no adapters/, fused_model/ or gguf/); "
                       "not removing it")
    if not args.yes:
        extra = f" (also: {', '.join(strangers)})" if strangers else ""
        try:
            answer = input(f"Remove {out}/ with {', '.join(ours) or 'nothing'}{extra}? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("Not removed.")
            return
    shutil.rmtree(out)
    print(f"Removed {out}/")

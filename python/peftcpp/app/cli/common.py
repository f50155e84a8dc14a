"""What several commands share: loading a base model (by name, path, GGUF
file or the embedded default), an adapter folder with the base it names, and
the record `peftcpp train` leaves in the adapter folder."""
import json
import os

TRAIN_RECORD = "peftcpp_train.json"  # written by `peftcpp train`, read by info/test/generate
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


class CLIError(Exception):
    """An error whose message is already the one sentence the user sees; ``details`` are lines printed under it
    (the invalid lines of a dataset)."""

    def __init__(self, message, details=()):
        super().__init__(message)
        self.details = list(details)


def dataset_error(e, skip_invalid):
    """The CLIError of a DatasetError: a complete first line, then each invalid line with its reason (up to the
    library's MAX_LISTED, then a count)."""
    from ...data.dataset import MAX_LISTED
    problems = getattr(e, "problems", None) or []
    if not problems:
        return CLIError(str(e).splitlines()[0])
    if len(problems) == 1:
        tail = "; no valid line left" if skip_invalid else "; fix it or pass --skip-invalid to skip bad lines"
        return CLIError(f"invalid dataset line {problems[0]}{tail}")
    counts = getattr(e, "invalid_lines", None) or {"the dataset": len(problems)}
    summary = ", ".join(f"{f}: {n} invalid line{'' if n == 1 else 's'}" for f, n in counts.items())
    summary += "; no valid line left" if skip_invalid else "; fix them or pass --skip-invalid"
    more = len(problems) - MAX_LISTED
    return CLIError(summary, problems[:MAX_LISTED] + ([f"... and {more} more"] if more > 0 else []))


def model_label(name):
    from ..default_model import DEFAULT_MODEL_NAME
    return name if name else f"the default model ({DEFAULT_MODEL_NAME})"


def load_base(name=None, dtype=None):
    """(model, tokenizer) for a folder, hub id, .gguf file or None (default)."""
    from ...models import AutoModelForCausalLM
    from ...tokenization import AutoTokenizer
    if name and os.path.exists(name) and not (os.path.isdir(name) or name.endswith(".gguf")):
        raise CLIError(f"unknown model '{name}': it is a file, not a model folder or a .gguf file")
    from ..default_model import resolve_model_source
    try:
        source = resolve_model_source(name)  # no name: the default model
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
        tok = AutoTokenizer.from_pretrained(source)
    except (FileNotFoundError, OSError) as e:
        if name and not os.path.exists(name):
            raise CLIError(f"unknown model '{name}': not a local folder or .gguf file, and it could not be "
                           f"loaded from the Hugging Face cache or Hub ({_first_line(e)})") from None
        raise CLIError(f"cannot load model {model_label(name)}: {_first_line(e)}") from None
    return model, tok


def _first_line(e):
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


def read_record(adapter_dir):
    """The train record of an adapter folder ({} when absent or unreadable)."""
    path = os.path.join(adapter_dir, TRAIN_RECORD)
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def run_status(adapter_dir, rec=None):
    """(status, one sentence or None) of the training run recorded in an
    adapter folder: 'complete' or no record (None: nothing to say),
    'running' (a process holds the folder), 'stopped' (recorded as running
    but nobody holds the folder: killed), 'failed' or 'interrupted'."""
    from ...fileio import folder_lock_holder
    rec = read_record(adapter_dir) if rec is None else rec
    status = rec.get("status")
    if not rec or status == "complete":
        return "complete", None
    finish = (f"its adapter files are not that run's result; `peftcpp train --resume --adapter-path {adapter_dir}` "
              "finishes it from its last checkpoint, or train again")
    if status == "running":
        pid = folder_lock_holder(adapter_dir)
        if pid:
            return "running", f"{adapter_dir} is being trained right now (peftcpp PID {pid}); wait for it to finish"
        return "stopped", f"the training run in {adapter_dir} stopped without finishing (killed?); {finish}"
    if status == "failed":
        error = rec.get("error")
        why = f" ({error})" if isinstance(error, str) and error.isprintable() else ""
        return "failed", f"the last training run in {adapter_dir} failed{why}; {finish}"
    if status == "interrupted":
        return "interrupted", f"the last training run in {adapter_dir} was interrupted; {finish}"
    shown = status if isinstance(status, str) and status.isprintable() else repr(status)
    return "unknown", f"{os.path.join(adapter_dir, TRAIN_RECORD)} has an unknown status {shown}"


def check_finished(adapter_dir):
    """Raises the CLIError of run_status for a folder whose recorded run did
    not finish: what is built from it (fused model, GGUF) would mix that
    run's record with another run's weights, or none."""
    _, problem = run_status(adapter_dir)
    if problem:
        raise CLIError(problem)


def check_adapter_dir(path, flag="--adapter-path"):
    """The folder of an adapter (or of a full fine-tune); a clear error when
    it is missing or holds neither."""
    if path is None:
        raise CLIError(f"{flag} is required")
    if os.path.isfile(path) and os.path.basename(path) == ADAPTER_WEIGHTS:
        path = os.path.dirname(path) or "."
    if not os.path.isdir(path):
        raise CLIError(f"adapter folder not found: {path} (train one with `peftcpp train`, or pass {flag})")
    if not (os.path.isfile(os.path.join(path, ADAPTER_CONFIG)) or is_full_model_dir(path)):
        _, problem = run_status(path)  # a first run that did not finish says so
        if problem:
            raise CLIError(problem)
        raise CLIError(f"{path} holds no adapter: {ADAPTER_CONFIG} is missing (is it the folder `peftcpp train` "
                       "wrote to?)")
    return path


def is_full_model_dir(path):
    return os.path.isfile(os.path.join(path, "config.json")) and not os.path.isfile(
        os.path.join(path, ADAPTER_CONFIG))


def adapter_config(adapter_dir):
    """adapter_config.json as a checked config (PeftConfig): a wrong field
    stops here, naming the file and the field, before any model is loaded."""
    from ...peft import PeftConfig
    return PeftConfig.from_pretrained(adapter_dir)


def adapter_base(adapter_dir, config=None):
    """The base model an adapter names: adapter_config.json's
    base_model_name_or_path, or None for the default model."""
    base = (config or adapter_config(adapter_dir)).base_model_name_or_path
    rec = read_record(adapter_dir)
    if rec.get("model") is None and rec and (not base or not os.path.exists(base)):
        return None  # trained on the default model, whose cache folder may have moved
    return base


def load_adapter_model(adapter_dir, model=None, dtype=None):
    """(model with the adapter applied, tokenizer, base name). `model`
    overrides the base recorded in the adapter; a base of the wrong shape
    raises the loader's error, which names both models."""
    from ...peft import PeftModel
    adapter_dir = check_adapter_dir(adapter_dir)
    if is_full_model_dir(adapter_dir):  # --fine-tune-type full wrote a whole model
        m, tok = load_base(adapter_dir, dtype=dtype)
        return m, tok, adapter_dir
    config = adapter_config(adapter_dir)
    base = model if model is not None else adapter_base(adapter_dir, config)
    if model is None and base and os.path.isabs(base) and not os.path.exists(base):
        raise CLIError(f"the base model of {adapter_dir} ({base}, from {ADAPTER_CONFIG}) is not there any more; "
                       "pass --model with that model")
    m, tok = load_base(base, dtype=dtype)
    try:
        pm = PeftModel.from_pretrained(m, adapter_dir, config=config)
    except ValueError as e:
        raise CLIError(_first_line(e)) from None
    if os.path.isfile(os.path.join(adapter_dir, "tokenizer.json")):
        from ...tokenization import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(adapter_dir)  # the tokenizer it was trained with
    return pm, tok, base


def load_for_inference(model=None, adapter_path=None, gguf=None):
    """(model, tokenizer, description) for generate / test / chat."""
    if gguf is not None:
        if adapter_path is not None:
            raise CLIError("--gguf and --adapter-path cannot be combined: a GGUF file is already fused")
        if not os.path.isfile(gguf):
            raise CLIError(f"GGUF file not found: {gguf}")
        m, tok = load_base(gguf)
        return m, tok, gguf
    if adapter_path is not None:
        m, tok, base = load_adapter_model(adapter_path, model)
        return m, tok, f"{model_label(base)} + adapter {adapter_path}"
    m, tok = load_base(model)
    return m, tok, model_label(model)

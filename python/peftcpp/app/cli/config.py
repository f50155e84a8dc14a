"""`peftcpp train` settings: the defaults table (DonkeyTune's make variables,
mlx-lm's lora options) and the --config YAML merge. Order of precedence, as
in mlx_lm.lora: command line > YAML file > defaults."""
import os

# key (the option's name with '_' for '-') -> default
TRAIN_DEFAULTS = {
    "model": None,               # None: the embedded default model (SmolLM2-135M-Instruct)
    "data": "./data",
    "iters": 600,
    "batch_size": 4,
    "num_layers": 8,
    "learning_rate": 1e-5,
    "rank": 8,
    "scale": 10.0,
    "dropout": 0.05,
    "max_seq_length": 2048,
    "steps_per_report": 10,
    "steps_per_eval": 50,
    "save_every": 100,
    "val_batches": 25,
    "grad_checkpoint": False,
    "mask_prompt": True,
    "fine_tune_type": "lora",
    "seed": 0,
    "adapter_path": "output/adapters",
    "resume_from": None,
    "resume": False,
    "skip_invalid": False,
    "max_line_bytes": 16 * 1024 * 1024,  # the library's limits (peftcpp.data.DEFAULT_MAX_*): see data/dataset.py
    "max_messages": 1000,
    "group_by_length": True,
}

# mlx-lm's YAML nests the LoRA settings; these keys are accepted too
_LORA_PARAMETERS = {"rank": "rank", "scale": "scale", "dropout": "dropout"}
# spellings other tools use in their YAML files
_ALIASES = {"resume_adapter_file": "resume_from", "lr": "learning_rate", "train_data": "data"}


class ConfigError(ValueError):
    pass


def _coerce(key, value, where):
    """A YAML value of the default's type (YAML reads 1e-5 as a string)."""
    default = TRAIN_DEFAULTS[key]
    if value is None:
        return None
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
                return value.lower() in ("true", "yes", "on", "1")
            raise ValueError
        if isinstance(default, int):
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError
            return int(float(value))
        if isinstance(default, float):
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if default is None or isinstance(default, str):
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        kind = type(default).__name__ if default is not None else "str"
        raise ConfigError(f"{where}: '{key}' must be a {kind}, got {value!r}") from None
    return value


def load_config_file(path):
    """{key: value} from a YAML file with the train options' names (dashes or
    underscores; mlx-lm's lora_parameters block accepted). Unknown keys and
    unreadable files are errors that name the file."""
    import yaml
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of option names to values, got {type(raw).__name__}")
    out = {}
    for k, v in raw.items():
        key = str(k).replace("-", "_")
        key = _ALIASES.get(key, key)
        if key == "lora_parameters":
            if not isinstance(v, dict):
                raise ConfigError(f"{path}: 'lora_parameters' must be a mapping")
            for lk, lv in v.items():
                if lk == "alpha":  # DonkeyTune writes it; mlx-lm never used it
                    continue
                if lk not in _LORA_PARAMETERS:
                    raise ConfigError(f"{path}: unknown key 'lora_parameters.{lk}' (known: "
                                      f"{', '.join(_LORA_PARAMETERS)})")
                out[_LORA_PARAMETERS[lk]] = _coerce(_LORA_PARAMETERS[lk], lv, path)
            continue
        if key not in TRAIN_DEFAULTS:
            raise ConfigError(f"{path}: unknown key '{k}' (known: {', '.join(sorted(TRAIN_DEFAULTS))})")
        out[key] = _coerce(key, v, path)
    return out


def resolve_train_settings(cli_values, config_path=None):
    """The effective settings: options given on the command line (non-None in
    cli_values) win over the YAML file, which wins over TRAIN_DEFAULTS.
    Returns (settings, sources) where sources[key] is 'cli', 'config' or
    'default'."""
    from_file = load_config_file(config_path) if config_path else {}
    settings, sources = {}, {}
    for key, default in TRAIN_DEFAULTS.items():
        if cli_values.get(key) is not None:
            settings[key], sources[key] = cli_values[key], "cli"
        elif key in from_file:
            settings[key], sources[key] = from_file[key], "config"
        else:
            settings[key], sources[key] = default, "default"
    return settings, sources

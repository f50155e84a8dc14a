"""A tokenizer's files: finding them (a local folder, or a Hugging Face Hub repo through its cache) and
reading its settings as transformers does (tokenizer_config.json, special_tokens_map.json and the chat
template files)."""
from __future__ import annotations

import json
import os

from ..gguf.import_model import imported_from
from .special_tokens import token_str

__all__ = ["CHAT_TEMPLATE_DIR", "CHAT_TEMPLATE_FILE", "CHAT_TEMPLATE_JSON_FILE", "CHAT_TEMPLATE_SOURCES",
           "SPECIAL_TOKENS_MAP_FILE", "TOKENIZER_CONFIG_FILE", "TOKENIZER_FILE", "read_tokenizer_config",
           "resolve_folder"]

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
CHAT_TEMPLATE_JSON_FILE = "chat_template.json"
CHAT_TEMPLATE_DIR = "additional_chat_templates"
# read_tokenizer_config's key (never saved) for {template text: the file it came from}
CHAT_TEMPLATE_SOURCES = "chat_template_sources"


def _env_true(name):
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def resolve_folder(name, kwargs):
    """A local folder as is; otherwise download (or find in the cache) the tokenizer files of a Hub repo.
    Pops the Hub arguments (subfolder, cache_dir, revision, token, local_files_only, force_download) from kwargs."""
    subfolder = kwargs.pop("subfolder", None) or ""
    cache_dir = kwargs.pop("cache_dir", None)
    revision = kwargs.pop("revision", None)
    token = kwargs.pop("token", None) or kwargs.pop("use_auth_token", None) or os.environ.get("HF_TOKEN")
    local_only = bool(kwargs.pop("local_files_only", False))
    force = bool(kwargs.pop("force_download", False))
    name = str(name)
    if os.path.isdir(name):
        return os.path.join(name, subfolder) if subfolder else name
    if os.path.isfile(name):
        raise OSError(f"'{name}' is a file; pass the folder that holds {TOKENIZER_FILE}.")
    offline = local_only or _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")
    if name.count("/") > 1 or name.startswith((".", "/")) or not name:
        raise OSError(f"'{name}' is neither a local folder nor a valid Hugging Face Hub repo id.")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:  # pragma: no cover - huggingface_hub ships with tokenizers
        raise OSError(f"'{name}' is not a local folder and huggingface_hub is not installed to download it.") from e
    prefix = f"{subfolder.strip('/')}/" if subfolder else ""
    patterns = [prefix + p for p in (TOKENIZER_FILE, TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE,
                                      CHAT_TEMPLATE_FILE, CHAT_TEMPLATE_JSON_FILE, f"{CHAT_TEMPLATE_DIR}/*.jinja")]
    try:
        path = snapshot_download(name, revision=revision, cache_dir=cache_dir, token=token,
                                 local_files_only=offline, force_download=force, allow_patterns=patterns)
    except Exception as e:  # noqa: BLE001 - re-raised with a clear message
        if offline:
            raise OSError(f"Can't load tokenizer for '{name}': offline mode (HF_HUB_OFFLINE / local_files_only) "
                          f"and it is not in the local Hugging Face cache"
                          f"{' ' + str(cache_dir) if cache_dir else ''}. Download it once while online, or "
                          f"pass a local folder with {TOKENIZER_FILE}. ({type(e).__name__})") from e
        raise OSError(f"Can't load tokenizer for '{name}' from the Hugging Face Hub: {type(e).__name__}: {e}. "
                      f"Check the repo id, your network, and `token=` / HF_TOKEN for gated or private repos.") from e
    return os.path.join(path, subfolder) if subfolder else path


def _merge_special_tokens_map(config, special_map):
    for key, value in special_map.items():
        if key in ("additional_special_tokens", "extra_special_tokens") and isinstance(value, list):
            existing = list(config.get("extra_special_tokens") or config.get("additional_special_tokens") or [])
            names = {token_str(t) for t in existing}
            existing += [t for t in value if token_str(t) not in names]
            config.pop("additional_special_tokens", None)
            config["extra_special_tokens"] = existing
        else:
            config[key] = value


def _read_chat_templates(folder, config, config_source):
    """chat_template.jinja (+ additional_chat_templates/) > the config's key > chat_template.json.
    Returns {template text: the file it came from} (for error messages)."""
    templates, sources = {}, {}
    jinja_path = os.path.join(folder, CHAT_TEMPLATE_FILE)
    if os.path.isfile(jinja_path):
        templates["default"] = _read_text(jinja_path)
        sources[templates["default"]] = jinja_path
    extra_dir = os.path.join(folder, CHAT_TEMPLATE_DIR)
    if os.path.isdir(extra_dir):
        for name in sorted(os.listdir(extra_dir)):
            if name.endswith(".jinja"):
                path = os.path.join(extra_dir, name)
                templates[name[:-len(".jinja")]] = text = _read_text(path)
                sources.setdefault(text, path)
    if len(templates) == 1 and "default" in templates:
        config["chat_template"] = templates["default"]
    elif templates:
        config["chat_template"] = templates
    elif config.get("chat_template") is None:
        json_path = os.path.join(folder, CHAT_TEMPLATE_JSON_FILE)
        if os.path.isfile(json_path):
            config["chat_template"] = _read_json(json_path).get("chat_template")
            config_source = json_path
    if not templates:  # the template(s) of tokenizer_config.json or chat_template.json
        value = config.get("chat_template")
        texts = [value] if isinstance(value, str) else \
            [t.get("template") for t in value if isinstance(t, dict)] if isinstance(value, list) else []
        sources.update({t: config_source for t in texts if isinstance(t, str)})
    return sources


def read_tokenizer_config(folder):
    """The settings of the tokenizer in ``folder`` as one tokenizer_config dict (OSError without tokenizer.json)."""
    tokenizer_path = os.path.join(folder, TOKENIZER_FILE)
    if not os.path.isfile(tokenizer_path):
        present = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        raise OSError(f"Can't load tokenizer from '{folder}': no {TOKENIZER_FILE} there (peftcpp needs a fast "
                      f"tokenizer file; it looked for {TOKENIZER_FILE}, {TOKENIZER_CONFIG_FILE}, "
                      f"{SPECIAL_TOKENS_MAP_FILE}, {CHAT_TEMPLATE_FILE}). Files found: {present}")
    config = {}
    config_path = os.path.join(folder, TOKENIZER_CONFIG_FILE)
    if os.path.isfile(config_path):
        config = _read_json(config_path)
    gguf = imported_from(folder)  # a folder imported from a GGUF file: its template came from there
    config_source = f"{gguf} (tokenizer.chat_template)" if gguf else config_path
    # like transformers: special_tokens_map.json only matters for configs without added_tokens_decoder
    special_map_path = os.path.join(folder, SPECIAL_TOKENS_MAP_FILE)
    if "added_tokens_decoder" not in config and os.path.isfile(special_map_path):
        _merge_special_tokens_map(config, _read_json(special_map_path))
    config[CHAT_TEMPLATE_SOURCES] = _read_chat_templates(folder, config, config_source)
    return config

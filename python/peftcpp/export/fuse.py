"""fuse(): an adapter merged into its base model and saved as a plain
Hugging Face folder (mlx_lm.fuse): model.safetensors in the base model's
dtype, config.json, generation_config.json, the tokenizer files and the chat
template. The folder is built beside `out_dir` and renamed into place, so
`out_dir` is never half-written."""
import os
import shutil

from ..fileio import atomic_folder
from ..models import AutoModelForCausalLM
from ..peft import PeftConfig, PeftModel
from ..tokenization import AutoTokenizer

__all__ = ["fuse"]

_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


def _load(adapter, base_model):
    """(PeftModel, tokenizer or None, folder the tokenizer files come from)."""
    if hasattr(adapter, "merge_and_unload"):  # a PeftModel in memory
        base = adapter.get_base_model()
        src = getattr(base, "name_or_path", None) or None
        tok = None
        if src and os.path.isfile(os.path.join(src, "tokenizer.json")):
            tok = AutoTokenizer.from_pretrained(src)
        return adapter, tok, src
    path = os.fspath(adapter)
    if os.path.isfile(path):  # adapter_model.safetensors
        path = os.path.dirname(path) or "."
    if not os.path.isdir(path):
        raise FileNotFoundError(f"adapter folder not found: {path}")
    if base_model is None:
        base_model = PeftConfig.from_pretrained(path).base_model_name_or_path
    model = AutoModelForCausalLM.from_pretrained(base_model)  # the checkpoint's dtype
    pm = PeftModel.from_pretrained(model, path)
    tok_dir = path if os.path.isfile(os.path.join(path, "tokenizer.json")) else model.name_or_path
    tok = AutoTokenizer.from_pretrained(tok_dir) if tok_dir else None
    return pm, tok, model.name_or_path


def fuse(adapter_path_or_peft_model, out_dir, base_model=None):
    """Merge the adapter into the base weights (merge_and_unload) and save the
    result to `out_dir`. `base_model` overrides adapter_config.json's
    base_model_name_or_path (None: the recorded one). Returns out_dir."""
    pm, tok, base_dir = _load(adapter_path_or_peft_model, base_model)
    merged = pm.merge_and_unload()
    out_dir = os.path.abspath(os.fspath(out_dir))
    os.makedirs(os.path.dirname(out_dir), exist_ok=True)
    with atomic_folder(out_dir) as tmp:
        merged.save_pretrained(tmp)
        if not os.path.isfile(os.path.join(tmp, "generation_config.json")):
            merged.generation_config.save_pretrained(tmp)
        if tok is not None:
            tok.save_pretrained(tmp)
        if base_dir and os.path.isdir(base_dir):
            for name in _TEMPLATE_FILES:  # kept as the base ships it (transformers 5 reads the .jinja file)
                src = os.path.join(base_dir, name)
                if os.path.isfile(src):
                    shutil.copyfile(src, os.path.join(tmp, name))
        if tok is not None and isinstance(getattr(tok, "chat_template", None), str) and \
                not os.path.isfile(os.path.join(tmp, "chat_template.jinja")):
            with open(os.path.join(tmp, "chat_template.jinja"), "w", encoding="utf-8") as f:
                f.write(tok.chat_template)
    return out_dir

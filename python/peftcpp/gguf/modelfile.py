"""Ollama Modelfile for an exported GGUF (``ollama create NAME -f Modelfile``).

Ollama renders prompts with a Go template, not the Jinja chat template of
the tokenizer, so the template is chosen by the family the Jinja template
belongs to (detected by its turn markers):

    ChatML   <|im_start|> / <|im_end|>                     SmolLM2, Qwen2/2.5/3
    Llama-3  <|start_header_id|> / <|eot_id|>              Llama 3.x
    Gemma-3  <start_of_turn> / <end_of_turn>               Gemma 3
    Phi-3    <|user|> / <|assistant|> / <|end|>            Phi-3, Phi-3.5

Any other template gets a plain ``{{ .Prompt }}`` template and a comment
saying so (and a warning): the model still runs, but without chat formatting.
``PARAMETER stop`` lines hold the family's end-of-turn markers plus any
``stop`` / ``eos_token`` given.
"""
from __future__ import annotations

import os
import warnings
from ..fileio import write_text_atomic
from .reader import GGUFFile

__all__ = ["write_modelfile", "modelfile_text", "detect_chat_family", "GO_TEMPLATES"]

GO_TEMPLATES = {
    "chatml": (
        "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
        "{{- range $i, $_ := .Messages }}"
        "{{- $last := eq (len (slice $.Messages $i)) 1 }}"
        "{{- if ne .Role \"system\" }}<|im_start|>{{ .Role }}\n{{ .Content }}"
        "{{ if or (not $last) (ne .Role \"assistant\") }}<|im_end|>\n{{ end }}{{ end }}"
        "{{- if and $last (ne .Role \"assistant\") }}<|im_start|>assistant\n{{ end }}"
        "{{- end }}"),
    "llama3": (
        "{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
        "{{- range $i, $_ := .Messages }}"
        "{{- $last := eq (len (slice $.Messages $i)) 1 }}"
        "{{- if ne .Role \"system\" }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}"
        "{{ if or (not $last) (ne .Role \"assistant\") }}<|eot_id|>{{ end }}{{ end }}"
        "{{- if and $last (ne .Role \"assistant\") }}<|start_header_id|>assistant<|end_header_id|>\n\n{{ end }}"
        "{{- end }}"),
    "gemma3": (
        "{{- range $i, $_ := .Messages }}"
        "{{- $last := eq (len (slice $.Messages $i)) 1 }}"
        "{{- if eq .Role \"assistant\" }}<start_of_turn>model\n{{ .Content }}"
        "{{ if not $last }}<end_of_turn>\n{{ end }}"
        "{{- else }}<start_of_turn>user\n{{ if and (eq $i 0) $.System }}{{ $.System }}\n\n{{ end }}"
        "{{ .Content }}<end_of_turn>\n{{ if $last }}<start_of_turn>model\n{{ end }}"
        "{{- end }}"
        "{{- end }}"),
    "phi3": (
        "{{- if .System }}<|system|>\n{{ .System }}<|end|>\n{{ end }}"
        "{{- range $i, $_ := .Messages }}"
        "{{- $last := eq (len (slice $.Messages $i)) 1 }}"
        "{{- if ne .Role \"system\" }}<|{{ .Role }}|>\n{{ .Content }}"
        "{{ if or (not $last) (ne .Role \"assistant\") }}<|end|>\n{{ end }}{{ end }}"
        "{{- if and $last (ne .Role \"assistant\") }}<|assistant|>\n{{ end }}"
        "{{- end }}"),
    "plain": "{{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}",
}

_STOPS = {
    "chatml": ["<|im_end|>", "<|im_start|>"],
    "llama3": ["<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"],
    "gemma3": ["<end_of_turn>"],
    "phi3": ["<|end|>", "<|user|>", "<|assistant|>"],
    "plain": [],
}

# (family, markers that must all appear), most specific first.
_MARKERS = [
    ("llama3", ("<|start_header_id|>", "<|eot_id|>")),
    ("gemma3", ("<start_of_turn>", "<end_of_turn>")),
    ("chatml", ("<|im_start|>", "<|im_end|>")),
    ("phi3", ("<|user|>", "<|assistant|>", "<|end|>")),
]


def detect_chat_family(chat_template):
    """'chatml', 'llama3', 'gemma3', 'phi3', or None if unrecognised."""
    if not chat_template:
        return None
    for family, markers in _MARKERS:
        if all(m in chat_template for m in markers):
            return family
    return None


def _quote(s):
    # Modelfile values: double-quoted with backslash escapes.
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def modelfile_text(gguf_name, chat_template=None, stop=None, eos_token=None, system=None, parameters=None):
    """The Modelfile for ``FROM ./<gguf_name>`` (see the module docstring)."""
    family = detect_chat_family(chat_template)
    lines = [f"FROM ./{gguf_name}" if not os.path.isabs(gguf_name) else f"FROM {gguf_name}", ""]
    if family is None:
        if chat_template:
            warnings.warn("chat template not recognised (ChatML, Llama-3, Gemma-3 or Phi-3 expected); the "
                          "Modelfile uses a plain prompt template")
            lines.append("# The model's chat template was not recognised: plain prompt template, no chat format.")
        family_key = "plain"
    else:
        family_key = family
    template = GO_TEMPLATES[family_key]
    lines.append(f'TEMPLATE """{template}"""')
    if system:
        lines.append(f'SYSTEM """{system}"""')
    stops = []
    for s in list(_STOPS[family_key]) + list(stop or []) + ([eos_token] if eos_token else []):
        if s and s not in stops:
            stops.append(s)
    lines.append("")
    for s in stops:
        lines.append(f"PARAMETER stop {_quote(s)}")
    for k, v in (parameters or {}).items():
        lines.append(f"PARAMETER {k} {v}")
    return "\n".join(lines).rstrip("\n") + "\n"


def write_modelfile(gguf_path, chat_template=None, stop=None, out_path=None, eos_token=None, system=None,
                    parameters=None):
    """Writes an Ollama Modelfile beside ``gguf_path`` (or at ``out_path``)
    atomically and returns its path. ``chat_template`` and ``eos_token``
    default to the GGUF file's own tokenizer metadata."""

    gguf_path = os.fspath(gguf_path)
    if chat_template is None or eos_token is None:
        if os.path.isfile(gguf_path):

            with GGUFFile(gguf_path) as f:
                meta = f.metadata
                if chat_template is None:
                    chat_template = meta.get("tokenizer.chat_template")
                if eos_token is None and "tokenizer.ggml.eos_token_id" in meta:
                    tokens = meta.get("tokenizer.ggml.tokens") or []
                    i = meta["tokenizer.ggml.eos_token_id"]
                    eos_token = tokens[i] if 0 <= i < len(tokens) else None
    out_path = os.fspath(out_path) if out_path is not None else os.path.join(
        os.path.dirname(os.path.abspath(gguf_path)), "Modelfile")
    same_dir = os.path.dirname(os.path.abspath(out_path)) == os.path.dirname(os.path.abspath(gguf_path))
    name = os.path.basename(gguf_path) if same_dir else os.path.abspath(gguf_path)
    text = modelfile_text(name, chat_template, stop=stop, eos_token=eos_token, system=system, parameters=parameters)
    write_text_atomic(out_path, text)
    return out_path

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
import re
import warnings
from ..fileio import write_text_atomic
from .reader import GGUFFile

__all__ = ["write_modelfile", "modelfile_text", "modelfile_value", "ollama_reads", "detect_chat_family",
           "GO_TEMPLATES"]

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


# ---- Values as Ollama's Modelfile parser reads them (ollama/parser/parser.go, ParseFile):
# a value runs to the first line end at which it, stripped of surrounding blanks, is complete:
# `"""..."""` (at least 6 characters), `"..."`, or anything not starting with a quote. The quotes
# are cut off and nothing else: there are no escapes. Characters that are not printable (besides
# tab, CR and LF) are dropped. So a value is written in the first form that reads back as itself,
# and refused when none does (a line of it ending in `"""`) or when it holds a dropped character.
_BLANKS = " \t\r\n"
TEXT_FORMS = ('"""{}"""', '"{}"', "{}")  # TEMPLATE, SYSTEM
STOP_FORMS = ('"{}"', '"""{}"""', "{}")  # PARAMETER stop
BARE_FORMS = ("{}", '"{}"', '"""{}"""')  # FROM, other PARAMETERs


def _unquote(s):
    if s.startswith('"""'):
        return s[3:-3] if len(s) >= 6 and s.endswith('"""') else None
    if s.startswith('"'):
        return s[1:-1] if len(s) >= 2 and s.endswith('"') else None
    return s


def ollama_reads(written):
    """The value Ollama's parser reads from the line ``NAME <written>``, or
    None when the value would not end at that line's end."""
    buf = []
    for i, c in enumerate(written + "\n"):
        if c in _BLANKS:
            value = _unquote("".join(buf).strip(_BLANKS))
            if value is None or c in " \t":
                buf.append(c)
                continue
            return value if i == len(written) else None
        if c.isprintable():
            buf.append(c)
    return None


def modelfile_value(field, value, forms=TEXT_FORMS):
    """``value`` written so that Ollama reads it back unchanged (see above);
    a ValueError naming ``field`` when it cannot be."""
    value = str(value)
    for c in value:
        if not (c.isprintable() or c in "\t\r\n"):
            raise ValueError(f"{field} cannot be written into an Ollama Modelfile: it contains the character "
                             f"U+{ord(c):04X}, which Ollama's Modelfile parser drops")
    for form in forms:
        written = form.format(value)
        if ollama_reads(written) == value:
            return written
    # no form fits only when a line of the value ends with """ (blanks aside): that ends every quoting
    raise ValueError(f"{field} cannot be written into an Ollama Modelfile: a line of it ends with '\"\"\"', which "
                     "ends the Modelfile's quoting early (the format has no escape for it)")


def modelfile_text(gguf_name, chat_template=None, stop=None, eos_token=None, system=None, parameters=None):
    """The Modelfile for ``FROM ./<gguf_name>`` (see the module docstring).
    Every value is written so that Ollama reads it back unchanged; one that
    cannot be (see :func:`modelfile_value`) raises a ValueError naming it."""
    family = detect_chat_family(chat_template)
    source = f"./{gguf_name}" if not os.path.isabs(gguf_name) else gguf_name
    lines = [f"FROM {modelfile_value('FROM (the GGUF file name)', source, BARE_FORMS)}", ""]
    if family is None:
        if chat_template:
            warnings.warn("chat template not recognised (ChatML, Llama-3, Gemma-3 or Phi-3 expected); the "
                          "Modelfile uses a plain prompt template")
            lines.append("# The model's chat template was not recognised: plain prompt template, no chat format.")
        family_key = "plain"
    else:
        family_key = family
    template = GO_TEMPLATES[family_key]
    lines.append(f"TEMPLATE {modelfile_value('TEMPLATE', template)}")
    if system:
        lines.append(f"SYSTEM {modelfile_value('SYSTEM (the system prompt)', system)}")
    stops = []
    for s in list(_STOPS[family_key]) + list(stop or []) + ([eos_token] if eos_token else []):
        if s and s not in stops:
            stops.append(s)
    lines.append("")
    for s in stops:
        lines.append(f"PARAMETER stop {modelfile_value(f'PARAMETER stop {s!r}', s, STOP_FORMS)}")
    for k, v in (parameters or {}).items():
        if not re.fullmatch(r"[A-Za-z0-9_]+", str(k)):  # the parser's parameter names
            raise ValueError(f"PARAMETER name {k!r} cannot be written into an Ollama Modelfile (letters, digits "
                             "and '_' only)")
        lines.append(f"PARAMETER {k} {modelfile_value(f'PARAMETER {k}', v, BARE_FORMS)}")
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

"""`peftcpp fuse`, `peftcpp convert` (fuse + GGUF f16 + quantize + Ollama
Modelfile: DonkeyTune's convert-to-gguf.sh), `peftcpp quantize` and
`peftcpp export-adapter` (the adapter alone, for llama.cpp's --lora)."""
import os

from . import console
from .common import (TRAIN_RECORD, CLIError, adapter_base, adapter_config, check_adapter_dir, check_finished,
                     read_record)

def quant_types():
    """llama-quantize's names for the file types peftcpp writes."""
    from ...gguf.file_quantization import FILE_TYPES
    return tuple(FILE_TYPES)


def add_parsers(sub):
    f = sub.add_parser("fuse", help="merge the adapter into its base model (a Hugging Face folder)")
    _fuse_args(f)
    console.add_quiet_option(f)
    f.set_defaults(func=run_fuse)
    c = sub.add_parser("convert", help="fuse, then write GGUF f16 and a quantized GGUF with an Ollama Modelfile")
    _fuse_args(c)
    c.add_argument("--quantize", "-q", default="Q4_K_M", help="quantization type (default: Q4_K_M)")
    c.add_argument("--gguf-dir", default="output/gguf", help="where the GGUF files go (default: output/gguf)")
    c.add_argument("--name", default=None,
                   help="file name stem (default: the base model's name, as <Model>-finetuned-<TYPE>.gguf)")
    c.add_argument("--system-prompt", default=None,
                   help="the Modelfile's SYSTEM (default: the system prompt the adapter was trained with; '' for none)")
    console.add_quiet_option(c)
    c.set_defaults(func=run_convert)
    q = sub.add_parser("quantize", help="quantize a GGUF file (llama-quantize)")
    q.add_argument("input", metavar="IN", help="GGUF file (f16 / bf16 / f32)")
    q.add_argument("output", metavar="OUT", help="GGUF file to write")
    q.add_argument("type", metavar="TYPE", help="quantization type, e.g. Q4_K_M, Q5_K_M, Q8_0")
    console.add_quiet_option(q)
    q.set_defaults(func=run_quantize)
    e = sub.add_parser("export-adapter", help="write the LoRA adapter as a GGUF adapter (llama.cpp --lora)")
    e.add_argument("--model", default=None, help="base model (default: the one the adapter was trained on)")
    e.add_argument("--adapter-path", default="output/adapters", help="adapter folder (default: output/adapters)")
    e.add_argument("--out", default=None,
                   help="GGUF file to write (default: output/gguf/<Model>-finetuned-lora-<outtype>.gguf)")
    e.add_argument("--outtype", default="f32", choices=["f32", "f16", "bf16", "q8_0"],
                   help="tensor type of lora_a/lora_b (default: f32, as llama.cpp's converter)")
    console.add_quiet_option(e)
    e.set_defaults(func=run_export_adapter)


def _fuse_args(p):
    p.add_argument("--model", default=None, help="base model (default: the one the adapter was trained on)")
    p.add_argument("--adapter-path", default="output/adapters", help="adapter folder (default: output/adapters)")
    p.add_argument("--save-path", default="output/fused_model", help="fused model folder (default: "
                                                                       "output/fused_model)")


def quant_type(name):
    t = str(name).upper()
    types = quant_types()
    if t not in types:
        raise CLIError(f"unknown quantization type '{name}'; supported: {', '.join(types)}")
    return t


def _fuse(args):
    from ...export import fuse
    from .common import load_adapter_model
    d = check_adapter_dir(args.adapter_path)
    check_finished(d)
    if not os.path.isfile(os.path.join(d, "adapter_config.json")):
        raise CLIError(f"{d} holds a fully fine-tuned model, not an adapter; it needs no fusing")
    from ...fileio import folder_lock
    with folder_lock(args.save_path, "--save-path"):  # held until the tokenizer files are in too
        pm, _, base = load_adapter_model(d, args.model)  # errors (wrong base, missing model) in one sentence
        fuse(pm, args.save_path)
        # the tokenizer the adapter was trained with, when it was saved with it
        if os.path.isfile(os.path.join(d, "tokenizer.json")):
            from ...tokenization import AutoTokenizer
            AutoTokenizer.from_pretrained(d).save_pretrained(args.save_path)
    print(f"Fused {d} into {args.save_path}")
    return base


def run_fuse(args):
    _fuse(args)


def model_stem(adapter_dir, base):
    """DonkeyTune's file stem: the base model's name (its last path part)."""
    from ..default_model import DEFAULT_MODEL_NAME
    if base is None or read_record(adapter_dir).get("model", "") is None:
        return DEFAULT_MODEL_NAME
    return os.path.basename(os.path.normpath(str(base)))


def run_convert(args):
    from ...fileio import folder_lock
    with folder_lock(args.gguf_dir, "--gguf-dir"):
        _convert(args)


def _modelfile_system(args):
    """The Modelfile's SYSTEM, checked before any work: one Ollama cannot read
    back unchanged stops the command at once."""
    from ...gguf.modelfile import modelfile_value
    if args.system_prompt is not None:
        system, where = args.system_prompt, "--system-prompt"
    else:
        system = read_record(args.adapter_path).get("system_prompt")
        where = f"the system prompt recorded in {os.path.join(args.adapter_path, TRAIN_RECORD)}"
    if not system:
        return None
    if not isinstance(system, str):
        raise CLIError(f"{where} is not text ({type(system).__name__}); pass --system-prompt")
    try:
        modelfile_value("SYSTEM", system)
    except ValueError as e:
        raise CLIError(f"{where}: {e}; pass --system-prompt with another text, or --system-prompt '' for none") \
            from None
    return system


def _convert(args):
    from .common import is_full_model_dir
    qt = quant_type(args.quantize)
    d = check_adapter_dir(args.adapter_path)
    check_finished(d)
    system = _modelfile_system(args)
    if is_full_model_dir(d):  # --fine-tune-type full: the folder is already the whole model
        rec = read_record(d)
        stem = args.name or model_stem(d, rec.get("model"))
        source = d
    else:
        base = args.model if args.model is not None else adapter_base(args.adapter_path)
        stem = args.name or model_stem(args.adapter_path, base)
        _fuse(args)
        source = args.save_path
    from ... import gguf
    os.makedirs(args.gguf_dir, exist_ok=True)
    f16 = os.path.join(args.gguf_dir, f"{stem}-finetuned-f16.gguf")
    gguf.convert(source, f16, outtype="f16", progress=console.tensor_progress("GGUF f16"))
    print(f"Wrote {f16} ({os.path.getsize(f16) / 1e6:.1f} MB)")
    out = f16
    if qt != "F16":
        out = os.path.join(args.gguf_dir, f"{stem}-finetuned-{qt}.gguf")
        gguf.quantize(f16, out, qt, progress=console.tensor_progress(f"quantize {qt}"))
        print(f"Wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB)")
    modelfile = os.path.join(args.gguf_dir, "Modelfile")
    gguf.write_modelfile(out, out_path=modelfile, system=system)
    print(f"Wrote {modelfile} (ollama create {stem.lower()}-finetuned -f {modelfile})")


def run_quantize(args):
    qt = quant_type(args.type)
    if not os.path.isfile(args.input):
        raise CLIError(f"GGUF file not found: {args.input}")
    from ... import gguf
    gguf.quantize(args.input, args.output, qt, progress=console.tensor_progress(f"quantize {qt}"))
    print(f"Wrote {args.output} ({qt}, {os.path.getsize(args.output) / 1e6:.1f} MB)")


def run_export_adapter(args):
    from .common import is_full_model_dir
    d = check_adapter_dir(args.adapter_path)
    check_finished(d)
    if is_full_model_dir(d):
        raise CLIError(f"{d} holds a fully fine-tuned model, not an adapter; use `peftcpp convert`")
    config = adapter_config(d)  # checked before gguf.export_adapter reads it
    base = args.model if args.model is not None else adapter_base(d, config)
    stem = model_stem(d, base)
    if base is None:
        from ..default_model import default_model_path
        base = default_model_path()
    if not os.path.isdir(base):  # a hub id: its config is what the exporter needs
        from ...models import AutoConfig
        base = AutoConfig.from_pretrained(base).to_dict()
    out = args.out or os.path.join("output", "gguf", f"{stem}-finetuned-lora-{args.outtype}.gguf")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    from ... import gguf
    gguf.export_adapter(d, out, base_model=base, outtype=args.outtype,
                        progress=console.tensor_progress(f"GGUF adapter {args.outtype}"))
    print(f"Wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB): llama-cli -m <base>.gguf --lora {out}")

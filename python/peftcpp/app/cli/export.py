"""`peftcpp fuse`, `peftcpp convert` (fuse + GGUF f16 + quantize + Ollama
Modelfile: DonkeyTune's convert-to-gguf.sh, then the agreement report of the
final GGUF against base + adapter: report.json), `peftcpp quantize` and
`peftcpp export-adapter` (the adapter alone, for llama.cpp's --lora)."""
import os

from . import console
from .common import (TRAIN_RECORD, CLIError, adapter_base, adapter_config, check_adapter_dir, check_finished,
                     read_record)

REPORT_PROMPTS = 8  # the agreement report's prompts; `peftcpp train` records as many validation prompts
REPORT_FILE = "report.json"  # in --gguf-dir


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
    _report_args(c)
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


def _report_args(p):
    from ...export.agreement import DEFAULT_THRESHOLD
    p.add_argument("--report-prompts", type=int, default=REPORT_PROMPTS, metavar="N",
                   help="prompts the agreement report answers: the validation prompts recorded at training "
                        f"(up to {REPORT_PROMPTS}), else built-in ones (default: {REPORT_PROMPTS})")
    p.add_argument("--report-data", default=None, metavar="DIR",
                   help="take the agreement report's prompts from DIR/valid.jsonl instead")
    p.add_argument("--report-max-tokens", type=int, default=64, metavar="N",
                   help="longest answer the agreement report compares, in tokens (default: 64)")
    p.add_argument("--report-threshold", type=float, default=DEFAULT_THRESHOLD, metavar="X",
                   help="top-1 agreement below which the GGUF is flagged with a warning "
                        f"(default: {DEFAULT_THRESHOLD})")
    p.add_argument("--no-report", action="store_true",
                   help="skip the agreement report (<--gguf-dir>/report.json)")


def _check_report_args(args):
    """The report's options, checked before any work."""
    if args.no_report:
        return
    if args.report_prompts < 1:
        raise CLIError(f"--report-prompts must be at least 1, got {args.report_prompts}")
    if args.report_max_tokens < 1:
        raise CLIError(f"--report-max-tokens must be at least 1, got {args.report_max_tokens}")
    if not 0 <= args.report_threshold <= 1:
        raise CLIError(f"--report-threshold must be between 0 and 1, got {args.report_threshold}")
    if args.report_data is not None and not os.path.isfile(os.path.join(args.report_data, "valid.jsonl")):
        raise CLIError(f"--report-data {args.report_data}: no valid.jsonl there to take the report's prompts from")


def _report_prompts(args, adapter_dir):
    """--report-data's validation prompts, else those recorded at training,
    else `peftcpp test`'s built-in ones (a data folder named by the record is
    not followed: the record is a file anyone may have written)."""
    from .generate import DEFAULT_TEST_PROMPTS, valid_prompts
    n = args.report_prompts
    if args.report_data is not None:
        found = valid_prompts(args.report_data, n)
    else:
        recorded = read_record(adapter_dir).get("test_prompts")
        ok = isinstance(recorded, list) and all(isinstance(p, str) and p.strip() for p in recorded)
        found = recorded[:n] if ok else []
    return found or list(DEFAULT_TEST_PROMPTS[:n])


def _agreement_report(args, gguf_file, adapter_dir):
    """report.json beside the GGUF: the file against base + adapter (see
    peftcpp.export.agreement); a loud warning when it does not pass."""
    from ...export.agreement import gguf_agreement, report_warning
    from ...fileio import write_json_atomic
    from ...gguf import GGUFImportError
    from .common import load_adapter_model, model_label
    prompts = _report_prompts(args, adapter_dir)
    system = read_record(adapter_dir).get("system_prompt")
    system = system if isinstance(system, str) and system else None
    import gc
    gc.collect()  # the merged model of the fuse step (modules refer to each other) goes before the reference comes
    model, tok, base = load_adapter_model(adapter_dir, args.model)
    reference = f"{model_label(base)} + adapter {adapter_dir}" if base != adapter_dir else adapter_dir
    console.info(f"Checking {gguf_file} against {reference} on {len(prompts)} prompt{'s' if len(prompts) > 1 else ''}...")
    conversations = [([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": p}]
                     for p in prompts]
    held = [model]  # handed over as a loader: the reference is freed before the GGUF is read (half the peak)
    del model
    try:
        report = gguf_agreement(held.pop, tok, gguf_file, conversations, max_new_tokens=args.report_max_tokens,
                                threshold=args.report_threshold, work_dir=args.gguf_dir)
    except GGUFImportError as e:  # an architecture peftcpp writes but does not read (gpt2, phi3, smollm3)
        console.warn(f"warning: no agreement report: {e}")
        return
    except ValueError as e:
        raise CLIError(f"agreement report of {gguf_file}: {e}") from None
    report = {"reference": reference, "system_prompt": system, **report}
    path = os.path.join(args.gguf_dir, REPORT_FILE)
    write_json_atomic(path, report)
    verdict = "passed" if report["passed"] else "FLAGGED"
    print(f"Agreement: top-1 {report['top1_agreement']:.3f} over {report['answer_tokens']} answer tokens, mean KL "
          f"{_kl(report['mean_kl'])} nats/token, threshold {report['threshold']:.2f}: {verdict} "
          f"({report['seconds']:.0f} s)")
    if report["base_top1_agreement"] is not None:
        console.info(f"  (the base model without the adapter: top-1 {report['base_top1_agreement']:.3f}, mean KL "
              f"{_kl(report['base_mean_kl'])}: what a GGUF that lost the adapter would score)")
    for note in report["notes"]:
        print(f"Note: {note}")
    print(f"Wrote {path}")
    warning = report_warning(report, reference)
    if warning:
        console.warn(warning)


def _kl(value):
    return "infinite" if value is None else f"{value:.4f}"


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
    _check_report_args(args)
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
    report = os.path.join(args.gguf_dir, REPORT_FILE)
    if os.path.isfile(report):  # it describes the files about to be replaced
        os.remove(report)
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
    if not args.no_report:
        _agreement_report(args, out, d)


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

"""The `peftcpp` command line: DonkeyTune's pipeline (train, merge-data,
fuse, convert, quantize, generate, test, chat, info, clean-output) with
mlx-lm's option names, plus import-gguf.

Errors are one clear sentence and a non-zero exit code; --debug shows the
traceback. What is printed where (results, progress lines and bars, --quiet)
is console.py's policy."""
import argparse
import signal
import sys
import threading

from . import console
from .common import CLIError

__all__ = ["build_parser", "main", "CLIError"]


def _import_gguf(args):
    import os
    from ...gguf import import_gguf
    if not os.path.isfile(args.file):
        raise FileNotFoundError(f"{args.file}: no such GGUF file")
    if os.path.isdir(args.out_dir) and os.listdir(args.out_dir) and not args.force:
        raise ValueError(f"{args.out_dir} exists and is not empty (use --force to overwrite)")
    out = import_gguf(args.file, args.out_dir)
    print(f"imported {args.file} -> {out}")


def build_parser():
    from . import data, export, generate, info, train
    p = argparse.ArgumentParser(prog="peftcpp", description="Parameter-efficient fine-tuning on CPUs: "
                                "train -> fuse -> convert (GGUF) -> quantize, and try the result")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    p.add_argument("--quiet", action="store_true", help=console.QUIET_HELP)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train.add_parser(sub)
    data.add_parser(sub)
    export.add_parsers(sub)
    generate.add_parsers(sub)
    info.add_parsers(sub)
    g = sub.add_parser("import-gguf", help="convert a GGUF model file into a Hugging Face folder")
    g.add_argument("file", help="the .gguf file")
    g.add_argument("out_dir", help="the folder to write (config.json, model.safetensors, tokenizer files)")
    g.add_argument("--force", action="store_true", help="overwrite a non-empty OUT_DIR")
    console.add_quiet_option(g)
    g.set_defaults(func=_import_gguf)
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a job scheduler, `docker stop`), raised where Python
    next runs, so that a command stops as on Ctrl-C: temporary files removed,
    the run recorded as interrupted, the folder lock released."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _show_warning(message, category, filename, lineno, file=None, line=None):
    # library warnings as one plain line, not Python's "file:line: UserWarning:" form
    if file is None:
        console.warn(f"warning: {message}")
    else:
        print(f"warning: {message}", file=file)


def _one_sentence(e):
    text = str(e).strip()
    if isinstance(e, KeyError) and text.startswith("'"):
        text = f"missing key {text}"
    if not text:
        text = type(e).__name__
    lines = text.splitlines()
    return lines[0] if len(lines) == 1 else lines[0].rstrip(":") + ": " + lines[1].strip()


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:  # accepted anywhere on the line, not only before the command
        argv = ["--debug"] + [a for a in argv if a != "--debug"]
    try:
        args = build_parser().parse_args(argv)
    except CLIError as e:  # a parser module failing to import would be a bug; parse errors exit 2 themselves
        print(f"peftcpp: error: {e}", file=sys.stderr)
        return 2
    import warnings
    if not debug:
        warnings.showwarning = _show_warning
    on_main_thread = threading.current_thread() is threading.main_thread()
    old_handler = signal.signal(signal.SIGTERM, _on_sigterm) if on_main_thread else None
    try:
        with console.command_output(args.quiet):
            return _run(args)
    finally:
        if on_main_thread:  # main() may be called in-process (tests, notebooks)
            signal.signal(signal.SIGTERM, old_handler)


def _run(args):
    try:
        args.func(args)
    except KeyboardInterrupt as e:
        terminated = isinstance(e, Terminated)
        print("terminated" if terminated else "interrupted", file=sys.stderr)
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    except BrokenPipeError:  # `peftcpp test | head`
        return 0
    except Exception as e:  # noqa: BLE001 - the CLI's contract: one sentence, no traceback
        if args.debug:
            raise
        print(f"peftcpp {args.command}: error: {_one_sentence(e)}", file=sys.stderr)
        for line in getattr(e, "details", ()):
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0

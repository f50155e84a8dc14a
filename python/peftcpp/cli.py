"""The `peftcpp` command line. Errors are one clear sentence and a non-zero
exit code; --debug shows the traceback."""
import argparse
import sys


def _import_gguf(args):
    import os
    from .gguf_import import import_gguf
    if not os.path.isfile(args.file):
        raise FileNotFoundError(f"{args.file}: no such GGUF file")
    if os.path.isdir(args.out_dir) and os.listdir(args.out_dir) and not args.force:
        raise ValueError(f"{args.out_dir} exists and is not empty (use --force to overwrite)")
    out = import_gguf(args.file, args.out_dir)
    print(f"imported {args.file} -> {out}")


def build_parser():
    p = argparse.ArgumentParser(prog="peftcpp", description="Parameter-efficient fine-tuning on CPUs")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("import-gguf", help="convert a GGUF model file into a Hugging Face folder")
    g.add_argument("file", help="the .gguf file")
    g.add_argument("out_dir", help="the folder to write (config.json, model.safetensors, tokenizer files)")
    g.add_argument("--force", action="store_true", help="overwrite a non-empty OUT_DIR")
    g.set_defaults(func=_import_gguf)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI's contract: one sentence, no traceback
        if args.debug:
            raise
        print(f"peftcpp {args.command}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

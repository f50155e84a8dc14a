"""`peftcpp merge-data DIR... --out DIR`: DonkeyTune's merge-datasets.sh."""
from . import console
from .common import CLIError, dataset_error
from .config import TRAIN_DEFAULTS


def add_parser(sub):
    p = sub.add_parser("merge-data", help="merge the train/valid/test files of several dataset folders",
                       description="Concatenates train.jsonl, valid.jsonl (and test.jsonl) of several dataset "
                                   "folders into one, validating every line and dropping exact duplicates.")
    p.add_argument("inputs", nargs="+", metavar="DIR", help="dataset folders")
    p.add_argument("--out", default="./data", help="output folder (default: ./data)")
    p.add_argument("--skip-invalid", action="store_true", help="skip invalid lines instead of stopping")
    p.add_argument("--max-line-bytes", type=int, default=TRAIN_DEFAULTS["max_line_bytes"],
                   help="lines longer than this many bytes are invalid, refused before parsing (default: "
                        f"{TRAIN_DEFAULTS['max_line_bytes']}, 16 MiB)")
    p.add_argument("--max-messages", type=int, default=TRAIN_DEFAULTS["max_messages"],
                   help=f"chat examples with more messages are invalid (default: {TRAIN_DEFAULTS['max_messages']})")
    console.add_quiet_option(p)
    p.set_defaults(func=run)
    return p


def run(args):
    import os
    from ...data import DatasetError, merge_datasets
    out = os.path.abspath(args.out)
    for d in args.inputs:
        if os.path.abspath(d) == out:
            raise CLIError(f"--out {args.out} is also an input; write the merged dataset to another folder")
    try:
        counts = merge_datasets(args.inputs, args.out, skip_invalid=args.skip_invalid,
                                max_line_bytes=args.max_line_bytes, max_messages=args.max_messages)
    except DatasetError as e:
        raise dataset_error(e, args.skip_invalid) from None
    except ValueError as e:  # a limit below 1
        raise CLIError(str(e).splitlines()[0]) from None
    for split, c in counts.items():
        console.info(f"{split}.jsonl: {c['written']} examples written ({c['read']} read, {c['duplicates']} duplicates, "
              f"{c['invalid']} invalid)")
    print(f"Merged {len(args.inputs)} dataset(s) into {args.out}")

"""`peftcpp merge-data DIR... --out DIR`: DonkeyTune's merge-datasets.sh."""
from .common import CLIError


def add_parser(sub):
    p = sub.add_parser("merge-data", help="merge the train/valid/test files of several dataset folders",
                       description="Concatenates train.jsonl, valid.jsonl (and test.jsonl) of several dataset "
                                   "folders into one, validating every line and dropping exact duplicates.")
    p.add_argument("inputs", nargs="+", metavar="DIR", help="dataset folders")
    p.add_argument("--out", default="./data", help="output folder (default: ./data)")
    p.add_argument("--skip-invalid", action="store_true", help="skip invalid lines instead of stopping")
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
        counts = merge_datasets(args.inputs, args.out, skip_invalid=args.skip_invalid)
    except DatasetError as e:
        problems = getattr(e, "problems", None) or []
        if problems:
            raise CLIError(f"invalid dataset line {problems[0]}" + (f" (and {len(problems) - 1} more)"
                                                                     if len(problems) > 1 else "")
                           + "; fix it or pass --skip-invalid") from None
        raise CLIError(str(e).splitlines()[0]) from None
    for split, c in counts.items():
        print(f"{split}.jsonl: {c['written']} examples written ({c['read']} read, {c['duplicates']} duplicates, "
              f"{c['invalid']} invalid)")
    print(f"Merged {len(args.inputs)} dataset(s) into {args.out}")

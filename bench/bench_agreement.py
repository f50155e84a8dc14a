"""The figures behind `peftcpp convert`'s agreement threshold: how closely GGUF
files of a trained adapter (F16, Q8_0, Q4_K_M down to Q2_K) and of the base alone
(the adapter lost) agree with base + adapter, on the same prompts and answers
as the report (peftcpp.export.agreement.gguf_agreement).

Train an adapter on the default model first, e.g.
    python3 -m peftcpp train --data data --iters 100 --learning-rate 2e-4 --adapter-path /tmp/a/adapters
then
    PEFTCPP_CORE_DIR=build/cpp PYTHONPATH=python python3 bench/bench_agreement.py --adapter-path /tmp/a/adapters \
        --work /tmp/a/bench [--out bench/RESULTS.md]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

QUANTS = ("Q8_0", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K")  # the default, and the lossiest types a user might pick
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def main():
    from _common import add_common_args, cpu_name, publish, utc_now
    ap = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    ap.add_argument("--adapter-path", required=True)
    ap.add_argument("--work", required=True, help="folder for the fused model and the GGUF files")
    ap.add_argument("--data", default=os.path.join(ROOT, "data"), help="prompts from DIR/valid.jsonl")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()

    import peftcpp
    from peftcpp import gguf
    from peftcpp.app.cli.common import load_adapter_model, read_record
    from peftcpp.app.cli.generate import valid_prompts
    from peftcpp.app.default_model import default_model_path
    from peftcpp.export import fuse
    from peftcpp.export.agreement import DEFAULT_THRESHOLD, gguf_agreement

    os.makedirs(args.work, exist_ok=True)
    w = lambda name: os.path.join(args.work, name)  # noqa: E731
    system = read_record(args.adapter_path).get("system_prompt")
    prompts = valid_prompts(args.data, args.prompts)
    convs = [([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": p}]
             for p in prompts]

    t = time.perf_counter()
    model, tok, _ = load_adapter_model(args.adapter_path)
    fuse(model, w("fused"))
    tok.save_pretrained(w("fused"))
    gguf.convert(w("fused"), w("tuned-F16.gguf"), outtype="f16", progress=False)
    for qt in QUANTS:
        gguf.quantize(w("tuned-F16.gguf"), w(f"tuned-{qt}.gguf"), qt, progress=False)
    gguf.convert(default_model_path(), w("base-F16.gguf"), outtype="f16", progress=False)
    gguf.quantize(w("base-F16.gguf"), w("base-Q4_K_M.gguf"), "Q4_K_M", progress=False)
    print(f"files written in {time.perf_counter() - t:.0f} s", flush=True)
    files = [(f"adapter fused, {qt}", f"tuned-{qt}.gguf") for qt in ("F16",) + QUANTS]
    files += [("base alone (adapter lost), F16", "base-F16.gguf"), ("base alone (adapter lost), Q4_K_M",
                                                                    "base-Q4_K_M.gguf")]
    rows = []
    for label, name in files:
        ref, tok, _ = load_adapter_model(args.adapter_path)  # fresh: unmerged
        r = gguf_agreement(ref, tok, w(name), convs, max_new_tokens=args.max_tokens)
        rows.append(f"| {label} | {r['top1_agreement']:.3f} | {r['mean_kl']:.4f} | {r['max_kl']:.2f} | "
                    f"{r['answer_tokens']} | {'yes' if r['passed'] else 'no'} | {r['seconds']:.1f} |")
        print(rows[-1], flush=True)
    rec = read_record(args.adapter_path)
    threads = peftcpp.get_num_threads()
    lines = [f"## {utc_now()} — GGUF agreement with base + adapter, {cpu_name()}, {threads} threads",
             "",
             f"SmolLM2-135M-Instruct + a LoRA adapter trained {rec.get('iters')} iterations on the sample dataset "
             f"(`peftcpp train --data data --iters {rec.get('iters')} --learning-rate "
             f"{rec.get('settings', {}).get('learning_rate')}`); {len(prompts)} validation prompts, greedy answers of "
             f"at most {args.max_tokens} tokens (`bench/bench_agreement.py`); the report's default threshold is "
             f"{DEFAULT_THRESHOLD}.",
             "",
             "| GGUF | top-1 agreement | mean KL (nats/token) | max KL | answer tokens | passes | report s |",
             "|---|---|---|---|---|---|---|", *rows]
    publish(lines, args.out)


if __name__ == "__main__":
    main()

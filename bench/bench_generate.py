"""Generation benchmark: greedy decoding tokens/s, peftcpp's generate against
transformers' generate on the same SmolLM2-135M-shaped Llama (random
weights, float32, saved once with save_pretrained), same thread count, each
implementation in its own subprocess.

Prompt tok/s = prompt length / time of generate(max_new_tokens=1) (prefill
plus one step); generation tok/s = (new - 1) / (time of generate(new) - that
time): the per-token decode rate with the KV cache. Median of --reps runs
after one warm-up; both sides must produce the same tokens.

    python bench/bench_generate.py [--threads N] [--prompt 32] [--new 64] [--out bench/RESULTS.md]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import add_common_args, cpu_name, publish, run_child as run_child_process, utc_now  # noqa: E402

SHAPE = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
             num_key_value_heads=3, tie_word_embeddings=True, max_position_embeddings=2048)


def build_model(path, layers=0):
    import torch
    import transformers
    torch.manual_seed(0)
    shape = dict(SHAPE, num_hidden_layers=layers or SHAPE["num_hidden_layers"])
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**shape)).to(torch.float32).eval()
    model.save_pretrained(path)


def child(a):
    import resource
    import numpy as np
    ids = np.random.default_rng(0).integers(0, SHAPE["vocab_size"], size=(1, a.prompt))
    if a.impl == "transformers":
        import torch
        import transformers
        torch.set_num_threads(a.threads)
        model = transformers.AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32).eval()
        x = torch.tensor(ids)

        def gen(n):
            with torch.no_grad():
                return model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n, do_sample=False,
                                      eos_token_id=None, pad_token_id=0).numpy()
    else:
        import peftcpp
        from peftcpp.models import AutoModelForCausalLM
        peftcpp.set_num_threads(a.threads)
        model = AutoModelForCausalLM.from_pretrained(a.model)

        def gen(n):
            return model.generate(ids, max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0).numpy()

    def timed(n):
        t0 = time.perf_counter()
        out = gen(n)
        return time.perf_counter() - t0, out

    gen(4)  # warm-up
    t1 = sorted(timed(1)[0] for _ in range(a.reps))[a.reps // 2]
    runs = [timed(a.new) for _ in range(a.reps)]
    tn = sorted(r[0] for r in runs)[a.reps // 2]
    out = runs[0][1]
    res = dict(impl=a.impl, prefill_s=t1, total_s=tn, prompt_tps=a.prompt / t1,
               gen_tps=(a.new - 1) / max(tn - t1, 1e-9), tokens=out[0, a.prompt:].tolist(),
               max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print("RESULT " + json.dumps(res))


def run_child(impl, a, model_dir):
    args = ["--impl", impl, "--model", model_dir, "--threads", str(a.threads), "--prompt", str(a.prompt),
            "--new", str(a.new), "--reps", str(a.reps)]
    return run_child_process(__file__, args, a.threads, impl)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--layers", type=int, default=0, help="override the layer count (0: SmolLM2-135M's 30)")
    ap.add_argument("--build", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.build:
        return build_model(a.build, a.layers)
    if a.child:
        return child(a)

    with tempfile.TemporaryDirectory() as model_dir:
        # built in its own process: Linux keeps a parent's max RSS across fork+exec, so building here
        # would inflate both children's peak RSS
        subprocess.run([sys.executable, __file__, "--build", model_dir, "--layers", str(a.layers)], check=True,
                       capture_output=True, env=dict(os.environ, OMP_NUM_THREADS=str(a.threads)))
        load = os.getloadavg()[0]
        rows = {}
        for impl in ("peftcpp", "transformers"):
            r = run_child(impl, a, model_dir)
            rows[impl] = r
            print(f"{impl:12s} prompt {r['prompt_tps']:8.1f} tok/s  generation {r['gen_tps']:7.1f} tok/s  "
                  f"max RSS {r['max_rss_mb']:.0f} MB", flush=True)
    import torch
    import transformers
    same = rows["peftcpp"]["tokens"] == rows["transformers"]["tokens"]
    t = rows["transformers"]
    lines = [f"## {utc_now()} — greedy generation, {cpu_name()}, {a.threads} threads", "",
             f"torch {torch.__version__}, transformers {transformers.__version__}; SmolLM2-135M-shaped Llama "
             f"({a.layers or 30} layers, random weights, float32), batch 1, prompt {a.prompt} tokens, {a.new} new "
             f"tokens, KV cache; median of {a.reps} runs after a warm-up; same tokens from both: "
             f"{'yes' if same else 'NO'}; 1-min load average before the run {load:.1f}.", "",
             "| impl | prompt tok/s | generation tok/s | generation vs transformers | peak RSS |",
             "|---|---|---|---|---|"]
    for impl in ("peftcpp", "transformers"):
        r = rows[impl]
        lines.append(f"| {impl} | {r['prompt_tps']:.1f} | {r['gen_tps']:.1f} | {r['gen_tps'] / t['gen_tps']:.2f}× | "
                     f"{r['max_rss_mb']:.0f} MB |")
    publish(lines, a.out, blank_before=True)


if __name__ == "__main__":
    main()

"""Engine benchmark: the fused LoRA linear and a whole LoRA training step on a
SmolLM2-135M-shaped model, peftcpp against PyTorch in the same run, each as
achieved FLOP/s and as a fraction of OpenBLAS's own cblas_sgemm rate on the
same GEMM shapes. Every measurement runs in a fresh subprocess so peak memory
(max RSS) is per implementation.

    python bench/bench_engine.py [--threads N] [--out bench/RESULTS.md]
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import add_common_args, cpu_name, publish, run_child as run_child_process, utc_now  # noqa: E402


def child(args):
    """Runs one measurement in this process and prints a JSON line."""
    import resource
    import numpy as np
    sys.path.insert(0, HERE)
    from llama_twin import Shape, make_model, step_flops

    if args.impl == "torch":
        import torch as lib
        lib.set_num_threads(args.threads)
    else:
        import peftcpp as lib
        lib.set_num_threads(args.threads)
    lib.manual_seed(0)
    rng = np.random.default_rng(0)
    out = {"impl": args.impl, "what": args.what}

    if args.what == "lora_linear":
        M, K, N, r = args.tokens, 576, 1536, 8
        x = lib.tensor(rng.standard_normal((M, K)).astype(np.float32), requires_grad=True)
        W = lib.tensor(rng.standard_normal((N, K)).astype(np.float32) * 0.02)
        A = lib.tensor(rng.standard_normal((r, K)).astype(np.float32) * 0.02, requires_grad=True)
        B = lib.tensor(rng.standard_normal((N, r)).astype(np.float32) * 0.02, requires_grad=True)
        g = lib.tensor(rng.standard_normal((M, N)).astype(np.float32))

        def run():
            if args.impl == "torch":
                y = lib.nn.functional.linear(x, W) + 2.0 * ((x @ A.T) @ B.T)
            else:
                y = lib.nn.functional.lora_linear(x, W, None, A, B, 2.0)
            y.backward(g)
        run()
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        sec = min(times)  # like the sgemm reference: the fastest run
        gemms = [(M, N, K, False, True), (M, K, N, False, False), (M, r, K, False, True), (M, N, r, False, True),
                 (M, r, N, False, False), (N, r, M, True, False), (r, K, M, True, False), (M, K, r, False, False)]
        out.update(seconds=sec, flops=sum(2 * m * n * k for m, n, k, _, _ in gemms), gemms=gemms)
    else:
        cfg = Shape()
        if args.layers:
            cfg.layers = args.layers
        model = make_model(lib, cfg)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = lib.optim.AdamW(params, lr=1e-4)
        ids = rng.integers(0, cfg.vocab, size=(args.batch, args.seq))
        x, y = lib.tensor(ids), lib.tensor(np.roll(ids, -1, axis=1))

        def step():
            loss = model(x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return float(loss.item())
        step()
        times = []
        for _ in range(args.steps):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        sec = float(np.median(times))
        flops, gemms = step_flops(cfg, args.batch, args.seq)
        out.update(seconds=sec, flops=flops, gemms=gemms, tokens=args.batch * args.seq,
                   trainable=sum(p.numel() for p in params))
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.impl == "peftcpp":
        # the raw sgemm rate on exactly these shapes, same threads, same process
        uniq = {}
        for m, n, k, ta, tb in out["gemms"]:
            uniq[(m, n, k, ta, tb)] = uniq.get((m, n, k, ta, tb), 0) + 1
        t = 0.0
        for (m, n, k, ta, tb), cnt in uniq.items():
            t += cnt * lib._core.sgemm_seconds(m, n, k, ta, tb, 8)
        gemm_flops = sum(2 * m * n * k for m, n, k, _, _ in out["gemms"])
        out["sgemm_gflops"] = gemm_flops / t / 1e9
        out["gemm_flops"] = gemm_flops
        out["peak_tensor_mb"] = lib.memory_stats()["peak"] / 2 ** 20
    del out["gemms"]
    print("RESULT " + json.dumps(out))


def run_child(impl, what, a):
    args = ["--impl", impl, "--what", what, "--threads", str(a.threads), "--batch", str(a.batch), "--seq", str(a.seq),
            "--steps", str(a.steps), "--tokens", str(a.tokens)] + (["--layers", str(a.layers)] if a.layers else [])
    return run_child_process(__file__, args, a.threads, f"{impl}/{what}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--layers", type=int, default=0, help="override the layer count (0: SmolLM2-135M's 30)")
    ap.add_argument("--tokens", type=int, default=2048, help="rows of the fused LoRA linear benchmark")
    ap.add_argument("--what", default="step", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a)

    rows = {}
    for what in ("lora_linear", "step"):
        for impl in ("peftcpp", "torch"):
            r = run_child(impl, what, a)
            rows[(impl, what)] = r
            print(f"{what:12s} {impl:8s} {r['seconds'] * 1000:9.1f} ms  {r['flops'] / r['seconds'] / 1e9:7.1f} GFLOP/s"
                  f"  max RSS {r['max_rss_mb']:.0f} MB", flush=True)
    import torch
    lines = []
    lines.append(f"## {utc_now()} — {cpu_name()}, {a.threads} threads")
    lines.append("")
    lines.append(f"torch {torch.__version__}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; "
                 f"step = batch {a.batch} × seq {a.seq}, {a.layers or 30} layers, LoRA r=8 on all linear layers, "
                 f"median of {a.steps} steps after one warm-up.")
    lines.append("")
    lines.append("| benchmark | impl | time | GFLOP/s | % of sgemm rate | vs torch | peak RSS |")
    lines.append("|---|---|---|---|---|---|---|")
    for what, label in (("lora_linear", f"fused LoRA linear fwd+bwd ({a.tokens}×576→1536, r=8)"),
                        ("step", "LoRA training step, SmolLM2-135M shape")):
        p, t = rows[("peftcpp", what)], rows[("torch", what)]
        sg = p["sgemm_gflops"]
        for impl, r in (("peftcpp", p), ("torch", t)):
            gf = r["flops"] / r["seconds"] / 1e9
            speed = t["seconds"] / r["seconds"]
            lines.append(f"| {label} | {impl} | {r['seconds'] * 1000:.1f} ms | {gf:.1f} | {100 * gf / sg:.0f}% | "
                         f"{speed:.2f}× | {r['max_rss_mb']:.0f} MB |")
        lines.append(f"| {label} | cblas_sgemm on the same GEMMs | — | {sg:.1f} | 100% | — | — |")
    publish(lines, a.out, blank_before=True)


if __name__ == "__main__":
    main()

"""Quantization throughput: peftcpp's quantize_rows against llama.cpp's
ggml_quantize_chunk (libggml-base from llama-cpp-python, via ctypes) on the
same float32 matrix, 1 and 2 threads. ggml_quantize_chunk is single-threaded,
so for 2 threads it is called on two halves of the rows from two Python
threads (ctypes releases the GIL) - the way llama-quantize splits a tensor.
Prints a markdown table: MB/s of float32 input, best of --repeat runs; the
outputs are also checked to be byte-identical.

    PEFTCPP_CORE_DIR=build/dev PYTHONPATH=python python bench/bench_quants.py
"""
import argparse
import ctypes
import importlib.util
import os
import sys
import threading
import time

import numpy as np

from peftcpp import _core

TYPES = ["F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
GGML_IDS = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8, "Q2_K": 10, "Q3_K": 11,
            "Q4_K": 12, "Q5_K": 13, "Q6_K": 14, "BF16": 30}


def load_ggml():
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        sys.exit("llama-cpp-python is not installed (needed for libggml-base's ggml_quantize_chunk)")
    lib = ctypes.CDLL(os.path.join(os.path.dirname(spec.origin), "lib", "libggml-base.so"))
    fn = lib.ggml_quantize_chunk
    fn.restype = ctypes.c_size_t
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                   ctypes.c_void_p]
    return fn


def ggml_quantize(fn, x, qtype, out, nthreads):
    nrows, n = x.shape
    bounds = np.linspace(0, nrows, nthreads + 1).astype(int)

    def part(a, b):
        fn(GGML_IDS[qtype], x[a].ctypes.data, out[a].ctypes.data, 0, b - a, n, None)

    if nthreads == 1:
        part(0, nrows)
        return
    ts = [threading.Thread(target=part, args=(int(a), int(b))) for a, b in zip(bounds[:-1], bounds[1:])]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def best_time(f, repeat):
    f()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1536)
    ap.add_argument("--cols", type=int, default=576 * 4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--types", default=",".join(TYPES))
    args = ap.parse_args()
    fn = load_ggml()
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((args.rows, args.cols)) * 0.02).astype(np.float32)
    mb = x.nbytes / 1e6
    print(f"{args.rows} x {args.cols} float32 ({mb:.1f} MB), best of {args.repeat}\n")
    print("| type | peftcpp 1 thr MB/s | ggml 1 thr MB/s | peftcpp 2 thr MB/s | ggml 2 thr MB/s | identical |")
    print("|---|---|---|---|---|---|")
    for qtype in args.types.split(","):
        ours = _core.quantize_rows(x, qtype, 1)
        ref = np.zeros_like(ours)
        ggml_quantize(fn, x, qtype, ref, 1)
        same = np.array_equal(ours, ref)
        cells = []
        for nt in (1, 2):
            t_ours = best_time(lambda: _core.quantize_rows(x, qtype, nt), args.repeat)
            t_ggml = best_time(lambda: ggml_quantize(fn, x, qtype, ref, nt), args.repeat)
            cells += [f"{mb / t_ours:.0f}", f"{mb / t_ggml:.0f}"]
        print(f"| {qtype} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()

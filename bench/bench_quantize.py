"""Whole-file GGUF quantization speed: peftcpp vs llama.cpp's own quantizer.

Input: the default model (SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF),
dequantized with the PyPI ``gguf`` package into an F16 GGUF (the usual
llama-quantize input). Both quantize it to Q4_K_M with the same thread
count, alternating, several repetitions; the outputs are checked to be
byte-identical. llama.cpp runs through llama-cpp-python's
``llama_model_quantize`` (no importance matrix).

    PEFTCPP_CORE_DIR=build/dev PYTHONPATH=python python3 bench/bench_quantize.py [--reps 3] [--threads 1 2]
"""
import argparse
import ctypes
import os
import resource
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def make_f16_input(src, dst):
    """Copy of the GGUF file src with every 2-D weight dequantized to F16."""
    import gguf

    r = gguf.GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(dst, arch)
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k in ("general.architecture", "general.file_type"):
            continue
        vt = f.types[0]
        if vt == gguf.GGUFValueType.ARRAY:
            w.add_key_value(k, f.contents(), vt, sub_type=f.types[-1])
        else:
            w.add_key_value(k, f.contents(), vt)
    w.add_key_value("general.file_type", 1, gguf.GGUFValueType.UINT32)
    for t in r.tensors:
        data = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        shape = [int(x) for x in reversed(t.shape)]
        data = data.reshape(shape)
        if data.ndim >= 2 and t.name.endswith(".weight") and "_norm" not in t.name:
            data = data.astype(np.float16)
        w.add_tensor(t.name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--ftype", default="Q4_K_M")
    ap.add_argument("--out", default=None, help="append a results section to this markdown file")
    args = ap.parse_args()

    import llama_cpp
    from peftcpp.app.default_model import default_gguf_path
    from peftcpp.gguf.file_quantization import FILE_TYPES, quantize

    # Quiet llama.cpp's per-tensor log.
    quiet = llama_cpp.llama_log_callback(lambda level, text, user: None)
    llama_cpp.llama_log_set(quiet, ctypes.c_void_p())

    def cpu_s():
        r = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
        return r.ru_utime + r.ru_stime

    def run_llama(src, dst, nthread):
        p = llama_cpp.llama_model_quantize_default_params()
        p.ftype = FILE_TYPES[args.ftype]
        p.nthread = nthread
        c, t = cpu_s(), time.perf_counter()
        rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
        dt, dc = time.perf_counter() - t, cpu_s() - c
        assert rc == 0, f"llama_model_quantize failed ({rc})"
        return dt, dc

    def run_ours(src, dst, nthread):
        c, t = cpu_s(), time.perf_counter()
        quantize(src, dst, args.ftype, nthreads=nthread, progress=False)
        return time.perf_counter() - t, cpu_s() - c

    with tempfile.TemporaryDirectory() as d:
        src = make_f16_input(default_gguf_path(), os.path.join(d, "smollm2-f16.gguf"))
        size_mb = os.path.getsize(src) / 2**20
        rows = []
        for nt in args.threads:
            ref, ours = os.path.join(d, "ref.gguf"), os.path.join(d, "ours.gguf")
            t_ref, t_ours = [], []
            for rep in range(args.reps):
                # Alternate which goes first so page-cache and turbo effects even out.
                order = [("ref", run_llama, ref), ("ours", run_ours, ours)]
                for name, fn, out in (order if rep % 2 == 0 else order[::-1]):
                    (t_ref if name == "ref" else t_ours).append(fn(src, out, nt))
            with open(ref, "rb") as a, open(ours, "rb") as b:
                identical = a.read() == b.read()
            rows.append((nt, t_ref, t_ours, identical))

    import datetime
    from _common import cpu_name
    load = os.getloadavg()[0]
    lines = [f"SmolLM2-135M-Instruct as an F16 GGUF ({size_mb:.0f} MiB) -> {args.ftype}; llama.cpp = llama-cpp-python "
             f"{llama_cpp.__version__}'s `llama_model_quantize` (no imatrix); {args.reps} repetitions each, "
             f"alternating; 1-min load average at the end {load:.1f}.", "",
             "| threads | llama.cpp wall s (median / min) | peftcpp wall s (median / min) | speed-up (median wall) "
             "| CPU s llama.cpp / peftcpp (median) | output byte-identical |",
             "|---|---|---|---|---|---|"]
    for nt, t_ref, t_ours, identical in rows:
        wr, wo = [w for w, _ in t_ref], [w for w, _ in t_ours]
        mr, mo = statistics.median(wr), statistics.median(wo)
        cr, co = statistics.median([c for _, c in t_ref]), statistics.median([c for _, c in t_ours])
        lines.append(f"| {nt} | {mr:.3f} / {min(wr):.3f} | {mo:.3f} / {min(wo):.3f} | {mr / mo:.2f}× "
                     f"| {cr:.2f} / {co:.2f} | {'yes' if identical else 'NO'} |")
    print("\n".join(lines))
    if args.out:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(f"\n## {now} — GGUF quantization to {args.ftype}, {cpu_name()}\n\n" + "\n".join(lines) + "\n")

if __name__ == "__main__":
    main()

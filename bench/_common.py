"""Shared by the benchmark scripts: run one measurement in a fresh
subprocess (so peak RSS is per implementation) and name the machine."""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys


def run_child(script, args, threads, label):
    """Runs `python script --child ARGS` with OMP_NUM_THREADS=threads and
    returns the dict its `RESULT {json}` line carries."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    res = subprocess.run([sys.executable, script, "--child", *args], capture_output=True, text=True, env=env)
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{label} failed:\n{res.stdout}\n{res.stderr}")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def add_common_args(ap):
    """--threads, --out and the hidden child-process flags every benchmark takes."""
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out", default=None, help="append a results section to this markdown file")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--impl", default="peftcpp", help=argparse.SUPPRESS)
    return ap


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def publish(lines, out, blank_before=False):
    """Prints the results section and appends it to `out` (RESULTS.md) when given."""
    text = "\n".join(lines) + "\n"
    if blank_before:
        print()
    print(text)
    if out:
        with open(out, "a") as f:
            f.write("\n" + text)

"""Loading a bf16 checkpoint costs its size once: the weights are used where
they lie in the memory-mapped file (no float32 copy, no second buffer).
Measured as the peak RSS of a fresh process that loads the model and touches
every weight."""
import json
import os
import subprocess
import sys

import torch
import transformers

CHILD = r"""
import json, resource, sys
import numpy as np
import peftcpp
from peftcpp.models import AutoModelForCausalLM
def rss_kb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
base = rss_kb()
model = AutoModelForCausalLM.from_pretrained(sys.argv[1])
import ctypes
checksum = 0
for p in model.parameters():  # read every byte of every weight through its mapping
    assert p.dtype == peftcpp.bfloat16 and p.is_contiguous()
    raw = np.ctypeslib.as_array((ctypes.c_uint16 * p.numel()).from_address(p.data_ptr()))
    checksum += int(raw.sum(dtype=np.uint64))
print(json.dumps({"base_kb": base, "peak_kb": rss_kb()}))
"""


def test_bf16_checkpoint_loads_within_1_2x_its_size(tmp_path):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=32000, hidden_size=512, intermediate_size=1536, num_hidden_layers=8,
                                   num_attention_heads=8, num_key_value_heads=4, tie_word_embeddings=False)
    model = transformers.LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(tmp_path)
    size = os.path.getsize(tmp_path / "model.safetensors")
    assert size > 80 * 2**20  # big enough that the bound means something
    env = dict(os.environ)
    if os.environ.get("PEFTCPP_CORE_DIR"):
        env["PYTHONPATH"] = os.path.join(os.path.dirname(__file__), "..", "python")
    out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    grown = (r["peak_kb"] - r["base_kb"]) * 1024
    assert grown <= 1.2 * size, f"loading grew RSS by {grown / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB checkpoint"
    assert grown >= 0.5 * size  # the weights really were read
    print(f"RSS growth {grown / 2**20:.0f} MiB for {size / 2**20:.0f} MiB")

"""Training benchmark: LoRA training of the default model (SmolLM2-135M-
Instruct, float32) with peftcpp's Trainer against Hugging Face Trainer + PEFT
on PyTorch, same settings (batch 4 × 256 tokens, rank 8, alpha 16, every
linear layer of the last 8 blocks, AdamW, lr 1e-4), same threads, each in its
own subprocess. Tokens/s = trained tokens / wall time of trainer.train() over
--steps steps (the first step included on both sides).

    python bench/bench_train.py [--threads N] [--steps 6] [--out bench/RESULTS.md]
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import add_common_args, cpu_name, publish, run_child as run_child_process, utc_now  # noqa: E402

BATCH, SEQ, RANK, LAST = 4, 256, 8, 8
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]  # every linear layer


def child(a):
    import json
    import resource

    import numpy as np
    from peftcpp.app.default_model import default_model_path

    folder = default_model_path()
    rng = np.random.default_rng(0)
    rows = [{"input_ids": ids, "labels": ids, "attention_mask": [1] * SEQ}
            for ids in rng.integers(0, 49152, size=(BATCH * a.steps, SEQ)).tolist()]
    layers = list(range(30 - LAST, 30))
    common = dict(output_dir=os.path.join(a.tmp, a.impl), max_steps=a.steps, per_device_train_batch_size=BATCH,
                  learning_rate=1e-4, logging_steps=10**6, save_strategy="no", report_to=[], seed=0)
    if a.impl == "torch":
        import torch
        import transformers
        from peft import LoraConfig, get_peft_model
        torch.set_num_threads(a.threads)
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        model = get_peft_model(model, LoraConfig(r=RANK, lora_alpha=16, target_modules=TARGETS,
                                                 layers_to_transform=layers, task_type="CAUSAL_LM"))
        trainer = transformers.Trainer(model=model, args=transformers.TrainingArguments(
            disable_tqdm=True, use_cpu=True, **common), train_dataset=rows,
            data_collator=transformers.default_data_collator)
    else:
        import peftcpp
        peftcpp.set_num_threads(a.threads)
        model = peftcpp.AutoModelForCausalLM.from_pretrained(folder, dtype="float32")
        model = peftcpp.get_peft_model(model, peftcpp.LoraConfig(r=RANK, lora_alpha=16, target_modules=TARGETS,
                                                                 layers_to_transform=layers, task_type="CAUSAL_LM"))
        trainer = peftcpp.Trainer(model, peftcpp.TrainingArguments(**common), train_dataset=rows)
    t0 = time.perf_counter()
    trainer.train()
    sec = time.perf_counter() - t0
    print("RESULT " + json.dumps({"impl": a.impl, "seconds": sec, "tokens": BATCH * SEQ * a.steps,
                                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--tmp", default="/tmp/peftcpp-bench-train", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a)
    rows = {}
    for impl in ("peftcpp", "torch"):
        rows[impl] = run_child_process(__file__, ["--impl", impl, "--threads", str(a.threads), "--steps",
                                                  str(a.steps), "--tmp", a.tmp], a.threads, impl)
    import torch
    import transformers
    t = rows["torch"]
    lines = [f"## {utc_now()} — LoRA training of the default model, {cpu_name()}, {a.threads} threads", "",
             f"SmolLM2-135M-Instruct (float32), batch {BATCH} × {SEQ} tokens, LoRA r={RANK} alpha 16 on every "
             f"linear layer of the last {LAST} blocks, AdamW lr 1e-4, {a.steps} steps timed whole (first included); "
             f"torch {torch.__version__}, transformers {transformers.__version__}; Hugging Face side: Trainer + PEFT.",
             "", "| impl | tokens/s | vs HF Trainer + PEFT | peak RSS |", "|---|---|---|---|"]
    for impl, label in (("peftcpp", "peftcpp Trainer"), ("torch", "HF Trainer + PEFT (PyTorch)")):
        r = rows[impl]
        lines.append(f"| {label} | {r['tokens'] / r['seconds']:.1f} | {t['seconds'] / r['seconds']:.2f}× | "
                     f"{r['max_rss_mb']:.0f} MB |")
    publish(lines, a.out)


if __name__ == "__main__":
    main()

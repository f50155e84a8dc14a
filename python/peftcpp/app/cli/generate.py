"""`peftcpp generate`, `peftcpp test` (DonkeyTune's test / test-prompt) and
`peftcpp chat`: answers from a base model, an adapter (its base read from
adapter_config.json) or a GGUF file, with mlx_lm.generate's option names."""
import os
import sys
import time

from . import console
from .common import (ADAPTER_CONFIG, TRAIN_RECORD, CLIError, is_full_model_dir, load_for_inference,
                     read_record, run_status)

# `peftcpp test` without a data folder to take prompts from: questions on the sample dataset's topic
DEFAULT_TEST_PROMPTS = (
    "How often should I water a snake plant?",
    "Why are the leaves of my pothos turning yellow?",
    "Is a peace lily safe for cats?",
)


def _common(p, adapter_default=None):
    p.add_argument("--model", default=None, help="base model (default: the adapter's base, else the default model)")
    p.add_argument("--adapter-path", default=adapter_default, help="adapter folder"
                   + (f" (default: {adapter_default})" if adapter_default else ""))
    p.add_argument("--gguf", default=None, metavar="FILE", help="a GGUF file to answer with instead")
    p.add_argument("--system-prompt", default=None,
                   help="system message (default: the one the adapter was trained with, if any)")
    p.add_argument("--max-tokens", "-m", type=int, default=256, help="most tokens to generate (default: 256)")
    p.add_argument("--temp", type=float, default=0.0, help="sampling temperature; 0 is greedy (default: 0)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (default: 1.0, off)")
    p.add_argument("--top-k", type=int, default=0, help="top-k sampling (default: 0, off)")
    p.add_argument("--seed", type=int, default=None, help="sampling seed")
    p.add_argument("--ignore-chat-template", action="store_true", help="feed the prompt as raw text")


def add_parsers(sub):
    g = sub.add_parser("generate", help="answer one prompt")
    g.add_argument("--prompt", "-p", required=True, help="the prompt ('-' reads stdin)")
    _common(g)
    console.add_quiet_option(g)
    g.set_defaults(func=run_generate)
    t = sub.add_parser("test", help="answer three test prompts (DonkeyTune's test), or --prompt")
    t.add_argument("--prompt", "-p", action="append", default=None,
                   help="a prompt (repeatable; default: three prompts from the adapter's validation data)")
    t.add_argument("--data", default=None, metavar="DIR",
                   help="take the prompts from DIR/valid.jsonl (default: the ones recorded when the adapter was "
                        "trained)")
    _common(t, adapter_default="output/adapters")
    console.add_quiet_option(t)
    t.set_defaults(func=run_test)
    c = sub.add_parser("chat", help="interactive chat (exit with 'exit' or Ctrl-D)")
    _common(c)
    c.set_defaults(func=run_chat)


def _check(args):
    if args.max_tokens < 1:
        raise CLIError(f"--max-tokens must be at least 1, got {args.max_tokens}")
    if args.temp < 0:
        raise CLIError(f"--temp must be >= 0, got {args.temp}")
    if not 0 < args.top_p <= 1:
        raise CLIError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.top_k < 0:
        raise CLIError(f"--top-k must be >= 0, got {args.top_k}")


def _load(args):
    _check(args)
    if args.adapter_path is not None and args.gguf is None and not os.path.exists(args.adapter_path):
        raise CLIError(f"adapter folder not found: {args.adapter_path} (train one with `peftcpp train`, or pass "
                       "--adapter-path)")
    if args.adapter_path is not None and args.gguf is None:
        _, problem = run_status(args.adapter_path)
        # trying out what an unfinished run left is fine, if said (no adapter files at all: the loader says so)
        if problem and (os.path.isfile(os.path.join(args.adapter_path, ADAPTER_CONFIG))
                        or is_full_model_dir(args.adapter_path)):
            print(f"warning: {problem}; answering with the adapter files there now", file=sys.stderr)
    model, tok, what = load_for_inference(args.model, args.adapter_path, args.gguf)
    system = args.system_prompt
    if system is None and args.adapter_path is not None and args.gguf is None:
        system = read_record(args.adapter_path).get("system_prompt")
    return model, tok, what, system


def check_prompt(prompt, flag="--prompt"):
    """An empty prompt stops here: the model needs at least one token to continue."""
    if not prompt.strip():
        raise CLIError(f"{flag} is empty" if prompt == "" else f"{flag} holds only whitespace")
    return prompt


def _prompt_ids(tok, messages, ignore_template):
    if ignore_template or not getattr(tok, "chat_template", None):
        text = "\n".join(m["content"] for m in messages)
        ids = list(tok(text, add_special_tokens=True)["input_ids"])
        if not ids:
            raise CLIError(f"the prompt {text[:40]!r} gives no tokens")
        return ids
    template = tok.get_chat_template()
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    if not text:
        raise CLIError(f"the chat template ({tok.chat_template_source(template)}) rendered an empty prompt; "
                       "pass --ignore-chat-template to send the prompt as it is")
    return list(tok(text, add_special_tokens=False)["input_ids"])  # as apply_chat_template tokenizes


class _Stream:
    """generate()'s streamer: times the prompt (until the first new token),
    and prints the answer's text as it grows when `echo`."""

    def __init__(self, tok, echo):
        self.tok, self.echo = tok, echo
        self.ids, self.printed = [], ""
        self.t0 = self.t_first = None

    def put(self, value):
        vals = value.tolist()
        if self.t0 is None:  # the prompt
            self.t0 = time.perf_counter()
            return
        if self.t_first is None:
            self.t_first = time.perf_counter()
        self.ids.append(int(vals[0] if isinstance(vals, list) else vals))
        if self.echo:
            text = self.tok.decode(self.ids, skip_special_tokens=True)
            if not text.endswith("\ufffd"):  # wait for the rest of a multi-byte character
                sys.stdout.write(text[len(self.printed):])
                sys.stdout.flush()
                self.printed = text

    def end(self):
        self.t_end = time.perf_counter()


def answer(model, tok, messages, args, echo=False):
    """(text, prompt token count, prompt tok/s, generated count, generation tok/s)."""
    ids = _prompt_ids(tok, messages, args.ignore_chat_template)
    stream = _Stream(tok, echo)
    kw = dict(max_new_tokens=args.max_tokens, do_sample=args.temp > 0)
    if args.temp > 0:
        kw.update(temperature=args.temp, top_p=args.top_p, top_k=args.top_k)
        if args.seed is not None:
            kw["seed"] = args.seed
    model.generate([ids], streamer=stream, **kw)
    n = len(stream.ids)
    eos = set(_eos(model, tok))
    if n and stream.ids[-1] in eos:
        gen_ids = stream.ids[:-1]
    else:
        gen_ids = stream.ids
    text = tok.decode(gen_ids, skip_special_tokens=True)
    prompt_s = max((stream.t_first or stream.t_end) - stream.t0, 1e-9)
    gen_s = max(stream.t_end - (stream.t_first or stream.t_end), 1e-9)
    return text, len(ids), len(ids) / prompt_s, n, (n - 1) / gen_s if n > 1 else 0.0


def _eos(model, tok):
    e = getattr(model.generation_config, "eos_token_id", None)
    out = e if isinstance(e, list) else ([e] if e is not None else [])
    if getattr(tok, "eos_token_id", None) is not None:
        out.append(tok.eos_token_id)
    return [int(x) for x in out]


def _messages(system, prompt):
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]


def _footer(n_prompt, p_tps, n_gen, g_tps):
    console.info("==========")
    console.info(f"Prompt: {n_prompt} tokens, {p_tps:.3f} tokens-per-sec")
    console.info(f"Generation: {n_gen} tokens, {g_tps:.3f} tokens-per-sec")


def run_generate(args):
    prompt = check_prompt(sys.stdin.read(), "--prompt - (standard input)") if args.prompt == "-" else \
        check_prompt(args.prompt)
    model, tok, what, system = _load(args)
    text, n_prompt, p_tps, n_gen, g_tps = answer(model, tok, _messages(system, prompt), args)
    print(text)
    _footer(n_prompt, p_tps, n_gen, g_tps)


def valid_prompts(folder, n=3):
    """The first user prompt of each of the first `n` usable lines of
    `folder`/valid.jsonl ([] when it has none); read by the dataset reader,
    so hostile lines are skipped within its limits."""
    import warnings
    from ...data import DatasetError, read_jsonl
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a line unusable here is simply not a test prompt
            split = read_jsonl(os.path.join(folder, "valid.jsonl"), skip_invalid=True)
    except DatasetError:  # no usable line: the default prompts
        return []
    found = []
    for obj in split.examples:
        msgs = obj.get("messages") if isinstance(obj.get("messages"), list) else []
        user = [m.get("content") for m in msgs if m.get("role") == "user"]
        prompt = user[0] if user else obj.get("prompt")
        if isinstance(prompt, str) and prompt.strip():
            found.append(prompt)
        if len(found) == n:
            break
    return found


def test_prompts(adapter_path, data=None):
    """`peftcpp test`'s prompts: from `data`/valid.jsonl (--data), else the
    validation prompts `peftcpp train` recorded, else DEFAULT_TEST_PROMPTS.
    A data folder named by the record is not followed unless it lies inside
    the adapter folder: the record is a file anyone may have written."""
    if data is not None:
        if not os.path.isfile(os.path.join(data, "valid.jsonl")):
            raise CLIError(f"--data {data}: no valid.jsonl there to take the test prompts from")
        return valid_prompts(data) or list(DEFAULT_TEST_PROMPTS)
    rec = read_record(adapter_path) if adapter_path else {}
    recorded = rec.get("test_prompts")
    if isinstance(recorded, list) and all(isinstance(p, str) for p in recorded):
        return recorded[:3] or list(DEFAULT_TEST_PROMPTS)
    folder = rec.get("data")
    if isinstance(folder, str) and folder:  # a record older than test_prompts
        root = os.path.realpath(adapter_path)
        if os.path.commonpath([root, os.path.realpath(os.path.join(adapter_path, folder))]) != root:
            shown = folder if folder.isprintable() else repr(folder)
            raise CLIError(f"{os.path.join(adapter_path, TRAIN_RECORD)} names the data folder {shown}, outside "
                           f"{adapter_path}, and paths read from files are not followed: pass --data {shown} to "
                           "take the test prompts from its valid.jsonl, or --prompt")
        folder = os.path.join(adapter_path, folder)
        if os.path.isfile(os.path.join(folder, "valid.jsonl")):
            return valid_prompts(folder) or list(DEFAULT_TEST_PROMPTS)
    return list(DEFAULT_TEST_PROMPTS)


def run_test(args):
    # the prompts first: a problem with them stops the command before the model loads
    for i, p in enumerate(args.prompt or [], 1):
        check_prompt(p, "--prompt" if len(args.prompt) == 1 else f"--prompt (number {i})")
    prompts = args.prompt or test_prompts(args.adapter_path if args.gguf is None else None, args.data)
    model, tok, what, system = _load(args)
    console.info(f"Model: {what}")
    for i, prompt in enumerate(prompts, 1):
        print(f"\n--- Prompt {i}/{len(prompts)}: {prompt}")
        text, n_prompt, p_tps, n_gen, g_tps = answer(model, tok, _messages(system, prompt), args)
        print(text)
        _footer(n_prompt, p_tps, n_gen, g_tps)


def run_chat(args):
    model, tok, what, system = _load(args)
    print(f"Chatting with {what}. Type 'exit' or press Ctrl-D to leave.", flush=True)
    history = [{"role": "system", "content": system}] if system else []
    while True:
        try:
            line = input(">> ")
        except EOFError:
            print()
            break
        if line.strip() in ("exit", "quit", "/exit", "/quit"):
            break
        if not line.strip():
            continue
        history.append({"role": "user", "content": line})
        text, *_ = answer(model, tok, history, args, echo=True)
        print(flush=True)
        history.append({"role": "assistant", "content": text})

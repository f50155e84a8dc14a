#!/usr/bin/env python3
"""Bounded coverage-guided fuzzing (atheris) of peftcpp's Python loaders.

    python3 tools/fuzz_python.py TARGET [libFuzzer options] [CORPUS_DIR ...]
    python3 tools/fuzz_python.py config -max_total_time=180
    python3 tools/fuzz_python.py --list

A target reads the fuzzer's bytes as a file a user could be handed (a config.json, an
adapter_config.json, ...), loads it the way peftcpp does, and, when the load succeeds, uses the
result (a forward pass). The loaders' contract: a bad file raises ValueError, TypeError or OSError
(or a subclass) with a one-line message naming the file. Anything else is a finding: another
exception, a message on several lines or not naming the file, or an accepted file whose model then
fails. atheris stops at the first finding and saves the input as crash-<hash> (see -artifact_prefix).

Adding a target is one function and its registration:

    @target("name", "what it fuzzes")
    def fuzz_name(data: bytes) -> None:
        ...

Helpers below: `scratch(name)` (a fresh folder per input), `value(fdp)` (hostile JSON values),
`mutate(fdp, d)` (a real config dict with fields changed), `expect(fn, where)` (runs a load, lets the
documented errors through when they name `where`, raises Finding otherwise).

Replay a saved input with FUZZ_PYTHON_SHOW=1 to see the file it became:
    FUZZ_PYTHON_SHOW=1 python3 tools/fuzz_python.py config crash-<hash>

Runs in the source tree when PEFTCPP_CORE_DIR points at a CMake build of _core (as the tests do).
"""
import collections
import json
import os
import shutil
import sys
import tempfile
import warnings

import atheris

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.environ.get("PEFTCPP_CORE_DIR"):
    sys.path.insert(0, os.path.join(ROOT, "python"))

with atheris.instrument_imports(include=["peftcpp"]):
    import peftcpp  # noqa: F401
    from peftcpp.models import AutoConfig, AutoModelForCausalLM, config_checks, modeling_utils
    from peftcpp.peft import LoraConfig, PeftConfig, PeftModel, get_peft_model
    from peftcpp.peft.tuners import tuners_utils

DOCUMENTED = (ValueError, TypeError, OSError)
# Keeps each input fast: models the fuzzer builds are refused above this (the real limit is the RAM).
FUZZ_MEMORY = 32 * 2 ** 20

TARGETS = {}
REACHED = collections.Counter()  # how far the inputs got (FUZZ_PYTHON_STATS=1 prints it now and then)


def reached(stage):
    REACHED[stage] += 1


class Finding(AssertionError):
    """A documented error whose message breaks the contract."""


def target(name, doc):
    """Registers fn(data: bytes) as the fuzz target `name`."""
    def register(fn):
        TARGETS[name] = (fn, doc)
        return fn
    return register


# --------------------------------------------------------------- helpers

_WORK = tempfile.mkdtemp(prefix="peftcpp-fuzz-")


def scratch(name):
    """An empty folder for one input (the same path every time: the fuzzer runs one input at a time)."""
    path = os.path.join(_WORK, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)  # NaN / Infinity as Python writes them: a file a user may well get
    show(path)


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)
    show(path)


def show(path):
    """With FUZZ_PYTHON_SHOW=1 (replaying a crash file), prints the file the input became."""
    if os.environ.get("FUZZ_PYTHON_SHOW"):
        with open(path, "rb") as f:
            print(f"--- {os.path.basename(path)}: {f.read()[:2000]!r}", file=sys.stderr)


HOSTILE_INTS = [0, 1, 2, 3, -1, -5, 7, 8, 64, 255, 2 ** 31 - 1, 2 ** 31, 2 ** 63, 10 ** 5, 10 ** 7, 10 ** 9, 10 ** 40]
HOSTILE_FLOATS = [0.0, -1.0, 1e-6, 0.5, 1.0, 1.5, 1e308, float("nan"), float("inf"), -float("inf")]
HOSTILE_STRS = ["", "x", "64", "(", "[", "*", ".*", "q_proj", "all-linear", "LORA", "CAUSAL_LM", "llama", "silu",
                "default", "linear", "llama3", "yarn", "longrope", "none", "all", "lora_only", "gaussian", "pissa",
                "full_attention", "sliding_attention", "gated-gelu", "\x00", "é" * 3, "a" * 1000,
                "k_proj", "o_proj", "gate_proj", "down_proj", "embed_tokens", "lm_head", "layers", "h",
                "model.layers.0.self_attn.q_proj", "q_proj|v_proj", ".*\\.(q|v)_proj", "pissa_niter_4"]


def value(fdp, depth=0):
    """A JSON value of any type, biased to the ones that break loaders."""
    kind = fdp.ConsumeIntInRange(0, 9 if depth < 2 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.PickValueInList(HOSTILE_INTS)
    if kind == 3:
        return fdp.ConsumeIntInRange(-3, 300)
    if kind == 4:
        return fdp.PickValueInList(HOSTILE_FLOATS)
    if kind == 5:
        return fdp.PickValueInList(HOSTILE_STRS)
    if kind == 6:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 12))
    if kind in (7, 8):
        return [value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    return {fdp.PickValueInList(HOSTILE_STRS): value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))}


def mutate(fdp, d, extra_keys=()):
    """d with a few fields set to hostile values, dropped, or added (from extra_keys)."""
    d = json.loads(json.dumps(d))
    keys = sorted(d) + sorted(extra_keys)
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        key = fdp.PickValueInList(keys)
        action = fdp.ConsumeIntInRange(0, 4)
        if action == 0:
            d.pop(key, None)
        elif action == 1 and isinstance(d.get(key), int) and not isinstance(d.get(key), bool):
            d[key] = d[key] + fdp.ConsumeIntInRange(-3, 3)  # near a valid value
        else:
            d[key] = value(fdp)
    return d


def expect(fn, where):
    """fn(), letting the documented errors through only when they are one line naming `where` (a path);
    returns fn's result, or None after a documented error."""
    try:
        return fn()
    except DOCUMENTED as e:
        msg = str(e)
        if "\n" in msg or where not in msg:
            raise Finding(f"{type(e).__name__} does not name {where} in one line: {msg!r}") from e
        return None


def _cap_memory():
    for module in (config_checks, modeling_utils, tuners_utils):
        module.physical_memory = lambda: FUZZ_MEMORY


# ----------------------------------------------------------------- models

TINY = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6, tie_word_embeddings=True)
CONFIGS = [  # real shapes of config.json, tiny
    dict(TINY, model_type="llama", rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 32}),
    dict(TINY, model_type="mistral", sliding_window=16),
    dict(TINY, model_type="qwen2", use_sliding_window=True, sliding_window=8, max_window_layers=1),
    dict(TINY, model_type="qwen3", head_dim=16, attention_bias=True),
    dict(TINY, model_type="smollm3", no_rope_layer_interval=2),
    dict(TINY, model_type="phi3", rope_scaling={"type": "longrope", "short_factor": [1.0] * 4,
                                                "long_factor": [2.0] * 4}, original_max_position_embeddings=32),
    dict(TINY, model_type="gemma3_text", head_dim=8, query_pre_attn_scalar=8, sliding_window=8,
         rope_local_base_freq=10000.0, final_logit_softcapping=30.0),
    dict(model_type="gemma3", text_config=dict(TINY, head_dim=8, query_pre_attn_scalar=8)),
    dict(model_type="gpt2", vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=32, layer_norm_epsilon=1e-5),
    dict(model_type="t5", vocab_size=64, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
         feed_forward_proj="gated-gelu", relative_attention_num_buckets=8, relative_attention_max_distance=16),
]
CONFIG_KEYS = sorted(set(config_checks.FIELD_RULES) | {"rope_parameters", "rope_scaling", "model_type"})


def _use(model):
    """A forward pass of one token: an accepted config must give a working model."""
    ids = [[0]]
    if getattr(model.config, "is_encoder_decoder", False):
        model(input_ids=ids, decoder_input_ids=ids)
    else:
        model(ids)


@target("config", "config.json: AutoConfig, from_config / from_pretrained next to a tiny checkpoint, a forward")
def fuzz_config(data):
    fdp = atheris.FuzzedDataProvider(data)
    folder = scratch("config")
    path = os.path.join(folder, "config.json")
    mode = fdp.ConsumeIntInRange(0, 3)
    if mode == 0:  # the file's bytes themselves
        write_bytes(path, fdp.ConsumeBytes(fdp.remaining_bytes()))
    else:  # a real config with fields changed
        write_json(path, mutate(fdp, fdp.PickValueInList(CONFIGS), CONFIG_KEYS))
    config = expect(lambda: AutoConfig.from_pretrained(folder), folder)
    if config is None:
        return
    reached(f"config accepted ({config.model_type})")
    if mode == 3 and config.model_type == "llama":  # next to a real checkpoint of another shape, maybe
        for name in os.listdir(_checkpoint()):
            if name != "config.json":
                os.symlink(os.path.join(_checkpoint(), name), os.path.join(folder, name))
        model = expect(lambda: AutoModelForCausalLM.from_pretrained(folder), folder)
    elif config.model_type == "t5":
        from peftcpp.models import AutoModelForSeq2SeqLM
        model = expect(lambda: AutoModelForSeq2SeqLM.from_config(config), folder)
    else:
        model = expect(lambda: AutoModelForCausalLM.from_config(config), folder)
    if model is not None:
        reached("model built")
        _use(model)


_CHECKPOINT = []


def _checkpoint():
    """A saved tiny Llama (config.json + model.safetensors), made once."""
    if not _CHECKPOINT:
        from peftcpp.models import LlamaConfig, LlamaForCausalLM
        peftcpp.manual_seed(0)
        path = os.path.join(_WORK, "saved-base")
        LlamaForCausalLM(LlamaConfig(**dict(TINY, model_type="llama"))).save_pretrained(path)
        _CHECKPOINT.append(path)
    return _CHECKPOINT[0]


# ---------------------------------------------------------------- adapters

_ADAPTER = []
ADAPTER_KEYS = sorted(f.name for f in __import__("dataclasses").fields(LoraConfig))
LORA_KEYS = ["r", "lora_alpha", "target_modules", "exclude_modules", "rank_pattern", "alpha_pattern",
             "layers_to_transform", "layers_pattern", "modules_to_save", "bias", "use_rslora", "init_lora_weights",
             "lora_dropout", "fan_in_fan_out", "task_type", "peft_type"]  # the fields loading acts on, picked more


def _adapter():
    """(base folder, a saved rank-4 adapter's folder, its adapter_config.json as a dict), made once."""
    if not _ADAPTER:
        base = _checkpoint()
        pm = get_peft_model(AutoModelForCausalLM.from_pretrained(base, dtype="float32"), LoraConfig(
            r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], rank_pattern={"v_proj": 2},
            alpha_pattern={"q_proj": 16}, task_type="CAUSAL_LM"))
        path = os.path.join(_WORK, "saved-adapter")  # not a scratch() name
        pm.save_pretrained(path)
        with open(os.path.join(path, "adapter_config.json"), encoding="utf-8") as f:
            _ADAPTER.extend([base, path, json.load(f)])
    return _ADAPTER


@target("adapter", "adapter_config.json: PeftConfig, PeftModel.from_pretrained on a tiny Llama, a forward")
def fuzz_adapter(data):
    fdp = atheris.FuzzedDataProvider(data)
    base, saved, config = _adapter()
    folder = scratch("adapter")
    os.symlink(os.path.join(saved, "adapter_model.safetensors"), os.path.join(folder, "adapter_model.safetensors"))
    path = os.path.join(folder, "adapter_config.json")
    if fdp.ConsumeIntInRange(0, 3) == 0:
        write_bytes(path, fdp.ConsumeBytes(fdp.remaining_bytes()))
    else:
        write_json(path, mutate(fdp, config, ADAPTER_KEYS + LORA_KEYS * 4))
    if expect(lambda: PeftConfig.from_pretrained(folder), folder) is None:
        return
    reached("adapter config accepted")
    model = AutoModelForCausalLM.from_pretrained(base)  # fresh: loading an adapter changes the model
    peft_model = expect(lambda: PeftModel.from_pretrained(model, folder), folder)
    if peft_model is not None:
        reached("adapter loaded")
        peft_model([[1, 2]])


# ------------------------------------------------------------------- main

def _with_stats(name, fn):
    def run(data):
        REACHED["inputs"] += 1
        n = REACHED["inputs"]
        fn(data)
        if n & (n - 1) == 0 or n % 5000 == 0:  # libFuzzer ends with os._exit: no atexit report
            print(f"fuzz_python {name}: {dict(REACHED)}", file=sys.stderr, flush=True)
    return run


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help", "--list"):
        print(__doc__.split("\n\n")[0])
        for name, (_, doc) in TARGETS.items():
            print(f"  {name:10s} {doc}")
        return 0 if len(argv) >= 2 else 2
    name = argv[1]
    if name not in TARGETS:
        print(f"fuzz_python: unknown target {name!r} (targets: {', '.join(TARGETS)})", file=sys.stderr)
        return 2
    warnings.simplefilter("ignore")  # unknown adapter_config keys warn, as PEFT does
    _cap_memory()
    fn = TARGETS[name][0]
    if os.environ.get("FUZZ_PYTHON_STATS"):
        fn = _with_stats(name, fn)
    atheris.Setup([argv[0]] + argv[2:], fn)
    try:
        atheris.Fuzz()
    finally:
        shutil.rmtree(_WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

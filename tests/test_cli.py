"""The `peftcpp` command line, run as a subprocess on tiny random models
(built here with transformers, with a byte-level BPE tokenizer and a ChatML
template) and the sample dataset: train (PEFT-format adapter, progress
lines, --resume, --config), merge-data, info, generate, test, chat over
stdin, fuse (transformers reads the fused folder: same logits as base +
adapter in PEFT within 1e-4), and the whole pipeline on the default model
(train -> fuse -> convert -> quantize -> generate, about a minute)."""
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SAMPLE = os.path.join(ROOT, "data")
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
    "'\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def cli_env(**extra):
    env = dict(os.environ)
    if os.environ.get("PEFTCPP_CORE_DIR"):  # a development build: the package is the source tree
        env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "python"), env.get("PYTHONPATH", "")])
        env["PEFTCPP_CORE_DIR"] = os.path.abspath(os.environ["PEFTCPP_CORE_DIR"])  # commands may run elsewhere
    env["HF_HUB_OFFLINE"] = "1"  # tests never download
    env.update(extra)
    return env


def run_cli(*args, cwd=None, input=None, timeout=600, **env):
    """`python -m peftcpp ARGS` -> CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", "peftcpp", *map(str, args)], capture_output=True, text=True,
                          env=cli_env(**env), cwd=cwd, input=input, timeout=timeout)


def ok(res):
    assert res.returncode == 0, f"exit {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    assert "Traceback" not in res.stderr
    return res.stdout


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")


def make_dataset(folder, n_train=12, n_valid=4):
    """A small slice of the sample dataset."""
    write_jsonl(os.path.join(folder, "train.jsonl"), read_jsonl(os.path.join(SAMPLE, "train.jsonl"))[:n_train])
    write_jsonl(os.path.join(folder, "valid.jsonl"), read_jsonl(os.path.join(SAMPLE, "valid.jsonl"))[:n_valid])
    return str(folder)


def make_tiny_model(folder, hidden=32, layers=3, seed=0, tie=True):
    """A random Llama with a 300-token BPE tokenizer and a ChatML template."""
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    texts = [m["content"] for r in read_jsonl(os.path.join(SAMPLE, "train.jsonl")) for m in r["messages"]]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"))
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"eos_token": "<|im_end|>", "pad_token": "<|im_end|>", "chat_template": CHATML,
                   "tokenizer_class": "PreTrainedTokenizerFast"}, f)
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=hidden, intermediate_size=2 * hidden,
                                   num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                                   max_position_embeddings=512, tie_word_embeddings=tie,
                                   eos_token_id=tok.token_to_id("<|im_end|>"), bos_token_id=None,
                                   pad_token_id=tok.token_to_id("<|im_end|>"), initializer_range=0.3)
    transformers.LlamaForCausalLM(cfg).save_pretrained(folder)
    return str(folder)


FAST = ["--steps-per-report", "1", "--steps-per-eval", "2", "--save-every", "2", "--val-batches", "1",
        "--batch-size", "2", "--learning-rate", "1e-4", "--max-seq-length", "256"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    model = make_tiny_model(root / "model")
    data = make_dataset(root / "data")
    adapter = str(root / "adapter")
    res = run_cli("train", "--model", model, "--data", data, "--iters", 4, "--num-layers", 2, "--rank", 4,
                  "--adapter-path", adapter, *FAST)
    return {"root": root, "model": model, "data": data, "adapter": adapter, "train": res}


# ------------------------------------------------------------------ train

def test_train_writes_a_peft_adapter_and_progress_lines(tiny):
    out = ok(tiny["train"])
    adapter = tiny["adapter"]
    for f in ("adapter_config.json", "adapter_model.safetensors", "peftcpp_train.json", "tokenizer.json"):
        assert os.path.isfile(os.path.join(adapter, f)), f
    assert os.path.isfile(os.path.join(adapter, "checkpoints", "checkpoint-4", "optimizer.safetensors"))
    cfg = json.load(open(os.path.join(adapter, "adapter_config.json")))
    # mlx-lm's meaning of the options: every linear layer of the last 2 of 3 blocks, alpha = scale x rank
    assert cfg["r"] == 4 and cfg["lora_alpha"] == 40 and cfg["lora_dropout"] == 0.05
    assert cfg["layers_to_transform"] == [1, 2]
    assert sorted(cfg["target_modules"]) == sorted(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                    "down_proj"])
    assert cfg["base_model_name_or_path"] == tiny["model"]
    lines = re.findall(r"^Iter (\d+): Train loss (\d+\.\d{3}), Learning Rate 1\.000e-04, It/sec [\d.]+, "
                       r"Tokens/sec [\d.]+, Trained Tokens \d+, Peak mem [\d.]+ GB$", out, re.M)
    assert [int(i) for i, _ in lines] == [1, 2, 3, 4]
    assert re.findall(r"^Iter (\d+): Val loss \d+\.\d{3}", out, re.M) == ["2", "4"]
    assert re.search(r"^Padding: \d+\.\d% of the batched positions are padding \(length-grouped batches\)", out, re.M)
    assert re.search(r"^Trainable parameters: [\d.]+% \([\d.]+M/[\d.]+M\)", out, re.M)
    assert re.search(r"^Memory estimate: [\d.]+ GB", out, re.M)
    assert "Saved final weights to" in out
    rec = json.load(open(os.path.join(adapter, "peftcpp_train.json")))
    assert rec["status"] == "complete" and rec["iters"] == 4 and rec["global_step"] == 4
    assert rec["data"] == os.path.abspath(tiny["data"]) and rec["trained_tokens"] > 0
    assert rec["system_prompt"].startswith("You are Leafy")


def test_adapter_loads_in_hf_peft_with_the_same_logits(tiny):
    """The adapter is PEFT's format: Hugging Face PEFT loads it and computes what peftcpp computes."""
    import peft
    import torch
    import transformers
    import peftcpp
    ok(tiny["train"])
    ref = peft.PeftModel.from_pretrained(transformers.AutoModelForCausalLM.from_pretrained(tiny["model"]),
                                         tiny["adapter"]).eval()
    pm = peftcpp.PeftModel.from_pretrained(peftcpp.AutoModelForCausalLM.from_pretrained(tiny["model"]),
                                           tiny["adapter"])
    x = np.random.default_rng(0).integers(0, 300, size=(2, 9))
    with torch.no_grad():
        want = ref(torch.tensor(x)).logits.numpy()
    got = pm(x).logits.numpy()
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    # and the adapter is not a no-op (training moved lora_B off zero)
    with torch.no_grad(), ref.disable_adapter():
        base = ref(torch.tensor(x)).logits.numpy()
    assert np.abs(base - want).max() > 1e-4


def test_seed_fixes_the_adapter_initialisation(tiny, tmp_path):
    from safetensors.numpy import load_file

    def lora_a(seed, name):
        ok(run_cli("train", "--model", tiny["model"], "--data", tiny["data"], "--iters", 1, *FAST, "--seed", seed,
                   "--adapter-path", tmp_path / name))
        t = load_file(str(tmp_path / name / "adapter_model.safetensors"))
        return np.concatenate([v.ravel() for k, v in sorted(t.items()) if "lora_A" in k])
    a1, a1_again, a2 = lora_a(1, "s1"), lora_a(1, "s1b"), lora_a(2, "s2")
    np.testing.assert_array_equal(a1, a1_again)
    assert not np.allclose(a1, a2)


def test_resume_continues_the_interrupted_run_exactly(tiny, tmp_path):
    """train 6 iterations at once == train 3 + `--resume` to 6: the same losses and the same adapter."""
    import safetensors.numpy
    common = ["--model", tiny["model"], "--data", tiny["data"], "--num-layers", 2, "--rank", 4, *FAST,
              "--save-every", 3, "--steps-per-eval", 100]
    full = ok(run_cli("train", "--iters", 6, "--adapter-path", tmp_path / "a", *common))
    ok(run_cli("train", "--iters", 3, "--adapter-path", tmp_path / "b", *common))
    resumed = ok(run_cli("train", "--resume", "--iters", 6, "--adapter-path", tmp_path / "b"))
    assert "(resuming)" in resumed
    losses = lambda text: dict(re.findall(r"^Iter (\d+): Train loss (\d+\.\d{3})", text, re.M))  # noqa: E731
    la, lb = losses(full), losses(resumed)
    assert sorted(lb) == ["4", "5", "6"]
    assert all(la[k] == lb[k] for k in lb), (la, lb)
    wa = safetensors.numpy.load_file(str(tmp_path / "a" / "adapter_model.safetensors"))
    wb = safetensors.numpy.load_file(str(tmp_path / "b" / "adapter_model.safetensors"))
    assert sorted(wa) == sorted(wb)
    for k in wa:
        np.testing.assert_allclose(wb[k], wa[k], rtol=0, atol=1e-6, err_msg=k)


def test_resume_from_loads_weights_only(tiny, tmp_path):
    out = ok(run_cli("train", "--model", tiny["model"], "--data", tiny["data"], "--num-layers", 2, "--rank", 4,
                     "--iters", 1, *FAST, "--resume-from",
                     os.path.join(tiny["adapter"], "adapter_model.safetensors"), "--adapter-path", tmp_path / "r"))
    assert "Loaded the adapter weights of" in out
    assert os.path.isfile(tmp_path / "r" / "adapter_model.safetensors")


def test_config_file_merges_and_command_line_wins(tiny, tmp_path):
    cfg = tmp_path / "lora.yaml"
    cfg.write_text(f"model: {tiny['model']}\ndata: {tiny['data']}\niters: 2\nrank: 2\nnum-layers: -1\n"
                   "learning_rate: 1e-4\nbatch_size: 2\nmax_seq_length: 256\nsteps_per_eval: 100\n"
                   "lora_parameters:\n  scale: 5.0\n  dropout: 0.0\n")
    out = ok(run_cli("train", "--config", cfg, "--rank", 3, "--adapter-path", tmp_path / "c"))
    a = json.load(open(tmp_path / "c" / "adapter_config.json"))
    assert a["r"] == 3 and a["lora_alpha"] == 15 and a["lora_dropout"] == 0.0  # rank from the command line
    assert a["layers_to_transform"] is None  # -1: every block
    assert re.findall(r"Learning Rate (\S+),", out) == ["1.000e-04"]  # steps_per_report 10: the last step only
    assert json.load(open(tmp_path / "c" / "peftcpp_train.json"))["global_step"] == 2


def test_full_fine_tune_writes_a_model(tiny, tmp_path):
    out = ok(run_cli("train", "--model", tiny["model"], "--data", tiny["data"], "--fine-tune-type", "full",
                     "--num-layers", 1, "--iters", 2, *FAST, "--adapter-path", tmp_path / "f"))
    assert os.path.isfile(tmp_path / "f" / "model.safetensors") and "model.safetensors" in out
    gen = ok(run_cli("generate", "--adapter-path", tmp_path / "f", "--prompt", "hi", "--max-tokens", 3))
    assert "Generation:" in gen
    # convert takes the whole model as it is (nothing to fuse)
    ok(run_cli("convert", "--adapter-path", tmp_path / "f", "--quantize", "Q8_0", "--gguf-dir", tmp_path / "g"))
    ggufs = sorted(os.listdir(tmp_path / "g"))
    assert [g for g in ggufs if g.endswith(".gguf")] and "Modelfile" in ggufs
    report = json.load(open(tmp_path / "g" / "report.json"))  # the whole model is the reference
    assert report["reference"] == str(tmp_path / "f") and report["passed"], report["problems"]


# ------------------------------------------------------- data and info

def test_merge_data_counts(tmp_path):
    rows = read_jsonl(os.path.join(SAMPLE, "train.jsonl"))
    write_jsonl(str(tmp_path / "a" / "train.jsonl"), rows[:5])
    write_jsonl(str(tmp_path / "a" / "valid.jsonl"), rows[5:7])
    write_jsonl(str(tmp_path / "b" / "train.jsonl"), rows[3:9])  # 2 duplicates of a's
    write_jsonl(str(tmp_path / "b" / "valid.jsonl"), rows[9:10])
    out = ok(run_cli("merge-data", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "m"))
    assert "train.jsonl: 9 examples written (11 read, 2 duplicates, 0 invalid)" in out
    assert "valid.jsonl: 3 examples written (3 read, 0 duplicates, 0 invalid)" in out
    assert read_jsonl(str(tmp_path / "m" / "train.jsonl")) == rows[:9]


def test_info_shows_the_training_record(tiny):
    ok(tiny["train"])
    out = ok(run_cli("info", tiny["adapter"]))
    assert re.search(r"Base model:\s+" + re.escape(tiny["model"]), out)
    assert re.search(r"Rank:\s+4\n", out) and re.search(r"Alpha:\s+40 \(scale 10\)", out)
    assert re.search(r"Layers:\s+1-2 \(2 of 3 blocks\)", out)
    assert re.search(r"Target modules:\s+down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj", out)
    assert re.search(r"Data:\s+" + re.escape(os.path.abspath(tiny["data"])), out)
    assert re.search(r"Iterations:\s+4\n", out) and re.search(r"Trained tokens:\s+\d+", out)


def test_export_adapter_writes_a_gguf_lora(tiny, tmp_path):
    """The adapter alone as llama.cpp's LoRA GGUF (the exporter itself is
    checked against llama.cpp in tests/test_gguf_adapter.py)."""
    ok(tiny["train"])
    out = tmp_path / "lora.gguf"
    ok(run_cli("export-adapter", "--adapter-path", tiny["adapter"], "--out", out))
    from safetensors.numpy import load_file
    from peftcpp.gguf import GGUFFile
    n_lora = sum("lora_A" in k for k in load_file(os.path.join(tiny["adapter"], "adapter_model.safetensors")))
    with GGUFFile(str(out)) as g:
        assert g.metadata["general.type"] == "adapter" and g.metadata["adapter.lora.alpha"] == 40.0
        names = [t.name for t in g.tensors]
    assert len(names) == 2 * n_lora and all(n.endswith((".lora_a", ".lora_b")) for n in names)
    res = run_cli("export-adapter", "--adapter-path", tmp_path / "nothing-here")
    assert res.returncode == 1 and "Traceback" not in res.stderr and "nothing-here" in res.stderr


# ---------------------------------------------------------- generation

def _expected_answer(tiny, prompt, max_new_tokens):
    """Greedy answer of base + adapter through the Python API (with the recorded system prompt)."""
    import peftcpp
    tok = peftcpp.AutoTokenizer.from_pretrained(tiny["adapter"])
    pm = peftcpp.PeftModel.from_pretrained(peftcpp.AutoModelForCausalLM.from_pretrained(tiny["model"]),
                                           tiny["adapter"])
    system = json.load(open(os.path.join(tiny["adapter"], "peftcpp_train.json")))["system_prompt"]
    ids = tok.apply_chat_template([{"role": "system", "content": system}, {"role": "user", "content": prompt}],
                                  add_generation_prompt=True)
    out = pm.generate([ids], max_new_tokens=max_new_tokens, do_sample=False).numpy()[0, len(ids):].tolist()
    if out and out[-1] == tok.eos_token_id:
        out = out[:-1]
    return tok.decode(out, skip_special_tokens=True), len(ids)


def test_generate_prints_the_answer_and_speeds(tiny):
    ok(tiny["train"])
    out = ok(run_cli("generate", "--adapter-path", tiny["adapter"], "--prompt", "How do I water a fern?",
                     "--max-tokens", 12))
    answer, n_prompt = _expected_answer(tiny, "How do I water a fern?", 12)
    text, footer = out.split("==========\n")
    assert text == answer + "\n" and len(answer.strip()) > 0  # print() added the newline
    assert re.match(rf"Prompt: {n_prompt} tokens, [\d.]+ tokens-per-sec\nGeneration: 12 tokens, [\d.]+ "
                    r"tokens-per-sec\n$", footer)
    # sampling is seeded
    a = ok(run_cli("generate", "--adapter-path", tiny["adapter"], "-p", "hi", "-m", 8, "--temp", "0.9", "--top-k",
                   20, "--top-p", "0.95", "--seed", 3))
    b = ok(run_cli("generate", "--adapter-path", tiny["adapter"], "-p", "hi", "-m", 8, "--temp", "0.9", "--top-k",
                   20, "--top-p", "0.95", "--seed", 3))
    assert a.split("==========")[0] == b.split("==========")[0]


def test_test_command_uses_validation_prompts(tiny):
    ok(tiny["train"])
    out = ok(run_cli("test", "--adapter-path", tiny["adapter"], "--max-tokens", 2))
    prompts = re.findall(r"^--- Prompt \d/3: (.*)$", out, re.M)
    valid = [r["messages"][1]["content"] for r in read_jsonl(os.path.join(tiny["data"], "valid.jsonl"))[:3]]
    assert prompts == valid
    out = ok(run_cli("test", "--adapter-path", tiny["adapter"], "--max-tokens", 2, "--prompt", "Only this?"))
    assert re.findall(r"^--- Prompt \d/1: (.*)$", out, re.M) == ["Only this?"]


def test_chat_streams_and_keeps_history(tiny):
    ok(tiny["train"])
    answer, _ = _expected_answer(tiny, "How do I water a fern?", 10)
    res = run_cli("chat", "--adapter-path", tiny["adapter"], "--max-tokens", 10,
                  input="How do I water a fern?\nand a cactus?\nexit\n")
    out = ok(res)
    assert out.count(">> ") == 3
    first = out.split(">> ")[1]
    assert first == answer + "\n" and len(answer.strip()) > 0
    # EOF ends the chat too
    out = ok(run_cli("chat", "--adapter-path", tiny["adapter"], "--max-tokens", 2, input="hello\n"))
    assert out.count(">> ") == 2


# ---------------------------------------------------------------- fuse

def test_fuse_gives_the_adapter_models_logits_in_transformers(tiny, tmp_path):
    import peft
    import torch
    import transformers
    ok(tiny["train"])
    fused = tmp_path / "fused"
    out = ok(run_cli("fuse", "--adapter-path", tiny["adapter"], "--save-path", fused))
    assert "Fused" in out
    for f in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
              "tokenizer_config.json", "chat_template.jinja"):
        assert os.path.isfile(fused / f), f
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".fused")]  # no temporary folder left
    m = transformers.AutoModelForCausalLM.from_pretrained(str(fused)).eval()
    ref = peft.PeftModel.from_pretrained(transformers.AutoModelForCausalLM.from_pretrained(tiny["model"]),
                                         tiny["adapter"]).eval()
    x = torch.tensor(np.random.default_rng(1).integers(0, 300, size=(2, 11)))
    with torch.no_grad():
        got, want = m(x).logits.numpy(), ref(x).logits.numpy()
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    assert next(m.parameters()).dtype == torch.float32  # the base model's dtype
    tok = transformers.AutoTokenizer.from_pretrained(str(fused))
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    # fusing again replaces the folder atomically
    ok(run_cli("fuse", "--adapter-path", tiny["adapter"], "--save-path", fused))
    assert os.path.isfile(fused / "model.safetensors")


def test_fuse_keeps_a_bfloat16_base_in_bfloat16(tmp_path):
    """safetensors in the base model's dtype: a bf16 base stays bf16."""
    import safetensors
    import torch
    import transformers
    import peftcpp
    base = make_tiny_model(tmp_path / "m32", layers=2)
    bf = tmp_path / "m16"
    transformers.AutoModelForCausalLM.from_pretrained(base).to(torch.bfloat16).save_pretrained(bf)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        with open(os.path.join(base, f), "rb") as src, open(bf / f, "wb") as dst:
            dst.write(src.read())
    pm = peftcpp.get_peft_model(peftcpp.AutoModelForCausalLM.from_pretrained(str(bf)),
                                peftcpp.LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    pm.save_pretrained(str(tmp_path / "ad"))
    ok(run_cli("fuse", "--adapter-path", tmp_path / "ad", "--save-path", tmp_path / "out"))
    with safetensors.safe_open(str(tmp_path / "out" / "model.safetensors"), "np") as f:
        assert f.metadata() is not None
    with safetensors.safe_open(str(tmp_path / "out" / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}


def test_clean_output_removes_only_peftcpp_output(tmp_path):
    (tmp_path / "output" / "adapters").mkdir(parents=True)
    (tmp_path / "output" / "gguf").mkdir()
    out = ok(run_cli("clean-output", input="n\n", cwd=tmp_path))
    assert "Not removed" in out and (tmp_path / "output").is_dir()
    ok(run_cli("clean-output", "--yes", cwd=tmp_path))
    assert not (tmp_path / "output").exists()
    (tmp_path / "output" / "photos").mkdir(parents=True)
    res = run_cli("clean-output", "--yes", cwd=tmp_path)
    assert res.returncode == 1 and "does not look like peftcpp's output folder" in res.stderr
    assert (tmp_path / "output" / "photos").is_dir()


def test_sample_dataset_is_valid_and_short():
    """data/: ~200 chat examples, one system prompt, 80/20, every answer in the fixed style, < 150 tokens."""
    import peftcpp
    train = read_jsonl(os.path.join(SAMPLE, "train.jsonl"))
    valid = read_jsonl(os.path.join(SAMPLE, "valid.jsonl"))
    assert (len(train), len(valid)) == (160, 40)
    rows = train + valid
    assert len({json.dumps(r, sort_keys=True) for r in rows}) == 200
    assert len({r["messages"][0]["content"] for r in rows}) == 1
    for r in rows:
        assert [m["role"] for m in r["messages"]] == ["system", "user", "assistant"]
        a = r["messages"][2]["content"]
        assert re.fullmatch(r"Leafy here! [^\n]+\n- Do: [^\n]+\.\n- Avoid: [^\n]+\.\nHappy growing!", a), a
    from peftcpp.data import read_dataset
    read_dataset(SAMPLE)  # validates every line
    from peftcpp.app.default_model import default_model_path
    tok = peftcpp.AutoTokenizer.from_pretrained(default_model_path())  # the default model's tokenizer
    longest = max(len(tok.apply_chat_template(r["messages"])) for r in rows)
    assert longest < 150, longest


# -------------------------------------------------------- end to end

def test_pipeline_on_the_default_model(tmp_path):
    """train -> fuse -> convert (GGUF f16 + Q4_K_M + Modelfile) -> quantize -> generate --gguf, all via the CLI,
    on the default model (SmolLM2-135M-Instruct) and a slice of the sample dataset."""
    t0 = time.perf_counter()
    data = make_dataset(tmp_path / "data", n_train=8, n_valid=2)
    ok(run_cli("train", "--data", data, "--iters", 2, "--batch-size", 2, "--steps-per-eval", 100, "--save-every",
               100, "--learning-rate", "1e-4", cwd=tmp_path))
    assert os.path.isfile(tmp_path / "output" / "adapters" / "adapter_model.safetensors")
    ok(run_cli("fuse", cwd=tmp_path))
    assert os.path.isfile(tmp_path / "output" / "fused_model" / "model.safetensors")
    ok(run_cli("convert", cwd=tmp_path))
    gg = tmp_path / "output" / "gguf"
    f16, q4 = gg / "SmolLM2-135M-Instruct-finetuned-f16.gguf", gg / "SmolLM2-135M-Instruct-finetuned-Q4_K_M.gguf"
    assert f16.is_file() and q4.is_file() and (gg / "Modelfile").is_file()
    assert q4.stat().st_size < 0.5 * f16.stat().st_size
    report = json.load(open(gg / "report.json"))  # the Q4_K_M file against base + adapter, real weights
    assert report["gguf"] == str(q4) and report["passed"] and report["prompts"] == 2, report["problems"]
    ok(run_cli("quantize", f16, gg / "q8.gguf", "Q8_0", cwd=tmp_path))
    assert q4.stat().st_size < (gg / "q8.gguf").stat().st_size < f16.stat().st_size
    out = ok(run_cli("generate", "--gguf", q4, "--prompt", "How often should I water a snake plant?",
                     "--max-tokens", 8, cwd=tmp_path))
    assert re.search(r"^Generation: \d+ tokens", out, re.M)
    out = ok(run_cli("info", cwd=tmp_path))
    assert "SmolLM2-135M-Instruct" in out
    ok(run_cli("export-adapter", cwd=tmp_path))
    assert (gg / "SmolLM2-135M-Instruct-finetuned-lora-f32.gguf").is_file()
    print(f"pipeline on the default model: {time.perf_counter() - t0:.0f} s")


def test_memory_estimate_warns_with_the_options_that_reduce_it(tiny):
    import peftcpp
    from peftcpp.app.cli import memory
    model = peftcpp.AutoModelForCausalLM.from_pretrained(tiny["model"])
    small = memory.estimate(model, batch_size=1, seq_len=16)
    big = memory.estimate(model, batch_size=8, seq_len=256)
    ckpt = memory.estimate(model, batch_size=8, seq_len=256, grad_checkpoint=True)
    assert small["weights"] == big["weights"] == sum(p.numel() * 4 for p in model.parameters())
    assert small["activations"] < ckpt["activations"] < big["activations"]
    line, warn = memory.report(big, available=big["total"] // 2)
    assert line.startswith("Memory estimate:") and warn is not None
    for option in ("--batch-size", "--max-seq-length", "--num-layers", "--rank", "--grad-checkpoint"):
        assert option in warn
    assert memory.report(small, available=10 ** 12)[1] is None
    assert memory.mem_available() is None or memory.mem_available() > 0


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_ctrl_c_stops_training_and_resume_finishes_it(tiny, tmp_path, sig):
    """SIGINT (Ctrl-C) or SIGTERM (kill, a scheduler) mid-run: exit 128+signal with the --resume hint, the record
    says 'interrupted'; `--resume` then completes the run from the checkpoint."""
    import signal
    sig = getattr(signal, sig)
    out_dir = tmp_path / "int"
    cmd = [sys.executable, "-m", "peftcpp", "train", "--model", tiny["model"], "--data", tiny["data"],
           "--iters", "400", "--num-layers", "2", "--rank", "4", *FAST, "--save-every", "1", "--steps-per-eval",
           "1000", "--adapter-path", str(out_dir)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    deadline = time.time() + 120
    while time.time() < deadline and not list((out_dir / "checkpoints").glob("checkpoint-[0-9]*")):
        time.sleep(0.02)
    p.send_signal(sig)
    stdout, stderr = p.communicate(timeout=120)
    if p.returncode == 0:
        pytest.skip("training finished before the interrupt arrived")
    assert p.returncode == 128 + sig, stderr
    word = "interrupted" if sig == signal.SIGINT else "terminated"
    assert "Traceback" not in stderr and "--resume" in stderr and word in stderr
    last = max(int(d.name.split("-")[1]) for d in (out_dir / "checkpoints").glob("checkpoint-[0-9]*"))
    rec = json.load(open(out_dir / "peftcpp_train.json"))
    assert rec["status"] == "interrupted" and rec["last_checkpoint"].endswith(f"checkpoint-{last}")
    done = ok(run_cli("train", "--resume", "--iters", last + 3, "--adapter-path", out_dir))
    assert "(resuming)" in done and os.path.isfile(out_dir / "adapter_model.safetensors")
    assert re.findall(r"^Iter (\d+): Train loss", done, re.M) == [str(last + i) for i in (1, 2, 3)]
    rec = json.load(open(out_dir / "peftcpp_train.json"))
    assert rec["status"] == "complete" and rec["global_step"] == last + 3


def test_makefile_pipeline_targets_drive_the_cli():
    """DonkeyTune's make targets and variables (with its defaults) turn into `peftcpp` command lines."""
    import shutil
    if shutil.which("make") is None:
        pytest.skip("make is not installed")

    def dry(*args):
        res = subprocess.run(["make", "-s", "-n", "-C", ROOT, *args], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        return res.stdout

    out = dry("train")
    assert "-m peftcpp train" in out and "--model" not in out  # MODEL empty: the default model
    for flag in ('--data "./data"', "--iters 600", "--batch-size 4", "--num-layers 8", "--learning-rate 1e-5",
                 "--rank 8", '--adapter-path "./output/adapters"'):
        assert flag in out, flag
    out = dry("train", "MODEL=unsloth/gemma-3-270m-it", "ITERS=300", "BATCH_SIZE=2", "LR=2e-5", "RANK=16")
    assert '--model "unsloth/gemma-3-270m-it"' in out and "--iters 300" in out and "--rank 16" in out
    assert "--quantize Q5_K_M" in dry("convert", "QUANTIZE=Q5_K_M")
    assert '--adapter-path "./output/adapters" --prompt "Who is Picard?"' in dry(
        "test-prompt", "PROMPT=Who is Picard?")
    assert "-m peftcpp test " in dry("test-model")
    assert "merge-data ./a ./b --out \"./data\"" in dry("merge-data", "INPUTS=./a ./b")
    assert '--resume-from "./output/adapters/adapter_model.safetensors"' in dry("train-resume")
    all_ = dry("all")
    assert all_.index("-m peftcpp train") < all_.index("-m peftcpp convert") < all_.index("-m peftcpp test")
    help_ = subprocess.run(["make", "-s", "-C", ROOT, "help"], capture_output=True, text=True).stdout
    for target in ("train", "convert", "test-model", "test-prompt", "merge-data", "train-resume", "train-merged",
                   "clean-output", "ITERS=600", "QUANTIZE=Q4_K_M"):
        assert target in help_, target

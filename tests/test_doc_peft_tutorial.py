"""The user's tutorial (seeds/004: the basic PEFT workflow) run as written,
with only the imports switched from transformers/peft to peftcpp, and the
same code run with transformers + PEFT as the oracle. The model id
("tiiuae/falcon-7b", no network here) becomes a tiny random Llama with a
real byte-level BPE tokenizer; everything else is the tutorial's text."""
import json
import os

import numpy as np
import pytest
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from helpers import run_document_blocks

torch.set_num_threads(1)

# The tutorial's code blocks 2-5, verbatim but for the import lines, the
# model id (MODEL) and the output folders (OUT).
SECTION_2 = '''
from {tf} import AutoModelForCausalLM, AutoTokenizer
from {peft} import get_peft_model, LoraConfig, TaskType

# Load model and tokenizer
model = AutoModelForCausalLM.from_pretrained(MODEL, device_map="auto")
tokenizer = AutoTokenizer.from_pretrained(MODEL)

# LoRA configuration
config = LoraConfig(
    r=8,
    lora_alpha=32,
    target_modules=["q_proj", "v_proj"],
    lora_dropout=0.05,
    bias="none",
    task_type=TaskType.CAUSAL_LM,
)

# Apply PEFT
model = get_peft_model(model, config)
model.print_trainable_parameters()
'''
SECTION_3 = '''
from {tf} import TrainingArguments, Trainer

training_args = TrainingArguments(
    per_device_train_batch_size=4,
    num_train_epochs=3,
    logging_steps=10,
    output_dir=OUT + "/lora-checkpoints",
    save_total_limit=2,
    save_strategy="epoch",
)

trainer = Trainer(
    model=model,
    args=training_args,
    train_dataset=train_data,
    eval_dataset=eval_data,
)

trainer.train()
'''
SECTION_4 = '''
model.eval()
prompt = "Once upon a time"
inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
outputs = model.generate(**inputs, max_new_tokens=50)
print(tokenizer.decode(outputs[0], skip_special_tokens=True))
'''
SECTION_5 = '''
model.save_pretrained(OUT + "/my-lora-model")
# Load again later:
# model = PeftModel.from_pretrained(base_model, "./my-lora-model")
'''

CORPUS = ["Once upon a time there was a small fox who lived by the river.",
          "The fox liked to read stories about the sea and the stars.",
          "Every morning the river sang a song to the trees.",
          "Once upon a time a girl found a golden key in the garden."] * 4


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny-llama")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                        show_progress=False,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "model_max_length": 128}))
    torch.manual_seed(0)
    eos = tok.token_to_id("<|endoftext|>")
    transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, bos_token_id=eos,
        eos_token_id=eos, pad_token_id=eos)).save_pretrained(d)
    return str(d), tok


def _data(tok):
    # The tutorial leaves train_data/eval_data to the reader: a list of
    # dicts as in Hugging Face, equal lengths so no collator is needed.
    rows = []
    for text in CORPUS:
        ids = tok.encode(text).ids[:12]
        ids += [ids[-1]] * (12 - len(ids))
        rows.append({"input_ids": ids, "attention_mask": [1] * 12, "labels": list(ids)})
    return rows[:12], rows[12:]


def run_tutorial(tf, peft, model_dir, tok, out):
    train_data, eval_data = _data(tok)
    ns = {"MODEL": model_dir, "OUT": str(out), "train_data": train_data, "eval_data": eval_data}
    blocks = (("2", SECTION_2), ("3", SECTION_3), ("4", SECTION_4), ("5", SECTION_5))
    return ns, run_document_blocks(blocks, ns, tf=tf, peft=peft)


def test_peft_tutorial_runs_unchanged_and_matches_peft(model_dir, tmp_path):
    path, tok = model_dir
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    ours, ours_out = run_tutorial("peftcpp", "peftcpp", path, tok, tmp_path / "ours")
    ref, ref_out = run_tutorial("transformers", "peft", path, tok, tmp_path / "ref")

    # Section 2: PEFT's exact line, same numbers.
    line = [x for x in ours_out["2"].splitlines() if x.startswith("trainable params")]
    assert line and line == [x for x in ref_out["2"].splitlines() if x.startswith("trainable params")]

    # Section 3: 12 examples, batch 4, 3 epochs = 9 steps; one checkpoint per
    # epoch with the newest two kept - the same folders as transformers.
    assert ours["trainer"].state.global_step == ref["trainer"].state.global_step == 9
    for ns in (ours, ref):
        ckpts = [f for f in os.listdir(ns["training_args"].output_dir) if f.startswith("checkpoint-")]
        assert sorted(ckpts) == ["checkpoint-6", "checkpoint-9"]
    hist = ours["trainer"].state.log_history
    assert [h["step"] for h in hist if "eval_loss" in h] == [h["step"] for h in ref["trainer"].state.log_history
                                                             if "eval_loss" in h]
    assert all(np.isfinite(h.get("eval_loss", h.get("train_loss", 0.0))) for h in hist)

    # Section 4: greedy generation prints the prompt and 50 new tokens.
    assert ours_out["4"].startswith("Once upon a time")
    n_prompt = len(ours["inputs"]["input_ids"][0])
    assert n_prompt < len(ours["outputs"][0]) <= n_prompt + 50

    # Section 5: the adapter the tutorial saves is PEFT's format: PEFT loads it
    # onto the transformers model and gives the logits of peftcpp's model.
    adapter = tmp_path / "ours" / "my-lora-model"
    def adapter_files(d):  # PEFT also writes a model-card README.md
        return sorted(f for f in os.listdir(d) if f.startswith("adapter_"))
    assert adapter_files(adapter) == adapter_files(tmp_path / "ref" / "my-lora-model") == \
        ["adapter_config.json", "adapter_model.safetensors"]
    import peft
    hf = peft.PeftModel.from_pretrained(transformers.AutoModelForCausalLM.from_pretrained(path), str(adapter)).eval()
    x = np.asarray(tok.encode("the fox and the river").ids)[None]
    with torch.no_grad():
        want = hf(torch.from_numpy(x)).logits.numpy()
    import peftcpp
    got = ours["model"](input_ids=peftcpp.tensor(x)).logits.numpy()
    assert np.abs(got - want).max() / np.abs(want).max() < 1e-4
    # ... and the trained adapter is not the identity (B moved away from zero).
    from safetensors.numpy import load_file
    b = [v for k, v in load_file(str(adapter / "adapter_model.safetensors")).items() if "lora_B" in k]
    assert b and max(float(np.abs(v).max()) for v in b) > 0

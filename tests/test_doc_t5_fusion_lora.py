"""The user's document (seeds/000: LoRA on a custom T5WithFusion, T5 for
seq2seq) run as written, with only the imports switched from transformers /
peft to peftcpp, and the same code run with transformers + PEFT as the oracle.

The document leaves T5WithFusion (a module wrapping T5ForConditionalGeneration
that adds projected "lexical embeddings" to the first token's input embedding),
DataCollatorWithFusion, tokenized_datasets and the tokenizer to the reader:
they are written here once, as user code, and run over both libraries. The
model id ("google/flan-t5-small", no network here) becomes a tiny random
FLAN-T5-like checkpoint (gated-gelu, untied head) with a T5-style unigram
tokenizer (<pad> 0, </s> 1, <unk> 2, "</s>" appended)."""
import json
import os

import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from helpers import run_document_blocks

torch.set_num_threads(1)
LEX_DIM = 6

# The user's own classes (not in the document), written against `torch` /
# `nn` / `T5ForConditionalGeneration` as a user would; {torch} and {tf} pick the library.
USER_CODE = '''
import {torch} as torch
from {torch} import nn
from {tf} import T5ForConditionalGeneration


class T5WithFusion(nn.Module):
    def __init__(self, model_name, lexical_dim=LEX_DIM):
        super().__init__()
        self.t5 = T5ForConditionalGeneration.from_pretrained(model_name)
        self.config = self.t5.config
        self.lexical_proj = nn.Linear(lexical_dim, self.t5.config.d_model)

    def fused_embeds(self, input_ids, lexical_embeds):
        inputs_embeds = self.t5.get_input_embeddings()(input_ids)
        if lexical_embeds is not None:  # the lexical features join the first token
            first = inputs_embeds[:, :1, :] + self.lexical_proj(lexical_embeds).unsqueeze(1)
            inputs_embeds = torch.cat([first, inputs_embeds[:, 1:, :]], dim=1)
        return inputs_embeds

    def forward(self, input_ids=None, attention_mask=None, labels=None, lexical_embeds=None,
                decoder_input_ids=None, **kwargs):
        return self.t5(inputs_embeds=self.fused_embeds(input_ids, lexical_embeds), attention_mask=attention_mask,
                       labels=labels, decoder_input_ids=decoder_input_ids)

    def generate(self, input_ids=None, attention_mask=None, lexical_embeds=None, **kwargs):
        return self.t5.generate(inputs_embeds=self.fused_embeds(input_ids, lexical_embeds),
                                attention_mask=attention_mask, **kwargs)

    def prepare_inputs_for_generation(self, *args, **kwargs):  # PEFT's seq2seq wrapper asks for it
        return self.t5.prepare_inputs_for_generation(*args, **kwargs)


class DataCollatorWithFusion:
    def __init__(self, tokenizer, label_pad_token_id=-100):
        self.tokenizer = tokenizer
        self.label_pad_token_id = label_pad_token_id

    def __call__(self, features):
        pad = self.tokenizer.pad_token_id
        n = max(len(f["input_ids"]) for f in features)
        m = max(len(f["labels"]) for f in features)
        return {{
            "input_ids": torch.tensor([f["input_ids"] + [pad] * (n - len(f["input_ids"])) for f in features]),
            "attention_mask": torch.tensor([[1] * len(f["input_ids"]) + [0] * (n - len(f["input_ids"]))
                                            for f in features]),
            "labels": torch.tensor([f["labels"] + [self.label_pad_token_id] * (m - len(f["labels"]))
                                    for f in features]),
            "lexical_embeds": torch.tensor([f["lexical_embeds"] for f in features], dtype=torch.float32),
        }}


data_collator = DataCollatorWithFusion(tokenizer)
'''

# The document's code blocks 1-6, verbatim but for the import lines, the model
# id (MODEL) and the output folders (OUT).
DOC_1 = '''
model = T5WithFusion(MODEL)
'''
DOC_2 = '''
from {peft} import LoraConfig, get_peft_model, TaskType

lora_config = LoraConfig(
    r=32,
    lora_alpha=32,
    target_modules=["q", "v"],  # tu peux aussi tester ["k", "o"] selon l'expérience
    lora_dropout=0.05,
    bias="none",
    task_type=TaskType.SEQ_2_SEQ_LM
)
'''
DOC_3 = '''
peft_model = get_peft_model(model, lora_config)
'''
DOC_4 = '''
from {peft} import get_peft_model_state_dict

def print_trainable_parameters(model):
    trainable = 0
    total = 0
    for _, param in model.named_parameters():
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    print(f"Trainable params: {{trainable}} / {{total}} ({{100 * trainable/total:.2f}}%)")

print_trainable_parameters(peft_model)
'''
DOC_5 = '''
from {tf} import TrainingArguments, Trainer

training_args = TrainingArguments(
    output_dir=OUT + "/results_peft",
    learning_rate=1e-3,  # plus haut qu'en full fine-tune
    num_train_epochs=3,
    per_device_train_batch_size=8,
    per_device_eval_batch_size=8,
    logging_steps=10,
    save_strategy="epoch",
    {eval_key}="epoch",
)

trainer = Trainer(
    model=peft_model,
    args=training_args,
    train_dataset=tokenized_datasets["train"],
    eval_dataset=tokenized_datasets["validation"],
    data_collator=data_collator,  # ton DataCollatorWithFusion
)

trainer.train()
'''
DOC_6 = '''
peft_model.save_pretrained(OUT + "/peft_t5_withfusion")
tokenizer.save_pretrained(OUT + "/peft_t5_withfusion")
'''
# The follow-up the document offers: generate() with the lexical embeddings.
GENERATE = '''
peft_model.eval()
inputs = tokenizer(["the fox reads a story", "a girl finds a key"], return_tensors="pt", padding=True)
outputs = peft_model.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                              lexical_embeds=torch.tensor(LEX_PROMPT, dtype=torch.float32), max_new_tokens=10)
print(tokenizer.batch_decode(outputs, skip_special_tokens=True))
'''

PAIRS = [("the fox reads a story", "a story about the sea"), ("a girl finds a key", "the key opens the garden"),
         ("the river sings", "a song to the trees"), ("stars over the sea", "the fox looks at the stars"),
         ("the garden is green", "trees and a river"), ("every morning", "the river sings a song")] * 4


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny-flan-t5")
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    corpus = [s for p in PAIRS for s in p]
    tok.train_from_iterator(corpus, trainers.UnigramTrainer(vocab_size=90, special_tokens=["<pad>", "</s>", "<unk>"],
                                                            unk_token="<unk>", show_progress=False))
    assert [tok.token_to_id(t) for t in ("<pad>", "</s>", "<unk>")] == [0, 1, 2]
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "</s>", "pad_token": "<pad>",
        "unk_token": "<unk>", "model_max_length": 64}))
    torch.manual_seed(0)
    vocab = tok.get_vocab_size()
    transformers.T5ForConditionalGeneration(transformers.T5Config(
        vocab_size=vocab, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, decoder_start_token_id=0,
        feed_forward_proj="gated-gelu", relative_attention_num_buckets=8,
        relative_attention_max_distance=20)).save_pretrained(d)
    sd = load_file(str(d / "model.safetensors"))  # FLAN-T5's layout: its own head, tie_word_embeddings false
    sd["lm_head.weight"] = torch.randn(vocab, 32)
    save_file(sd, str(d / "model.safetensors"), metadata={"format": "pt"})
    cfg = json.loads((d / "config.json").read_text())
    cfg["tie_word_embeddings"] = False
    cfg.pop("scale_decoder_outputs", None)
    (d / "config.json").write_text(json.dumps(cfg))
    return str(d), tok


def _datasets(tok):
    rng = np.random.default_rng(0)
    rows = [{"input_ids": tok.encode(src).ids, "labels": tok.encode(tgt).ids,
             "lexical_embeds": rng.normal(size=LEX_DIM).round(3).tolist()} for src, tgt in PAIRS]
    return {"train": rows[:16], "validation": rows[16:]}


def run_document(tf, peft, model_dir, tok, out):
    lib = "peftcpp" if tf == "peftcpp" else "torch"
    tokenizer = __import__(tf).AutoTokenizer.from_pretrained(model_dir)
    ns = {"MODEL": model_dir, "OUT": str(out), "LEX_DIM": LEX_DIM, "tokenizer": tokenizer,
          "tokenized_datasets": _datasets(tok), "LEX_PROMPT": [[0.5] * LEX_DIM, [-0.5] * LEX_DIM]}
    # transformers 5 removed `evaluation_strategy` (the document's spelling); peftcpp keeps it
    eval_key = "evaluation_strategy" if tf == "peftcpp" else "eval_strategy"
    blocks = (("user", USER_CODE), ("1", DOC_1), ("2", DOC_2), ("3", DOC_3), ("4", DOC_4), ("5", DOC_5),
              ("6", DOC_6), ("gen", GENERATE))

    def seed(name):
        if name == "1" and lib == "peftcpp":
            ns["torch"].manual_seed(0)
    return ns, run_document_blocks(blocks, ns, before=seed, tf=tf, peft=peft, torch=lib, eval_key=eval_key)


def test_t5_fusion_lora_document_runs_unchanged_and_matches_peft(model_dir, tmp_path):
    path, tok = model_dir
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    ours, ours_out = run_document("peftcpp", "peftcpp", path, tok, tmp_path / "ours")
    ref, ref_out = run_document("transformers", "peft", path, tok, tmp_path / "ref")

    # Block 4: the document's own count, the same numbers as with PEFT (LoRA on
    # q and v of 6 attentions (2 encoder self, 2 decoder self, 2 cross): 12 x r*(32+32)).
    line = [x for x in ours_out["4"].splitlines() if x.startswith("Trainable params")]
    assert line and line == [x for x in ref_out["4"].splitlines() if x.startswith("Trainable params")]
    assert line[0].startswith(f"Trainable params: {12 * 32 * 64} / ")

    # Block 5: 16 examples, batch 8, 3 epochs = 6 steps; eval and a checkpoint each epoch, as transformers.
    assert ours["trainer"].state.global_step == ref["trainer"].state.global_step == 6
    for ns in (ours, ref):
        ckpts = [f for f in os.listdir(ns["training_args"].output_dir) if f.startswith("checkpoint-")]
        assert sorted(ckpts) == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    evals = [h for h in ours["trainer"].state.log_history if "eval_loss" in h]
    assert [h["step"] for h in evals] == [h["step"] for h in ref["trainer"].state.log_history
                                          if "eval_loss" in h] == [2, 4, 6]
    assert all(np.isfinite(h["eval_loss"]) for h in evals)
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"]  # lr 1e-3 on LoRA: it learns

    # Block 6: PEFT's adapter files; PEFT loads ours onto the transformers
    # T5WithFusion (same lexical_proj) and gives our logits and loss.
    adapter = tmp_path / "ours" / "peft_t5_withfusion"
    assert sorted(f for f in os.listdir(adapter) if f.startswith("adapter_")) == \
        ["adapter_config.json", "adapter_model.safetensors"]
    assert json.loads((adapter / "adapter_config.json").read_text())["task_type"] == "SEQ_2_SEQ_LM"
    assert os.path.isfile(adapter / "tokenizer.json")
    import peft
    twin = ref["T5WithFusion"](path)
    ours_model = ours["peft_model"]
    with torch.no_grad():
        lp = ours_model.get_base_model().lexical_proj
        twin.lexical_proj.weight.copy_(torch.from_numpy(lp.weight.numpy()))
        twin.lexical_proj.bias.copy_(torch.from_numpy(lp.bias.numpy()))
    hf = peft.PeftModel.from_pretrained(twin, str(adapter)).eval()
    b = ours["data_collator"](ours["tokenized_datasets"]["validation"])
    with torch.no_grad():
        want = hf(**{k: torch.from_numpy(v.numpy()) for k, v in b.items()})
    ours_model.eval()
    got = ours_model(**b)
    err = np.abs(got.logits.numpy() - want.logits.numpy()).max() / np.abs(want.logits.numpy()).max()
    assert err <= 1e-4, err
    assert abs(got.loss.item() - want.loss.item()) <= 1e-4 * abs(want.loss.item())
    from safetensors.numpy import load_file as np_load
    lora_b = [v for k, v in np_load(str(adapter / "adapter_model.safetensors")).items() if "lora_B" in k]
    assert len(lora_b) == 12 and max(float(np.abs(v).max()) for v in lora_b) > 0

    # The generate() follow-up: tokens come out, and PEFT's model with our
    # adapter generates the same greedy tokens.
    out = ours["outputs"].numpy()
    assert out.shape[0] == 2 and 1 < out.shape[1] <= 11 and (out[:, 0] == 0).all()
    inputs = ours["inputs"]
    with torch.no_grad():
        want_ids = hf.generate(input_ids=torch.from_numpy(inputs["input_ids"].numpy()),
                               attention_mask=torch.from_numpy(inputs["attention_mask"].numpy()),
                               lexical_embeds=torch.tensor(ours["LEX_PROMPT"], dtype=torch.float32),
                               max_new_tokens=10, do_sample=False)
    np.testing.assert_array_equal(out, want_ids.numpy())
    assert ours_out["gen"].startswith("[")


def test_data_collator_for_seq2seq_matches_transformers(model_dir):
    path, tok = model_dir
    import peftcpp
    ours_tok = peftcpp.AutoTokenizer.from_pretrained(path)
    ref_tok = transformers.AutoTokenizer.from_pretrained(path)
    feats = [{"input_ids": tok.encode(s).ids, "labels": tok.encode(t).ids} for s, t in PAIRS[:3]]
    ours_model = peftcpp.AutoModelForSeq2SeqLM.from_pretrained(path)
    ref_model = transformers.T5ForConditionalGeneration.from_pretrained(path)
    for kw in ({}, {"pad_to_multiple_of": 8}):
        got = peftcpp.DataCollatorForSeq2Seq(ours_tok, model=ours_model, **kw)([dict(f) for f in feats])
        want = transformers.DataCollatorForSeq2Seq(ref_tok, model=ref_model, return_tensors="pt", **kw)(
            [dict(f) for f in feats])
        want = {k: v.numpy() for k, v in want.items()}
        assert sorted(got) == sorted(want) == ["attention_mask", "decoder_input_ids", "input_ids", "labels"]
        for k in got:
            np.testing.assert_array_equal(got[k], np.asarray(want[k]), err_msg=k)

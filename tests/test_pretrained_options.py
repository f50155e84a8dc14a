"""Two options a newcomer passes without reading the docs: a keyword
from_pretrained does not use (a warning, once, instead of silence), and
target_modules="all-linear", whose treatment of the output layer follows
PEFT's rule (peft.tuners.tuners_utils._maybe_include_all_linear_layers) on
hand-written models, transformers models and SEQ_CLS models alike."""
import json
import os
import types
import warnings

import peft
import pytest
import torch
import transformers

import peftcpp
from peftcpp.models import LlamaConfig, LlamaForCausalLM, modeling_utils

TINY = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=True)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("opts") / "model"
    peftcpp.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(model_type="llama", **TINY)).save_pretrained(folder)
    return folder


def test_an_unused_keyword_warns_once_and_stays_out_of_the_config(tiny_model, tmp_path):
    modeling_utils._WARNED_UNUSED.clear()
    with pytest.warns(UserWarning) as record:
        model = peftcpp.AutoModelForCausalLM.from_pretrained(tiny_model, foo_bar=1, rms_norm_eps=1e-5)
    texts = [str(w.message) for w in record]
    assert texts == ["LlamaForCausalLM.from_pretrained(): keyword argument(s) 'foo_bar' not used (neither a "
                     "LlamaConfig field nor a loading option peftcpp knows); ignored"]
    assert not hasattr(model.config, "foo_bar") and model.config.rms_norm_eps == 1e-5  # a real field is used
    model.save_pretrained(tmp_path / "saved")
    assert "foo_bar" not in json.loads((tmp_path / "saved" / "config.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same keyword again: no second warning
        peftcpp.AutoModelForCausalLM.from_pretrained(tiny_model, foo_bar=2)
        # transformers' common config attributes and loading options are used, silently
        m = peftcpp.AutoModelForCausalLM.from_pretrained(tiny_model, output_hidden_states=True,
                                                         low_cpu_mem_usage=True, device_map="cpu")
    assert m.config.output_hidden_states is True


# ------------------------------------------------------------------ all-linear
def hand_written(lib, with_output_embeddings=False):
    """A model written by hand (a plain nn.Module), with an `out_head`."""
    class Net(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = lib.nn.Embedding(10, 8)
            self.blocks = lib.nn.ModuleList([lib.nn.Linear(8, 8) for _ in range(2)])
            self.out_head = lib.nn.Linear(8, 10, bias=False)

        def forward(self, x):
            h = self.emb(x)
            for b in self.blocks:
                h = b(h)
            return self.out_head(h)

    if with_output_embeddings:  # transformers' method name on a model that is not a PreTrainedModel
        Net.get_output_embeddings = lambda self: self.out_head
    return Net()


def targets(lib, model, **kw):
    """The module names get_peft_model wraps for target_modules="all-linear"."""
    cfg = lib.LoraConfig(target_modules="all-linear", r=2, **kw) if lib is peftcpp else \
        peft.LoraConfig(target_modules="all-linear", r=2, **kw)
    pm = (peftcpp.get_peft_model if lib is peftcpp else peft.get_peft_model)(model, cfg)
    return set(pm.peft_config["default"].target_modules)


@pytest.mark.parametrize("with_output_embeddings", [False, True])
def test_a_hand_written_model_keeps_its_output_layer_as_in_peft(with_output_embeddings):
    want = targets(torch, hand_written(torch, with_output_embeddings))
    assert want == {"blocks.0", "blocks.1", "out_head"}  # PEFT's answer: nothing is left out of a plain nn.Module
    assert targets(peftcpp, hand_written(peftcpp, with_output_embeddings)) == want


def test_a_transformers_model_leaves_its_lm_head_out_as_in_peft():
    kw = dict(vocab_size=40, n_embd=16, n_layer=2, n_head=2, n_positions=16)
    want = targets(torch, transformers.GPT2LMHeadModel(transformers.GPT2Config(**kw)))
    assert "lm_head" not in want and "transformer.h.0.attn.c_attn" in want
    assert targets(peftcpp, peftcpp.models.GPT2LMHeadModel(peftcpp.models.GPT2Config(**kw))) == want


class TinyClassifier(modeling_utils.PreTrainedModel):
    """A transformers-style classifier: no output embedding, a `score` head."""

    def __init__(self):
        super().__init__(types.SimpleNamespace(model_type="tiny"))
        self.proj = peftcpp.nn.Linear(8, 8)
        self.score = peftcpp.nn.Linear(8, 2, bias=False)

    def get_output_embeddings(self):
        return None


def test_a_seq_cls_model_leaves_its_score_head_out_as_in_peft():
    kw = dict(vocab_size=40, n_embd=16, n_layer=1, n_head=2, n_positions=16, num_labels=2, pad_token_id=0)

    def reference(**task):
        return targets(torch, transformers.GPT2ForSequenceClassification(transformers.GPT2Config(**kw)), **task)
    assert "score" not in reference(task_type="SEQ_CLS") and "score" in reference()  # PEFT's rule
    assert targets(peftcpp, TinyClassifier(), task_type="SEQ_CLS") == {"proj"}
    assert targets(peftcpp, TinyClassifier()) == {"proj", "score"}

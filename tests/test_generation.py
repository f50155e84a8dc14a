"""model.generate against transformers' generate on a tiny random Llama
saved with save_pretrained: greedy ids (max_new_tokens / max_length /
default), eos stopping and padding, repetition penalty, the sampling
warpers against transformers' processors, seeded sampling, stop strings,
streamers, batched left padding, generation_config objects and files."""
import io
import json
import contextlib

import numpy as np
import pytest
import torch
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers.generation.logits_process import (LogitsProcessorList, RepetitionPenaltyLogitsProcessor,
                                                    TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)

import peftcpp
from peftcpp.models import AutoModelForCausalLM, GenerationConfig
from peftcpp.models.generation import process_logits

V = 101


def save_tiny(path):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=V, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                   num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=128,
                                   tie_word_embeddings=True)
    ref = transformers.LlamaForCausalLM(cfg).eval()
    ref.save_pretrained(path)
    return ref


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    ref = save_tiny(path)
    return ref, AutoModelForCausalLM.from_pretrained(path), path


def prompts(b=1, t=7, seed=0):
    return np.random.default_rng(seed).integers(3, V, size=(b, t))


def hf_generate(ref, x, mask=None, **kw):
    with torch.no_grad():
        return ref.generate(torch.tensor(x), attention_mask=None if mask is None else torch.tensor(mask),
                            **kw).numpy()


def left_padded(seed=5):
    x = prompts(3, 8, seed=seed)
    mask = np.ones_like(x)
    mask[1, :3] = 0
    mask[2, :5] = 0
    x[mask == 0] = 0
    return x, mask


# ------------------------------------------------------------------ greedy

def test_greedy_lengths_match(pair):
    ref, model, _ = pair
    x = prompts()
    for kw in (dict(max_new_tokens=25), dict(max_length=15), {}):
        got = model.generate(x, **kw).numpy()
        np.testing.assert_array_equal(got, hf_generate(ref, x, do_sample=False, **kw))
    assert model.generate(x).shape == (1, 7 + 20)  # the default: 20 new tokens, as transformers


def test_eos_stops_and_pads_finished_rows(pair):
    ref, model, _ = pair
    x, mask = left_padded()
    greedy = model.generate(x, attention_mask=mask, max_new_tokens=12, eos_token_id=[]).numpy()[:, 8:]
    eos = int(greedy[0, 3])  # a token row 0 produces: row 0 stops there, the others pad until they stop
    other = int(greedy[1, 5])
    for eos_arg, pad in (([eos], 0), ([other, eos], 99), ([eos], None)):
        kw = dict(max_new_tokens=12, eos_token_id=eos_arg)
        if pad is not None:
            kw["pad_token_id"] = pad
        got = model.generate(x, attention_mask=mask, **kw).numpy()
        expect = hf_generate(ref, x, mask, do_sample=False, **kw)
        np.testing.assert_array_equal(got, expect)
        assert (got[:, 8:] == (eos if pad is None else pad)).any()  # finished rows were padded
    got = model.generate(x[:1], max_new_tokens=12, eos_token_id=eos).numpy()
    first = greedy[0].tolist().index(eos)
    assert got.shape[1] == 8 + first + 1 and got[0, -1] == eos  # batch 1: stops right after eos


def test_repetition_penalty_greedy_matches(pair):
    ref, model, _ = pair
    x = prompts(1, 6, seed=3)
    for penalty in (1.3, 0.7):
        got = model.generate(x, max_new_tokens=30, repetition_penalty=penalty).numpy()
        np.testing.assert_array_equal(got, hf_generate(ref, x, do_sample=False, max_new_tokens=30,
                                                       repetition_penalty=penalty))
    x, mask = left_padded(7)  # the penalty also covers the prompt's padding tokens, as transformers
    got = model.generate(x, attention_mask=mask, max_new_tokens=15, repetition_penalty=1.5).numpy()
    np.testing.assert_array_equal(got, hf_generate(ref, x, mask, do_sample=False, max_new_tokens=15,
                                                   repetition_penalty=1.5))


def test_batched_left_padding_matches(pair):
    ref, model, _ = pair
    x, mask = left_padded(11)
    got = model.generate(x, attention_mask=mask, max_new_tokens=14).numpy()
    np.testing.assert_array_equal(got, hf_generate(ref, x, mask, do_sample=False, max_new_tokens=14))
    got = model.generate(peftcpp.tensor(x), attention_mask=peftcpp.tensor(mask), max_new_tokens=14).numpy()
    np.testing.assert_array_equal(got, hf_generate(ref, x, mask, do_sample=False, max_new_tokens=14))


# --------------------------------------------------------------- sampling

@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 50, 1.0), (0.7, 10, 1.0), (1.3, 0, 0.8),
                                                     (0.5, 20, 0.9), (1.0, 1, 0.5), (2.0, 101, 0.3)])
def test_warpers_equal_transformers_processors(temperature, top_k, top_p):
    rng = np.random.default_rng(top_k)
    scores = (rng.standard_normal((6, V)) * 3).astype(np.float32)
    seq = rng.integers(0, V, size=(6, 9))
    procs = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(1.2)])
    if temperature != 1.0:
        procs.append(TemperatureLogitsWarper(temperature))
    if top_k:
        procs.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        procs.append(TopPLogitsWarper(top_p))
    expect = procs(torch.tensor(seq), torch.tensor(scores)).numpy()
    present = np.zeros((6, V), dtype=bool)
    np.put_along_axis(present, seq, True, axis=1)
    cfg = GenerationConfig(do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p,
                           repetition_penalty=1.2)
    got = process_logits(scores, cfg, present)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(expect))
    np.testing.assert_allclose(got[~np.isinf(got)], expect[~np.isinf(expect)], rtol=1e-6)


def test_seeded_sampling_reproducible_and_inside_top_k_top_p(pair):
    _, model, _ = pair
    x = prompts(2, 5, seed=1)
    kw = dict(do_sample=True, temperature=0.8, top_k=5, top_p=0.9, max_new_tokens=20, eos_token_id=[])
    a = model.generate(x, seed=123, **kw).numpy()
    np.testing.assert_array_equal(a, model.generate(x, seed=123, **kw).numpy())
    assert any(not np.array_equal(a, model.generate(x, seed=s, **kw).numpy()) for s in (1, 2, 3))
    peftcpp.manual_seed(7)
    b = model.generate(x, **kw).numpy()
    peftcpp.manual_seed(7)
    np.testing.assert_array_equal(b, model.generate(x, **kw).numpy())
    cfg = GenerationConfig(**{k: v for k, v in kw.items() if k != "max_new_tokens"})
    greedy_differs = False
    for seq in (a, b):
        logits = model(seq).logits.numpy()  # the full sequence without cache: the scores at every step
        for t in range(5, seq.shape[1]):
            allowed = np.isfinite(process_logits(logits[:, t - 1], cfg))
            assert allowed.sum(axis=1).max() <= 5
            assert allowed[np.arange(2), seq[:, t]].all(), t
            greedy_differs |= (seq[:, t] != logits[:, t - 1].argmax(-1)).any()
    assert greedy_differs  # it really sampled


def test_sampling_defaults_from_generation_config_file(tmp_path):
    ref = save_tiny(tmp_path)
    x = prompts()
    (tmp_path / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": 1, "eos_token_id": 2, "do_sample": True, "temperature": 0.6, "top_k": 3}))
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert model.generation_config.do_sample and model.generation_config.top_k == 3
    a = model.generate(x, seed=0, max_new_tokens=10, eos_token_id=[]).numpy()
    cfg = GenerationConfig(do_sample=True, temperature=0.6, top_k=3)
    logits = model(a).logits.numpy()
    for t in range(7, a.shape[1]):
        assert np.isfinite(process_logits(logits[:, t - 1], cfg))[0, a[0, t]]
    greedy = model.generate(x, do_sample=False, max_new_tokens=10, eos_token_id=[]).numpy()  # kwargs win
    np.testing.assert_array_equal(greedy, hf_generate(ref, x, do_sample=False, max_new_tokens=10,
                                                      eos_token_id=None))


# ------------------------------------------------------ generation config

def test_generation_config_object_and_model_defaults(pair, tmp_path):
    ref, model, _ = pair
    x = prompts(1, 6, seed=9)
    greedy = model.generate(x, max_new_tokens=12).numpy()[0, 6:]
    eos, pad = int(greedy[4]), 77
    got = model.generate(x, generation_config=GenerationConfig(max_new_tokens=12, eos_token_id=eos)).numpy()
    expect = hf_generate(ref, x, generation_config=transformers.GenerationConfig(max_new_tokens=12,
                                                                                 eos_token_id=eos))
    np.testing.assert_array_equal(got, expect)
    user = GenerationConfig(max_new_tokens=12)
    model.generate(x, generation_config=user, max_new_tokens=3)
    assert user.max_new_tokens == 12 and user.eos_token_id is None  # not modified by generate

    # generation_config.json next to the weights: eos/pad defaults, as transformers reads it
    save_tiny(tmp_path)
    (tmp_path / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": 1, "eos_token_id": [eos, 2], "pad_token_id": pad, "max_new_tokens": 12}))
    ref2 = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    model2 = AutoModelForCausalLM.from_pretrained(tmp_path)
    x2 = np.concatenate([x, prompts(1, 6, seed=4)])
    got = model2.generate(x2).numpy()
    np.testing.assert_array_equal(got, hf_generate(ref2, x2))
    assert got.shape[1] <= 6 + 12 and (got == pad).any()


# ----------------------------------------------------------- stop strings

class WordTok:
    """The minimal tokenizer generate() needs for stop strings: decode(ids)."""

    def __init__(self, tok):
        self.tok = tok

    def decode(self, ids, **kw):
        return self.tok.decode(list(ids), skip_special_tokens=False)


def tiny_tokenizer():
    rng = np.random.default_rng(0)
    vocab = {c: i for i, c in enumerate("abcdef")}
    while len(vocab) < V:
        vocab.setdefault("".join(rng.choice(list("abcde"), size=rng.integers(2, 4))), len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="a"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")  # encode: one token a character
    tok.decoder = decoders.Fuse()  # tokens concatenated: stop strings can span token boundaries
    return tok, transformers.PreTrainedTokenizerFast(tokenizer_object=tok)


def test_stop_strings_match_transformers(pair):
    ref, model, _ = pair
    tok, hf_tok = tiny_tokenizer()
    x = prompts(1, 6, seed=2)
    cont = model.generate(x, max_new_tokens=30, eos_token_id=[]).numpy()[0, 6:]
    pieces = [tok.id_to_token(int(i)) for i in cont]
    text = "".join(pieces)
    # stop strings that span token boundaries, sit inside one token, and never occur
    k = len("".join(pieces[:8]))
    in_prompt = "".join(tok.id_to_token(int(i)) for i in x[0, 1:4])  # only counts where it overlaps a new token
    cands = [text[k - 1:k + 2], text[k + 3:k + 5], pieces[12], text[k - 2:k + 1], "fafaf", [text[k + 6:k + 9], "fafaf"],
             in_prompt]
    stopped = 0
    for stop in cands:
        kw = dict(max_new_tokens=30, stop_strings=stop, eos_token_id=None)
        got = model.generate(x, tokenizer=WordTok(tok), **kw).numpy()
        expect = hf_generate(ref, x, do_sample=False, tokenizer=hf_tok, **kw)
        np.testing.assert_array_equal(got, expect, err_msg=repr(stop))
        stopped += got.shape[1] < 6 + 30
    assert stopped >= 4
    with pytest.raises(ValueError, match="tokenizer"):
        model.generate(x, stop_strings="ab")


# -------------------------------------------------------------- streaming

class Recorder:
    def __init__(self):
        self.puts, self.ended = [], 0

    def put(self, value):
        self.puts.append(np.asarray(value.tolist()).tolist())

    def end(self):
        self.ended += 1


def test_streamers(pair):
    ref, model, _ = pair
    x = prompts(1, 6, seed=6)
    seen = []
    got = model.generate(x, max_new_tokens=9, streamer=seen.append).numpy()
    assert [t for step in seen for t in step] == got[0, 6:].tolist()
    ours, theirs = Recorder(), Recorder()
    model.generate(x, max_new_tokens=9, streamer=ours)
    hf_generate(ref, x, do_sample=False, max_new_tokens=9, streamer=theirs)
    assert ours.puts == theirs.puts and ours.ended == theirs.ended == 1  # prompt first, then each token

    tok, hf_tok = tiny_tokenizer()  # transformers' own TextStreamer prints the same text
    outs = []
    for gen, kw in ((model.generate, {}), (ref.generate, dict(do_sample=False))):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), torch.no_grad():
            gen(x if gen is model.generate else torch.tensor(x), max_new_tokens=9,
                streamer=transformers.TextStreamer(hf_tok, skip_prompt=True), **kw)
        outs.append(buf.getvalue())
    assert outs[0] == outs[1] and len(outs[0]) > 9

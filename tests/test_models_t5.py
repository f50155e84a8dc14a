"""T5 (original: ReLU, tied head with the d_model**-0.5 rescale) and T5 v1.1 /
FLAN-T5 (gated-gelu_new, untied head) loaded from checkpoints transformers
saves: logits (<= 1e-4 relative, f32) with and without labels, the loss,
greedy generation with padding, gradients vs torch (<= 1e-4 relative), and
files transformers loads back."""
import json

import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

import peftcpp
from peftcpp.models import AutoModelForCausalLM, AutoModelForSeq2SeqLM, T5EncoderModel
from peftcpp.models.t5 import relative_position_bucket

torch.set_num_threads(1)
V = 100


def tiny_t5(path, flan=False, **overrides):
    """flan=False: original T5 (relu, tied); flan=True: like google/flan-t5-*
    (gated-gelu, its own lm_head.weight, tie_word_embeddings false in config.json)."""
    torch.manual_seed(0)
    kw = dict(vocab_size=V, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, decoder_start_token_id=0,
              relative_attention_num_buckets=8, relative_attention_max_distance=20,
              feed_forward_proj="gated-gelu" if flan else "relu")
    kw.update(overrides)
    model = transformers.T5ForConditionalGeneration(transformers.T5Config(**kw)).eval()
    with torch.no_grad():  # norms start at 1: make them matter; larger bias so the positions matter
        for n, p in model.named_parameters():
            if "layer_norm" in n:
                p.normal_(1.0, 0.3)
            if "relative_attention_bias" in n:
                p.normal_(0, 1.0)
            if n.endswith(("q.weight", "k.weight", "v.weight", "o.weight")):
                p.mul_(2.0)  # sharper attention: greedy continuations that vary from token to token
    model.save_pretrained(path)
    if flan:  # the files FLAN-T5 ships: a separate head, no scale_decoder_outputs key
        sd = load_file(str(path / "model.safetensors"))
        sd["lm_head.weight"] = torch.randn(V, kw["d_model"]) * 0.5
        save_file(sd, str(path / "model.safetensors"), metadata={"format": "pt"})
        cfg = json.loads((path / "config.json").read_text())
        cfg["tie_word_embeddings"] = False
        for k in ("scale_decoder_outputs", "dense_act_fn", "is_gated_act"):
            cfg.pop(k, None)
        (path / "config.json").write_text(json.dumps(cfg))
    return transformers.T5ForConditionalGeneration.from_pretrained(path).eval()


def batch(seed=0, b=2, s=30, t=25):
    rng = np.random.default_rng(seed)
    x = rng.integers(2, V, (b, s))
    mask = np.ones_like(x)
    mask[1, s - 8:] = 0  # right padding, as T5 tokenizers pad
    x[1, s - 8:] = 0
    lab = rng.integers(2, V, (b, t))
    lab[0, t - 5:] = -100
    return x, mask, lab


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(params=["t5", "flan"])
def pair(request, tmp_path):
    flan = request.param == "flan"
    ref = tiny_t5(tmp_path, flan=flan)
    model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert (model.lm_head.weight is model.shared.weight) == (not flan)
    assert model.config.scale_decoder_outputs == (not flan)
    return ref, model, tmp_path


def test_bucket_matches_transformers():
    rp = np.arange(-300, 300)[None, :] - np.arange(0, 40)[:, None]
    for bidir in (True, False):
        for nb, md in ((32, 128), (8, 20)):
            want = transformers.models.t5.modeling_t5.T5Attention._relative_position_bucket(
                torch.tensor(rp), bidirectional=bidir, num_buckets=nb, max_distance=md).numpy()
            np.testing.assert_array_equal(relative_position_bucket(rp, bidir, nb, md), want)


def test_logits_loss_and_greedy_match_transformers(pair):
    ref, model, _ = pair
    x, mask, lab = batch()
    with torch.no_grad():
        r = ref(input_ids=torch.tensor(x), attention_mask=torch.tensor(mask), labels=torch.tensor(lab))
        dec = ref._shift_right(torch.tensor(lab))
        r_nolab = ref(input_ids=torch.tensor(x), attention_mask=torch.tensor(mask), decoder_input_ids=dec)
    out = model(input_ids=x, attention_mask=mask, labels=lab)
    assert rel(out.logits.numpy(), r.logits.numpy()) <= 1e-4
    assert abs(out.loss.item() - r.loss.item()) <= 1e-5 * abs(r.loss.item())
    nolab = model(input_ids=x, attention_mask=mask, decoder_input_ids=dec.numpy())
    assert nolab.loss is None
    assert rel(nolab.logits.numpy(), r_nolab.logits.numpy()) <= 1e-4
    # greedy, 20 new tokens, batch of 2 with padding; then eos stops a row and pads it
    g_ref = ref.generate(input_ids=torch.tensor(x), attention_mask=torch.tensor(mask), max_new_tokens=20,
                         do_sample=False)
    g = model.generate(input_ids=x, attention_mask=mask, max_new_tokens=20)
    np.testing.assert_array_equal(g.numpy(), g_ref.numpy())
    assert g.shape == (2, 21)
    eos = int(g_ref[0, 5])
    g_ref = ref.generate(input_ids=torch.tensor(x), attention_mask=torch.tensor(mask), max_new_tokens=20,
                         do_sample=False, eos_token_id=eos)
    g = model.generate(input_ids=x, attention_mask=mask, max_new_tokens=20, eos_token_id=eos)
    np.testing.assert_array_equal(g.numpy(), g_ref.numpy())
    # no mask (transformers infers none for encoder-decoders) and the default length (20 + the start token)
    g_ref = ref.generate(input_ids=torch.tensor(x), do_sample=False)
    np.testing.assert_array_equal(model.generate(x).numpy(), g_ref.numpy())


def test_gradients_match_torch(pair):
    ref, model, _ = pair
    x, mask, lab = batch(1)
    ref.zero_grad()
    ref(input_ids=torch.tensor(x), attention_mask=torch.tensor(mask), labels=torch.tensor(lab)).loss.backward()
    model(input_ids=x, attention_mask=mask, labels=lab).loss.backward()
    tp = dict(ref.named_parameters())
    mp = dict(model.named_parameters())
    names = ["shared.weight", "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
             "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
             "encoder.block.1.layer.0.SelfAttention.q.weight", "decoder.block.1.layer.1.EncDecAttention.v.weight",
             "decoder.block.0.layer.2.DenseReluDense.wo.weight", "decoder.final_layer_norm.weight"]
    if "lm_head.weight" in mp:
        names.append("lm_head.weight")
    for n in names:
        assert rel(mp[n].grad.numpy(), tp[n].grad.numpy()) <= 1e-4, n


def test_state_dict_keys_and_save_round_trip(pair, tmp_path):
    ref, model, _ = pair
    assert set(model.state_dict()) == set(ref.state_dict())
    model.save_pretrained(tmp_path / "saved")
    back = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "saved").eval()
    x, mask, lab = batch(2)
    with torch.no_grad():
        want = ref(input_ids=torch.tensor(x), attention_mask=torch.tensor(mask), labels=torch.tensor(lab)).logits
        got = back(input_ids=torch.tensor(x), attention_mask=torch.tensor(mask), labels=torch.tensor(lab)).logits
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    again = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "saved")
    np.testing.assert_array_equal(again(input_ids=x, labels=lab).logits.numpy(),
                                  model(input_ids=x, labels=lab).logits.numpy())


def test_sampling_is_seeded_and_encoder_model(pair):
    ref, model, path = pair
    x, mask, _ = batch(3)
    a = model.generate(input_ids=x, attention_mask=mask, do_sample=True, top_k=10, top_p=0.9, temperature=0.7,
                       max_new_tokens=8, seed=5, num_return_sequences=2)
    b = model.generate(input_ids=x, attention_mask=mask, do_sample=True, top_k=10, top_p=0.9, temperature=0.7,
                       max_new_tokens=8, seed=5, num_return_sequences=2)
    assert a.shape == (4, 9)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    enc = T5EncoderModel.from_pretrained(path)
    with torch.no_grad():
        want = ref.encoder(input_ids=torch.tensor(x), attention_mask=torch.tensor(mask)).last_hidden_state.numpy()
    assert rel(enc(input_ids=x, attention_mask=mask).last_hidden_state.numpy(), want) <= 1e-5


def test_causal_auto_class_refers_to_seq2seq(tmp_path):
    tiny_t5(tmp_path)
    with pytest.raises(ValueError, match="AutoModelForSeq2SeqLM"):
        AutoModelForCausalLM.from_pretrained(tmp_path)
    assert peftcpp.AutoConfig.from_pretrained(tmp_path).hidden_size == 32


def test_gradient_checkpointing_gives_the_same_gradients(tmp_path):
    tiny_t5(tmp_path, flan=True, dropout_rate=0.0)
    x, mask, lab = batch(4)
    grads = []
    for gc in (False, True):
        model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
        if gc:
            model.gradient_checkpointing_enable()
        model.train()
        model(input_ids=x, attention_mask=mask, labels=lab).loss.backward()
        grads.append({n: p.grad.numpy().copy() for n, p in model.named_parameters()})
    for n in grads[0]:
        assert rel(grads[1][n], grads[0][n]) <= 1e-5, n

"""AutoModelForSequenceClassification for every causal architecture against
transformers' <Arch>ForSequenceClassification: logits and loss on batches
with right and left padding, the three problem types, pad_token_id rules,
labels in config.json, checkpoints both ways, and a causal LM checkpoint
whose backbone loads under a newly initialised `score` head."""
import json
import warnings

import numpy as np
import pytest
import torch
import transformers

import peftcpp
from peftcpp.models import AutoModelForSequenceClassification

V, PAD = 64, 0
LLAMA_LIKE = dict(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=64, pad_token_id=PAD, bos_token_id=1,
                  eos_token_id=2)
ARCHS = {
    "llama": ("Llama", "Llama", {}),
    "mistral": ("Mistral", "Mistral", dict(sliding_window=4)),
    "qwen2": ("Qwen2", "Qwen2", {}),
    "qwen3": ("Qwen3", "Qwen3", dict(head_dim=8)),
    "smollm3": ("SmolLM3", "SmolLM3", dict(no_rope_layer_interval=2)),
    "phi3": ("Phi3", "Phi3", {}),
    "gemma3_text": ("Gemma3Text", "Gemma3Text", dict(head_dim=8, query_pre_attn_scalar=8, sliding_window=4,
                                                     layer_types=["sliding_attention", "full_attention"])),
    "gpt2": ("GPT2", "GPT2", dict(n_embd=32, n_layer=2, n_head=4, n_positions=64)),
}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def config_kwargs(arch, **overrides):
    _, _, extra = ARCHS[arch]
    if arch == "gpt2":
        kw = dict(vocab_size=V, pad_token_id=PAD, bos_token_id=1, eos_token_id=2)
    else:
        kw = dict(LLAMA_LIKE)
    kw.update(extra)
    kw.update(overrides)
    return kw


def hf_config(arch, **overrides):
    name, _, _ = ARCHS[arch]
    cls = "Gemma3TextConfig" if arch == "gemma3_text" else f"{name}Config"
    return getattr(transformers, cls)(**config_kwargs(arch, **overrides))


def perturb(model):
    """Biases and norms away from 0 / 1 so that a missed one shows."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("bias") or "norm" in n or ".ln_" in n:
                p.add_(torch.randn_like(p) * 0.2)


def build(tmp_path, arch, head="ForSequenceClassification", **overrides):
    """A tiny random transformers model of `arch` saved to tmp_path."""
    torch.manual_seed(0)
    _, prefix, _ = ARCHS[arch]
    if head == "ForCausalLM" and arch == "gpt2":
        head = "LMHeadModel"
    if head == "ForCausalLM" and arch == "gemma3_text":
        prefix = "Gemma3"
    model = getattr(transformers, f"{prefix}{head}")(hf_config(arch, **overrides)).eval()
    perturb(model)
    model.save_pretrained(tmp_path)
    return model


def padded_batch(rng=None):
    """Rows of different lengths: right-padded, left-padded, unpadded, and a
    pad id inside a row (only trailing / leading pads are padding)."""
    rng = rng or np.random.default_rng(0)
    x = rng.integers(3, V, size=(4, 9))
    x[0, 6:] = PAD  # right padding
    x[1, :3] = PAD  # left padding
    x[3, 2] = PAD  # a pad token inside the text, then more text
    mask = (x != PAD).astype(np.int64)
    mask[3, 2] = 1
    return x, mask


def rel_err(got, expect):
    return float(np.abs(got - expect).max() / max(np.abs(expect).max(), 1e-12))


def hf_forward(ref, x, mask, labels=None):
    with torch.no_grad():
        return ref(torch.tensor(x), attention_mask=torch.tensor(mask),
                   labels=None if labels is None else torch.tensor(labels))


@pytest.mark.parametrize("arch", list(ARCHS))
def test_logits_and_loss_match_transformers_with_padding_and_save_both_ways(tmp_path, arch):
    ref = build(tmp_path / "hf", arch, num_labels=3)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf")
    assert type(model).__name__ == type(ref).__name__
    assert list(model.state_dict()) == list(ref.state_dict())
    x, mask = padded_batch()
    labels = np.array([0, 2, 1, 2])
    expect = hf_forward(ref, x, mask, labels)
    out = model(x, attention_mask=mask, labels=labels)
    assert tuple(out.logits.shape) == (4, 3)
    assert rel_err(out.logits.numpy(), expect.logits.numpy()) <= 1e-4
    assert abs(out.loss.item() - expect.loss.item()) <= 1e-5 * abs(expect.loss.item())
    assert model.config.problem_type == ref.config.problem_type == "single_label_classification"

    model.save_pretrained(tmp_path / "pc")  # peftcpp's checkpoint, read by transformers
    saved = json.loads((tmp_path / "pc" / "config.json").read_text())
    assert saved["architectures"] == [type(ref).__name__]
    back = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "pc").eval()
    assert type(back).__name__ == type(ref).__name__
    assert back.config.num_labels == 3 and back.config.id2label == ref.config.id2label
    assert rel_err(hf_forward(back, x, mask).logits.numpy(), expect.logits.numpy()) <= 1e-4


def test_gradients_match_transformers(tmp_path):
    ref = build(tmp_path, "llama", num_labels=3)
    ref.train()
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path, dtype="float32")
    model.train()
    x, mask = padded_batch()
    labels = np.array([1, 0, 2, -100])  # -100: ignored, as transformers' cross-entropy does
    ref(torch.tensor(x), attention_mask=torch.tensor(mask), labels=torch.tensor(labels)).loss.backward()
    model(x, attention_mask=mask, labels=labels).loss.backward()
    grads = dict(model.named_parameters())
    for name, p in ref.named_parameters():
        if name in ("score.weight", "model.layers.1.self_attn.q_proj.weight", "model.embed_tokens.weight"):
            assert rel_err(grads[name].grad.numpy(), p.grad.numpy()) <= 1e-4, name


@pytest.mark.parametrize("arch", ["llama", "gpt2"])  # the generic class and GPT-2's own loss in transformers
@pytest.mark.parametrize("problem, num_labels", [("regression", 1), ("regression", 3), ("single", 4),
                                                 ("multi", 3)])
def test_problem_types_infer_and_match_transformers(tmp_path, arch, problem, num_labels):
    ref = build(tmp_path, arch, num_labels=num_labels)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    x, mask = padded_batch()
    rng = np.random.default_rng(3)
    if problem == "regression":
        labels = rng.normal(size=(4,) if num_labels == 1 else (4, num_labels)).astype(np.float32)
        if num_labels > 1:  # several outputs: transformers infers multi-label from float labels; say regression
            ref.config.problem_type = model.config.problem_type = "regression"
    elif problem == "single":
        labels = rng.integers(0, num_labels, size=4)
    else:
        labels = (rng.random((4, num_labels)) > 0.5).astype(np.float32)
    expect = hf_forward(ref, x, mask, labels)
    out = model(x, attention_mask=mask, labels=labels)
    assert model.config.problem_type == ref.config.problem_type
    assert abs(out.loss.item() - expect.loss.item()) <= 1e-5 * abs(expect.loss.item())
    model.save_pretrained(tmp_path / "pc")  # the inferred problem_type is kept, as transformers keeps it
    assert json.loads((tmp_path / "pc" / "config.json").read_text())["problem_type"] == ref.config.problem_type


def test_pad_token_id_none(tmp_path):
    ref = build(tmp_path, "llama", num_labels=2, pad_token_id=None)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    x = np.random.default_rng(0).integers(3, V, size=(2, 7))
    with pytest.raises(ValueError, match=r"LlamaForSequenceClassification: Cannot handle batch sizes > 1 if no "
                                         r"padding token is defined \(config.pad_token_id is None"):
        model(x)
    with pytest.raises(ValueError, match="Cannot handle batch sizes > 1"):
        ref(torch.tensor(x))
    with torch.no_grad():  # one row: its last token, whatever it is
        expect = ref(torch.tensor(x[:1])).logits.numpy()
    assert rel_err(model(x[:1]).logits.numpy(), expect) <= 1e-4


def test_inputs_embeds_use_the_last_position_with_a_warning(tmp_path):
    ref = build(tmp_path, "llama", num_labels=2)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    x, _ = padded_batch()
    emb = model.model.embed_tokens(peftcpp.from_numpy(x))
    with pytest.warns(UserWarning, match="will not detect padding tokens in `inputs_embeds`"):
        got = model(inputs_embeds=emb).logits.numpy()
    with torch.no_grad():
        expect = ref(inputs_embeds=torch.tensor(emb.numpy())).logits.numpy()
    assert rel_err(got, expect) <= 1e-4


def test_labels_in_config_json_both_ways(tmp_path):
    id2label = {0: "ham", 1: "spam", 2: "phishing"}
    label2id = {v: k for k, v in id2label.items()}
    ref = build(tmp_path / "hf", "qwen2", id2label=id2label, label2id=label2id)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf")
    assert model.config.id2label == id2label and model.config.label2id == label2id
    assert model.config.num_labels == model.num_labels == 3
    model.save_pretrained(tmp_path / "pc")
    saved = json.loads((tmp_path / "pc" / "config.json").read_text())
    assert saved["id2label"] == {"0": "ham", "1": "spam", "2": "phishing"} and saved["label2id"] == label2id
    back = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "pc")
    assert back.config.id2label == id2label and back.config.label2id == label2id
    assert type(ref).__name__ == type(back).__name__


def test_causal_lm_checkpoint_loads_backbone_and_initialises_score(tmp_path):
    lm = build(tmp_path, "llama", head="ForCausalLM", tie_word_embeddings=False)
    peftcpp.manual_seed(0)
    with pytest.warns(UserWarning) as record:
        model = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=4,
                                                                   id2label={i: f"c{i}" for i in range(4)})
    messages = [str(w.message) for w in record]
    assert any("were not used when initializing LlamaForSequenceClassification: ['lm_head.weight']" in m
               for m in messages), messages
    assert any("Some weights of LlamaForSequenceClassification were not initialized from the model checkpoint at "
               f"{tmp_path} and are newly initialized: ['score.weight']" in m for m in messages), messages
    assert "lm_head.weight" not in model.state_dict()
    w = model.score.weight.numpy()
    assert w.shape == (4, 32) and 0.01 < w.std() < 0.03  # N(0, initializer_range=0.02), as transformers
    assert model.score.weight.requires_grad and model.config.id2label[3] == "c3"
    # the backbone is the LM's: with the same score weights, transformers' classifier agrees
    transformers.logging.set_verbosity_error()
    ref = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=4).eval()
    with torch.no_grad():
        ref.score.weight.copy_(torch.tensor(w))
    x, mask = padded_batch()
    assert rel_err(model(x, attention_mask=mask).logits.numpy(), hf_forward(ref, x, mask).logits.numpy()) <= 1e-4
    for k in ("model.layers.0.mlp.up_proj.weight", "model.norm.weight"):
        assert np.array_equal(model.state_dict()[k].numpy(), lm.state_dict()[k].numpy())


def test_num_labels_mismatch_fails_unless_ignore_mismatched_sizes(tmp_path):
    build(tmp_path, "gpt2", num_labels=2)
    with pytest.raises(ValueError, match=r"tensor 'score.weight' has shape \(2, 32\) but config.json implies "
                                         r"\(5, 32\)"):
        AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=5)
    with pytest.warns(UserWarning, match=r"newly initialized: \['score.weight'\] \(checkpoint \(2, 32\), model "
                                         r"\(5, 32\)\)"):
        model = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=5,
                                                                   ignore_mismatched_sizes=True)
    assert tuple(model(np.array([[5, 6, 7]])).logits.shape) == (1, 5)


def test_label_settings_are_checked(tmp_path):
    build(tmp_path, "llama", num_labels=2)
    with pytest.raises(ValueError, match='problem_type "single_label_classification" requires num_labels > 1'):
        AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=1,
                                                           problem_type="single_label_classification")
    with pytest.raises(ValueError, match="problem_type must be one of regression, single_label_classification, "
                                         "multi_label_classification, got \"binary\""):
        AutoModelForSequenceClassification.from_pretrained(tmp_path, problem_type="binary")
    with pytest.raises(TypeError, match=r"id2label keys must be label ids \(integers\), got \[\"a\"\]"):
        AutoModelForSequenceClassification.from_pretrained(tmp_path, id2label={"a": "x"})
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="label 7 is out of range for num_labels=2"):
        model(np.array([[4, 5, 6]]), labels=np.array([7]))


def test_from_config_and_unsupported_model_type(tmp_path):
    cfg = peftcpp.models.LlamaConfig(**config_kwargs("llama"))
    model = AutoModelForSequenceClassification.from_config(cfg, num_labels=5)
    assert type(model).__name__ == "LlamaForSequenceClassification" and tuple(model.score.weight.shape) == (5, 32)
    torch.manual_seed(0)
    transformers.T5ForConditionalGeneration(transformers.T5Config(
        vocab_size=V, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"config.json: model_type 't5' has no sequence classification model in "
                                         r"peftcpp; supported: gemma3, gemma3_text, gpt2, llama"):
        AutoModelForSequenceClassification.from_pretrained(tmp_path)


def test_gemma3_multimodal_classifier_loads_as_its_text_model(tmp_path):
    torch.manual_seed(0)
    text = transformers.Gemma3TextConfig(**config_kwargs("gemma3_text"))
    vision = transformers.SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, image_size=16, patch_size=4)
    cfg = transformers.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4,
                                    image_token_index=V - 1, boi_token_index=V - 3, eoi_token_index=V - 2,
                                    num_labels=3)
    ref = transformers.Gemma3ForSequenceClassification(cfg).eval()
    perturb(ref)
    ref.save_pretrained(tmp_path / "hf")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every tensor it needs is in the file: no warning
        model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf")
    assert type(model).__name__ == "Gemma3ForSequenceClassification" and model.num_labels == 3
    x, mask = padded_batch()
    x = np.minimum(x, V - 4)  # no image tokens
    expect = hf_forward(ref, x, mask).logits.numpy()
    assert rel_err(model(x, attention_mask=mask).logits.numpy(), expect) <= 1e-4
    model.save_pretrained(tmp_path / "pc")
    back = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "pc").eval()
    assert type(back).__name__ == "Gemma3TextForSequenceClassification"
    assert rel_err(hf_forward(back, x, mask).logits.numpy(), expect) <= 1e-4

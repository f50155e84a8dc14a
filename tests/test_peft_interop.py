"""peftcpp.peft against Hugging Face PEFT (PyPI peft + transformers + torch
as the oracle): adapters move both ways with the same logits, the same
print_trainable_parameters line, merged models that transformers loads,
and a clear error for an adapter on the wrong base."""
import json
import os

import numpy as np
import pytest
import safetensors.numpy
import torch
import transformers

peft = pytest.importorskip("peft")

import peftcpp  # noqa: E402
from peftcpp import peft as pc_peft  # noqa: E402
from peftcpp.models import AutoModelForCausalLM  # noqa: E402

torch.set_num_threads(1)

ARCHS = {
    "llama": lambda: transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=101, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=6,
        num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=True)),
    "qwen2": lambda: transformers.Qwen2ForCausalLM(transformers.Qwen2Config(
        vocab_size=101, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=6,
        num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False)),
    "gpt2": lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=101, n_embd=32, n_layer=2, n_head=4, n_positions=64, bos_token_id=0, eos_token_id=0)),
}
ATTN = {"llama": ["q_proj", "v_proj"], "qwen2": ["q_proj", "v_proj"], "gpt2": ["c_attn"]}
MLP = {"llama": ["q_proj", "down_proj"], "qwen2": ["k_proj", "up_proj"], "gpt2": ["c_attn", "c_fc"]}


def config_kwargs(arch, which):
    if which == "attn":
        return dict(target_modules=ATTN[arch], r=4, lora_alpha=8)
    if which == "all-linear":
        return dict(target_modules="all-linear", r=4, lora_alpha=16)
    if which == "layers":
        return dict(target_modules=MLP[arch], layers_to_transform=[1], r=2, lora_alpha=4, use_rslora=True)
    if which == "bias":
        return dict(target_modules=ATTN[arch], bias="all", r=3, lora_alpha=6,
                    rank_pattern={ATTN[arch][-1]: 5}, alpha_pattern={ATTN[arch][0]: 3})
    if which == "embed":
        return dict(target_modules=["embed_tokens", "q_proj"], r=4, lora_alpha=8)
    if which == "modules_to_save":
        return dict(target_modules=ATTN[arch], modules_to_save=["lm_head"], lora_dropout=0.1)
    raise KeyError(which)


CASES = [(a, w) for a in ARCHS for w in ("attn", "all-linear", "layers")] + [("gpt2", "bias"), ("qwen2", "bias"),
                                                                          ("qwen2", "modules_to_save"),
                                                                          ("qwen2", "embed")]


@pytest.fixture(scope="module")
def base_dirs(tmp_path_factory):
    out = {}
    for arch, make in ARCHS.items():
        torch.manual_seed(0)
        d = tmp_path_factory.mktemp(arch)
        make().eval().save_pretrained(d)
        out[arch] = str(d)
    return out


def hf_model(path):
    return transformers.AutoModelForCausalLM.from_pretrained(path).eval()


def ids(b=2, t=7, seed=0):
    return np.random.default_rng(seed).integers(0, 101, size=(b, t))


def rel(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


def randomize_pc(model, seed=1):
    rng = np.random.default_rng(seed)
    with peftcpp.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad:
                p.copy_(peftcpp.from_numpy(rng.normal(0, 0.2, size=p.shape).astype(np.float32)))


def randomize_torch(model, seed=2):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def hf_logits(model, x):
    with torch.no_grad():
        return model(torch.tensor(x)).logits.numpy()


@pytest.mark.parametrize("arch,which", CASES)
def test_peftcpp_adapter_loads_in_hf_peft(base_dirs, tmp_path, arch, which):
    base = AutoModelForCausalLM.from_pretrained(base_dirs[arch])
    pm = pc_peft.get_peft_model(base, pc_peft.LoraConfig(task_type="CAUSAL_LM", **config_kwargs(arch, which)))
    randomize_pc(pm)
    pm.eval()
    x = ids()
    got = pm(x).logits.numpy()
    pm.save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["adapter_config.json", "adapter_model.safetensors"]
    ref = peft.PeftModel.from_pretrained(hf_model(base_dirs[arch]), str(tmp_path))
    # same tensors under the same names, same dtype
    saved = safetensors.numpy.load_file(str(tmp_path / "adapter_model.safetensors"))
    hf_sd = peft.get_peft_model_state_dict(ref)
    assert sorted(saved) == sorted(hf_sd)
    for k, v in saved.items():
        assert v.dtype == np.float32
        np.testing.assert_array_equal(v, hf_sd[k].numpy())
    assert rel(got, hf_logits(ref, x)) <= 1e-4
    cfg = peft.PeftConfig.from_pretrained(str(tmp_path))
    assert cfg.r == pm.peft_config["default"].r and cfg.base_model_name_or_path == base_dirs[arch]
    # adapter_config.json: the same fields and values PEFT writes for the same config
    hf = peft.get_peft_model(hf_model(base_dirs[arch]), peft.LoraConfig(task_type="CAUSAL_LM",
                                                                         **config_kwargs(arch, which)))
    hf.save_pretrained(str(tmp_path / "hf"))
    mine = json.load(open(tmp_path / "adapter_config.json"))
    theirs = json.load(open(tmp_path / "hf" / "adapter_config.json"))
    assert sorted(mine.pop("target_modules")) == sorted(theirs.pop("target_modules"))
    assert mine == theirs


@pytest.mark.parametrize("arch,which", CASES)
def test_hf_peft_adapter_loads_in_peftcpp(base_dirs, tmp_path, arch, which):
    ref = peft.get_peft_model(hf_model(base_dirs[arch]), peft.LoraConfig(task_type="CAUSAL_LM",
                                                                          **config_kwargs(arch, which)))
    randomize_torch(ref)
    ref.save_pretrained(str(tmp_path))
    ref.eval()
    x = ids(seed=3)
    base = AutoModelForCausalLM.from_pretrained(base_dirs[arch])
    pm = pc_peft.PeftModel.from_pretrained(base, tmp_path)
    assert isinstance(pm, pc_peft.PeftModelForCausalLM)
    assert pm.get_nb_trainable_parameters()[0] == 0  # is_trainable=False: frozen
    assert rel(pm(x).logits.numpy(), hf_logits(ref, x)) <= 1e-4
    # same parameter names as PEFT's in-memory model
    hf_names = [n for n, _ in ref.named_parameters() if "lora_" in n]
    assert [n for n, _ in pm.named_parameters() if "lora_" in n] == hf_names
    # saved again by peftcpp: the same keys and values PEFT wrote
    pm.save_pretrained(tmp_path / "again")
    a = safetensors.numpy.load_file(str(tmp_path / "adapter_model.safetensors"))
    b = safetensors.numpy.load_file(str(tmp_path / "again" / "adapter_model.safetensors"))
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    ca = json.load(open(tmp_path / "adapter_config.json"))
    cb = json.load(open(tmp_path / "again" / "adapter_config.json"))
    assert set(ca) == set(cb)
    for k in ca:
        if k != "target_modules":
            assert ca[k] == cb[k], k
    assert sorted(ca["target_modules"]) == sorted(cb["target_modules"])


@pytest.mark.parametrize("arch,which", CASES)
def test_print_trainable_parameters_matches_peft(base_dirs, capsys, arch, which):
    ref = peft.get_peft_model(hf_model(base_dirs[arch]), peft.LoraConfig(**config_kwargs(arch, which)))
    capsys.readouterr()
    ref.print_trainable_parameters()
    expect = capsys.readouterr().out
    pm = pc_peft.get_peft_model(AutoModelForCausalLM.from_pretrained(base_dirs[arch]),
                                pc_peft.LoraConfig(**config_kwargs(arch, which)))
    pm.print_trainable_parameters()
    got = capsys.readouterr().out
    assert got == expect and got.startswith("trainable params: ")
    assert pm.get_nb_trainable_parameters() == ref.get_nb_trainable_parameters()


@pytest.mark.parametrize("arch", list(ARCHS))
def test_merge_and_unload_matches_and_saves_for_transformers(base_dirs, tmp_path, arch):
    pm = pc_peft.get_peft_model(AutoModelForCausalLM.from_pretrained(base_dirs[arch]),
                                pc_peft.LoraConfig(target_modules="all-linear", r=4, lora_alpha=8))
    randomize_pc(pm, seed=5)
    pm.eval()
    x = ids(seed=4)
    unmerged = pm(x).logits.numpy()
    pm.save_pretrained(tmp_path / "adapter")
    pm.merge_adapter()
    assert rel(pm(x).logits.numpy(), unmerged) <= 1e-5
    pm.unmerge_adapter()
    np.testing.assert_array_equal(pm(x).logits.numpy(), unmerged)
    merged = pm.merge_and_unload()
    assert not any(isinstance(m, pc_peft.LoraLayer) for m in merged.modules())
    assert not any("lora_" in n or "base_layer" in n for n, _ in merged.named_parameters())
    assert rel(merged(x).logits.numpy(), unmerged) <= 1e-5
    merged.save_pretrained(tmp_path / "merged")
    back = hf_model(tmp_path / "merged")
    assert rel(hf_logits(back, x), unmerged) <= 1e-4
    # the same as HF PEFT's merge of the saved adapter
    ref = peft.PeftModel.from_pretrained(hf_model(base_dirs[arch]), str(tmp_path / "adapter")).merge_and_unload()
    for k, v in ref.state_dict().items():
        np.testing.assert_allclose(back.state_dict()[k].numpy(), v.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


def test_wrong_base_model_error_names_both_models_and_the_tensor(tmp_path):
    torch.manual_seed(0)
    small = dict(vocab_size=101, intermediate_size=96, num_attention_heads=6, num_key_value_heads=2,
                 max_position_embeddings=64)
    transformers.LlamaForCausalLM(transformers.LlamaConfig(hidden_size=48, num_hidden_layers=2, **small)) \
        .save_pretrained(tmp_path / "trained-on")
    transformers.LlamaForCausalLM(transformers.LlamaConfig(hidden_size=60, num_hidden_layers=2, **small)) \
        .save_pretrained(tmp_path / "other")
    transformers.LlamaForCausalLM(transformers.LlamaConfig(hidden_size=48, num_hidden_layers=1, **small)) \
        .save_pretrained(tmp_path / "shallow")
    # an adapter written by HF PEFT (no peftcpp metadata) and one by peftcpp
    ref = peft.get_peft_model(hf_model(tmp_path / "trained-on"), peft.LoraConfig(target_modules=["q_proj", "v_proj"]))
    ref.save_pretrained(str(tmp_path / "hf-adapter"))
    pc = pc_peft.get_peft_model(AutoModelForCausalLM.from_pretrained(tmp_path / "trained-on"),
                                pc_peft.LoraConfig(target_modules=["q_proj", "v_proj"]))
    pc.save_pretrained(tmp_path / "pc-adapter")
    for adapter in ("hf-adapter", "pc-adapter"):
        with pytest.raises(ValueError) as e:
            pc_peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tmp_path / "other"),
                                              tmp_path / adapter)
        msg = str(e.value)
        assert str(tmp_path / "trained-on") in msg and str(tmp_path / "other") in msg
        assert "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" in msg
        assert "(8, 48)" in msg and "(8, 60)" in msg
        with pytest.raises(ValueError) as e:
            pc_peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tmp_path / "shallow"),
                                              tmp_path / adapter)
        msg = str(e.value)
        assert str(tmp_path / "shallow") in msg and "layers.1.self_attn.q_proj.lora_A.weight" in msg
    with pytest.raises(ValueError) as e:
        pc_peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tmp_path / "other"),
                                          tmp_path / "pc-adapter")
    assert "hidden size 48" in str(e.value) and "hidden size 60" in str(e.value)
    # another architecture altogether: its module names do not match
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=101, n_embd=32, n_layer=2, n_head=4,
                                                         n_positions=64)).save_pretrained(tmp_path / "gpt2")
    gpt = peft.get_peft_model(hf_model(tmp_path / "gpt2"), peft.LoraConfig(target_modules=["c_attn"]))
    gpt.save_pretrained(str(tmp_path / "gpt2-adapter"))
    with pytest.raises(ValueError) as e:
        pc_peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tmp_path / "other"),
                                          tmp_path / "gpt2-adapter")
    msg = str(e.value)
    assert str(tmp_path / "gpt2") in msg and str(tmp_path / "other") in msg and "c_attn" in msg and "q_proj" in msg


def test_adapters_trained_in_either_library_load_in_the_other(base_dirs, tmp_path):
    x = ids(2, 9, seed=7)
    # trained with HF PEFT (torch AdamW), used in peftcpp
    ref = peft.get_peft_model(hf_model(base_dirs["llama"]), peft.LoraConfig(target_modules=["q_proj", "v_proj"],
                                                                             lora_dropout=0.1))
    ref.train()
    opt = torch.optim.AdamW([p for p in ref.parameters() if p.requires_grad], lr=2e-2)
    for _ in range(3):
        loss = ref(torch.tensor(x), labels=torch.tensor(x)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    ref.eval()
    ref.save_pretrained(str(tmp_path / "hf"))
    pm = pc_peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dirs["llama"]), tmp_path / "hf")
    assert rel(pm(x).logits.numpy(), hf_logits(ref, x)) <= 1e-4
    # trained with peftcpp (its AdamW), used in HF PEFT
    pm = pc_peft.get_peft_model(AutoModelForCausalLM.from_pretrained(base_dirs["gpt2"]),
                                pc_peft.LoraConfig(target_modules=["c_attn", "c_proj"], lora_dropout=0.1))
    pm.train()
    opt = peftcpp.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=2e-2)
    losses = []
    for _ in range(4):
        loss = pm(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    pm.eval()
    pm.save_pretrained(tmp_path / "pc")
    back = peft.PeftModel.from_pretrained(hf_model(base_dirs["gpt2"]), str(tmp_path / "pc"))
    assert rel(pm(x).logits.numpy(), hf_logits(back, x)) <= 1e-4
    with torch.no_grad():
        hf_loss = back(torch.tensor(x), labels=torch.tensor(x)).loss.item()
    assert abs(pm(input_ids=x, labels=x).loss.item() - hf_loss) <= 1e-4 * hf_loss


def test_pissa_init_matches_peft(base_dirs):
    cfg = dict(target_modules=["q_proj", "down_proj"], r=4, lora_alpha=8, init_lora_weights="pissa")
    ref = peft.get_peft_model(hf_model(base_dirs["llama"]), peft.LoraConfig(**cfg))
    pm = pc_peft.get_peft_model(AutoModelForCausalLM.from_pretrained(base_dirs["llama"]), pc_peft.LoraConfig(**cfg))
    ref_sd = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    for name, m in pm.named_modules():
        if not isinstance(m, pc_peft.LoraLayer):
            continue
        w = m.base_layer.weight.numpy()
        np.testing.assert_allclose(w, ref_sd[name + ".base_layer.weight"], rtol=0, atol=1e-5)
        ba = m.lora_B["default"].weight.numpy() @ m.lora_A["default"].weight.numpy()
        ref_ba = ref_sd[name + ".lora_B.default.weight"] @ ref_sd[name + ".lora_A.default.weight"]
        np.testing.assert_allclose(ba, ref_ba, rtol=0, atol=1e-5)  # singular vectors' signs cancel in B @ A
    x = ids()
    assert rel(pm(x).logits.numpy(), hf_logits(ref, x)) <= 1e-4

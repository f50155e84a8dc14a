"""peftcpp.peft on its own: LoraConfig, injection into any peftcpp.nn.Module
(a user's own model), PEFT's parameter names, initialisation, training only
the adapters, adapters switched / disabled / merged / deleted, and files."""
import json
import math
import os

import numpy as np
import pytest

import peftcpp
from peftcpp import nn
from peftcpp.peft import (LoraConfig, LoraLayer, PeftModel, PeftModelForCausalLM, TaskType, get_peft_model,
                          get_peft_model_state_dict)


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d)

    def forward(self, x):
        return self.q(x).tanh() + self.k(x) * self.v(x)


class TinyNet(nn.Module):
    """A user's own model: Linear layers named like q/k/v inside layers."""

    def __init__(self, d=16, n=2, out=5):
        super().__init__()
        self.layers = nn.ModuleList([Block(d) for _ in range(n)])
        self.head = nn.Linear(d, out)

    def forward(self, x):
        for b in self.layers:
            x = b(x)
        return self.head(x)


def net(seed=0):
    peftcpp.manual_seed(seed)
    return TinyNet()


def xin(seed=0):
    return peftcpp.from_numpy(np.random.default_rng(seed).normal(size=(3, 4, 16)).astype(np.float32))


def randomize_lora(model, seed=1):
    rng = np.random.default_rng(seed)
    with peftcpp.no_grad():
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.copy_(peftcpp.from_numpy(rng.normal(0, 0.3, size=p.shape).astype(np.float32)))


def test_lora_config_defaults_and_task_type():
    c = LoraConfig()
    assert (c.r, c.lora_alpha, c.lora_dropout, c.bias, c.use_rslora, c.init_lora_weights, c.fan_in_fan_out,
            c.inference_mode, c.target_modules, c.rank_pattern, c.alpha_pattern) == \
        (8, 8, 0.0, "none", False, True, False, False, None, {}, {})
    assert {t.name for t in TaskType} == {"SEQ_CLS", "SEQ_2_SEQ_LM", "CAUSAL_LM", "TOKEN_CLS", "QUESTION_ANS",
                                          "FEATURE_EXTRACTION"}
    assert LoraConfig(task_type="CAUSAL_LM").task_type is TaskType.CAUSAL_LM
    with pytest.raises(ValueError, match="task type"):
        LoraConfig(task_type="NOPE")
    with pytest.raises(ValueError, match="layers_to_transform"):
        LoraConfig(target_modules=".*q", layers_to_transform=[0])
    with pytest.raises(ValueError):
        LoraConfig(r=0)
    with pytest.raises(NotImplementedError, match="use_dora"):
        LoraConfig(use_dora=True)


def test_custom_module_names_init_and_noop_at_init():
    base = net()
    x = xin()
    before = base(x).numpy()
    pm = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q", "v"]))
    assert type(pm) is PeftModel
    names = [n for n, _ in pm.named_parameters()]
    assert "base_model.model.layers.0.q.base_layer.weight" in names
    assert "base_model.model.layers.0.q.base_layer.bias" in names
    assert "base_model.model.layers.1.v.lora_A.default.weight" in names
    assert "base_model.model.layers.0.k.weight" in names  # untouched
    q = pm.base_model.model.layers[0].q
    assert isinstance(q, LoraLayer)
    assert tuple(q.lora_A["default"].weight.shape) == (4, 16) and tuple(q.lora_B["default"].weight.shape) == (16, 4)
    assert q.scaling["default"] == 2.0
    a = q.lora_A["default"].weight.numpy()
    assert np.abs(a).max() <= 1 / math.sqrt(16) + 1e-7 and a.std() > 0.05  # kaiming_uniform(a=√5)
    assert not q.lora_B["default"].weight.numpy().any()
    np.testing.assert_array_equal(pm(x).numpy(), before)  # B = 0: output unchanged
    trainable = [n for n, p in pm.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A.default." in n or ".lora_B.default." in n for n in trainable)
    assert pm.get_nb_trainable_parameters() == (4 * (4 * 16 + 16 * 4), sum(p.numel() for p in pm.parameters()))


def test_forward_is_base_plus_scaled_lora():
    pm = get_peft_model(net(), LoraConfig(r=2, lora_alpha=6, target_modules=["head"]))
    randomize_lora(pm)
    x = xin()
    head = pm.base_model.model.head
    h = pm.base_model.model.layers[1](pm.base_model.model.layers[0](x)).numpy()
    w, b = head.base_layer.weight.numpy(), head.base_layer.bias.numpy()
    A, B = head.lora_A["default"].weight.numpy(), head.lora_B["default"].weight.numpy()
    expect = h @ w.T + b + 3.0 * (h @ A.T @ B.T)
    np.testing.assert_allclose(pm(x).numpy(), expect, rtol=1e-5, atol=1e-5)


def test_rslora_gaussian_false_and_patterns():
    pm = get_peft_model(net(), LoraConfig(r=4, lora_alpha=8, use_rslora=True, target_modules=["q", "v"],
                                          rank_pattern={"layers.1.q": 2}, alpha_pattern={"v": 3},
                                          init_lora_weights="gaussian"))
    m = pm.base_model.model
    assert m.layers[0].q.scaling["default"] == 8 / math.sqrt(4)
    assert m.layers[1].q.r["default"] == 2 and m.layers[1].q.scaling["default"] == 8 / math.sqrt(2)
    assert m.layers[0].v.scaling["default"] == 3 / 2
    assert not m.layers[0].q.lora_B["default"].weight.numpy().any()
    pm2 = get_peft_model(net(), LoraConfig(target_modules=["q"], init_lora_weights=False))
    assert pm2.base_model.model.layers[0].q.lora_B["default"].weight.numpy().any()


def test_pissa_init_keeps_output_and_uses_top_singular_vectors():
    base = net()
    x = xin()
    before = base(x).numpy()
    w0 = base.layers[0].q.weight.numpy().copy()
    pm = get_peft_model(base, LoraConfig(r=3, lora_alpha=3, target_modules=["q"], init_lora_weights="pissa"))
    np.testing.assert_allclose(pm(x).numpy(), before, rtol=1e-4, atol=1e-5)
    q = pm.base_model.model.layers[0].q
    ba = q.lora_B["default"].weight.numpy() @ q.lora_A["default"].weight.numpy()
    u, s, vh = np.linalg.svd(w0)
    np.testing.assert_allclose(ba, (u[:, :3] * s[:3]) @ vh[:3], rtol=1e-4, atol=1e-5)


def test_regex_all_linear_layers_and_exclude():
    pm = get_peft_model(net(), LoraConfig(target_modules=r".*\.(q|k)"))
    assert sorted(n for n, m in pm.named_modules() if isinstance(m, LoraLayer)) == [
        "base_model.model.layers.0.k", "base_model.model.layers.0.q", "base_model.model.layers.1.k",
        "base_model.model.layers.1.q"]
    pm = get_peft_model(net(), LoraConfig(target_modules="all-linear", exclude_modules=["k"]))
    wrapped = sorted(n.replace("base_model.model.", "") for n, m in pm.named_modules() if isinstance(m, LoraLayer))
    assert wrapped == ["head", "layers.0.q", "layers.0.v", "layers.1.q", "layers.1.v"]  # no output embeddings here
    pm = get_peft_model(net(), LoraConfig(target_modules=["q", "v"], layers_to_transform=[1], layers_pattern="layers"))
    wrapped = sorted(n.replace("base_model.model.", "") for n, m in pm.named_modules() if isinstance(m, LoraLayer))
    assert wrapped == ["layers.1.q", "layers.1.v"]


def test_target_that_matches_nothing_lists_the_module_names():
    with pytest.raises(ValueError) as e:
        get_peft_model(net(), LoraConfig(target_modules=["q", "q_proj"]))
    msg = str(e.value)
    assert "q_proj" in msg and "TinyNet" in msg
    for name in ("head", "k", "layers", "q", "v"):
        assert name in msg.split("names are:")[1]
    with pytest.raises(ValueError, match="not found"):
        get_peft_model(net(), LoraConfig(target_modules=r"nothing\.here"))


def test_only_lora_parameters_get_grads_and_optimizer_state():
    pm = get_peft_model(net(), LoraConfig(r=4, target_modules=["q", "v"], lora_dropout=0.1))
    randomize_lora(pm)
    pm.train()
    opt = peftcpp.optim.AdamW(pm.parameters(), lr=1e-2)  # all parameters, as user code often passes
    loss = (pm(xin()) ** 2).mean()
    loss.backward()
    with_grad = [n for n, p in pm.named_parameters() if p.grad is not None]
    assert len(with_grad) == 8 and all("lora_" in n for n in with_grad)
    before = {n: p.numpy().copy() for n, p in pm.named_parameters()}
    opt.step()
    assert len(opt.state) == 8
    lora_elems = sum(p.numel() for n, p in pm.named_parameters() if "lora_" in n)
    assert sum(st["exp_avg"].numel() for st in opt.state.values()) == lora_elems
    for n, p in pm.named_parameters():
        changed = not np.array_equal(before[n], p.numpy())
        assert changed == ("lora_" in n), n


def test_dropout_only_in_training():
    pm = get_peft_model(net(), LoraConfig(r=4, target_modules=["q"], lora_dropout=0.5))
    randomize_lora(pm)
    x = xin()
    pm.eval()
    a, b = pm(x).numpy(), pm(x).numpy()
    np.testing.assert_array_equal(a, b)
    pm.train()
    assert not np.array_equal(pm(x).numpy(), a)


def test_disable_merge_unmerge_and_unload():
    base = net()
    x = xin()
    plain = base(x).numpy()
    pm = get_peft_model(base, LoraConfig(r=4, target_modules=["q", "v", "head"]))
    randomize_lora(pm)
    adapted = pm(x).numpy()
    assert not np.allclose(adapted, plain)
    with pm.disable_adapter():
        np.testing.assert_array_equal(pm(x).numpy(), plain)
    np.testing.assert_array_equal(pm(x).numpy(), adapted)
    pm.merge_adapter()
    assert all(m.merged for m in pm.modules() if isinstance(m, LoraLayer))
    np.testing.assert_allclose(pm(x).numpy(), adapted, rtol=1e-5, atol=1e-5)
    with pm.disable_adapter():  # disabled + merged: unmerges first, as PEFT does
        np.testing.assert_array_equal(pm(x).numpy(), plain)
    pm.unmerge_adapter()
    np.testing.assert_array_equal(pm(x).numpy(), adapted)
    unloaded = get_peft_model(net(), LoraConfig(target_modules=["q"])).unload()
    assert isinstance(unloaded, TinyNet) and not any(isinstance(m, LoraLayer) for m in unloaded.modules())
    merged = pm.merge_and_unload()
    assert merged is base and isinstance(merged.layers[0].q, nn.Linear)
    np.testing.assert_allclose(merged(x).numpy(), adapted, rtol=1e-5, atol=1e-5)
    assert list(merged.state_dict()) == list(net().state_dict())


def test_multiple_adapters_add_set_delete_and_save(tmp_path):
    x = xin()
    pm = get_peft_model(net(), LoraConfig(r=4, target_modules=["q"]))
    randomize_lora(pm, seed=1)
    out_default = pm(x).numpy()
    pm.add_adapter("other", LoraConfig(r=2, lora_alpha=4, target_modules=["v"]))
    assert pm.active_adapter == "default"
    np.testing.assert_array_equal(pm(x).numpy(), out_default)  # added, not active
    pm.set_adapter("other")
    with peftcpp.no_grad():
        for n, p in pm.named_parameters():
            if ".other." in n:
                p.copy_(p * 0 + 0.05)
    out_other = pm(x).numpy()
    assert not np.allclose(out_other, out_default)
    trainable = {n for n, p in pm.named_parameters() if p.requires_grad}
    assert trainable and all(".other." in n for n in trainable)
    pm.save_pretrained(tmp_path)
    assert os.path.isfile(tmp_path / "adapter_model.safetensors")
    assert os.path.isfile(tmp_path / "other" / "adapter_config.json")
    cfg = json.load(open(tmp_path / "other" / "adapter_config.json"))
    assert cfg["r"] == 2 and cfg["target_modules"] == ["v"] and cfg["inference_mode"] is True
    keys = sorted(get_peft_model_state_dict(pm, adapter_name="other"))
    assert keys[0] == "base_model.model.layers.0.v.lora_A.weight"
    # reload both into a fresh model
    again = PeftModel.from_pretrained(net(), tmp_path)
    again.load_adapter(tmp_path / "other", adapter_name="other")
    np.testing.assert_array_equal(again(x).numpy(), out_default)
    again.set_adapter("other")
    np.testing.assert_array_equal(again(x).numpy(), out_other)
    assert again.get_nb_trainable_parameters()[0] == 0
    trainable_again = PeftModel.from_pretrained(net(), tmp_path, is_trainable=True)
    assert trainable_again.get_nb_trainable_parameters()[0] == 2 * (4 * 16 + 16 * 4)
    pm.delete_adapter("other")
    assert list(pm.peft_config) == ["default"] and pm.active_adapter == "default"
    assert not any(".other." in n for n, _ in pm.named_parameters())
    np.testing.assert_array_equal(pm(x).numpy(), out_default)


def test_modules_to_save_and_bias_roundtrip(tmp_path):
    pm = get_peft_model(net(), LoraConfig(target_modules=["q"], modules_to_save=["head"], bias="lora_only"))
    names = [n for n, p in pm.named_parameters() if p.requires_grad]
    assert "base_model.model.head.modules_to_save.default.weight" in names
    assert "base_model.model.layers.0.q.base_layer.bias" in names
    randomize_lora(pm)
    with peftcpp.no_grad():
        pm.base_model.model.head.modules_to_save["default"].weight.copy_(peftcpp.ones(5, 16) * 0.1)
    x = xin()
    out = pm(x).numpy()
    pm.save_pretrained(tmp_path)
    from peftcpp.serialization import load_file
    keys = sorted(load_file(tmp_path / "adapter_model.safetensors"))
    assert "base_model.model.head.weight" in keys and "base_model.model.head.bias" in keys
    assert "base_model.model.layers.0.q.base_layer.bias" in keys
    again = PeftModel.from_pretrained(net(), tmp_path)
    np.testing.assert_allclose(again(x).numpy(), out, rtol=1e-6, atol=1e-6)
    merged = again.merge_and_unload()
    np.testing.assert_allclose(merged(x).numpy(), out, rtol=1e-5, atol=1e-5)


def test_causal_lm_wrapper_generate_and_loss(tmp_path):
    from peftcpp.models.llama import LlamaConfig, LlamaForCausalLM
    peftcpp.manual_seed(0)
    cfg = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = LlamaForCausalLM(cfg)
    pm = get_peft_model(model, LoraConfig(task_type=TaskType.CAUSAL_LM, target_modules="all-linear"))
    assert isinstance(pm, PeftModelForCausalLM)
    assert not isinstance(pm.base_model.model.lm_head, LoraLayer)  # output head left out of all-linear
    x = np.random.default_rng(0).integers(0, 50, size=(1, 6))
    out = pm(input_ids=x, labels=x)
    assert out.loss.item() > 0
    out.loss.backward()
    assert all("lora_" in n for n, p in pm.named_parameters() if p.grad is not None)
    g = pm.generate(x, max_new_tokens=4)
    assert tuple(g.shape) == (1, 10)
    assert pm.config is model.config  # attributes fall through to the base model


def test_embedding_lora_train_merge_and_roundtrip(tmp_path):
    from peftcpp.models.llama import LlamaConfig, LlamaForCausalLM
    peftcpp.manual_seed(0)
    cfg = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    pm = get_peft_model(LlamaForCausalLM(cfg), LoraConfig(r=4, target_modules=["embed_tokens", "q_proj"]))
    emb = pm.base_model.model.model.embed_tokens
    assert tuple(emb.lora_embedding_A["default"].shape) == (4, 50)
    assert tuple(emb.lora_embedding_B["default"].shape) == (32, 4)
    assert not emb.lora_embedding_A["default"].numpy().any()  # A zeros, B normal (PEFT's embedding init)
    randomize_lora(pm)
    x = np.random.default_rng(0).integers(0, 50, size=(2, 5))
    pm.train()
    pm(input_ids=x, labels=x).loss.backward()
    grads = {n for n, p in pm.named_parameters() if p.grad is not None}
    assert "base_model.model.model.embed_tokens.lora_embedding_A.default" in grads
    assert all("lora_" in n for n in grads)
    pm.eval()
    out = pm(x).logits.numpy()
    pm.save_pretrained(tmp_path)
    from peftcpp.serialization import load_file
    keys = set(load_file(tmp_path / "adapter_model.safetensors"))
    assert {"base_model.model.model.embed_tokens.lora_embedding_A",
            "base_model.model.model.embed_tokens.lora_embedding_B",
            "base_model.model.model.embed_tokens.base_layer.weight"} <= keys
    merged = pm.merge_and_unload()
    np.testing.assert_allclose(merged(x).logits.numpy(), out, rtol=1e-4, atol=1e-5)


def test_bf16_base_stays_frozen_and_merges():
    from peftcpp.models.llama import LlamaConfig, LlamaForCausalLM
    peftcpp.manual_seed(0)
    cfg = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = LlamaForCausalLM(cfg).to(peftcpp.bfloat16)
    pm = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    q = pm.base_model.model.model.layers[0].self_attn.q_proj
    assert q.base_layer.weight.dtype == peftcpp.bfloat16 and q.lora_A["default"].weight.dtype == peftcpp.float32
    randomize_lora(pm)
    x = np.random.default_rng(0).integers(0, 50, size=(1, 5))
    pm.train()
    pm(input_ids=x, labels=x).loss.backward()
    assert all("lora_" in n for n, p in pm.named_parameters() if p.grad is not None)
    pm.eval()
    out = pm(x).logits.numpy()
    pm.merge_adapter()
    assert q.base_layer.weight.dtype == peftcpp.bfloat16
    np.testing.assert_allclose(pm(x).logits.numpy(), out, rtol=0, atol=0.05 * np.abs(out).max())
    pm.unmerge_adapter()
    np.testing.assert_array_equal(pm(x).logits.numpy(), out)


def test_config_file_roundtrip_and_unknown_keys(tmp_path):
    c = LoraConfig(r=4, target_modules=["v", "q"], task_type="CAUSAL_LM", rank_pattern={"q": 2})
    c.save_pretrained(tmp_path)
    d = json.load(open(tmp_path / "adapter_config.json"))
    assert d["target_modules"] == ["q", "v"] and d["peft_type"] == "LORA" and d["task_type"] == "CAUSAL_LM"
    back = LoraConfig.from_pretrained(tmp_path)
    assert back.to_dict() == c.to_dict()
    d["some_future_field"] = 1
    json.dump(d, open(tmp_path / "adapter_config.json", "w"))
    with pytest.warns(UserWarning, match="some_future_field"):
        from peftcpp.peft import PeftConfig
        assert isinstance(PeftConfig.from_pretrained(tmp_path), LoraConfig)


def test_gradient_checkpointing_through_peft_model_gives_the_same_grads():
    from peftcpp.models.llama import LlamaConfig, LlamaForCausalLM

    def grads(gc):
        peftcpp.manual_seed(0)
        cfg = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
        pm = get_peft_model(LlamaForCausalLM(cfg), LoraConfig(r=4, target_modules="all-linear", lora_dropout=0.2,
                                                              init_lora_weights=False))
        if gc:
            pm.gradient_checkpointing_enable()  # falls through to the base model, as in PEFT
        pm.train()
        x = np.random.default_rng(0).integers(0, 50, size=(2, 6))
        peftcpp.manual_seed(1)
        pm(input_ids=x, labels=x).loss.backward()
        return {n: p.grad.numpy().copy() for n, p in pm.named_parameters() if p.grad is not None}

    a, b = grads(False), grads(True)
    assert len(a) == 28 and a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-6, atol=1e-7, err_msg=k)

"""PEFT task_type="SEQ_CLS" against Hugging Face PEFT: the classification
head goes to modules_to_save (trained, saved whole as
base_model.model.score.weight), LoRA + head adapters move both ways with
equal logits, merge_and_unload keeps the trained head, and a model without
a head is refused."""
import json

import numpy as np
import pytest
import safetensors.numpy
import torch
import transformers

peft = pytest.importorskip("peft")

import peftcpp  # noqa: E402
from peftcpp import peft as pc_peft  # noqa: E402
from peftcpp.models import AutoModelForCausalLM, AutoModelForSequenceClassification  # noqa: E402

V, PAD = 64, 0
BASES = {
    "llama": lambda: transformers.LlamaForSequenceClassification(transformers.LlamaConfig(
        vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, pad_token_id=PAD, num_labels=3)),
    "gpt2": lambda: transformers.GPT2ForSequenceClassification(transformers.GPT2Config(
        vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_positions=64, pad_token_id=PAD, num_labels=3)),
}
TARGETS = {"llama": ["q_proj", "v_proj"], "gpt2": ["c_attn"]}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def base_dirs(tmp_path_factory):
    out = {}
    for arch, make in BASES.items():
        torch.manual_seed(0)
        d = tmp_path_factory.mktemp(arch)
        make().eval().save_pretrained(d)
        out[arch] = str(d)
    return out


def batch():
    x = np.random.default_rng(0).integers(3, V, size=(3, 8))
    x[0, 5:] = PAD
    x[2, :2] = PAD
    return x, (x != PAD).astype(np.int64)


def hf_logits(model, x, mask):
    with torch.no_grad():
        return model(input_ids=torch.tensor(x), attention_mask=torch.tensor(mask)).logits.numpy()


def rel_err(got, expect):
    return float(np.abs(got - expect).max() / np.abs(expect).max())


def lora_config(lib, arch, **kw):
    return lib.LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=list(TARGETS[arch]), **kw)


def perturb_pc(model, seed=1):
    """Non-zero lora_B and a trained-looking head copy."""
    rng = np.random.default_rng(seed)
    with peftcpp.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n or ".modules_to_save." in n:
                p.copy_(peftcpp.tensor(rng.normal(0, 0.3, size=tuple(p.shape)).astype(np.float32)))


def perturb_hf(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n or ".modules_to_save." in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)


@pytest.mark.parametrize("arch", list(BASES))
def test_head_in_modules_to_save_as_peft(base_dirs, arch):
    model = pc_peft.get_peft_model(AutoModelForSequenceClassification.from_pretrained(base_dirs[arch]),
                                   lora_config(pc_peft, arch))
    ref = peft.get_peft_model(transformers.AutoModelForSequenceClassification.from_pretrained(base_dirs[arch]),
                              lora_config(peft, arch))
    assert type(model).__name__ == type(ref).__name__ == "PeftModelForSequenceClassification"
    assert model.peft_config["default"].modules_to_save == ref.peft_config["default"].modules_to_save == \
        ["classifier", "score"]
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trainable == sorted(n for n, p in ref.named_parameters() if p.requires_grad)
    assert "base_model.model.score.modules_to_save.default.weight" in trainable
    assert model.get_nb_trainable_parameters() == ref.get_nb_trainable_parameters()
    x, mask = batch()
    out = model(input_ids=x, attention_mask=mask, labels=np.array([0, 1, 2]))
    assert tuple(out.logits.shape) == (3, 3)
    out.loss.backward()  # the head copy learns, the original stays frozen
    params = dict(model.named_parameters())
    assert params["base_model.model.score.modules_to_save.default.weight"].grad is not None
    assert params["base_model.model.score.original_module.weight"].grad is None


@pytest.mark.parametrize("arch", list(BASES))
def test_adapter_from_peftcpp_loads_in_peft(base_dirs, tmp_path, arch):
    model = pc_peft.get_peft_model(AutoModelForSequenceClassification.from_pretrained(base_dirs[arch]),
                                   lora_config(pc_peft, arch))
    perturb_pc(model)
    x, mask = batch()
    expect = model(input_ids=x, attention_mask=mask).logits.numpy()
    model.save_pretrained(tmp_path)
    keys = set(safetensors.numpy.load_file(str(tmp_path / "adapter_model.safetensors")))
    assert "base_model.model.score.weight" in keys and not any("modules_to_save" in k for k in keys)
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved["task_type"] == "SEQ_CLS" and saved["modules_to_save"] == ["classifier", "score"]

    ref_base = transformers.AutoModelForSequenceClassification.from_pretrained(base_dirs[arch]).eval()
    before = hf_logits(ref_base, x, mask)
    ref = peft.PeftModel.from_pretrained(ref_base, str(tmp_path)).eval()
    assert type(ref).__name__ == "PeftModelForSequenceClassification"
    got = hf_logits(ref, x, mask)
    assert rel_err(got, expect) <= 1e-4
    assert rel_err(before, expect) > 1e-2  # the adapter and the head changed something

    # the same layout PEFT writes for the same model
    ref2 = peft.get_peft_model(transformers.AutoModelForSequenceClassification.from_pretrained(base_dirs[arch]),
                               lora_config(peft, arch))
    ref2.save_pretrained(str(tmp_path / "hf"))
    assert keys == set(safetensors.numpy.load_file(str(tmp_path / "hf" / "adapter_model.safetensors")))


@pytest.mark.parametrize("arch", list(BASES))
def test_adapter_from_peft_loads_in_peftcpp_and_merges(base_dirs, tmp_path, arch):
    torch.manual_seed(0)
    ref = peft.get_peft_model(transformers.AutoModelForSequenceClassification.from_pretrained(base_dirs[arch]),
                              lora_config(peft, arch)).eval()
    perturb_hf(ref)
    ref.save_pretrained(str(tmp_path / "adapter"))
    x, mask = batch()
    expect = hf_logits(ref, x, mask)

    model = pc_peft.PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(base_dirs[arch]),
                                              str(tmp_path / "adapter"))
    assert type(model).__name__ == "PeftModelForSequenceClassification"
    assert model.peft_config["default"].modules_to_save == ["classifier", "score"]  # not repeated on load
    assert rel_err(model(input_ids=x, attention_mask=mask).logits.numpy(), expect) <= 1e-4

    merged = model.merge_and_unload()
    assert type(merged).__name__ == type(ref.get_base_model()).__name__
    assert rel_err(merged(x, attention_mask=mask).logits.numpy(), expect) <= 1e-4
    merged.save_pretrained(tmp_path / "merged")  # a plain classifier transformers loads, head included
    back = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    assert rel_err(hf_logits(back, x, mask), expect) <= 1e-4


def test_seq_cls_on_a_model_without_a_head_is_refused(base_dirs, tmp_path):
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
        num_key_value_heads=2)).save_pretrained(tmp_path)
    lm = AutoModelForCausalLM.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"task_type=SEQ_CLS needs a model with a classification head named one of "
                                         r"classifier, score; LlamaForCausalLM has none \(load it with "
                                         r"AutoModelForSequenceClassification"):
        pc_peft.get_peft_model(lm, lora_config(pc_peft, "llama"))


def test_custom_head_named_in_modules_to_save(base_dirs):
    """A user model whose head has its own name: listing it is enough."""
    class Classifier(peftcpp.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = peftcpp.nn.Linear(8, 8)
            self.out_head = peftcpp.nn.Linear(8, 2)

        def forward(self, input_ids, **kwargs):  # PEFT's SEQ_CLS forward passes its inputs by name
            return self.out_head(self.body(input_ids))

    model = pc_peft.get_peft_model(Classifier(), pc_peft.LoraConfig(task_type="SEQ_CLS", r=2, target_modules=["body"],
                                                                    modules_to_save=["out_head"]))
    assert model.peft_config["default"].modules_to_save == ["out_head", "classifier", "score"]
    assert tuple(model(peftcpp.randn(3, 8)).shape) == (3, 2)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        "base_model.model.body.lora_A.default.weight", "base_model.model.body.lora_B.default.weight",
        "base_model.model.out_head.modules_to_save.default.weight",
        "base_model.model.out_head.modules_to_save.default.bias"]

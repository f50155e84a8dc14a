"""peftcpp.peft's mechanism: the method registry, typed config fields with
help text, target selection, and a new method plugged in as PEFT's are (a
config, a layer, a BaseTuner subclass and one register call)."""
import dataclasses
from dataclasses import field

import numpy as np
import pytest

import peftcpp
from peftcpp import nn
from peftcpp.nn import Module, ParameterDict, Parameter
from peftcpp.peft import (PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_PREFIX_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING,
                          BaseTuner, BaseTunerLayer, LoraConfig, LoraModel, PeftConfig, PeftModel, PeftType,
                          get_peft_model, register_peft_method)
from peftcpp.peft.tuners.target_selection import (BlocksNotFoundError, find_blocks, is_linear_layer,
                                                  last_blocks_linear_targets)


def test_lora_is_registered_and_peft_model_finds_it_there():
    assert PEFT_TYPE_TO_CONFIG_MAPPING[PeftType.LORA] is LoraConfig
    assert PEFT_TYPE_TO_TUNER_MAPPING["LORA"] is LoraModel
    assert PEFT_TYPE_TO_PREFIX_MAPPING[PeftType.LORA] == LoraModel.prefix == "lora_"
    assert issubclass(LoraModel, BaseTuner)


def test_register_checks_names_and_prefixes():
    with pytest.raises(ValueError, match="lower case"):
        register_peft_method(name="LORA", config_cls=LoraConfig, model_cls=LoraModel)
    with pytest.raises(ValueError, match="Unknown PEFT type"):
        register_peft_method(name="nosuchmethod", config_cls=LoraConfig, model_cls=LoraModel)
    with pytest.raises(KeyError, match="already"):
        register_peft_method(name="lora", config_cls=LoraConfig, model_cls=LoraModel)
    with pytest.raises(KeyError, match="prefix"):
        register_peft_method(name="ia3", config_cls=LoraConfig, model_cls=LoraModel, prefix="lora_")


def test_config_fields_are_typed_and_have_help():
    for cls in (PeftConfig, LoraConfig):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"
            assert f.type is not object, f"{cls.__name__}.{f.name} has no type"


def test_parameter_dict_and_module_dict_share_the_mapping_api():
    d = ParameterDict({"a": Parameter(peftcpp.zeros(2))})
    d["b"] = Parameter(peftcpp.ones(3))
    assert list(d) == ["a", "b"] and "b" in d and len(d) == 2
    assert [n for n, _ in d.named_parameters()] == ["a", "b"]
    d.pop("a")
    assert list(d.keys()) == ["b"]
    m = nn.ModuleDict({"x": nn.Identity()})
    assert list(m.items())[0][0] == "x" and m.pop("x") is not None and len(m) == 0


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.ModuleDict({"q": nn.Linear(4, 4, bias=False), "up": nn.Conv1D(6, 4)})
                                     for _ in range(3)])
        self.head = nn.Linear(4, 2)


def test_target_selection_of_the_command_line():
    peftcpp.manual_seed(0)
    model = Net()
    assert find_blocks(model) == ("layers", "layers", 3)
    assert is_linear_layer(model.layers[0]["up"]) and not is_linear_layer(model.layers[0])
    assert last_blocks_linear_targets(model, 2) == (["q", "up"], [1, 2], "layers", 3)
    assert last_blocks_linear_targets(model, -1) == (["q", "up"], None, "layers", 3)
    with pytest.raises(BlocksNotFoundError, match="cannot find the transformer blocks of Linear"):
        find_blocks(nn.Linear(2, 2))


# ---- a toy method, IA3-like: the wrapped layer's output scaled per feature by a learned vector


@dataclasses.dataclass
class ScaleConfig(PeftConfig):
    target_modules: object = field(default=None, metadata={"help": "modules to wrap"})
    exclude_modules: object = field(default=None, metadata={"help": "modules not to wrap"})
    modules_to_save: object = field(default=None, metadata={"help": "modules trained in full"})
    layers_to_transform: object = field(default=None, metadata={"help": "block indices"})
    layers_pattern: object = field(default=None, metadata={"help": "block list name"})

    def __post_init__(self):
        super().__post_init__()
        self.peft_type = PeftType.IA3


class ScaleLayer(Module, BaseTunerLayer):
    adapter_layer_names = ("ia3_l",)

    def __init__(self, base_layer, adapter_name):
        Module.__init__(self)
        self.init_tuner_state(base_layer)
        self.ia3_l = ParameterDict()
        self.ia3_l[adapter_name] = Parameter(peftcpp.ones(self.out_features))
        self.activate_if_none(adapter_name)

    def merged_weight(self, adapter_name, w_out_in):
        return w_out_in * self.ia3_l[adapter_name].detach().numpy()[:, None]

    def forward(self, x):
        y = self.base_layer(x)
        if self.disable_adapters or self.merged:
            return y
        for name in self.active_adapters:
            y = y * self.ia3_l[name]
        return y


class ScaleModel(BaseTuner):
    prefix = "ia3_"
    tuner_layer_cls = ScaleLayer

    def create_and_replace(self, config, adapter_name, target, key):
        self.replace_module(key, ScaleLayer(target, adapter_name))


@pytest.fixture
def scale_method():
    register_peft_method(name="ia3", config_cls=ScaleConfig, model_cls=ScaleModel)
    yield
    for table in (PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING, PEFT_TYPE_TO_PREFIX_MAPPING):
        table.pop(PeftType.IA3)


def test_a_new_method_is_a_config_a_layer_a_tuner_and_one_register_call(scale_method, tmp_path):
    peftcpp.manual_seed(0)
    base = Net()
    x = peftcpp.from_numpy(np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32))
    want = base.layers[1]["q"](x).numpy().copy()
    pm = get_peft_model(base, ScaleConfig(target_modules=["q"], layers_to_transform=[1], layers_pattern="layers"))
    assert isinstance(pm.base_model, ScaleModel)
    wrapped = [n for n, m in pm.named_modules() if isinstance(m, ScaleLayer)]
    assert wrapped == ["base_model.model.layers.1.q"]
    assert sorted(n for n, p in pm.named_parameters() if p.requires_grad) == [
        "base_model.model.layers.1.q.ia3_l.default"]
    with peftcpp.no_grad():
        pm.base_model.model.layers[1]["q"].ia3_l["default"].copy_(peftcpp.full([4], 2.0))
    q = pm.base_model.model.layers[1]["q"]
    np.testing.assert_allclose(q(x).numpy(), 2 * want, rtol=1e-6)
    pm.save_pretrained(tmp_path)
    back = PeftModel.from_pretrained(Net(), tmp_path)
    assert isinstance(back.peft_config["default"], ScaleConfig)
    np.testing.assert_allclose(back.base_model.model.layers[1]["q"].ia3_l["default"].numpy(), [2.0] * 4)
    merged = pm.merge_and_unload()
    assert isinstance(merged.layers[1]["q"], nn.Linear)
    np.testing.assert_allclose(merged.layers[1]["q"](x).numpy(), 2 * want, rtol=1e-5, atol=1e-6)

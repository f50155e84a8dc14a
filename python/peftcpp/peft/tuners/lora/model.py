"""LoraModel: LoRA's part of a BaseTuner — which layer class wraps which
module, and the bias options of the trainable set. Matching, injection,
adapter switching, merging and unloading come from BaseTuner."""
import warnings

from ....nn import Embedding as NNEmbedding, Parameter
from ...config import AdapterConfigError
from ...utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
from ...utils.other import get_pattern_key
from ..target_selection import is_conv1d, is_linear_layer
from ..tuners_utils import BaseTuner
from .layer import Embedding, Linear, LoraLayer

# PEFT's per-architecture defaults when target_modules is None
TARGET_MODULES_MAPPING = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING


def _make_trainable(module, name):
    """requires_grad on a base parameter that will be trained (bias="all" /
    "lora_only"); one that views a read-only checkpoint mapping is copied first."""
    p = module._parameters[name]
    if not p._storage_is_owned():
        p = Parameter(p.detach()._clone_raw(), requires_grad=True)
        module._parameters[name] = p
    p.requires_grad_(True)


# adapter weight name -> the axis its rank is on (lora_A [r, in], lora_B [out, r])
RANK_AXIS = {"lora_A": 0, "lora_B": 1, "lora_embedding_A": 0, "lora_embedding_B": 1}
PEFT_KEY_PREFIX = "base_model.model."


def rank_of(config, key):
    """(rank of module `key`, the config field that sets it)."""
    r_key = get_pattern_key(list(config.rank_pattern), key)
    if r_key in config.rank_pattern:
        return config.rank_pattern[r_key], f"rank_pattern entry {r_key!r}"
    return config.r, "r"


class LoraModel(BaseTuner):
    prefix = "lora_"
    tuner_layer_cls = LoraLayer
    target_module_mapping = TARGET_MODULES_MAPPING

    @classmethod
    def check_saved_tensors(cls, config, tensors, weights_file):
        """Each lora_A/lora_B's rank in the file against r / rank_pattern:
        a config asking for rank 200000 where the file holds rank 8 fails
        here, not after allocating rank-200000 matrices."""
        for name, t in tensors.items():
            parts = name.split(".")
            tag = next((i for i, p in enumerate(parts) if p in RANK_AXIS), None)
            if tag is None or len(t.shape) != 2:
                continue
            module = ".".join(parts[:tag])
            module = module[len(PEFT_KEY_PREFIX):] if module.startswith(PEFT_KEY_PREFIX) else module
            r, field = rank_of(config, module)
            got = t.shape[RANK_AXIS[parts[tag]]]
            if got != r:
                raise AdapterConfigError(field, f"is {r} for '{module}' but {weights_file} holds rank {got} there "
                                         f"(tensor '{name}' has shape {tuple(t.shape)})",
                                         getattr(config, "_source", None) or type(config).__name__)

    def adapter_size(self, config, key, target):
        r, field = rank_of(config, key)
        if isinstance(target, LoraLayer):
            return r * (target.in_features + target.out_features), field, r
        shape = getattr(getattr(target, "weight", None), "shape", None)
        if shape is None or len(shape) != 2:
            return None
        return r * (shape[0] + shape[1]), field, r  # A [r, in] and B [out, r], whichever way the weight is stored

    def create_and_replace(self, config, adapter_name, target, key):
        r_key = get_pattern_key(list(config.rank_pattern), key)
        a_key = get_pattern_key(list(config.alpha_pattern), key)
        r = config.rank_pattern.get(r_key, config.r)
        alpha = config.alpha_pattern.get(a_key, config.lora_alpha)
        kw = dict(r=r, lora_alpha=alpha, lora_dropout=float(config.lora_dropout),
                  init_lora_weights=config.init_lora_weights, use_rslora=config.use_rslora)
        if isinstance(target, LoraLayer):
            target.update_layer(adapter_name, **kw)
            return
        if isinstance(target, NNEmbedding):
            self.replace_module(key, Embedding(target, adapter_name, **kw))
            return
        if not is_linear_layer(target):
            raise ValueError(f"Target module {key} ({type(target).__name__}) is not supported. Currently, only "
                             "`nn.Linear`, `nn.Embedding` and GPT-2's `Conv1D` are supported.")
        conv = is_conv1d(target)
        if conv != bool(config.fan_in_fan_out):  # as PEFT: the layer type decides, the config follows
            warnings.warn(f"fan_in_fan_out is set to {bool(config.fan_in_fan_out)} but the target module "
                          f"{key} is `{type(target).__name__}`. Setting fan_in_fan_out to {conv}.")
            config.fan_in_fan_out = conv
        self.replace_module(key, Linear(target, adapter_name, fan_in_fan_out=conv, **kw))

    def mark_only_adapters_as_trainable(self):
        super().mark_only_adapters_as_trainable()
        for name in self.active_adapters:
            bias = self.peft_config[name].bias
            if bias == "all":
                for n, p in list(self.model.named_parameters()):
                    if (n == "bias" or n.endswith(".bias")) and p.dtype.name == "float32":
                        mod_path, _, leaf = n.rpartition(".")
                        _make_trainable(self.model.get_submodule(mod_path), leaf)
            elif bias == "lora_only":
                for m in self.model.modules():
                    if isinstance(m, LoraLayer):
                        b = getattr(m.base_layer, "bias", None)
                        if b is not None and b.dtype.name == "float32":
                            _make_trainable(m.base_layer, "bias")

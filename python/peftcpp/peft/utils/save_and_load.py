"""Adapter state dicts with PEFT's key names: in memory
`...q_proj.lora_A.<adapter>.weight`, on disk `...q_proj.lora_A.weight`.
The method's adapter weights are found through the registry: its tuner's
layer class names them (`adapter_layer_names`), its prefix marks them."""
import re

from ..._tensor import float32, no_grad
from ...nn import Parameter
from .constants import EMBEDDING_LAYER_NAMES, INCLUDE_LINEAR_LAYERS_SHORTHAND
from .other import ModulesToSaveWrapper
from .peft_types import PEFT_TYPE_TO_PREFIX_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING


def _layer_cls(config):
    return PEFT_TYPE_TO_TUNER_MAPPING[config.peft_type].tuner_layer_cls


def _is_adapter_key(key, names, adapter_name):
    """A model key of adapter_name's weight: `.<name>.<adapter>.` inside (a
    module's weight) or `.<name>.<adapter>` at the end (a parameter dict)."""
    return any(f".{n}.{adapter_name}." in key or key.endswith(f".{n}.{adapter_name}") for n in names)


def _wrapper_prefixes(model):
    out = []
    for name, m in model.named_modules():
        if isinstance(m, ModulesToSaveWrapper):
            out.append(name)
    return out


def _embedding_is_targeted(config, base):
    tm = config.target_modules
    if isinstance(tm, str) and tm != INCLUDE_LINEAR_LAYERS_SHORTHAND:
        return any(re.fullmatch(tm, k) for k, _ in base.named_modules()
                   if any(re.match(rf"(.*\.)?{e}$", k) for e in EMBEDDING_LAYER_NAMES))
    if tm:
        return any(k in tm for k in EMBEDDING_LAYER_NAMES)
    return False


def get_peft_model_state_dict(model, state_dict=None, adapter_name="default", save_embedding_layers="auto", **_):
    """{on-disk key: tensor} for one adapter of a PeftModel. As PEFT, a
    targeted embedding layer's base weight is saved too (save_embedding_layers
    "auto")."""
    config = model.peft_config[adapter_name]
    if state_dict is None:
        state_dict = model.state_dict()
    layer_cls, prefix = _layer_cls(config), PEFT_TYPE_TO_PREFIX_MAPPING[config.peft_type]
    names = layer_cls.adapter_layer_names
    bias = getattr(config, "bias", "none")
    out = {}
    for k, v in state_dict.items():
        if _is_adapter_key(k, names, adapter_name):
            out[_strip(k, names, adapter_name)] = v
    if bias == "all":
        for k, v in state_dict.items():
            if "bias" in k and prefix not in k and ".modules_to_save." not in k and ".original_module." not in k:
                out[k] = v
    elif bias == f"{prefix}only":  # "lora_only": the biases of the wrapped layers
        for name, m in model.named_modules():
            if isinstance(m, layer_cls) and getattr(m.base_layer, "bias", None) is not None:
                key = f"{name}.base_layer.bias"
                if key in state_dict:
                    out[key] = state_dict[key]
    if save_embedding_layers == "auto":
        save_embedding_layers = hasattr(model, "get_base_model") and _embedding_is_targeted(config,
                                                                                             model.get_base_model())
    if save_embedding_layers and hasattr(model, "get_base_model"):
        base = model.get_base_model()
        layers = [getattr(base, f, lambda: None)() for f in ("get_input_embeddings", "get_output_embeddings")]
        for name, m in model.named_modules():
            if any(m is layer for layer in layers if layer is not None) and isinstance(m, layer_cls):
                for k, v in state_dict.items():
                    if k.startswith(name + ".") and prefix not in k:
                        out[k] = v
    for wrapper in _wrapper_prefixes(model):
        inner = f"{wrapper}.modules_to_save.{adapter_name}."
        for k, v in state_dict.items():
            if k.startswith(inner):
                out[wrapper + "." + k[len(inner):]] = v
    return out


def _strip(key, names, adapter_name):
    for n in names:
        if key.endswith(f".{n}.{adapter_name}"):
            return key[:-len(adapter_name) - 1]
        key = key.replace(f".{n}.{adapter_name}.", f".{n}.")
    return key


def to_model_key(key, adapter_name, names, wrapper_prefixes=()):
    """On-disk key → the model's parameter name for adapter_name (`names`:
    the method's adapter_layer_names)."""
    for n in names:
        tag = f".{n}."
        if tag in key:
            head, _, tail = key.rpartition(tag)
            return f"{head}{tag}{adapter_name}.{tail}"
    for n in names:
        if key.endswith(f".{n}"):
            return f"{key}.{adapter_name}"
    for prefix in wrapper_prefixes:
        if key.startswith(prefix + "."):
            return f"{prefix}.modules_to_save.{adapter_name}.{key[len(prefix) + 1:]}"
    return key


class AdapterMismatchError(ValueError):
    """An adapter tensor that has no place, or the wrong shape, in the model."""

    def __init__(self, file_key, model_key, got_shape, want_shape):
        self.file_key, self.model_key, self.got_shape, self.want_shape = file_key, model_key, got_shape, want_shape
        if want_shape is None:
            msg = f"tensor '{file_key}' {got_shape} has no parameter '{model_key}' to go to in the model"
        else:
            msg = (f"tensor '{file_key}' has shape {got_shape} but the model's parameter '{model_key}' has shape "
                   f"{want_shape}")
        super().__init__(msg)


def set_peft_model_state_dict(model, peft_model_state_dict, adapter_name="default", **_):
    """Copies on-disk-named adapter tensors into the model's adapter
    parameters. Checks every tensor first (AdapterMismatchError names the
    first that does not fit), then copies. Returns the model keys of this
    adapter that the file did not have."""
    own = dict(model.named_parameters(remove_duplicate=False))
    for k, v in model.state_dict(keep_vars=True).items():
        own.setdefault(k, v)
    prefixes = _wrapper_prefixes(model)
    config = model.peft_config.get(adapter_name)
    names = _layer_cls(config).adapter_layer_names if config is not None else ()
    plan = []
    for k, v in peft_model_state_dict.items():
        mk = to_model_key(k, adapter_name, names, prefixes)
        target = own.get(mk)
        if target is None:
            raise AdapterMismatchError(k, mk, tuple(v.shape), None)
        if tuple(target.shape) != tuple(v.shape):
            raise AdapterMismatchError(k, mk, tuple(v.shape), tuple(target.shape))
        plan.append((mk, target, v))
    with no_grad():
        for mk, target, v in plan:
            src = v if v.dtype == target.dtype else (v.float() if target.dtype == float32 else v._to_raw(target.dtype))
            if target._storage_is_owned():
                target.copy_(src)
            else:  # a base tensor (bias="all") that views the read-only checkpoint: replace it
                mod_path, _, leaf = mk.rpartition(".")
                mod = model.get_submodule(mod_path)
                rg = target.requires_grad
                mod._parameters[leaf] = Parameter(src.detach()._clone_raw(), requires_grad=False)
                if rg:
                    mod._parameters[leaf].requires_grad_(True)
    loaded = {mk for mk, _, _ in plan}
    missing = [k for k in own if _is_adapter_key(k, names, adapter_name) and k not in loaded]
    return missing

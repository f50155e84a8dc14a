"""LoraModel: finds the target layers (PEFT's matching rules), wraps them,
freezes the base, and merges / unloads / switches adapters."""
import re
import warnings

from ....nn import Embedding as _NNEmbedding, Linear as _NNLinear, Module, Parameter
from ...utils.other import ModulesToSaveWrapper, get_pattern_key
from .config import INCLUDE_LINEAR_LAYERS_SHORTHAND
from .layer import Embedding, Linear, LoraLayer

# PEFT's per-architecture defaults when target_modules is None
TARGET_MODULES_MAPPING = {
    "llama": ["q_proj", "v_proj"], "mistral": ["q_proj", "v_proj"], "qwen2": ["q_proj", "v_proj"],
    "qwen3": ["q_proj", "v_proj"], "smollm3": ["q_proj", "v_proj"], "gemma3_text": ["q_proj", "v_proj"],
    "gemma3": ["q_proj", "v_proj"], "phi3": ["qkv_proj"], "gpt2": ["c_attn"],
    "t5": ["q", "v"],
}


def _conv1d_class():
    try:
        from ....models.gpt2 import Conv1D
        return Conv1D
    except ImportError:  # pragma: no cover
        return None


def _is_linear(m):
    c = _conv1d_class()
    return isinstance(m, _NNLinear) or (c is not None and isinstance(m, c))


def _is_conv1d(m):
    c = _conv1d_class()
    return c is not None and isinstance(m, c)


def _make_trainable(module, name):
    """requires_grad on a base parameter that will be trained (bias="all" /
    "lora_only"); one that views a read-only checkpoint mapping is copied first."""
    p = module._parameters[name]
    if not p._storage_is_owned():
        p = Parameter(p.detach()._clone_raw(), requires_grad=True)
        module._parameters[name] = p
    p.requires_grad_(True)


class _Excluded:
    def __bool__(self):
        return False


def check_target_module_exists(config, key):
    """PEFT's rule: a str is a full regex match, a list matches the exact name
    or a `.name` suffix; exclude_modules alike; layers_to_transform filters by
    the layer index in the name."""
    if config.exclude_modules:
        ex = config.exclude_modules
        if isinstance(ex, str):
            if re.fullmatch(ex, key):
                return _Excluded()
        elif key in ex or any(key.endswith("." + e) for e in ex):
            return _Excluded()
    if config.modules_to_save and any(re.match(rf"(^|.*\.){m}($|\..*)", key) for m in config.modules_to_save):
        return _Excluded()
    tm = config.target_modules
    if isinstance(tm, str):
        return bool(re.fullmatch(tm, key))
    if key in tm:
        return True
    found = any(key.endswith("." + t) for t in tm)
    idxs, pattern = config.layers_to_transform, config.layers_pattern
    using = idxs is not None and (len(idxs) != 0 if isinstance(idxs, (list, tuple)) else True)
    if using and found:
        match = None
        if not pattern:
            match = re.match(r".*?\.[^.]*\.(?P<idx>\d+)\.", key)
        else:
            for p in [pattern] if isinstance(pattern, str) else pattern:
                match = re.match(rf"(?:^|.*?\.){p}\.(?P<idx>\d+)\.", key)
                if match is not None:
                    break
        if match is None:
            return False
        i = int(match.group("idx"))
        found = i == idxs if isinstance(idxs, int) else i in idxs
    return found


def _module_names_summary(names):
    leaves = sorted({n.rsplit(".", 1)[-1] for n in names if n and not n.rsplit(".", 1)[-1].isdigit()})
    return ", ".join(leaves)


class LoraModel(Module):
    prefix = "lora_"

    def __init__(self, model, config, adapter_name="default"):
        super().__init__()
        self.model = model
        object.__setattr__(self, "peft_config", {})
        object.__setattr__(self, "_active", [adapter_name])
        self.inject_adapter(adapter_name, config)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "model":
                raise
            return getattr(self.__dict__["_modules"]["model"], name)

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)

    @property
    def active_adapters(self):
        return list(self._active)

    @property
    def active_adapter(self):
        return self._active[0] if len(self._active) == 1 else list(self._active)

    # -------------------------------------------------------- injection
    def _prepare_config(self, config):
        if config.target_modules is None:
            mt = getattr(getattr(self.model, "config", None), "model_type", None)
            if mt not in TARGET_MODULES_MAPPING:
                raise ValueError("Please specify `target_modules` in `peft_config`"
                                 f" (no default for model type {mt!r})")
            config.target_modules = set(TARGET_MODULES_MAPPING[mt])
        if isinstance(config.target_modules, str) and config.target_modules.lower() == INCLUDE_LINEAR_LAYERS_SHORTHAND:
            out_emb = None
            get_out = getattr(self.model, "get_output_embeddings", None)
            if callable(get_out):
                out_emb = get_out()
            names = set()
            lora_internal = self._lora_internal_names()
            for name, m in self.model.named_modules():
                if name in lora_internal or m is out_emb:
                    continue
                if _is_linear(m) or isinstance(m, LoraLayer):
                    names.add(name)
            config.target_modules = names
        return config

    def _lora_internal_names(self):
        out = set()
        for name, m in self.model.named_modules():
            if isinstance(m, (LoraLayer, ModulesToSaveWrapper)):
                for sub, _ in m.named_modules():
                    if sub:
                        out.add(f"{name}.{sub}" if name else sub)
        return out

    def inject_adapter(self, adapter_name, config):
        if adapter_name in self.peft_config:
            raise ValueError(f"Adapter with name {adapter_name} already exists.")
        config = self._prepare_config(config)
        internal = self._lora_internal_names()
        keys = [n for n, _ in self.model.named_modules() if n and n not in internal]
        tm = config.target_modules
        if not isinstance(tm, str):  # every entry must name something the model has
            for t in sorted(tm):
                if not any(k == t or k.endswith("." + t) for k in keys):
                    raise ValueError(f"Target module '{t}' not found in the base model "
                                     f"({type(self.model).__name__}). Its module names are: "
                                     f"{_module_names_summary(keys)}")
        matched = []
        for key in keys:
            if check_target_module_exists(config, key):
                matched.append(key)
        if not matched:
            where = type(self.model).__name__
            if config.layers_to_transform is not None:
                where += f", layers_to_transform={config.layers_to_transform!r}"
            raise ValueError(f"Target modules {config.target_modules!r} not found in the base model ({where}). "
                             f"Its module names are: {_module_names_summary(keys)}")
        self.peft_config[adapter_name] = config
        for key in matched:
            target = self.model.get_submodule(key)
            r_key = get_pattern_key(list(config.rank_pattern), key)
            a_key = get_pattern_key(list(config.alpha_pattern), key)
            r = config.rank_pattern.get(r_key, config.r)
            alpha = config.alpha_pattern.get(a_key, config.lora_alpha)
            kw = dict(r=r, lora_alpha=alpha, lora_dropout=float(config.lora_dropout),
                      init_lora_weights=config.init_lora_weights, use_rslora=config.use_rslora)
            if isinstance(target, LoraLayer):
                target.update_layer(adapter_name, **kw)
                continue
            if isinstance(target, _NNEmbedding):
                self._replace(key, Embedding(target, adapter_name, **kw))
                continue
            if not _is_linear(target):
                raise ValueError(f"Target module {key} ({type(target).__name__}) is not supported. Currently, only "
                                 "`nn.Linear`, `nn.Embedding` and GPT-2's `Conv1D` are supported.")
            conv = _is_conv1d(target)
            if conv != bool(config.fan_in_fan_out):  # as PEFT: the layer type decides, the config follows
                warnings.warn(f"fan_in_fan_out is set to {bool(config.fan_in_fan_out)} but the target module "
                              f"{key} is `{type(target).__name__}`. Setting fan_in_fan_out to {conv}.")
                config.fan_in_fan_out = conv
            new = Linear(target, adapter_name, fan_in_fan_out=conv, **kw)
            self._replace(key, new)
        if config.modules_to_save:
            for name, m in list(self.model.named_modules()):
                if not name or name in internal:
                    continue
                if any(name == t or name.endswith("." + t) for t in config.modules_to_save):
                    if isinstance(m, ModulesToSaveWrapper):
                        m.update(adapter_name)
                    elif not isinstance(m, LoraLayer):
                        self._replace(name, ModulesToSaveWrapper(m, adapter_name))
        self.set_adapter(self._active)

    def _replace(self, key, new):
        parent_name, _, child = key.rpartition(".")
        parent = self.model.get_submodule(parent_name)
        parent._modules[child] = new

    # ------------------------------------------------------ trainability
    def _mark_only_adapters_as_trainable(self):
        for n, p in self.model.named_parameters():
            if self.prefix not in n and ".modules_to_save." not in n:
                p.requires_grad_(False)
        for name in self._active:
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

    def set_adapter(self, adapter_name):
        names = [adapter_name] if isinstance(adapter_name, str) else list(adapter_name)
        for n in names:
            if n not in self.peft_config:
                raise ValueError(f"Adapter {n} not found. Available adapters: {list(self.peft_config)}")
        object.__setattr__(self, "_active", names)
        inference = all(self.peft_config[n].inference_mode for n in names)
        for m in self.model.modules():
            if isinstance(m, LoraLayer):
                if m.merged:
                    m.unmerge()
                m.set_adapter([n for n in names if m.has_adapter(n)] or names, inference_mode=inference)
            elif isinstance(m, ModulesToSaveWrapper):
                m.set_adapter(names, inference_mode=inference)
        if not inference:
            self._mark_only_adapters_as_trainable()
        else:
            for n, p in self.model.named_parameters():
                p.requires_grad_(False)

    # ------------------------------------------------------ adapters
    def _lora_layers(self):
        return [m for m in self.model.modules() if isinstance(m, LoraLayer)]

    def enable_adapter_layers(self):
        for m in self.model.modules():
            if isinstance(m, (LoraLayer, ModulesToSaveWrapper)):
                m.enable_adapters(True)

    def disable_adapter_layers(self):
        for m in self.model.modules():
            if isinstance(m, (LoraLayer, ModulesToSaveWrapper)):
                m.enable_adapters(False)

    def merge_adapter(self, adapter_names=None, safe_merge=False):
        for m in self._lora_layers():
            m.merge(safe_merge=safe_merge, adapter_names=adapter_names)

    def unmerge_adapter(self):
        for m in self._lora_layers():
            m.unmerge()

    def delete_adapter(self, adapter_name):
        if adapter_name not in self.peft_config:
            raise ValueError(f"Adapter {adapter_name} does not exist")
        del self.peft_config[adapter_name]
        for m in list(self.model.modules()):
            if isinstance(m, (LoraLayer, ModulesToSaveWrapper)):
                m.delete_adapter(adapter_name)
        remaining = [n for n in self._active if n != adapter_name]
        if not remaining and self.peft_config:
            remaining = [next(iter(self.peft_config))]
        object.__setattr__(self, "_active", remaining)
        if remaining:
            self.set_adapter(remaining)

    def _unload_and_optionally_merge(self, merge=True, safe_merge=False, adapter_names=None):
        internal = self._lora_internal_names()
        for key, m in list(self.model.named_modules()):
            if key in internal:
                continue
            if isinstance(m, LoraLayer):
                if merge:
                    if m.merged and adapter_names is not None:
                        m.unmerge()
                    if not m.merged:
                        m.merge(safe_merge=safe_merge, adapter_names=adapter_names)
                elif m.merged:
                    m.unmerge()
                self._replace(key, m.base_layer)
            elif isinstance(m, ModulesToSaveWrapper):
                self._replace(key, m.active_module)  # as PEFT: the trained copy stays, merged or not
        return self.model

    def merge_and_unload(self, progressbar=False, safe_merge=False, adapter_names=None):
        return self._unload_and_optionally_merge(True, safe_merge, adapter_names)

    def unload(self):
        return self._unload_and_optionally_merge(False)

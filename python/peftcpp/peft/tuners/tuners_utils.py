"""BaseTuner and BaseTunerLayer: what every PEFT method shares (PEFT's
tuners_utils). BaseTuner walks the model, matches the targets, asks the
method to wrap each one (`create_and_replace`), freezes the base, and
switches / merges / unloads adapters; BaseTunerLayer is the state and
adapter bookkeeping of a wrapped layer, with merge/unmerge for methods whose
merge changes the base weight. A method (LoRA, ...) subclasses both with
only what is its own."""
import numpy as np

from ... import _core
from ...models.config_checks import physical_memory
from ...models.modeling_utils import PreTrainedModel
from ...nn import Module, Parameter
from ..._tensor import float32
from ..config import AdapterConfigError
from ..utils.constants import INCLUDE_LINEAR_LAYERS_SHORTHAND, SEQ_CLS_HEAD_NAMES
from ..utils.other import ModulesToSaveWrapper, getattr_or_inner
from .target_selection import check_target_module_exists, is_linear_layer, module_names_summary


class ActiveAdapters:
    """`active_adapters` (a list) and PEFT's `active_adapter` (a name, or the
    list when several are active) over the `_active_adapter` list."""

    @property
    def active_adapters(self):
        return list(self._active_adapter)

    @property
    def active_adapter(self):
        return self._active_adapter[0] if len(self._active_adapter) == 1 else list(self._active_adapter)


class BaseTunerLayer(ActiveAdapters):
    """Mixed into a method's layer class (next to nn.Module). Names the
    adapter dicts (`adapter_layer_names`: adapter name -> weight or module)
    and per-adapter settings (`other_param_names`) so that adapters can be
    activated, frozen and deleted here."""
    adapter_layer_names = ()
    other_param_names = ()

    def init_tuner_state(self, base_layer, fan_in_fan_out=False):
        self.base_layer = base_layer
        object.__setattr__(self, "merged_adapters", [])
        object.__setattr__(self, "_merge_stack", [])  # (adapter, weight before the merge)
        object.__setattr__(self, "_active_adapter", [])
        object.__setattr__(self, "_disable_adapters", False)
        object.__setattr__(self, "fan_in_fan_out", fan_in_fan_out)
        w = base_layer.weight
        if fan_in_fan_out:  # Conv1D: weight stored [in, out]
            self.in_features, self.out_features = w.shape[0], w.shape[1]
        else:
            self.in_features, self.out_features = w.shape[1], w.shape[0]

    def adapter_dicts(self):
        return [d for d in (getattr(self, n, None) for n in self.adapter_layer_names) if d is not None]

    def adapter_names(self):
        """The adapters this layer holds, in the order they were added."""
        for d in self.adapter_dicts():
            if len(d):
                return list(d.keys())
        return []

    def has_adapter(self, name):
        return any(name in d for d in self.adapter_dicts())

    # ------------------------------------------------------------ state
    @property
    def merged(self):
        return bool(self.merged_adapters)

    @property
    def disable_adapters(self):
        return self._disable_adapters

    def enable_adapters(self, enabled):
        object.__setattr__(self, "_disable_adapters", not enabled)

    def activate_if_none(self, adapter_name):
        """A new adapter becomes the active one when none is."""
        if not self._active_adapter:
            self._active_adapter.append(adapter_name)

    def set_adapter(self, adapter_names, inference_mode=False):
        if isinstance(adapter_names, str):
            adapter_names = [adapter_names]
        for d in self.adapter_dicts():
            for name in list(d.keys()):
                trainable = name in adapter_names and not inference_mode
                item = d[name]
                for p in (item.parameters() if isinstance(item, Module) else [item]):
                    p.requires_grad_(trainable)
        object.__setattr__(self, "_active_adapter", list(adapter_names))

    def delete_adapter(self, adapter_name):
        for attr in self.adapter_layer_names + self.other_param_names:
            d = getattr(self, attr, None)
            if d is not None and adapter_name in d:
                d.pop(adapter_name)
        if adapter_name in self._active_adapter:
            self._active_adapter.remove(adapter_name)
            remaining = self.adapter_names()
            if not self._active_adapter and remaining:
                self._active_adapter.append(remaining[0])

    def get_base_layer(self):
        return self.base_layer

    # ---------------------------------------------------------- merging
    def weight_out_in_np(self):
        """The base weight as a float32 [out, in] numpy copy."""
        w = np.array(self.base_layer.weight.detach().float().numpy(), dtype=np.float32, copy=True)
        return w.T.copy() if self.fan_in_fan_out else w

    def set_weight_out_in_np(self, w_out_in):
        """Replaces the base weight (kept in its dtype and layout)."""
        old = self.base_layer.weight
        arr = w_out_in.T if self.fan_in_fan_out else w_out_in
        t = _core.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        if old.dtype != float32:
            t = t._to_raw(old.dtype)
        self.base_layer.weight = Parameter(t, requires_grad=False)

    def get_delta_weight(self, adapter_name):
        # abstract: each method's layer defines its weight update
        raise NotImplementedError(f"{type(self).__name__} must define get_delta_weight (its method's merge)")

    def merged_weight(self, adapter_name, w_out_in):
        """The base weight with the adapter merged in; additive by default."""
        return w_out_in + self.get_delta_weight(adapter_name)

    def merge(self, safe_merge=False, adapter_names=None):
        names = self.active_adapters if adapter_names is None else list(adapter_names)
        for name in names:
            if not self.has_adapter(name) or name in self.merged_adapters:
                continue
            w = self.merged_weight(name, self.weight_out_in_np())
            if safe_merge and not np.isfinite(w).all():
                raise ValueError(f"NaNs detected in the merged weights. The adapter {name} seems to be broken")
            self._merge_stack.append((name, self.base_layer.weight))
            self.set_weight_out_in_np(w)
            self.merged_adapters.append(name)

    def unmerge(self):
        while self._merge_stack:
            name, w = self._merge_stack.pop()
            self.base_layer.weight = w
            self.merged_adapters.remove(name)


class BaseTuner(ActiveAdapters, Module):
    """The model with a method's adapters injected (PEFT's BaseTuner).

    A method's subclass sets `prefix` (start of its parameter names, as
    registered), `tuner_layer_cls` (its BaseTunerLayer subclass) and
    `target_module_mapping` (default targets per model_type), and
    implements `create_and_replace`; it may extend
    `mark_only_adapters_as_trainable`."""
    prefix = ""
    tuner_layer_cls = BaseTunerLayer
    target_module_mapping = {}

    def __init__(self, model, config, adapter_name="default"):
        super().__init__()
        self.model = model
        object.__setattr__(self, "peft_config", {})
        object.__setattr__(self, "_active_adapter", [adapter_name])
        self.inject_adapter(adapter_name, config)

    def __getattr__(self, name):
        return getattr_or_inner(self, name, "model")

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)

    # ---------------------------------------------------- method hooks
    def create_and_replace(self, config, adapter_name, target, key):
        """Wraps the module `target` (at path `key`) for adapter_name, or adds
        the adapter to it when it is already this method's layer (PEFT's
        _create_and_replace)."""
        # abstract: each method's tuner defines how it wraps a target
        raise NotImplementedError(f"{type(self).__name__} must define create_and_replace")

    def prepare_adapter_config(self, config):
        """Fills in target_modules: the model type's default when None, the
        model's linear layers for "all-linear"."""
        if config.target_modules is None:
            mt = getattr(getattr(self.model, "config", None), "model_type", None)
            if mt not in self.target_module_mapping:
                raise ValueError("Please specify `target_modules` in `peft_config`"
                                 f" (no default for model type {mt!r})")
            config.target_modules = set(self.target_module_mapping[mt])
        if isinstance(config.target_modules, str) and config.target_modules.lower() == INCLUDE_LINEAR_LAYERS_SHORTHAND:
            config.target_modules = self.all_linear_module_names(getattr(config, "task_type", None))
        return config

    def mark_only_adapters_as_trainable(self):
        for n, p in self.model.named_parameters():
            if self.prefix not in n and ".modules_to_save." not in n:
                p.requires_grad_(False)

    @classmethod
    def check_saved_tensors(cls, config, tensors, weights_file):
        """Adapter tensors read (mmapped) from weights_file against the
        config's sizes, before any adapter weight is allocated; a method whose
        sizes the file fixes (LoRA's ranks) overrides it."""

    def adapter_size(self, config, key, target):
        """(parameters the adapter adds to module `target` at `key`, the config
        field that sets that number, its value), or None when the method does
        not say."""
        return None

    def check_adapter_memory(self, config, keys):
        """Refuses, before anything is allocated, adapters whose float32
        weights over all target modules exceed this machine's memory."""
        sizes = []
        for key in keys:
            size = self.adapter_size(config, key, self.model.get_submodule(key))
            if size is None:
                return
            sizes.append((size[0], key, size[1], size[2]))
        need, limit = 4 * sum(s[0] for s in sizes), physical_memory()
        if limit is None or need <= limit:
            return
        count, key, field, value = max(sizes)
        raise AdapterConfigError(
            field, f"= {value} gives {need / 2 ** 30:,.1f} GiB of float32 adapter weights over {len(sizes)} module(s) "
                   f"({count:,} parameters on '{key}' alone), more than this machine's {limit / 2 ** 30:,.1f} GiB "
                   "of memory", getattr(config, "_source", None) or type(config).__name__)

    # -------------------------------------------------------- injection
    def all_linear_module_names(self, task_type=None):
        """PEFT's rule for "all-linear" (_maybe_include_all_linear_layers):
        every linear layer (or already wrapped one), less, on a transformers
        model (a PreTrainedModel), its output embedding, or, when it has none
        and the task is SEQ_CLS, its classification head (score / classifier).
        A model written by hand (any other nn.Module) keeps all its linear
        layers, its output layer included, as in PEFT."""
        head = None
        if isinstance(self.model, PreTrainedModel):
            head = self.model.get_output_embeddings()
            if head is None and task_type == "SEQ_CLS":
                head = next((getattr(self.model, n) for n in SEQ_CLS_HEAD_NAMES
                             if getattr(self.model, n, None) is not None), None)
        names = set()
        internal = self.adapter_internal_names()
        for name, m in self.model.named_modules():
            if name in internal or (head is not None and m is head):
                continue
            if is_linear_layer(m) or isinstance(m, self.tuner_layer_cls):
                names.add(name)
        return names

    def adapter_internal_names(self):
        """Paths of the modules inside wrappers (their base layer and adapter
        weights), which are not targets themselves."""
        out = set()
        for name, m in self.model.named_modules():
            if isinstance(m, (BaseTunerLayer, ModulesToSaveWrapper)):
                for sub, _ in m.named_modules():
                    if sub:
                        out.add(f"{name}.{sub}" if name else sub)
        return out

    def inject_adapter(self, adapter_name, config):
        if adapter_name in self.peft_config:
            raise ValueError(f"Adapter with name {adapter_name} already exists.")
        config = self.prepare_adapter_config(config)
        internal = self.adapter_internal_names()
        keys = [n for n, _ in self.model.named_modules() if n and n not in internal]
        tm = config.target_modules
        if not isinstance(tm, str):  # every entry must name something the model has
            for t in sorted(tm):
                if not any(k == t or k.endswith("." + t) for k in keys):
                    raise ValueError(f"Target module '{t}' not found in the base model "
                                     f"({type(self.model).__name__}). Its module names are: "
                                     f"{module_names_summary(keys)}")
        matched = [key for key in keys if check_target_module_exists(config, key)]
        if not matched:
            where = type(self.model).__name__
            if config.layers_to_transform is not None:
                where += f", layers_to_transform={config.layers_to_transform!r}"
            raise ValueError(f"Target modules {config.target_modules!r} not found in the base model ({where}). "
                             f"Its module names are: {module_names_summary(keys)}")
        self.check_adapter_memory(config, matched)
        self.peft_config[adapter_name] = config
        for key in matched:
            self.create_and_replace(config, adapter_name, self.model.get_submodule(key), key)
        if config.modules_to_save:
            for name, m in list(self.model.named_modules()):
                if not name or name in internal:
                    continue
                if any(name == t or name.endswith("." + t) for t in config.modules_to_save):
                    if isinstance(m, ModulesToSaveWrapper):
                        m.update(adapter_name)
                    elif not isinstance(m, BaseTunerLayer):
                        self.replace_module(name, ModulesToSaveWrapper(m, adapter_name))
        self.set_adapter(self._active_adapter)

    def replace_module(self, key, new):
        parent_name, _, child = key.rpartition(".")
        self.model.get_submodule(parent_name).add_module(child, new)

    # ------------------------------------------------------ adapters
    def tuner_layers(self):
        return [m for m in self.model.modules() if isinstance(m, BaseTunerLayer)]

    def set_adapter(self, adapter_name):
        names = [adapter_name] if isinstance(adapter_name, str) else list(adapter_name)
        for n in names:
            if n not in self.peft_config:
                raise ValueError(f"Adapter {n} not found. Available adapters: {list(self.peft_config)}")
        object.__setattr__(self, "_active_adapter", names)
        inference = all(self.peft_config[n].inference_mode for n in names)
        for m in self.model.modules():
            if isinstance(m, BaseTunerLayer):
                if m.merged:
                    m.unmerge()
                m.set_adapter([n for n in names if m.has_adapter(n)] or names, inference_mode=inference)
            elif isinstance(m, ModulesToSaveWrapper):
                m.set_adapter(names, inference_mode=inference)
        if not inference:
            self.mark_only_adapters_as_trainable()
        else:
            for n, p in self.model.named_parameters():
                p.requires_grad_(False)

    def enable_adapter_layers(self):
        for m in self.model.modules():
            if isinstance(m, (BaseTunerLayer, ModulesToSaveWrapper)):
                m.enable_adapters(True)

    def disable_adapter_layers(self):
        for m in self.model.modules():
            if isinstance(m, (BaseTunerLayer, ModulesToSaveWrapper)):
                m.enable_adapters(False)

    def merge_adapter(self, adapter_names=None, safe_merge=False):
        for m in self.tuner_layers():
            m.merge(safe_merge=safe_merge, adapter_names=adapter_names)

    def unmerge_adapter(self):
        for m in self.tuner_layers():
            m.unmerge()

    def delete_adapter(self, adapter_name):
        if adapter_name not in self.peft_config:
            raise ValueError(f"Adapter {adapter_name} does not exist")
        del self.peft_config[adapter_name]
        for m in list(self.model.modules()):
            if isinstance(m, (BaseTunerLayer, ModulesToSaveWrapper)):
                m.delete_adapter(adapter_name)
        remaining = [n for n in self._active_adapter if n != adapter_name]
        if not remaining and self.peft_config:
            remaining = [next(iter(self.peft_config))]
        object.__setattr__(self, "_active_adapter", remaining)
        if remaining:
            self.set_adapter(remaining)

    def unload_and_optionally_merge(self, merge=True, safe_merge=False, adapter_names=None):
        """Puts the base layers back (merged with the adapters or not) and
        returns the model."""
        internal = self.adapter_internal_names()
        for key, m in list(self.model.named_modules()):
            if key in internal:
                continue
            if isinstance(m, BaseTunerLayer):
                if merge:
                    if m.merged and adapter_names is not None:
                        m.unmerge()
                    if not m.merged:
                        m.merge(safe_merge=safe_merge, adapter_names=adapter_names)
                elif m.merged:
                    m.unmerge()
                self.replace_module(key, m.base_layer)
            elif isinstance(m, ModulesToSaveWrapper):
                self.replace_module(key, m.active_module)  # as PEFT: the trained copy stays, merged or not
        return self.model

    def merge_and_unload(self, progressbar=False, safe_merge=False, adapter_names=None):
        return self.unload_and_optionally_merge(True, safe_merge, adapter_names)

    def unload(self):
        return self.unload_and_optionally_merge(False)

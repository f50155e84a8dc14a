"""ModulesToSaveWrapper (a trainable copy of a whole module, saved under the
module's own name) and PEFT's pattern-key helper."""
import re
from collections import OrderedDict

from ...nn import Module, ModuleDict, Parameter


def getattr_or_inner(module, name, inner):
    """A wrapper module's attribute `name`, else the same attribute of its
    child module `inner` (PeftModel -> tuner -> base model pass through)."""
    try:
        return Module.__getattr__(module, name)
    except AttributeError:
        if name == inner:
            raise
        return getattr(module.__dict__["_modules"][inner], name)


def get_pattern_key(pattern_keys, key_to_match):
    """The rank_pattern / alpha_pattern key that matches a module name
    (as `(.*\\.)?(key)$`), or the name itself."""
    for key in pattern_keys:
        if re.match(rf"(.*\.)?({key})$", key_to_match):
            return key
    return key_to_match


def _f32_copy(p):
    t = p.detach()
    return t.float()._clone_raw() if t.dtype.is_floating_point else t._clone_raw()


def clone_module(m):
    """A copy of a module whose parameters and buffers are new float32-or-same
    dtype tensors (not shared with the original)."""
    new = object.__new__(type(m))
    new.__dict__.update(m.__dict__)
    object.__setattr__(new, "_parameters", OrderedDict())
    object.__setattr__(new, "_buffers", OrderedDict())
    object.__setattr__(new, "_modules", OrderedDict())
    object.__setattr__(new, "_forward_hooks", OrderedDict(m._forward_hooks))
    object.__setattr__(new, "_forward_pre_hooks", OrderedDict(m._forward_pre_hooks))
    object.__setattr__(new, "_non_persistent_buffers", set(m._non_persistent_buffers))
    for k, p in m._parameters.items():
        new._parameters[k] = None if p is None else Parameter(_f32_copy(p), requires_grad=False)
    for k, b in m._buffers.items():
        new._buffers[k] = None if b is None else b.detach()._clone_raw()
    for k, c in m._modules.items():
        new._modules[k] = None if c is None else clone_module(c)
    return new


class ModulesToSaveWrapper(Module):
    """PEFT's layout: original_module (frozen) and modules_to_save.<adapter>
    (a trainable copy used while that adapter is active)."""

    def __init__(self, module, adapter_name):
        super().__init__()
        self.original_module = module
        self.modules_to_save = ModuleDict()
        object.__setattr__(self, "_active", [adapter_name])
        object.__setattr__(self, "_disabled", False)
        self.update(adapter_name)

    def update(self, adapter_name):
        self.modules_to_save[adapter_name] = clone_module(self.original_module)

    @property
    def active_module(self):
        name = self._active[0] if self._active else None
        return self.modules_to_save[name] if name in self.modules_to_save else self.original_module

    def enable_adapters(self, enabled):
        object.__setattr__(self, "_disabled", not enabled)

    def set_adapter(self, names, inference_mode=False):
        names = [names] if isinstance(names, str) else list(names)
        for n, m in self.modules_to_save.items():
            for p in m.parameters():
                if p.dtype.name == "float32":
                    p.requires_grad_(n in names and not inference_mode)
        object.__setattr__(self, "_active", [n for n in names if n in self.modules_to_save])

    def delete_adapter(self, adapter_name):
        if adapter_name in self.modules_to_save:
            self.modules_to_save.pop(adapter_name)
        if adapter_name in self._active:
            self._active.remove(adapter_name)

    def forward(self, *args, **kwargs):
        if self._disabled or not self._active:
            return self.original_module(*args, **kwargs)
        return self.active_module(*args, **kwargs)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            # models that read a head's weight directly (F.linear(h, self.lm_head.weight)) get the active copy
            d = self.__dict__
            if d.get("_disabled") or not d.get("_active"):
                return getattr(d["_modules"]["original_module"], name)
            return getattr(self.active_module, name)

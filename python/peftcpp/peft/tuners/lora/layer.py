"""LoRA layers. A wrapped layer keeps PEFT's module layout, so parameter
names (and adapter files) match Hugging Face PEFT one to one:
base_layer.weight, lora_A.<adapter>.weight [r, in], lora_B.<adapter>.weight
[out, r], lora_dropout.<adapter>. The forward is the engine's fused LoRA op
(one F.lora_linear call per active adapter)."""
import math

import numpy as np

from .... import _core
from ....nn import Dropout, Identity, Linear as _NNLinear, Module, ModuleDict, Parameter, ParameterDict
from ....nn import functional as F
from ....nn import init
from ...._tensor import no_grad
from ..tuners_utils import BaseTunerLayer


class LoraLayer(BaseTunerLayer):
    """What every LoRA layer has (PEFT's attribute names)."""
    adapter_layer_names = ("lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B")
    other_param_names = ("r", "lora_alpha", "scaling", "lora_dropout", "use_rslora")

    def init_lora_state(self, base_layer, fan_in_fan_out):
        self.init_tuner_state(base_layer, fan_in_fan_out)
        self.lora_dropout = ModuleDict()
        self.lora_A = ModuleDict()
        self.lora_B = ModuleDict()
        object.__setattr__(self, "r", {})
        object.__setattr__(self, "lora_alpha", {})
        object.__setattr__(self, "scaling", {})
        object.__setattr__(self, "use_rslora", {})

    def update_layer(self, adapter_name, r, lora_alpha, lora_dropout, init_lora_weights, use_rslora):
        if r <= 0:
            raise ValueError(f"`r` should be a positive integer value but the value passed is {r}")
        self.r[adapter_name] = r
        self.lora_alpha[adapter_name] = lora_alpha
        self.use_rslora[adapter_name] = use_rslora
        self.lora_dropout[adapter_name] = Dropout(p=lora_dropout) if lora_dropout > 0.0 else Identity()
        self.lora_A[adapter_name] = _NNLinear(self.in_features, r, bias=False)
        self.lora_B[adapter_name] = _NNLinear(r, self.out_features, bias=False)
        self.scaling[adapter_name] = lora_alpha / math.sqrt(r) if use_rslora else lora_alpha / r
        if isinstance(init_lora_weights, str) and init_lora_weights.startswith("pissa"):
            self.pissa_init(adapter_name)
        elif init_lora_weights:
            self.reset_lora_parameters(adapter_name, init_lora_weights)
        self.activate_if_none(adapter_name)

    def reset_lora_parameters(self, adapter_name, init_lora_weights):
        if init_lora_weights is False or adapter_name not in self.lora_A:
            return
        A, B = self.lora_A[adapter_name].weight, self.lora_B[adapter_name].weight
        if init_lora_weights is True:
            init.kaiming_uniform_(A, a=math.sqrt(5))
        elif str(init_lora_weights).lower() == "gaussian":
            init.normal_(A, std=1.0 / self.r[adapter_name])
        else:
            raise ValueError(f"Unknown initialization init_lora_weights={init_lora_weights!r}")
        init.zeros_(B)

    def pissa_init(self, adapter_name):
        """PiSSA: A, B from the top-r singular triplets of W; W keeps the
        residual, so the initial output is unchanged."""
        w = self.weight_out_in_np()
        u, s, vh = (t.numpy().astype(np.float64) for t in _core.svd(_core.from_numpy(w)))  # LAPACK dgesdd
        r, scale = self.r[adapter_name], self.scaling[adapter_name]
        sr = s[:r] / scale
        a = np.sqrt(sr)[:, None] * vh[:r]          # [r, in]
        b = u[:, :r] * np.sqrt(sr)[None, :]        # [out, r]
        res = w - scale * (b @ a)
        with no_grad():
            self.lora_A[adapter_name].weight.copy_(_core.from_numpy(np.ascontiguousarray(a, dtype=np.float32)))
            self.lora_B[adapter_name].weight.copy_(_core.from_numpy(np.ascontiguousarray(b, dtype=np.float32)))
        self.set_weight_out_in_np(res)

    def get_delta_weight(self, adapter_name):
        """ΔW = scaling · B @ A, [out, in], as float32 numpy."""
        a = self.lora_A[adapter_name].weight.detach().float().numpy()
        b = self.lora_B[adapter_name].weight.detach().float().numpy()
        return (b.astype(np.float32) @ a.astype(np.float32)) * np.float32(self.scaling[adapter_name])


def _dropout_p(m):
    return float(getattr(m, "p", 0.0))


class Linear(Module, LoraLayer):
    """LoRA around nn.Linear, or around GPT-2's Conv1D (fan_in_fan_out=True:
    weight stored [in, out], used through a transposed view)."""

    def __init__(self, base_layer, adapter_name, r=8, lora_alpha=8, lora_dropout=0.0, fan_in_fan_out=False,
                 init_lora_weights=True, use_rslora=False, **kwargs):
        Module.__init__(self)
        self.init_lora_state(base_layer, fan_in_fan_out)
        self.update_layer(adapter_name, r, lora_alpha, lora_dropout, init_lora_weights, use_rslora)

    def _weight(self):
        w = self.base_layer.weight
        return w.transpose(0, 1) if self.fan_in_fan_out else w

    def forward(self, x, *args, **kwargs):
        if self.disable_adapters:
            if self.merged:
                self.unmerge()
            return self.base_layer(x, *args, **kwargs)
        if self.merged:
            return self.base_layer(x, *args, **kwargs)
        active = [a for a in self.active_adapters if a in self.lora_A]
        if not active:
            return self.base_layer(x, *args, **kwargs)
        bias = getattr(self.base_layer, "bias", None)
        first = active[0]
        y = F.lora_linear(x, self._weight(), bias, self.lora_A[first].weight, self.lora_B[first].weight,
                          self.scaling[first], _dropout_p(self.lora_dropout[first]), self.training)
        for name in active[1:]:
            xd = self.lora_dropout[name](x)
            y = y + F.linear(F.linear(xd, self.lora_A[name].weight), self.lora_B[name].weight) * self.scaling[name]
        return y

    def __repr__(self):
        return "lora." + super().__repr__()


class Embedding(Module, LoraLayer):
    """LoRA around nn.Embedding (PEFT's layout): lora_embedding_A [r, num]
    (zeros) and lora_embedding_B [dim, r] (normal) as parameters, saved as
    `<module>.lora_embedding_A` / `.lora_embedding_B`."""

    def __init__(self, base_layer, adapter_name, r=8, lora_alpha=8, lora_dropout=0.0, init_lora_weights=True,
                 use_rslora=False, **kwargs):
        Module.__init__(self)
        self.init_lora_state(base_layer, False)
        self.lora_embedding_A = ParameterDict()
        self.lora_embedding_B = ParameterDict()
        self.in_features, self.out_features = base_layer.weight.shape[0], base_layer.weight.shape[1]
        self.update_layer(adapter_name, r, lora_alpha, lora_dropout, init_lora_weights, use_rslora)

    def update_layer(self, adapter_name, r, lora_alpha, lora_dropout, init_lora_weights, use_rslora):
        if r <= 0:
            raise ValueError(f"`r` should be a positive integer value but the value passed is {r}")
        if isinstance(init_lora_weights, str) and init_lora_weights.startswith("pissa"):
            raise NotImplementedError("PiSSA initialisation of an Embedding is not supported")
        self.r[adapter_name] = r
        self.lora_alpha[adapter_name] = lora_alpha
        self.use_rslora[adapter_name] = use_rslora
        self.lora_dropout[adapter_name] = Dropout(p=lora_dropout) if lora_dropout > 0.0 else Identity()
        self.scaling[adapter_name] = lora_alpha / math.sqrt(r) if use_rslora else lora_alpha / r
        a = Parameter(_core.randn([r, self.in_features], 0.0, 1.0))
        b = Parameter(_core.randn([self.out_features, r], 0.0, 1.0))
        if init_lora_weights:
            init.zeros_(a)
            init.normal_(b)
        self.lora_embedding_A[adapter_name] = a
        self.lora_embedding_B[adapter_name] = b
        self.activate_if_none(adapter_name)

    def get_delta_weight(self, adapter_name):
        """ΔW = scaling · (B @ A)ᵀ, [num, dim]."""
        a = self.lora_embedding_A[adapter_name].detach().float().numpy().astype(np.float32)
        b = self.lora_embedding_B[adapter_name].detach().float().numpy().astype(np.float32)
        return (b @ a).T * np.float32(self.scaling[adapter_name])

    def forward(self, x, *args, **kwargs):
        if self.disable_adapters:
            if self.merged:
                self.unmerge()
            return self.base_layer(x, *args, **kwargs)
        y = self.base_layer(x, *args, **kwargs)
        if self.merged:
            return y
        for name in self.active_adapters:
            if name not in self.lora_embedding_A:
                continue
            a_t = self.lora_embedding_A[name].transpose(0, 1).contiguous()
            b_t = self.lora_embedding_B[name].transpose(0, 1)
            y = y + F.embedding(x, a_t).matmul(b_t) * self.scaling[name]
        return y

    def __repr__(self):
        return "lora." + super().__repr__()

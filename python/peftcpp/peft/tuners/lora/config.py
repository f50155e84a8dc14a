"""LoraConfig: Hugging Face PEFT's field names and defaults; the fields PEFT
writes that peftcpp does not implement keep their defaults (and a config
that turns one of them on is refused with a clear message)."""
import dataclasses
from dataclasses import field

from ...config import PeftConfig, PeftType

INCLUDE_LINEAR_LAYERS_SHORTHAND = "all-linear"

# Fields PEFT 0.21 writes; peftcpp supports them only at these values.
_UNSUPPORTED_DEFAULTS = {
    "use_dora": False, "lora_bias": False, "use_qalora": False, "layer_replication": None,
    "target_parameters": None, "trainable_token_indices": None, "alora_invocation_tokens": None,
    "use_bdlora": None,
}


@dataclasses.dataclass
class LoraConfig(PeftConfig):
    r: int = 8
    target_modules: object = None
    exclude_modules: object = None
    lora_alpha: int = 8
    lora_dropout: float = 0.0
    fan_in_fan_out: bool = False
    bias: str = "none"
    use_rslora: bool = False
    modules_to_save: object = None
    init_lora_weights: object = True
    layers_to_transform: object = None
    layers_pattern: object = None
    rank_pattern: dict = field(default_factory=dict)
    alpha_pattern: dict = field(default_factory=dict)
    # written by PEFT, kept at their defaults here
    use_dora: bool = False
    lora_bias: bool = False
    use_qalora: bool = False
    qalora_group_size: int = 16
    layer_replication: object = None
    target_parameters: object = None
    trainable_token_indices: object = None
    alora_invocation_tokens: object = None
    use_bdlora: object = None
    ensure_weight_tying: bool = False
    loftq_config: dict = field(default_factory=dict)
    eva_config: object = None
    corda_config: object = None
    kasa_config: object = None
    lora_ga_config: object = None
    arrow_config: object = None
    monteclora_config: object = None
    velora_config: object = None
    megatron_config: object = None
    megatron_core: object = "megatron.core"

    def __post_init__(self):
        super().__post_init__()
        self.peft_type = PeftType.LORA
        if isinstance(self.target_modules, (list, tuple, set)):
            self.target_modules = set(self.target_modules)
        if isinstance(self.exclude_modules, (list, tuple, set)):
            self.exclude_modules = set(self.exclude_modules)
        if isinstance(self.target_modules, str) and self.layers_to_transform is not None:
            raise ValueError("`layers_to_transform` cannot be used when `target_modules` is a str.")
        if isinstance(self.target_modules, str) and self.layers_pattern is not None:
            raise ValueError("`layers_pattern` cannot be used when `target_modules` is a str.")
        if self.layers_pattern and self.layers_to_transform is None:
            raise ValueError("When `layers_pattern` is specified, `layers_to_transform` must also be specified. ")
        if not isinstance(self.r, int) or self.r <= 0:
            raise ValueError(f"`r` should be a positive integer value but the value passed is {self.r}")
        if self.bias not in ("none", "all", "lora_only"):
            raise ValueError(f"bias must be 'none', 'all' or 'lora_only', got {self.bias!r}")
        if not 0.0 <= float(self.lora_dropout) < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        iw = self.init_lora_weights
        if not (iw is True or iw is False or iw in ("gaussian", "pissa") or
                (isinstance(iw, str) and iw.startswith("pissa_niter_"))):
            raise ValueError(f"init_lora_weights={iw!r} is not supported by peftcpp "
                             "(supported: True, False, 'gaussian', 'pissa', 'pissa_niter_[n]')")
        for name, default in _UNSUPPORTED_DEFAULTS.items():
            if getattr(self, name) not in (default, [], {}) and not (default is False and getattr(self, name) is None):
                raise NotImplementedError(f"LoraConfig.{name}={getattr(self, name)!r} is not supported by peftcpp "
                                          f"(only {default!r})")
        if self.rank_pattern is None:
            self.rank_pattern = {}
        if self.alpha_pattern is None:
            self.alpha_pattern = {}
        if self.loftq_config is None:
            self.loftq_config = {}

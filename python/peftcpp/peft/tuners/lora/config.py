"""LoraConfig: Hugging Face PEFT's field names and defaults; the fields PEFT
writes that peftcpp does not implement keep their defaults (and a config
that turns one of them on is refused with a clear message)."""
import dataclasses
from dataclasses import field
from typing import Literal, Optional, Union

from ...config import PeftConfig
from ...utils.constants import INCLUDE_LINEAR_LAYERS_SHORTHAND
from ...utils.peft_types import PeftType

__all__ = ["LoraConfig", "INCLUDE_LINEAR_LAYERS_SHORTHAND"]

# Fields PEFT 0.21 writes; peftcpp supports them only at these values.
_UNSUPPORTED_DEFAULTS = {
    "use_dora": False, "lora_bias": False, "use_qalora": False, "layer_replication": None,
    "target_parameters": None, "trainable_token_indices": None, "alora_invocation_tokens": None,
    "use_bdlora": None,
}


def _kept(default=None, what="PEFT's option"):
    """A field PEFT writes that peftcpp keeps at its default."""
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"help": f"{what}; not supported by peftcpp (kept empty)."})
    return field(default=default, metadata={"help": f"{what}; not supported by peftcpp (kept at {default!r})."})


@dataclasses.dataclass
class LoraConfig(PeftConfig):
    """LoRA's settings (PEFT's LoraConfig): W + (lora_alpha / r) * B @ A on
    the target modules."""
    r: int = field(default=8, metadata={"help": "LoRA rank: the inner dimension of A [r, in] and B [out, r]."})
    target_modules: Optional[Union[list, str]] = field(default=None, metadata={
        "help": "Modules to wrap: a list of names (exact or '.name' suffix), a regex matched against the full "
                "name, or 'all-linear'; None takes the architecture's default."})
    exclude_modules: Optional[Union[list, str]] = field(default=None, metadata={
        "help": "Modules not to wrap, matched like target_modules."})
    lora_alpha: int = field(default=8, metadata={"help": "Scaling numerator: the update is scaled by lora_alpha / r."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA branch's input, in [0, 1)."})
    fan_in_fan_out: bool = field(default=False, metadata={
        "help": "The target stores its weight [in, out] (GPT-2's Conv1D); set from the layer type."})
    bias: Literal["none", "all", "lora_only"] = field(default="none", metadata={
        "help": "Which biases train: 'none', 'all', or 'lora_only' (those of the wrapped layers)."})
    use_rslora: bool = field(default=False, metadata={
        "help": "Rank-stabilised LoRA: scale by lora_alpha / sqrt(r) instead of lora_alpha / r."})
    modules_to_save: Optional[list] = field(default=None, metadata={
        "help": "Modules trained in full next to the adapter and saved with it (e.g. a new head)."})
    init_lora_weights: Union[bool, str] = field(default=True, metadata={
        "help": "True: A Kaiming-uniform, B zero; 'gaussian': A normal(1/r); False: random (for tests); "
                "'pissa' / 'pissa_niter_[n]': A, B from the weight's top singular vectors."})
    layers_to_transform: Optional[Union[list, int]] = field(default=None, metadata={
        "help": "Only these block indices are wrapped (needs a list target_modules)."})
    layers_pattern: Optional[Union[list, str]] = field(default=None, metadata={
        "help": "Name of the block list the layers_to_transform indices refer to ('layers', 'h')."})
    rank_pattern: dict = field(default_factory=dict, metadata={
        "help": "Per-module rank: {name or regex: r}, overriding r."})
    alpha_pattern: dict = field(default_factory=dict, metadata={
        "help": "Per-module alpha: {name or regex: lora_alpha}, overriding lora_alpha."})
    # written by PEFT, kept at their defaults here
    use_dora: bool = _kept(False, "DoRA (weight-decomposed LoRA)")
    lora_bias: bool = _kept(False, "A trainable bias on lora_B")
    use_qalora: bool = _kept(False, "QA-LoRA")
    qalora_group_size: int = _kept(16, "QA-LoRA's pooling group size")
    layer_replication: Optional[list] = _kept(None, "Layer replication ranges")
    target_parameters: Optional[list] = _kept(None, "Parameters (not modules) to adapt")
    trainable_token_indices: Optional[Union[list, dict]] = _kept(None, "Token embeddings trained on their own")
    alora_invocation_tokens: Optional[list] = _kept(None, "Activated LoRA's invocation tokens")
    use_bdlora: Optional[dict] = _kept(None, "Block-diagonal LoRA")
    ensure_weight_tying: bool = _kept(False, "Tied embedding adapters")
    loftq_config: dict = _kept({}, "LoftQ initialisation")
    eva_config: Optional[dict] = _kept(None, "EVA initialisation")
    corda_config: Optional[dict] = _kept(None, "CorDA initialisation")
    kasa_config: Optional[dict] = _kept(None, "KaSA")
    lora_ga_config: Optional[dict] = _kept(None, "LoRA-GA initialisation")
    arrow_config: Optional[dict] = _kept(None, "Arrow routing")
    monteclora_config: Optional[dict] = _kept(None, "MonteCLoRA")
    velora_config: Optional[dict] = _kept(None, "VeLoRA")
    megatron_config: Optional[dict] = _kept(None, "Megatron parallel linear config")
    megatron_core: Optional[str] = _kept("megatron.core", "Megatron core module")

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

"""LoraConfig: Hugging Face PEFT's field names and defaults; the fields PEFT
writes that peftcpp does not implement keep their defaults (and a config
that turns one of them on is refused with a clear message)."""
import dataclasses
import json
import re
from dataclasses import field
from typing import Literal, Optional, Union

from ...config import (MAX_RANK, AdapterConfigError, PeftConfig, UnsupportedAdapterOption, dropout, finite_number,
                       is_finite, is_rank, layer_indices, names_or_regex, pattern_map, positive_int, regex_parts)
from ...utils.constants import INCLUDE_LINEAR_LAYERS_SHORTHAND
from ...utils.peft_types import PeftType
from ....models.config_checks import show

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
    r: int = field(default=8, metadata={"help": "LoRA rank: the inner dimension of A [r, in] and B [out, r].",
                                        "check": positive_int})
    target_modules: Optional[Union[list, str]] = field(default=None, metadata={
        "help": "Modules to wrap: a list of names (exact or '.name' suffix), a regex matched against the full "
                "name, or 'all-linear'; None takes the architecture's default.", "check": names_or_regex})
    exclude_modules: Optional[Union[list, str]] = field(default=None, metadata={
        "help": "Modules not to wrap, matched like target_modules.", "check": names_or_regex})
    lora_alpha: Union[int, float] = field(default=8, metadata={
        "help": "Scaling numerator: the update is scaled by lora_alpha / r.", "check": finite_number})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA branch's input, in [0, 1).",
                                                       "check": dropout})
    fan_in_fan_out: bool = field(default=False, metadata={
        "help": "The target stores its weight [in, out] (GPT-2's Conv1D); set from the layer type."})
    bias: Literal["none", "all", "lora_only"] = field(default="none", metadata={
        "help": "Which biases train: 'none', 'all', or 'lora_only' (those of the wrapped layers)."})
    use_rslora: bool = field(default=False, metadata={
        "help": "Rank-stabilised LoRA: scale by lora_alpha / sqrt(r) instead of lora_alpha / r."})
    modules_to_save: Optional[list] = field(default=None, metadata={
        "help": "Modules trained in full next to the adapter and saved with it (e.g. a new head).",
        "check": regex_parts(lambda m: rf"(^|.*\.){m}($|\..*)")})
    init_lora_weights: Union[bool, str] = field(default=True, metadata={
        "help": "True: A Kaiming-uniform, B zero; 'gaussian': A normal(1/r); False: random (for tests); "
                "'pissa' / 'pissa_niter_[n]': A, B from the weight's top singular vectors."})
    layers_to_transform: Optional[Union[list, int]] = field(default=None, metadata={
        "help": "Only these block indices are wrapped (needs a list target_modules).", "check": layer_indices})
    layers_pattern: Optional[Union[list, str]] = field(default=None, metadata={
        "help": "Name of the block list the layers_to_transform indices refer to ('layers', 'h').",
        "check": regex_parts(lambda p: rf"(?:^|.*?\.){p}\.(?P<idx>\d+)\.")})
    rank_pattern: Optional[dict] = field(default_factory=dict, metadata={
        "help": "Per-module rank: {name or regex: r}, overriding r.",
        "check": pattern_map(is_rank, f"an integer from 1 to {MAX_RANK}")})
    alpha_pattern: Optional[dict] = field(default_factory=dict, metadata={
        "help": "Per-module alpha: {name or regex: lora_alpha}, overriding lora_alpha.",
        "check": pattern_map(is_finite, "a finite number")})
    # written by PEFT, kept at their defaults here
    use_dora: Optional[bool] = _kept(False, "DoRA (weight-decomposed LoRA)")
    lora_bias: Optional[bool] = _kept(False, "A trainable bias on lora_B")
    use_qalora: Optional[bool] = _kept(False, "QA-LoRA")
    qalora_group_size: Optional[int] = _kept(16, "QA-LoRA's pooling group size")
    layer_replication: Optional[list] = _kept(None, "Layer replication ranges")
    target_parameters: Optional[list] = _kept(None, "Parameters (not modules) to adapt")
    trainable_token_indices: Optional[Union[list, dict]] = _kept(None, "Token embeddings trained on their own")
    alora_invocation_tokens: Optional[list] = _kept(None, "Activated LoRA's invocation tokens")
    use_bdlora: Optional[dict] = _kept(None, "Block-diagonal LoRA")
    ensure_weight_tying: Optional[bool] = _kept(False, "Tied embedding adapters")
    loftq_config: Optional[dict] = _kept({}, "LoftQ initialisation")
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
            raise AdapterConfigError("layers_to_transform", "cannot be used when `target_modules` is a str",
                                     "LoraConfig")
        if isinstance(self.target_modules, str) and self.layers_pattern is not None:
            raise AdapterConfigError("layers_pattern", "cannot be used when `target_modules` is a str", "LoraConfig")
        if self.layers_pattern and self.layers_to_transform is None:
            raise AdapterConfigError("layers_pattern", "is set, so `layers_to_transform` must be set too",
                                     "LoraConfig")
        iw = self.init_lora_weights
        if not (iw is True or iw is False or iw in ("gaussian", "pissa") or
                (isinstance(iw, str) and re.fullmatch(r"pissa_niter_\d+", iw))):
            raise UnsupportedAdapterOption("init_lora_weights", f"{show(iw)} is not supported by peftcpp (supported: "
                                           "true, false, 'gaussian', 'pissa', 'pissa_niter_[n]')", "LoraConfig")
        for name, default in _UNSUPPORTED_DEFAULTS.items():
            if getattr(self, name) not in (default, [], {}) and not (default is False and getattr(self, name) is None):
                raise UnsupportedAdapterOption(name, f"{show(getattr(self, name))} is not supported by peftcpp (only "
                                               f"{json.dumps(default)})", "LoraConfig")
        if self.rank_pattern is None:
            self.rank_pattern = {}
        if self.alpha_pattern is None:
            self.alpha_pattern = {}
        if self.loftq_config is None:
            self.loftq_config = {}

"""Text generation shared by every model (transformers' layout):
configuration_utils (GenerationConfig), logits_process (penalties and
warpers), stopping_criteria (eos, stop strings), utils (GenerationMixin and
its decoding loop). Nothing here imports an architecture."""
from .configuration_utils import GENERATION_CONFIG_NAME, GENERATION_CONFIG_SLOT, GenerationConfig, load_generation_config
from .logits_process import process_logits, repetition_penalty, temperature_warp, top_k_warp, top_p_warp
from .utils import GenerationMixin, decode_step, length_budget

__all__ = ["GENERATION_CONFIG_NAME", "GENERATION_CONFIG_SLOT", "GenerationConfig", "GenerationMixin", "decode_step", "length_budget",
           "load_generation_config", "process_logits", "repetition_penalty", "temperature_warp", "top_k_warp",
           "top_p_warp"]

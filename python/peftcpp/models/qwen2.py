"""Qwen2 / Qwen2.5: Llama with biased q/k/v projections (o_proj without
bias) and an optional sliding window on layers >= max_window_layers
(only when use_sliding_window). Names as transformers' Qwen2."""
from .config_checks import ConfigFieldError
from .llama import SLIDING_ATTENTION, LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification


def sliding_layer_types(config):
    """transformers' Qwen2/Qwen3 rule: sliding_window only counts with
    use_sliding_window; then layers from max_window_layers on slide."""
    if not getattr(config, "use_sliding_window", False):
        config.sliding_window = None
    if getattr(config, "layer_types", None) is None:
        config.layer_types = [SLIDING_ATTENTION if config.sliding_window is not None and i >= config.max_window_layers
                              else "full_attention" for i in range(config.num_hidden_layers)]
    if len(config.layer_types) != config.num_hidden_layers:
        raise ConfigFieldError("layer_types", f"has {len(config.layer_types)} entries but num_hidden_layers is "
                               f"{config.num_hidden_layers}")


class Qwen2Config(LlamaConfig):
    model_type = "qwen2"
    defaults = dict(LlamaConfig.defaults, vocab_size=151936, hidden_size=4096, intermediate_size=22016,
                    num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                    max_position_embeddings=32768, rope_theta=10000.0, use_sliding_window=False,
                    sliding_window=4096, max_window_layers=28, layer_types=None, bos_token_id=None,
                    eos_token_id=None)
    qkv_bias = True
    o_proj_bias = False  # whatever attention_bias says
    sliding_layers = "layer_types"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        sliding_layer_types(self)


class Qwen2ForCausalLM(LlamaForCausalLM):
    config_class = Qwen2Config


class Qwen2ForSequenceClassification(LlamaForSequenceClassification):
    config_class = Qwen2Config

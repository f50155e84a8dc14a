"""SmolLM3: Llama where some layers use no positional encoding (NoPE):
config.no_rope_layers[i] is 1 for a layer with RoPE, 0 without (by default
every no_rope_layer_interval-th layer is NoPE; LlamaConfig.layer_uses_rope
reads it). With use_sliding_window, NoPE layers may slide
(config.layer_types). Names as transformers'."""
from .config_checks import check_layer_list
from .llama import SLIDING_ATTENTION, LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification


class SmolLM3Config(LlamaConfig):
    model_type = "smollm3"
    defaults = dict(LlamaConfig.defaults, vocab_size=128256, hidden_size=2048, intermediate_size=11008,
                    num_hidden_layers=36, num_attention_heads=16, num_key_value_heads=4,
                    max_position_embeddings=32768, rope_theta=2000000.0, tie_word_embeddings=True,
                    pad_token_id=128004, bos_token_id=128000, eos_token_id=128001, use_sliding_window=False,
                    sliding_window=None, no_rope_layers=None, no_rope_layer_interval=4, layer_types=None)
    sliding_layers = "layer_types"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        n = self.num_hidden_layers
        if self.no_rope_layers is None:
            self.no_rope_layers = [int((i + 1) % self.no_rope_layer_interval != 0) for i in range(n)]
        check_layer_list("no_rope_layers", self.no_rope_layers, n)
        if self.layer_types is None:
            self.layer_types = [SLIDING_ATTENTION if self.use_sliding_window and self.sliding_window is not None
                                and not self.no_rope_layers[i] else "full_attention" for i in range(n)]
        check_layer_list("layer_types", self.layer_types, n)


class SmolLM3ForCausalLM(LlamaForCausalLM):
    config_class = SmolLM3Config


class SmolLM3ForSequenceClassification(LlamaForSequenceClassification):
    config_class = SmolLM3Config

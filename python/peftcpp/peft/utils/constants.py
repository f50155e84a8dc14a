"""File names, format version and target-module defaults (PEFT's constants)."""

CONFIG_NAME = "adapter_config.json"
SAFETENSORS_WEIGHTS_NAME = "adapter_model.safetensors"
# adapter_config.json's peft_version: the PEFT release whose on-disk format this follows
PEFT_FORMAT_VERSION = "0.21.2"

# target_modules="all-linear": every linear layer but a transformers model's output head
INCLUDE_LINEAR_LAYERS_SHORTHAND = "all-linear"
# the classification heads "all-linear" leaves out of a SEQ_CLS model (PEFT's names)
SEQ_CLS_HEAD_NAMES = ["score", "classifier"]

# layers whose base weight is saved with the adapter when LoRA targets them
EMBEDDING_LAYER_NAMES = ["embed_tokens", "lm_head"]

# LoRA's per-architecture defaults when target_modules is None
TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING = {
    "llama": ["q_proj", "v_proj"], "mistral": ["q_proj", "v_proj"], "qwen2": ["q_proj", "v_proj"],
    "qwen3": ["q_proj", "v_proj"], "smollm3": ["q_proj", "v_proj"], "gemma3_text": ["q_proj", "v_proj"],
    "gemma3": ["q_proj", "v_proj"], "phi3": ["qkv_proj"], "gpt2": ["c_attn"],
    "t5": ["q", "v"],
}

"""GenerationConfig (transformers' names and defaults) and the model's
default one, read from generation_config.json or the model config."""
import json
import os

from ...hub import resolve_file
from ...fileio import read_json_object, write_json_atomic

GENERATION_CONFIG_NAME = "generation_config.json"
# Where a model keeps its GenerationConfig once loaded or set (in __dict__, so
# that save_pretrained can tell a loaded one from none without loading it).
GENERATION_CONFIG_SLOT = "_generation_config"

# transformers' GenerationConfig._get_default_generation_params (the ones we use)
GLOBAL_DEFAULTS = dict(max_length=20, min_length=0, do_sample=False, use_cache=True, num_beams=1, temperature=1.0,
                       top_k=50, top_p=1.0, repetition_penalty=1.0, num_return_sequences=1,
                       output_scores=False, return_dict_in_generate=False)

GENERATION_FIELDS = ("max_new_tokens", "max_length", "min_new_tokens", "min_length", "do_sample", "temperature",
                     "top_k", "top_p", "repetition_penalty", "eos_token_id", "pad_token_id", "bos_token_id",
                     "stop_strings", "seed", "num_beams", "num_return_sequences", "use_cache", "output_scores",
                     "return_dict_in_generate")


class GenerationConfig:
    """transformers' GenerationConfig: unset values are None and are filled
    from the model's generation config, then from GLOBAL_DEFAULTS."""

    def __init__(self, **kwargs):
        for k in GENERATION_FIELDS:
            setattr(self, k, kwargs.pop(k, None))
        for k, v in kwargs.items():
            setattr(self, k, v)

    @classmethod
    def from_dict(cls, d):
        return cls(**{k: v for k, v in d.items() if not k.startswith("_") and k != "transformers_version"})

    @classmethod
    def from_model_config(cls, config):
        """bos/eos/pad (and any generation parameter) from a model config."""
        d = config.to_dict() if hasattr(config, "to_dict") else dict(config or {})
        return cls(**{k: d[k] for k in GENERATION_FIELDS if d.get(k) is not None})

    @classmethod
    def from_pretrained(cls, name_or_path, config_file_name=GENERATION_CONFIG_NAME, **hub_kwargs):
        path = resolve_file(name_or_path, config_file_name, **hub_kwargs)
        return cls.from_dict(read_json_object(path))

    def to_dict(self):
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_") and v is not None}

    def save_pretrained(self, save_directory, config_file_name=GENERATION_CONFIG_NAME):
        os.makedirs(save_directory, exist_ok=True)
        write_json_atomic(os.path.join(save_directory, config_file_name), self.to_dict(), sort_keys=True,
                          ensure_ascii=True)

    def update(self, **kwargs):
        for k, v in kwargs.items():
            setattr(self, k, v)
        return self

    def __repr__(self):
        return f"GenerationConfig {json.dumps(self.to_dict(), sort_keys=True, default=str)}"


def load_generation_config(name_or_path, config=None, **hub_kwargs):
    """The model's default GenerationConfig: generation_config.json from the
    model folder / hub repo when it has one, else from the model config.
    PreTrainedModel.from_pretrained calls this while the hub arguments are at
    hand; otherwise generate() loads it lazily."""
    if name_or_path:
        path = resolve_file(name_or_path, GENERATION_CONFIG_NAME, required=False, **hub_kwargs)
        if path is not None:
            return GenerationConfig.from_pretrained(os.path.dirname(path))
    return GenerationConfig.from_model_config(config) if config is not None else GenerationConfig()

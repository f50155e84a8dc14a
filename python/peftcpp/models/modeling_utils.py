"""PreTrainedModel: loading and saving Hugging Face checkpoints
(config.json + model.safetensors or a sharded index, memory-mapped: the
weights are used where they lie in the file, no second copy), and the
pieces every causal LM shares (attention mask, fused loss)."""
import json
import os

import numpy as np

from .. import _core
from .. import serialization
from ..hub import resolve_file
from ..nn import Module, Parameter, init_empty_weights
from ..nn import functional as F
from .._tensor import bfloat16, float16, float32

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"

_DTYPES = {"float32": float32, "float16": float16, "bfloat16": bfloat16, "fp32": float32, "fp16": float16,
           "bf16": bfloat16}


def _as_dtype(dtype):
    if dtype is None or dtype == "auto":
        return None
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ValueError(f"unknown dtype '{dtype}' (use float32, bfloat16 or float16)")
        return _DTYPES[dtype]
    if isinstance(dtype, _core.DType):
        return dtype
    name = str(dtype).replace("torch.", "")  # accept torch.bfloat16 spelled by user code
    if name in _DTYPES:
        return _DTYPES[name]
    raise ValueError(f"unknown dtype {dtype!r}")


def load_checkpoint(name_or_path, **hub_kwargs):
    """name → Tensor of the model's safetensors files (mmapped), and the
    files they came from (for error messages)."""
    index_path = resolve_file(name_or_path, SAFE_WEIGHTS_INDEX_NAME, required=False, **hub_kwargs)
    files = []
    if index_path is not None:
        with open(index_path, encoding="utf-8") as f:
            try:
                weight_map = json.load(f)["weight_map"]
            except (json.JSONDecodeError, KeyError) as e:
                raise ValueError(f"{index_path}: not a valid safetensors index ({e})") from None
        for shard in sorted(set(weight_map.values())):
            files.append(resolve_file(name_or_path, shard, **hub_kwargs))
    else:
        files.append(resolve_file(name_or_path, SAFE_WEIGHTS_NAME, **hub_kwargs))
    tensors, origin = {}, {}
    for path in files:
        for k, v in serialization.load_file(path).items():
            tensors[k] = v
            origin[k] = path
    return tensors, origin



# Loading options of transformers that only place or stage weights: on one
# CPU with memory-mapped checkpoints they have nothing to do, so scripts that
# pass them run unchanged. They must not land in the config (they would be
# saved into config.json).
_PLACEMENT_KWARGS = ("low_cpu_mem_usage", "trust_remote_code", "use_safetensors", "local_files_only",
                     "offload_folder", "offload_state_dict", "max_memory", "_fast_init", "force_download")


def _pop_placement_kwargs(kwargs):
    device_map = kwargs.pop("device_map", None)
    if device_map is not None and not (device_map in ("auto", "cpu", "balanced", "sequential", 0)
                                       or (isinstance(device_map, dict)
                                           and all(str(v) == "cpu" for v in device_map.values()))):
        raise ValueError(f"device_map={device_map!r}: peftcpp runs on the CPU; use device_map='auto' or 'cpu'")
    if kwargs.pop("quantization_config", None) is not None or kwargs.pop("load_in_4bit", False) \
            or kwargs.pop("load_in_8bit", False):
        raise NotImplementedError("quantized loading (bitsandbytes / QLoRA) is not supported yet by peftcpp")
    for k in _PLACEMENT_KWARGS:
        kwargs.pop(k, None)

class PreTrainedModel(Module):
    config_class = None
    base_model_prefix = "model"
    _tied_weights_keys = ["lm_head.weight"]
    # Checkpoint keys that are fine to ignore (buffers older exporters saved).
    _keys_to_ignore_on_load_unexpected = [r"rotary_emb.inv_freq", r"\.attn\.bias$", r"\.attn\.masked_bias$"]

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.name_or_path = ""
        self.gradient_checkpointing = False

    # ------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, name_or_path, config=None, dtype=None, torch_dtype=None, **kwargs):
        """Loads config and weights. dtype=None/"auto" keeps the checkpoint's
        dtype (a bf16 checkpoint stays bf16: half the memory, frozen);
        float32 converts and makes the weights trainable."""
        hub = {k: kwargs.pop(k) for k in ("token", "revision", "cache_dir") if k in kwargs}
        _pop_placement_kwargs(kwargs)
        if config is None:
            config = cls.config_class.from_pretrained(name_or_path, **hub)
        for k, v in kwargs.items():
            setattr(config, k, v)
        want = _as_dtype(dtype if dtype is not None else torch_dtype)
        with init_empty_weights():  # no random init, no float32 copy: the file's memory is used
            model = cls(config)
        tensors, origin = load_checkpoint(name_or_path, **hub)
        model._load_tensors(tensors, origin, want)
        model.name_or_path = os.fspath(name_or_path)
        if hasattr(model, "generate"):  # generation_config.json now, while the hub arguments are at hand
            from .generation import _load_generation_config
            model.generation_config = _load_generation_config(name_or_path, config, **hub)
        model.eval()
        return model

    def _load_tensors(self, tensors, origin, dtype):
        import re
        own = self.state_dict(keep_vars=True)
        tied = bool(getattr(self.config, "tie_word_embeddings", False))
        missing = [k for k in own if k not in tensors and not (tied and k in self._tied_weights_keys)]
        if missing:
            where = sorted(set(origin.values()))
            raise ValueError(f"{', '.join(where)}: missing tensor(s) {', '.join(missing[:8])}"
                             f"{' ...' if len(missing) > 8 else ''} for {type(self).__name__}")
        for k, src in tensors.items():
            if k not in own:
                if any(re.search(p, k) for p in self._keys_to_ignore_on_load_unexpected):
                    continue
                if tied and k in self._tied_weights_keys:
                    continue
                raise ValueError(f"{origin[k]}: unexpected tensor '{k}' for {type(self).__name__} "
                                 f"(model_type {self.config.model_type})")
            self._place_checked(k, src, own[k], origin[k], dtype)
        if tied:
            self.tie_weights()

    def _place_checked(self, key, src, target, origin, dtype):
        """Puts a checkpoint tensor in place of parameter `key` after checking
        its shape against the config's and that it is a float tensor."""
        if tuple(src.shape) != tuple(target.shape):
            raise ValueError(f"{origin}: tensor '{key}' has shape {tuple(src.shape)} but config.json implies "
                             f"{tuple(target.shape)}")
        if not src.dtype.is_floating_point:
            raise TypeError(f"{origin}: tensor '{key}' has dtype {src.dtype.name}; expected a float tensor")
        self._place(key, src if dtype is None else src._to_raw(dtype))

    def _place(self, key, value):
        mod_path, _, name = key.rpartition(".")
        mod = self.get_submodule(mod_path)
        if name in mod._parameters:
            mod._parameters[name] = Parameter(value, requires_grad=value.dtype == float32)
        else:
            mod._buffers[name] = value

    def tie_weights(self):
        out, inp = self.get_output_embeddings(), self.get_input_embeddings()
        if out is not None and inp is not None:
            out._parameters["weight"] = inp.weight

    def get_input_embeddings(self):
        return getattr(getattr(self, self.base_model_prefix, self), "embed_tokens", None)

    def get_output_embeddings(self):
        return getattr(self, "lm_head", None)

    # ------------------------------------------------------------- saving
    def save_pretrained(self, save_directory, safe_serialization=True, state_dict=None, **_):
        """config.json + model.safetensors (atomic writes); tied output
        weights are not written twice, as transformers does."""
        os.makedirs(save_directory, exist_ok=True)
        self.config.save_pretrained(save_directory)
        sd = state_dict if state_dict is not None else self.state_dict()
        if getattr(self.config, "tie_word_embeddings", False):
            for k in self._tied_weights_keys:
                sd.pop(k, None)
        serialization.save_file(dict(sd), os.path.join(save_directory, SAFE_WEIGHTS_NAME), metadata={"format": "pt"})
        gc = self.__dict__.get("_generation_config")
        if gc is not None:
            gc.save_pretrained(save_directory)

    # -------------------------------------------------------------- misc
    @property
    def dtype(self):
        for p in self.parameters():
            return p.dtype
        return float32

    @property
    def device(self):
        return "cpu"

    def num_parameters(self, only_trainable=False):
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not only_trainable)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None):
        self.gradient_checkpointing = True
        for m in self.modules():
            if hasattr(m, "gradient_checkpointing"):
                m.gradient_checkpointing = True

    def gradient_checkpointing_disable(self):
        for m in self.modules():
            if hasattr(m, "gradient_checkpointing"):
                m.gradient_checkpointing = False

    def enable_input_require_grads(self):
        """PEFT calls this before gradient checkpointing; our checkpoint
        records parameters inside the region, so nothing is needed."""


# ----------------------------------------------------------------- helpers

def padding_mask(attention_mask, total_len):
    """Additive [B, 1, 1, S] mask (0 keep, -inf pad) from a [B, S] 0/1 mask,
    or None when nothing is padded."""
    if attention_mask is None:
        return None
    m = attention_mask.numpy() if hasattr(attention_mask, "numpy") else np.asarray(attention_mask)
    if m.shape[-1] != total_len:
        raise ValueError(f"attention_mask has {m.shape[-1]} positions but the keys have {total_len}")
    if m.all():
        return None
    add = np.where(m[:, None, None, :] > 0, 0.0, -np.inf).astype(np.float32)
    return _core.from_numpy(np.ascontiguousarray(add))


def position_ids_for(attention_mask, past_len, seq_len, batch):
    """Positions of the new tokens when the caller gives none: past_len ..
    past_len+seq_len-1 for every row, as transformers' forward does (padding
    does not shift them; generate() passes mask-derived positions itself)."""
    return np.broadcast_to(np.arange(past_len, past_len + seq_len), (batch, seq_len))


def decoder_inputs(embed, input_ids, inputs_embeds, attention_mask, position_ids, past_key_values, use_cache):
    """What every decoder's forward starts with: the input embeddings, the
    cache (created when use_cache), positions [B, T] as numpy (0..T-1 after
    the cache unless given) and the additive padding mask over all keys.
    Returns (x, position_ids, past_key_values, mask)."""
    from ..models.llama import as_ids
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("pass exactly one of input_ids or inputs_embeds")
    x = embed(as_ids(input_ids)) if inputs_embeds is None else inputs_embeds
    b, t = x.shape[0], x.shape[1]
    if use_cache and past_key_values is None:
        from .cache import DynamicCache
        past_key_values = DynamicCache()
    past = past_key_values.get_seq_length() if past_key_values is not None else 0
    if position_ids is None:
        position_ids = position_ids_for(attention_mask, past, t, b)
    else:
        position_ids = position_ids.numpy() if hasattr(position_ids, "numpy") else np.asarray(position_ids)
    return x, position_ids, past_key_values, padding_mask(attention_mask, past + t)


def causal_lm_loss(hidden, weight, labels, softcap=0.0, ignore_index=-100):
    """Mean next-token cross-entropy over non-ignored labels, from the final
    hidden states (the output projection fused in: no logits tensor)."""
    b, t, c = hidden.shape
    lab = labels.numpy() if hasattr(labels, "numpy") else np.asarray(labels)
    shifted = np.full((b, t), ignore_index, dtype=np.int64)
    shifted[:, :-1] = lab[:, 1:]
    return F.linear_cross_entropy(hidden.reshape(b * t, c), weight, _core.from_numpy(shifted.reshape(-1)),
                                  ignore_index=ignore_index, softcap=softcap)

"""PreTrainedModel: loading and saving Hugging Face checkpoints
(config.json + model.safetensors or a sharded index, memory-mapped: the
weights are used where they lie in the file, no second copy)."""
import itertools
import os
import re
import warnings

from .. import _core
from .. import serialization
from ..fileio import safetensors_index_shards
from ..hub import resolve_file
from ..nn import Module, Parameter, empty_weights_enabled, init_empty_weights
from .._device import CPU
from .._tensor import bfloat16, float16, float32
from .config_checks import CONFIG_NAME, FIELD_RULES, ConfigFieldError, ModelTooLargeError, check_fields, \
    check_fits_in_memory, physical_memory
from .generation import GENERATION_CONFIG_SLOT, load_generation_config

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"

_DTYPES = {"float32": float32, "float16": float16, "bfloat16": bfloat16, "fp32": float32, "fp16": float16,
           "bf16": bfloat16}
_BYTES = {float32: 4, float16: 2, bfloat16: 2}


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
        for shard in safetensors_index_shards(index_path):  # never a file outside the model's folder
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

# Attributes every transformers config has (PretrainedConfig's own), so a
# keyword naming one sets it even when config.json does not.
_COMMON_CONFIG_ATTRIBUTES = ("output_hidden_states", "output_attentions", "return_dict", "use_cache",
                             "tie_word_embeddings", "num_labels", "id2label", "label2id", "problem_type",
                             "pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "decoder_start_token_id",
                             "is_encoder_decoder", "is_decoder", "architectures", "finetuning_task", "tokenizer_class")
_WARNED_UNUSED = set()


def _config_kwargs(cls, config, kwargs):
    """The keywords that set config attributes (as transformers': an attribute
    the config has, or a known field); the others warn once and are dropped,
    so that neither a typo nor an option peftcpp lacks passes silently (nor
    lands in a saved config.json)."""
    used, unused = {}, []
    for k, v in kwargs.items():
        if hasattr(config, k) or k in FIELD_RULES or k in _COMMON_CONFIG_ATTRIBUTES:
            used[k] = v
        else:
            unused.append(k)
    if unused:
        message = (f"{cls.__name__}.from_pretrained(): keyword argument(s) {', '.join(map(repr, unused))} not used "
                   f"(neither a {type(config).__name__} field nor a loading option peftcpp knows); ignored")
        if message not in _WARNED_UNUSED:
            _WARNED_UNUSED.add(message)
            warnings.warn(message, UserWarning, stacklevel=3)
    return used


class PreTrainedModel(Module):
    config_class = None
    base_model_prefix = "model"
    _tied_weights_keys = ["lm_head.weight"]
    # Checkpoint keys that are fine to ignore (buffers older exporters saved).
    _keys_to_ignore_on_load_unexpected = [r"rotary_emb.inv_freq", r"\.attn\.bias$", r"\.attn\.masked_bias$"]
    # The checkpoint's lists of blocks (the name before ".<index>.") and the
    # config field that counts each; compared before the model is built.
    block_lists = {"layers": "num_hidden_layers"}
    skip_checkpoint_prefixes = ()  # checkpoint tensors of parts this class does not build

    def __init__(self, config):
        super().__init__()
        if not empty_weights_enabled() and hasattr(config, "parameter_count"):
            check_fits_in_memory(config, 4)  # before the first layer allocates its float32 weights
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
        for k, v in _config_kwargs(cls, config, kwargs).items():
            try:
                check_fields({k: v})
            except ConfigFieldError as e:
                raise e.located("from_pretrained() argument") from None
            setattr(config, k, v)
        want = _as_dtype(dtype if dtype is not None else torch_dtype)
        tensors, origin = load_checkpoint(name_or_path, **hub)  # mmapped: no tensor data is read yet
        cls.check_checkpoint_blocks(config, tensors, origin)
        if hasattr(config, "parameter_count"):  # at the dtype the weights will have once loaded
            load_dtype = want or next((t.dtype for t in tensors.values() if t.dtype in _BYTES), float32)
            check_fits_in_memory(config, _BYTES[load_dtype], load_dtype.name)
        with init_empty_weights():  # no random init, no float32 copy: the file's memory is used
            model = cls(config)
        model.load_tensors(tensors, origin, want)
        model.name_or_path = os.fspath(name_or_path)
        if hasattr(model, "generate"):  # generation_config.json now, while the hub arguments are at hand
            model.generation_config = load_generation_config(name_or_path, config, **hub)
        model.eval()
        return model

    @classmethod
    def check_checkpoint_blocks(cls, config, tensors, origin):
        """The config's block counts against the checkpoint's block indices
        (names only), so that a config asking for more or fewer blocks than
        the file holds fails before any block is built."""
        for suffix, field in cls.block_lists.items():
            pattern = re.compile(rf"^((?:.*\.)?{re.escape(suffix)})\.(\d+)\.")
            groups = {}  # block list name -> {index: first tensor name}
            for name in tensors:
                m = pattern.match(name)
                if m and not name.startswith(cls.skip_checkpoint_prefixes):
                    groups.setdefault(m.group(1), {}).setdefault(int(m.group(2)), name)
            if not groups:
                continue
            prefix, seen = max(groups.items(), key=lambda kv: len(kv[1]))
            n = getattr(config, field, None)
            if not isinstance(n, int) or (len(seen) == n and max(seen) == n - 1):
                continue
            source = getattr(config, "_source", None) or CONFIG_NAME
            if max(seen) >= n:
                name = seen[max(seen)]
                raise ValueError(f"{origin[name]}: unexpected tensor '{name}': {source} has {field}={n}")
            first = min(seen)
            missing = next(i for i in itertools.count() if i not in seen)
            example = seen[first]
            name = f"{prefix}.{missing}.{example[len(prefix) + len(str(first)) + 2:]}"
            raise ValueError(f"{origin[example]}: missing tensor '{name}': {source} has {field}={n} but the "
                             f"checkpoint holds {len(seen)} of these blocks ({prefix}.{first} to {prefix}.{max(seen)})")

    def load_tensors(self, tensors, origin, dtype):
        """Puts checkpoint tensors (name → Tensor; origin: name → file) in
        place of the parameters; architectures with renamed or shared
        weights override it."""
        tied = bool(getattr(self.config, "tie_word_embeddings", False))
        self.place_tensors(tensors, origin, dtype, filled=set(self._tied_weights_keys) if tied else set())
        if tied:
            self.tie_weights()

    def place_tensors(self, tensors, origin, dtype, filled=(), skip=()):
        """Places every checkpoint tensor after checking that none is missing
        or unexpected. `filled`: own keys that tying provides (neither missing
        nor unexpected); `skip`: checkpoint keys not placed."""
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in tensors and k not in filled]
        if missing:
            where = sorted(set(origin.values()))
            raise ValueError(f"{', '.join(where)}: missing tensor(s) {', '.join(missing[:8])}"
                             f"{' ...' if len(missing) > 8 else ''} for {type(self).__name__}")
        plan = []
        for k, src in tensors.items():
            if k in skip:
                continue
            if k not in own:
                if self.ignore_unexpected_key(k) or k in filled:
                    continue
                raise ValueError(f"{origin[k]}: unexpected tensor '{k}' for {type(self).__name__} "
                                 f"(model_type {self.config.model_type})")
            self._check_tensor(k, src, own[k], origin[k])
            plan.append(k)
        self._check_conversion_memory([tensors[k] for k in plan], dtype, origin)
        for k in plan:  # every tensor checked first: nothing is converted for a file that does not fit
            src = tensors[k]
            self._place(k, src if dtype is None else src._to_raw(dtype))

    def ignore_unexpected_key(self, key):
        """A checkpoint tensor the model has no place for that is fine to drop."""
        return any(re.search(p, key) for p in self._keys_to_ignore_on_load_unexpected)

    @staticmethod
    def _check_tensor(key, src, target, origin):
        """A checkpoint tensor's shape against the config's, and that it is a float tensor."""
        if tuple(src.shape) != tuple(target.shape):
            raise ValueError(f"{origin}: tensor '{key}' has shape {tuple(src.shape)} but config.json implies "
                             f"{tuple(target.shape)}")
        if not src.dtype.is_floating_point:
            raise TypeError(f"{origin}: tensor '{key}' has dtype {src.dtype.name}; expected a float tensor")

    @staticmethod
    def _check_conversion_memory(tensors, dtype, origin):
        """Converting the mmapped weights to `dtype` allocates them: refused
        when that would exceed this machine's memory."""
        if dtype is None:
            return
        need = sum(t.numel() for t in tensors if t.dtype != dtype) * _BYTES[dtype]
        total = physical_memory()
        if total is not None and need > total:
            where = ", ".join(sorted(set(origin.values())))
            raise ModelTooLargeError(f"{where}: converting the weights to {dtype.name} takes {need / 2 ** 30:,.1f} "
                                     f"GiB, more than this machine's {total / 2 ** 30:,.1f} GiB of memory; load them "
                                     "in their own dtype (dtype='auto')")

    def _place(self, key, value):
        mod_path, _, name = key.rpartition(".")
        mod = self.get_submodule(mod_path)
        if name in dict(mod.named_parameters(recurse=False)):
            mod.register_parameter(name, Parameter(value, requires_grad=value.dtype == float32))
        else:
            mod.register_buffer(name, value)  # state_dict keys: persistent buffers only

    def tie_weights(self):
        out, inp = self.get_output_embeddings(), self.get_input_embeddings()
        if out is not None and inp is not None:
            out.register_parameter("weight", inp.weight)

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
        sd = self.weights_to_save(dict(state_dict if state_dict is not None else self.state_dict()))
        serialization.save_file(sd, os.path.join(save_directory, SAFE_WEIGHTS_NAME), metadata={"format": "pt"})
        gc = self.__dict__.get(GENERATION_CONFIG_SLOT)
        if gc is not None:
            gc.save_pretrained(save_directory)

    def weights_to_save(self, sd):
        """The state dict without the tensors the checkpoint does not repeat."""
        if getattr(self.config, "tie_word_embeddings", False):
            for k in self._tied_weights_keys:
                sd.pop(k, None)
        return sd

    # -------------------------------------------------------------- misc
    @property
    def dtype(self):
        for p in self.parameters():
            return p.dtype
        return float32

    @property
    def device(self):
        return CPU

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

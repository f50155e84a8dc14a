"""PeftModel: the wrapper get_peft_model returns (PEFT's methods and
parameter names: base_model.model.<path>), and adapter files that
Hugging Face PEFT reads and writes. Its base_model is the method's tuner
(LoraModel, ...), found by peft_type in the method registry."""
import contextlib
import os
import warnings

from .. import serialization
from ..fileio import write_json_atomic
from ..hub import resolve_file
from ..nn import Module
from .config import AdapterConfigError, PeftConfig
from .utils.constants import CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME
from .utils.other import ModulesToSaveWrapper, getattr_or_inner
from .utils.peft_types import PEFT_TYPE_TO_TUNER_MAPPING, TaskType
from .utils.save_and_load import AdapterMismatchError, get_peft_model_state_dict, set_peft_model_state_dict

_META_PREFIX = "peftcpp_base_"
_NO_MODULE = "Its modules do not match the adapter's target_modules"


def _describe_model(model):
    cfg = getattr(model, "config", None)
    name = getattr(model, "name_or_path", "") or type(model).__name__
    parts = [type(model).__name__]
    if cfg is not None:
        for label, attr in (("layers", "num_hidden_layers"), ("hidden size", "hidden_size")):
            v = getattr(cfg, attr, None)
            if v is not None:
                parts.append(f"{label} {v}")
    return f"'{name}' ({', '.join(parts)})"


def _base_meta(model):
    cfg = getattr(model, "config", None)
    meta = {}
    if cfg is not None:
        for attr in ("model_type", "num_hidden_layers", "hidden_size"):
            v = getattr(cfg, attr, None)
            if v is not None:
                meta[_META_PREFIX + attr] = str(v)
    return meta


class PeftModel(Module):
    def __init__(self, model, peft_config, adapter_name="default", **kwargs):
        super().__init__()
        self.base_model = PEFT_TYPE_TO_TUNER_MAPPING[peft_config.peft_type](model, peft_config, adapter_name)
        object.__setattr__(self, "special_peft_forward_args", {"adapter_names"})

    def __getattr__(self, name):
        return getattr_or_inner(self, name, "base_model")

    # ------------------------------------------------------------ basics
    @property
    def peft_config(self):
        return self.base_model.peft_config

    @property
    def active_adapter(self):
        return self.base_model.active_adapter

    @property
    def active_adapters(self):
        return self.base_model.active_adapters

    @property
    def peft_type(self):
        return self.peft_config[self.base_model.active_adapters[0]].peft_type

    def get_base_model(self):
        return self.base_model.model

    def forward(self, *args, **kwargs):
        return self.get_base_model()(*args, **kwargs)

    def generate(self, *args, **kwargs):
        return self.get_base_model().generate(*args, **kwargs)

    def get_nb_trainable_parameters(self):
        trainable, total = 0, 0
        for _, p in self.named_parameters():
            n = p.numel()
            total += n
            if p.requires_grad:
                trainable += n
        return trainable, total

    def print_trainable_parameters(self):
        trainable, total = self.get_nb_trainable_parameters()
        print(f"trainable params: {trainable:,d} || all params: {total:,d} || "
              f"trainable%: {100 * trainable / total:.4f}")

    # --------------------------------------------------------- adapters
    def add_adapter(self, adapter_name, peft_config, low_cpu_mem_usage=False):
        if peft_config.base_model_name_or_path is None:
            peft_config.base_model_name_or_path = getattr(self.get_base_model(), "name_or_path", None) or None
        self.base_model.inject_adapter(adapter_name, peft_config)

    def set_adapter(self, adapter_name):
        if adapter_name not in self.peft_config:
            raise ValueError(f"Adapter {adapter_name} not found.")
        self.base_model.set_adapter(adapter_name)

    def delete_adapter(self, adapter_name):
        self.base_model.delete_adapter(adapter_name)

    def merge_adapter(self, adapter_names=None, safe_merge=False):
        self.base_model.merge_adapter(adapter_names=adapter_names, safe_merge=safe_merge)

    def unmerge_adapter(self):
        self.base_model.unmerge_adapter()

    def merge_and_unload(self, progressbar=False, safe_merge=False, adapter_names=None):
        return self.base_model.merge_and_unload(progressbar, safe_merge, adapter_names)

    def unload(self):
        return self.base_model.unload()

    @contextlib.contextmanager
    def disable_adapter(self):
        self.base_model.disable_adapter_layers()
        try:
            yield
        finally:
            self.base_model.enable_adapter_layers()

    # ---------------------------------------------------------- saving
    def save_pretrained(self, save_directory, safe_serialization=True, selected_adapters=None, **kwargs):
        if os.path.isfile(save_directory):
            raise ValueError(f"Provided path ({save_directory}) should be a directory, not a file")
        names = list(self.peft_config) if selected_adapters is None else list(selected_adapters)
        for n in names:
            if n not in self.peft_config:
                raise ValueError(f"adapter {n!r} does not exist (adapters: {list(self.peft_config)})")
        base = self.get_base_model()
        sd = self.state_dict()
        for name in names:
            cfg = self.peft_config[name]
            out_dir = save_directory if name == "default" else os.path.join(save_directory, name)
            os.makedirs(out_dir, exist_ok=True)
            tensors = {k: v for k, v in get_peft_model_state_dict(self, sd, adapter_name=name).items()}
            meta = {"format": "pt"}
            meta.update(_base_meta(base))
            serialization.save_file(tensors, os.path.join(out_dir, SAFETENSORS_WEIGHTS_NAME), metadata=meta)
            d = cfg.to_dict()
            d["inference_mode"] = True
            if d.get("base_model_name_or_path") is None:
                d["base_model_name_or_path"] = getattr(base, "name_or_path", None) or None
            if d.get("task_type") is None and d.get("auto_mapping") is None:
                mt = getattr(getattr(base, "config", None), "model_type", None)
                if mt:
                    d["auto_mapping"] = {"base_model_class": type(base).__name__,
                                         "parent_library": f"transformers.models.{mt}.modeling_{mt}"}
            write_json_atomic(os.path.join(out_dir, CONFIG_NAME), d, sort_keys=True, ensure_ascii=True,
                              trailing_newline=False)

    # --------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, model, model_id, adapter_name="default", is_trainable=False, config=None, **kwargs):
        path = os.fspath(model_id)
        if config is None:
            config = PeftConfig.from_pretrained(path, **{k: kwargs[k] for k in ("token", "revision", "cache_dir",
                                                                                 "subfolder") if k in kwargs})
        config.inference_mode = not is_trainable
        target_cls = MODEL_TYPE_TO_PEFT_MODEL_MAPPING.get(config.task_type, PeftModel) if cls is PeftModel else cls
        tensors, meta, file = _load_adapter_file(path, kwargs)
        PEFT_TYPE_TO_TUNER_MAPPING[config.peft_type].check_saved_tensors(config, tensors, file)
        try:
            peft_model = target_cls(model, config, adapter_name)
        except AdapterConfigError:
            raise  # the config's own fault (a rank too large for memory), not a wrong base model
        except ValueError as e:
            raise ValueError(_wrong_base_message(path, config, meta, model, str(e), _NO_MODULE)) from None
        peft_model.load_adapter_tensors(path, config, tensors, meta, adapter_name)
        if not is_trainable:
            peft_model.eval()
        return peft_model

    def load_adapter(self, model_id, adapter_name, is_trainable=False, **kwargs):
        path = os.fspath(model_id)
        config = PeftConfig.from_pretrained(path, **{k: kwargs[k] for k in ("subfolder",) if k in kwargs})
        config.inference_mode = not is_trainable
        tensors, meta, file = _load_adapter_file(path, kwargs)
        PEFT_TYPE_TO_TUNER_MAPPING[config.peft_type].check_saved_tensors(config, tensors, file)
        try:
            self.add_adapter(adapter_name, config)
        except AdapterConfigError:
            raise
        except ValueError as e:
            raise ValueError(_wrong_base_message(path, config, meta, self.get_base_model(), str(e),
                                                 _NO_MODULE)) from None
        self.load_adapter_tensors(path, config, tensors, meta, adapter_name)
        if not is_trainable:
            self.eval()

    def load_adapter_tensors(self, path, config, tensors, meta, adapter_name):
        """Puts adapter_name's tensors read from `path` in place; a tensor that
        does not fit names the base model the adapter was trained on."""
        try:
            missing = set_peft_model_state_dict(self, tensors, adapter_name=adapter_name)
        except AdapterMismatchError as e:
            raise ValueError(_wrong_base_message(path, config, meta, self.get_base_model(), str(e))) from None
        if missing:
            warnings.warn(f"Found missing adapter keys while loading the checkpoint: {missing[:8]}"
                          f"{' ...' if len(missing) > 8 else ''}")


def _load_adapter_file(path, kwargs):
    """(tensors mmapped from the adapter's weights file, its metadata, its path)."""
    file = os.path.join(path, kwargs.get("subfolder", "") or "", SAFETENSORS_WEIGHTS_NAME)
    if not os.path.isfile(file):
        if os.path.isfile(os.path.join(path, "adapter_model.bin")):
            raise ValueError(f"{path}: adapter_model.bin (pickle) is not supported; save the adapter with "
                             "safe_serialization=True (adapter_model.safetensors)")
        file = resolve_file(path, SAFETENSORS_WEIGHTS_NAME,
                            **{k: kwargs[k] for k in ("token", "revision", "cache_dir") if k in kwargs})
    return (*serialization.load_file_with_metadata(file), file)


def _wrong_base_message(path, config, meta, model, detail, what="First tensor that does not fit"):
    trained = config.base_model_name_or_path or "an unrecorded base model"
    info = []
    if meta.get(_META_PREFIX + "model_type"):
        info.append(meta[_META_PREFIX + "model_type"])
    if meta.get(_META_PREFIX + "num_hidden_layers"):
        info.append(f"layers {meta[_META_PREFIX + 'num_hidden_layers']}")
    if meta.get(_META_PREFIX + "hidden_size"):
        info.append(f"hidden size {meta[_META_PREFIX + 'hidden_size']}")
    trained_desc = f"'{trained}'" + (f" ({', '.join(info)})" if info else "")
    return (f"The adapter in '{path}' does not fit this model: it was trained on {trained_desc}, but the model "
            f"given is {_describe_model(model)}. {what}: {detail}")


class PeftModelForCausalLM(PeftModel):
    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None, **kwargs):
        kwargs.pop("adapter_names", None)
        return self.get_base_model()(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                                     labels=labels, **kwargs)


class PeftModelForSeq2SeqLM(PeftModel):
    """PEFT's forward for encoder-decoders: the encoder and decoder inputs
    go to the base model by name (extra batch keys pass through)."""

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, decoder_input_ids=None,
                decoder_attention_mask=None, decoder_inputs_embeds=None, labels=None, **kwargs):
        kwargs.pop("adapter_names", None)
        kwargs.pop("task_ids", None)
        for k in ("output_attentions", "output_hidden_states", "return_dict"):
            if kwargs.get(k) is None:
                kwargs.pop(k, None)
        return self.get_base_model()(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                                     decoder_input_ids=decoder_input_ids,
                                     decoder_attention_mask=decoder_attention_mask,
                                     decoder_inputs_embeds=decoder_inputs_embeds, labels=labels, **kwargs)

    def generate(self, *args, **kwargs):
        kwargs.pop("adapter_names", None)
        return self.get_base_model().generate(*args, **kwargs)


CLASSIFIER_MODULE_NAMES = ["classifier", "score"]


def _with_classifier(peft_config):
    """PEFT's rule for SEQ_CLS: the classification head (`classifier` or
    `score`) is trained and saved whole (modules_to_save); names already
    listed are not repeated."""
    if hasattr(peft_config, "modules_to_save"):
        names = list(peft_config.modules_to_save or [])
        peft_config.modules_to_save = names + [n for n in CLASSIFIER_MODULE_NAMES if n not in names]
    return peft_config


class PeftModelForSequenceClassification(PeftModel):
    """PEFT's SEQ_CLS wrapper: the adapter trains and saves the head too
    (saved as base_model.model.score.weight). A model without a
    classification head is refused (PEFT would return its LM logits)."""

    def __init__(self, model, peft_config, adapter_name="default", **kwargs):
        super().__init__(model, _with_classifier(peft_config), adapter_name, **kwargs)
        heads = [n for n, m in self.base_model.model.named_modules() if isinstance(m, ModulesToSaveWrapper)]
        if not heads:
            raise ValueError(
                f"task_type=SEQ_CLS needs a model with a classification head named one of "
                f"{', '.join(peft_config.modules_to_save)}; {type(model).__name__} has none (load it with "
                "AutoModelForSequenceClassification.from_pretrained(..., num_labels=N), or name your head in "
                "modules_to_save)")

    def add_adapter(self, adapter_name, peft_config, low_cpu_mem_usage=False):
        super().add_adapter(adapter_name, _with_classifier(peft_config), low_cpu_mem_usage)

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, task_ids=None, **kwargs):
        kwargs.pop("adapter_names", None)
        return self.get_base_model()(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                                     labels=labels, **kwargs)


class PeftModelForTokenClassification(PeftModel):
    pass


class PeftModelForQuestionAnswering(PeftModel):
    pass


class PeftModelForFeatureExtraction(PeftModel):
    pass


MODEL_TYPE_TO_PEFT_MODEL_MAPPING = {
    TaskType.CAUSAL_LM: PeftModelForCausalLM,
    TaskType.SEQ_2_SEQ_LM: PeftModelForSeq2SeqLM,
    TaskType.SEQ_CLS: PeftModelForSequenceClassification,
    TaskType.TOKEN_CLS: PeftModelForTokenClassification,
    TaskType.QUESTION_ANS: PeftModelForQuestionAnswering,
    TaskType.FEATURE_EXTRACTION: PeftModelForFeatureExtraction,
}

"""PeftType, TaskType and the method registry (Hugging Face PEFT's names).

A fine-tuning method is plugged in by one call in its tuner package:

    register_peft_method(name="lora", config_cls=LoraConfig, model_cls=LoraModel)

after which PeftConfig.from_pretrained, get_peft_model, PeftModel and the
adapter state-dict helpers find its config class, tuner class and parameter
prefix here. The tables live in this module (PEFT keeps them in
peft/mapping.py, which re-exports them here) so that nothing above it needs
to import a tuner."""
import enum


class _StrEnum(str, enum.Enum):
    def __str__(self):
        return self.value


class PeftType(_StrEnum):
    """PEFT's method names; a method is usable once it is registered."""
    PROMPT_TUNING = "PROMPT_TUNING"
    MULTITASK_PROMPT_TUNING = "MULTITASK_PROMPT_TUNING"
    P_TUNING = "P_TUNING"
    PREFIX_TUNING = "PREFIX_TUNING"
    LORA = "LORA"
    ADALORA = "ADALORA"
    BOFT = "BOFT"
    ADAPTION_PROMPT = "ADAPTION_PROMPT"
    IA3 = "IA3"
    LOHA = "LOHA"
    LOKR = "LOKR"
    OFT = "OFT"
    POLY = "POLY"
    LN_TUNING = "LN_TUNING"
    VERA = "VERA"
    FOURIERFT = "FOURIERFT"
    XLORA = "XLORA"
    HRA = "HRA"
    VBLORA = "VBLORA"
    CPT = "CPT"
    BONE = "BONE"
    RANDLORA = "RANDLORA"
    TRAINABLE_TOKENS = "TRAINABLE_TOKENS"


class TaskType(_StrEnum):
    SEQ_CLS = "SEQ_CLS"
    SEQ_2_SEQ_LM = "SEQ_2_SEQ_LM"
    CAUSAL_LM = "CAUSAL_LM"
    TOKEN_CLS = "TOKEN_CLS"
    QUESTION_ANS = "QUESTION_ANS"
    FEATURE_EXTRACTION = "FEATURE_EXTRACTION"


# filled by register_peft_method; keyed by PeftType (a str enum, so "LORA" finds it too)
PEFT_TYPE_TO_CONFIG_MAPPING = {}
PEFT_TYPE_TO_TUNER_MAPPING = {}
PEFT_TYPE_TO_PREFIX_MAPPING = {}


def register_peft_method(*, name, config_cls, model_cls, prefix=None):
    """Makes a method available: `name` is PeftType's member in lower case
    ("lora"); `prefix` (default name + "_") starts the names of the method's
    adapter parameters and must equal model_cls.prefix."""
    if name.endswith("_"):
        raise ValueError(f"Please pass the name of the PEFT method without '_' suffix, got {name}.")
    if not name.islower():
        raise ValueError(f"The name of the PEFT method should be in lower case letters, got {name}.")
    if name.upper() not in PeftType.__members__:
        raise ValueError(f"Unknown PEFT type {name.upper()}, please add an entry to PeftType.")
    peft_type = PeftType[name.upper()]
    if prefix is None:
        prefix = name + "_"
    if peft_type in PEFT_TYPE_TO_CONFIG_MAPPING or peft_type in PEFT_TYPE_TO_TUNER_MAPPING:
        raise KeyError(f"There is already PEFT method called '{name}', please choose a unique name.")
    if prefix in PEFT_TYPE_TO_PREFIX_MAPPING.values():
        raise KeyError(f"There is already a prefix called '{prefix}', please choose a unique prefix.")
    model_prefix = getattr(model_cls, "prefix", None)
    if model_prefix is not None and model_prefix != prefix:
        raise ValueError(f"Inconsistent prefixes found: '{prefix}' and '{model_prefix}' (they should be the same).")
    PEFT_TYPE_TO_PREFIX_MAPPING[peft_type] = prefix
    PEFT_TYPE_TO_CONFIG_MAPPING[peft_type] = config_cls
    PEFT_TYPE_TO_TUNER_MAPPING[peft_type] = model_cls

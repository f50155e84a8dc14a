"""Checks of config.json values before anything is built from them: every
known field's type and range (one table, by transformers' field names),
the RoPE parameters, and whether the parameters the config describes fit
in this machine's memory. A config.json is data from anywhere: a size of
"64", -5 or 10**7 must stop here with the file and the field, not deep in
the engine (or after minutes of building layers)."""
import json
import math
import os

CONFIG_NAME = "config.json"

# Every size is an int64 dimension in the engine; no real model comes near.
MAX_SIZE = 2 ** 31 - 1
# Per-layer lists and modules are built from a layer count; real models have
# at most a few hundred layers.
MAX_LAYERS = 2 ** 20


class ConfigFieldError(ValueError):
    """A config field with a wrong value: "<file>: <field> <what is wrong>".
    Raised with the generic name config.json; the loaders, which know the
    path, re-raise it `located` there."""

    def __init__(self, field, detail, source=None):
        self.field, self.detail, self.source = field, detail, source
        super().__init__(f"{source or CONFIG_NAME}: {field} {detail}")

    def located(self, source):
        return type(self)(self.field, self.detail, source)

    def nested(self, parent):
        """The same error for a field inside `parent` (gemma3's text_config)."""
        return type(self)(f"{parent}.{self.field}", self.detail, self.source)


class ConfigFieldTypeError(ConfigFieldError, TypeError):
    """A config field of the wrong JSON type ("64" for a size)."""


class ModelTooLargeError(ValueError):
    """The parameters a config describes would not fit in memory."""


def show(value):
    """A value as the JSON the user wrote, with its type, short."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    kinds = {str: "a string", bool: "a boolean", list: "a list", dict: "an object", type(None): "null"}
    kind = next((k for t, k in kinds.items() if type(value) is t), None)
    return text if kind is None or kind == "null" else f"{text} ({kind})"


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)  # JSON true is not a size


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class Rule:
    """One field's allowed values. `optional`: null (None) is allowed;
    `null_is_default`: null stands for the architecture's default value."""
    optional = False
    null_is_default = False

    def check(self, name, value):
        if value is None:
            if not self.optional:
                raise ConfigFieldTypeError(name, f"must be {self.expected()}, got null")
            return
        self.check_value(name, value)

    def fail(self, name, value, type_error=False):
        cls = ConfigFieldTypeError if type_error else ConfigFieldError
        raise cls(name, f"must be {self.expected()}{' or null' if self.optional else ''}, got {show(value)}")


class Int(Rule):
    def __init__(self, minimum=1, optional=False, maximum=MAX_SIZE):
        self.minimum, self.maximum, self.optional = minimum, maximum, optional

    def expected(self):
        return f"an integer from {self.minimum} to {self.maximum}"

    def check_value(self, name, value):
        if not is_int(value):
            self.fail(name, value, type_error=True)
        if not self.minimum <= value <= self.maximum:
            self.fail(name, value)


class Number(Rule):
    """A finite number in (low, high], [low, high) ... as the flags say."""

    def __init__(self, low=None, high=None, low_open=True, high_open=False, optional=False):
        self.low, self.high, self.low_open, self.high_open, self.optional = low, high, low_open, high_open, optional

    def expected(self):
        if self.low is not None and self.high is not None:
            return (f"a number in {'(' if self.low_open else '['}{self.low}, {self.high}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"a finite number {'>' if self.low_open else '>='} {self.low}"
        return "a finite number"

    def check_value(self, name, value):
        if not is_number(value):
            self.fail(name, value, type_error=True)
        ok = math.isfinite(value)
        if ok and self.low is not None:
            ok = value > self.low if self.low_open else value >= self.low
        if ok and self.high is not None:
            ok = value < self.high if self.high_open else value <= self.high
        if not ok:
            self.fail(name, value)


class Bool(Rule):
    optional = null_is_default = True

    def expected(self):
        return "true or false"

    def check_value(self, name, value):
        if not isinstance(value, bool):
            self.fail(name, value, type_error=True)


class Str(Rule):
    def __init__(self, optional=False):
        self.optional = optional

    def expected(self):
        return "a string"

    def check_value(self, name, value):
        if not isinstance(value, str):
            self.fail(name, value, type_error=True)


class TokenIds(Rule):
    """bos/eos/pad ids: an integer (negative: none, as some files write), a
    list of integers, or null."""
    optional = True

    def expected(self):
        return "an integer or a list of integers"

    def check_value(self, name, value):
        items = value if isinstance(value, list) else [value]
        if not all(is_int(v) and abs(v) <= MAX_SIZE for v in items):
            self.fail(name, value, type_error=not all(is_int(v) for v in items))


class Mapping(Rule):
    optional = True

    def expected(self):
        return "an object"

    def check_value(self, name, value):
        if not isinstance(value, dict):
            self.fail(name, value, type_error=True)


class ListOf(Rule):
    def __init__(self, item, what, optional=True):
        self.item, self.what, self.optional = item, what, optional

    def expected(self):
        return f"a list of {self.what}"

    def check_value(self, name, value):
        if not isinstance(value, list):
            self.fail(name, value, type_error=True)
        for i, v in enumerate(value):
            self.item.check(f"{name}[{i}]", v)


SIZE = Int(1)
OPTIONAL_SIZE = Int(1, optional=True)
EPS = Number(0)
DROPOUT = Number(0, 1, low_open=False, high_open=True, optional=True)
DROPOUT.null_is_default = True

# Known fields of the supported architectures, by the names config.json uses.
FIELD_RULES = {
    **{k: SIZE for k in (
        "vocab_size", "hidden_size", "intermediate_size", "num_attention_heads", "max_position_embeddings",
        "n_embd", "n_head", "n_positions", "d_model", "d_kv", "d_ff", "num_heads", "relative_attention_num_buckets",
        "relative_attention_max_distance", "no_rope_layer_interval")},
    **{k: Int(1, maximum=MAX_LAYERS) for k in ("num_hidden_layers", "n_layer", "num_layers")},
    "num_decoder_layers": Int(1, maximum=MAX_LAYERS, optional=True),
    **{k: OPTIONAL_SIZE for k in (
        "num_key_value_heads", "head_dim", "n_inner", "original_max_position_embeddings", "sliding_window",
        "sliding_window_pattern")},
    "max_window_layers": Int(0),
    "num_labels": Int(1, optional=True),
    "problem_type": Str(optional=True),
    **{k: Mapping() for k in ("id2label", "label2id")},
    **{k: EPS for k in ("rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon")},
    **{k: Number(0, optional=True) for k in (
        "rope_theta", "rope_local_base_freq", "final_logit_softcapping", "attn_logit_softcapping")},
    "query_pre_attn_scalar": Number(0),
    "partial_rotary_factor": Number(0, 1, optional=True),
    **{k: DROPOUT for k in ("attention_dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop", "dropout_rate",
                            "summary_first_dropout")},
    **{k: Bool() for k in (
        "tie_word_embeddings", "attention_bias", "mlp_bias", "use_sliding_window", "scale_attn_weights",
        "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "add_cross_attention", "is_encoder_decoder",
        "use_cache", "use_bidirectional_attention", "scale_decoder_outputs")},
    **{k: TokenIds() for k in ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")},
    **{k: Str() for k in ("hidden_act", "activation_function", "feed_forward_proj")},
    "hidden_activation": Str(optional=True),
    "model_type": Str(optional=True),
    "rope_scaling": Mapping(),
    "rope_parameters": Mapping(),
    "text_config": Mapping(),
    "layer_types": ListOf(Str(), "strings"),
    "no_rope_layers": ListOf(Int(0, maximum=1), "0s and 1s"),
}


def check_fields(values, rules=FIELD_RULES):
    """Raises ConfigFieldError for the first known field whose value is wrong."""
    for name, value in values.items():
        rule = rules.get(name)
        if rule is not None:
            rule.check(name, value)


def check_heads(values, explicit_head_dim):
    """Attention head counts: key/value heads divide the query heads (grouped
    attention), and the heads divide hidden_size when head_dim is derived."""
    heads, kv = values.get("num_attention_heads"), values.get("num_key_value_heads")
    hidden = values.get("hidden_size")
    if heads and kv and heads % kv:
        raise ConfigFieldError("num_key_value_heads", f"({kv}) must divide num_attention_heads ({heads})")
    if heads and hidden and not explicit_head_dim and hidden % heads:
        raise ConfigFieldError("num_attention_heads", f"({heads}) must divide hidden_size ({hidden}) when head_dim "
                               "is not set")


# Keys each RoPE type needs (transformers' names), beyond rope_type and rope_theta.
_ROPE_NEEDS = {"linear": ("factor",), "llama3": ("factor", "low_freq_factor", "high_freq_factor",
                                                 "original_max_position_embeddings"),
               "yarn": ("factor",), "longrope": ("short_factor", "long_factor")}
_ROPE_RULES = {
    "rope_type": Str(), "rope_theta": Number(0), "factor": Number(0), "low_freq_factor": Number(0),
    "high_freq_factor": Number(0), "original_max_position_embeddings": OPTIONAL_SIZE,
    "partial_rotary_factor": Number(0, 1), "attention_factor": Number(0, optional=True),
    "beta_fast": Number(0, optional=True), "beta_slow": Number(0, optional=True),
    "mscale": Number(0, optional=True), "mscale_all_dim": Number(0, optional=True), "truncate": Bool(),
    "short_factor": ListOf(Number(0), "positive numbers", optional=False),
    "long_factor": ListOf(Number(0), "positive numbers", optional=False),
}


def check_rope(rp, field, supported, rotary_dim=None):
    """One set of RoPE parameters (a dict after standardisation)."""
    if not isinstance(rp, dict):
        raise ConfigFieldTypeError(field, f"must be an object, got {show(rp)}")
    check_fields({f"{field}.{k}": v for k, v in rp.items()},
                 {f"{field}.{k}": r for k, r in _ROPE_RULES.items()})
    rope_type = rp.get("rope_type", "default")
    if rope_type not in supported:
        raise ConfigFieldError(f"{field}.rope_type", f"{rope_type!r} is not supported (supported: "
                               f"{', '.join(supported)})")
    for key in _ROPE_NEEDS.get(rope_type, ()):
        if rp.get(key) is None:
            raise ConfigFieldError(field, f"has rope_type {rope_type!r}, which needs '{key}'")
    if rope_type == "llama3" and rp["low_freq_factor"] == rp["high_freq_factor"]:
        raise ConfigFieldError(f"{field}.high_freq_factor", "must differ from low_freq_factor")
    if rope_type == "yarn" and rp.get("rope_theta") is not None and rp["rope_theta"] <= 1:
        raise ConfigFieldError(f"{field}.rope_theta", f"must be > 1 for yarn scaling (it divides by its log), got "
                               f"{show(rp['rope_theta'])}")
    if rope_type == "longrope" and rotary_dim is not None:
        for key in ("short_factor", "long_factor"):
            if len(rp[key]) != rotary_dim // 2:
                raise ConfigFieldError(f"{field}.{key}", f"must have {rotary_dim // 2} entries (rotary dim "
                                       f"{rotary_dim} / 2), got {len(rp[key])}")


def check_layer_list(name, values, num_layers):
    if values is not None and len(values) < num_layers:
        raise ConfigFieldError(name, f"has {len(values)} entries but num_hidden_layers is {num_layers}")


# ------------------------------------------------------------ memory

def physical_memory():
    """Bytes of RAM of this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


# Python objects of one decoder layer's modules (measured: 10**5 layers took 2.4 GB with no weights).
LAYER_OVERHEAD_BYTES = 24 * 1024


def check_fits_in_memory(config, bytes_per_parameter, what="float32"):
    """Refuses, before anything is allocated, a model whose parameters (as
    the config's sizes multiply out, in Python ints) and layer objects would
    not fit in this machine's memory."""
    count = config.parameter_count()
    total = physical_memory()
    if count is None or total is None:
        return
    layers = sum(n for n in (getattr(config, "num_hidden_layers", 0), getattr(config, "num_decoder_layers", 0))
                 if is_int(n))
    need = count * bytes_per_parameter + layers * LAYER_OVERHEAD_BYTES
    if need > total:
        sizes = ", ".join(f"{k}={getattr(config, k)}" for k in ("num_hidden_layers", "hidden_size",
                                                                "intermediate_size", "vocab_size")
                          if is_int(getattr(config, k, None)))
        raise ModelTooLargeError(
            f"{getattr(config, '_source', None) or CONFIG_NAME}: the model it describes has {count:,} parameters "
            f"({sizes}): {need / 2 ** 30:,.1f} GiB as {what}, more than this machine's {total / 2 ** 30:,.1f} GiB "
            "of memory")

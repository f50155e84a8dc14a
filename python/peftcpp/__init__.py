"""peftcpp: parameter-efficient fine-tuning of small language models on CPUs.

The engine is C++ (``peftcpp._core``); this package is its torch-like face.
"""
import os as _os

# Developers point PEFTCPP_CORE_DIR at a CMake build folder to use a freshly
# built _core without reinstalling the package.
if _os.environ.get("PEFTCPP_CORE_DIR"):
    __path__.insert(0, _os.path.abspath(_os.environ["PEFTCPP_CORE_DIR"]))

from . import _core  # noqa: E402
from ._arguments import install as _install_one_line_errors  # noqa: E402

_install_one_line_errors(_core)  # before anything binds a _core function

from ._device import backends, cuda, device  # noqa: E402
from ._tensor import (  # noqa: E402
    Tensor,
    DType,
    float32,
    float16,
    bfloat16,
    int32,
    int64,
    tensor,
    as_tensor,
    from_numpy,
    zeros,
    ones,
    empty,
    full,
    zeros_like,
    ones_like,
    full_like,
    empty_like,
    rand,
    randn,
    rand_like,
    randn_like,
    randint,
    arange,
    cat,
    stack,
    matmul,
    gather,
    empty_cache,
    no_grad,
    enable_grad,
    set_grad_enabled,
    is_grad_enabled,
    manual_seed,
    set_num_threads,
    get_num_threads,
    memory_stats,
    reset_peak_memory,
)
from . import _indexing  # noqa: E402,F401  (t[...] and t[...] = v)
from ._functions import (  # noqa: E402  (torch's names: max, min, any, all, pow ... shadow builtins here only)
    inf, nan, pi, e,
    where, masked_fill, clamp, maximum, minimum, pow, square, triu, tril, isnan, isinf, isfinite,
    logical_not, logical_and, logical_or, argmax, argmin, max, min, sort, argsort, topk, var, std, any, all,
    softmax, log_softmax, exp, log, sqrt, rsqrt, tanh, sigmoid, relu, abs, neg, sin, cos, sum, mean, reshape,
    transpose, permute, flatten, squeeze, unsqueeze, narrow, split, chunk, index_select, clone, t, numel, amax,
    eq, ne, lt, le, gt, ge, add, sub, mul, div,
)
from . import fileio, nn, optim, serialization, utils  # noqa: E402
from .models import (  # noqa: E402
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    T5ForConditionalGeneration,
)
from .tokenization import AutoTokenizer, PreTrainedTokenizer  # noqa: E402
from .data import load_dataset, merge_datasets  # noqa: E402
from .trainer import (  # noqa: E402
    DataCollatorForCausalLM,
    DataCollatorForLanguageModeling,
    DataCollatorForSeq2Seq,
    DataCollatorWithPadding,
    EvalPrediction,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
    TrainingDivergedError,
    get_last_checkpoint,
)
from .peft import (  # noqa: E402
    LoraConfig,
    PeftConfig,
    PeftModel,
    PeftModelForCausalLM,
    PeftType,
    TaskType,
    get_peft_model,
    get_peft_model_state_dict,
    set_peft_model_state_dict,
)

# torch's dtype aliases (after every import above: these names shadow builtins in this module)
bool = DType.bool  # noqa: A001
long = int64
int = int32  # noqa: A001
float = float32  # noqa: A001
half = float16

__version__ = "0.1.0"

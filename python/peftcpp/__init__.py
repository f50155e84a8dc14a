"""peftcpp: parameter-efficient fine-tuning of small language models on CPUs.

The engine is C++ (``peftcpp._core``); this package is its torch-like face.
"""
import os as _os

# Developers point PEFTCPP_CORE_DIR at a CMake build folder to use a freshly
# built _core without reinstalling the package.
if _os.environ.get("PEFTCPP_CORE_DIR"):
    __path__.insert(0, _os.path.abspath(_os.environ["PEFTCPP_CORE_DIR"]))

from . import _core  # noqa: E402
from ._tensor import (  # noqa: E402
    Tensor,
    DType,
    float32,
    float16,
    bfloat16,
    int32,
    int64,
    tensor,
    from_numpy,
    zeros,
    ones,
    empty,
    full,
    zeros_like,
    ones_like,
    rand,
    randn,
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

__version__ = "0.1.0"

"""TrainingArguments with Hugging Face's names, defaults and meanings (the
subset peftcpp's Trainer uses; a few more are accepted and ignored so that
scripts written for transformers run unchanged). An unknown keyword raises
TypeError, as the transformers dataclass does."""
import math
import sys
from dataclasses import asdict, dataclass
from typing import Any, Optional, Union

__all__ = ["TrainingArguments"]

_STRATEGIES = ("no", "steps", "epoch")
_IGNORED_NOTE_SHOWN = set()


@dataclass
class TrainingArguments:
    output_dir: Optional[str] = "trainer_output"
    overwrite_output_dir: bool = False
    do_train: bool = False
    do_eval: bool = False
    num_train_epochs: float = 3.0
    max_steps: int = -1
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-5
    lr_scheduler_type: str = "linear"
    lr_scheduler_kwargs: Optional[dict] = None
    warmup_steps: float = 0
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    optim: str = "adamw_torch"
    logging_dir: Optional[str] = None
    logging_strategy: str = "steps"
    logging_first_step: bool = False
    logging_steps: float = 500
    eval_strategy: Optional[str] = None
    evaluation_strategy: Optional[str] = None
    eval_steps: Optional[float] = None
    save_strategy: str = "steps"
    save_steps: float = 500
    save_total_limit: Optional[int] = None
    save_only_model: bool = False
    seed: int = 42
    data_seed: Optional[int] = None
    gradient_checkpointing: bool = False
    gradient_checkpointing_kwargs: Optional[dict] = None
    resume_from_checkpoint: Optional[str] = None
    report_to: Union[None, str, list] = "none"
    run_name: Optional[str] = None
    disable_tqdm: Optional[bool] = None
    # accepted for compatibility, ignored (no effect on a CPU engine)
    dataloader_num_workers: int = 0
    dataloader_pin_memory: bool = True
    dataloader_drop_last: bool = False
    dataloader_persistent_workers: bool = False
    dataloader_prefetch_factor: Optional[int] = None
    remove_unused_columns: bool = True
    label_names: Optional[list] = None
    load_best_model_at_end: bool = False
    metric_for_best_model: Optional[str] = None
    greater_is_better: Optional[bool] = None
    fp16: bool = False
    bf16: bool = False
    tf32: Optional[bool] = None
    use_cpu: bool = False
    no_cuda: bool = False
    group_by_length: bool = False
    eval_accumulation_steps: Optional[int] = None
    push_to_hub: bool = False
    torch_compile: bool = False
    ddp_find_unused_parameters: Optional[bool] = None
    log_level: str = "passive"
    include_num_input_tokens_seen: Any = False
    average_tokens_across_devices: bool = True

    def __post_init__(self):
        if self.evaluation_strategy is not None and self.eval_strategy is None:
            self.eval_strategy = self.evaluation_strategy
        if self.eval_strategy is None:
            self.eval_strategy = "no"
        self.eval_strategy = getattr(self.eval_strategy, "value", self.eval_strategy)
        self.evaluation_strategy = self.eval_strategy
        self.save_strategy = getattr(self.save_strategy, "value", self.save_strategy)
        for name in ("eval_strategy", "save_strategy", "logging_strategy"):
            v = getattr(self, name)
            if name == "save_strategy" and v == "best":
                raise ValueError("save_strategy='best' is not supported by peftcpp; use 'steps' or 'epoch'")
            if v not in _STRATEGIES:
                raise ValueError(f"{name} must be one of {list(_STRATEGIES)}, got {v!r}")
        if self.eval_strategy == "steps" and not self.eval_steps:
            self.eval_steps = self.logging_steps
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_grad_norm is None:
            self.max_grad_norm = 0.0
        if self.warmup_ratio < 0 or self.warmup_ratio > 1:
            raise ValueError("warmup_ratio must lie in range [0,1]")
        if self.warmup_steps < 0:
            raise ValueError("warmup_steps must be >= 0")
        if self.save_total_limit is not None and self.save_total_limit < 1:
            raise ValueError(f"save_total_limit must be >= 1 or None, got {self.save_total_limit}")
        if self.optim not in ("adamw_torch", "adamw_torch_fused", "adamw_hf", "adamw"):
            raise ValueError(f"optim={self.optim!r} is not supported by peftcpp; only AdamW ('adamw_torch')")
        rt = self.report_to
        rt = [] if rt in (None, "none", "None") else ([rt] if isinstance(rt, str) else list(rt))
        rt = [r for r in rt if r != "none"]
        if rt:
            key = tuple(rt)
            if key not in _IGNORED_NOTE_SHOWN:
                _IGNORED_NOTE_SHOWN.add(key)
                print(f"peftcpp: report_to={rt} is ignored; the history goes to trainer_state.json",
                      file=sys.stderr)
        self.report_to = rt

    def interval_steps(self, value, num_training_steps):
        """logging/eval/save steps: a float < 1 is a ratio of the total steps."""
        if value is None:
            return None
        if 0 < value < 1:
            return max(1, math.ceil(num_training_steps * value))
        return int(value)

    def get_warmup_steps(self, num_training_steps):
        if self.warmup_steps >= 1:
            return int(self.warmup_steps)
        if self.warmup_steps > 0:
            return math.ceil(num_training_steps * self.warmup_steps)
        return math.ceil(num_training_steps * self.warmup_ratio)

    @property
    def train_batch_size(self):
        return self.per_device_train_batch_size

    @property
    def eval_batch_size(self):
        return self.per_device_eval_batch_size

    def to_dict(self):
        d = asdict(self)
        return d

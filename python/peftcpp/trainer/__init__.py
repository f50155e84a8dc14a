"""Hugging Face-style training: TrainingArguments, Trainer, its callbacks,
data collators, atomic checkpoints with exact resume."""
from .callbacks import (CallbackHandler, DefaultFlowCallback, LossPlotCallback, PrinterCallback, ProgressCallback,
                        TrainerCallback)
from .checkpoint import get_last_checkpoint
from .collators import (DataCollatorForCausalLM, DataCollatorForLanguageModeling, DataCollatorForSeq2Seq,
                        DataCollatorWithPadding, default_data_collator)
from .evaluation import EvalLoopOutput, EvalPrediction, PredictionOutput
from .trainer import Trainer, TrainingDivergedError, TrainOutput
from .trainer_state import TrainerControl, TrainerState
from .training_args import TrainingArguments

__all__ = ["Trainer", "TrainingArguments", "TrainerState", "TrainerControl", "TrainOutput", "TrainingDivergedError",
           "TrainerCallback", "CallbackHandler", "DefaultFlowCallback", "PrinterCallback", "ProgressCallback",
           "LossPlotCallback",
           "DataCollatorForCausalLM", "DataCollatorForLanguageModeling", "DataCollatorForSeq2Seq",
           "DataCollatorWithPadding", "default_data_collator", "EvalPrediction", "EvalLoopOutput", "PredictionOutput",
           "get_last_checkpoint"]

"""Hugging Face-style training: TrainingArguments, Trainer, data collators,
atomic checkpoints with exact resume."""
from .checkpoint import get_last_checkpoint
from .collators import (DataCollatorForCausalLM, DataCollatorForLanguageModeling, DataCollatorForSeq2Seq,
                        default_data_collator)
from .trainer import Trainer, TrainerState, TrainingDivergedError, TrainOutput
from .training_args import TrainingArguments

__all__ = ["Trainer", "TrainingArguments", "TrainerState", "TrainOutput", "TrainingDivergedError",
           "DataCollatorForCausalLM", "DataCollatorForLanguageModeling", "DataCollatorForSeq2Seq",
           "default_data_collator",
           "get_last_checkpoint"]

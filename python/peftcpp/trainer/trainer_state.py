"""TrainerState (what a run has done so far; saved as trainer_state.json),
TrainerControl (the flags callbacks set to make the loop log, evaluate, save
or stop), with transformers' names, and the StepWindow the train log lines
measure."""
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

from . import checkpoint

__all__ = ["TrainerState", "TrainerControl", "StepWindow", "peak_rss_gb"]


@dataclass
class TrainerState:
    """The fields are exactly those trainer_state.json has held so far; a
    loaded file's unknown keys are kept as attributes."""
    global_step: int = 0
    epoch: float = 0.0
    max_steps: int = 0
    num_train_epochs: int = 0
    log_history: list = field(default_factory=list)
    train_batch_size: Optional[int] = None
    total_flos: int = 0
    trained_tokens: int = 0
    padding_fraction: Optional[float] = None
    best_model_checkpoint: Optional[str] = None

    def to_dict(self):
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d):
        s = cls()
        for k, v in d.items():
            setattr(s, k, v)
        return s

    def save_to_json(self, json_path):
        # through the module so that tests can stand in for the writer
        checkpoint.atomic_write_json(json_path, self.to_dict())

    @classmethod
    def load_from_json(cls, json_path):
        with open(json_path) as f:
            return cls.from_dict(json.load(f))


@dataclass
class TrainerControl:
    """Set by callbacks, acted on by the loop; each flag resets once acted on."""
    # end the run after this step, or only this epoch
    should_training_stop: bool = False
    should_epoch_stop: bool = False
    # after this step: save a checkpoint, evaluate, write a train log line
    should_save: bool = False
    should_evaluate: bool = False
    should_log: bool = False


def peak_rss_gb():
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb * (1 if sys.platform == "darwin" else 1024) / 1e9


class StepWindow:
    """The optimizer steps since the last train log line (and the run's
    total). Its clock stops for evaluation and checkpoints, so It/sec and
    Tokens/sec measure training alone."""

    def __init__(self):
        self.total_loss, self.total_steps = 0.0, 0
        self.reset()
        self.since = time.perf_counter()

    def reset(self):
        self.loss, self.steps, self.tokens, self.time = 0.0, 0, 0, 0.0

    def add(self, loss, tokens):
        self.loss += loss
        self.steps += 1
        self.tokens += tokens
        self.total_loss += loss
        self.total_steps += 1

    _SAVED = ("loss", "steps", "tokens", "time", "total_loss", "total_steps")

    def state_dict(self):
        """What a checkpoint keeps, so that a resumed run's first log line
        covers the steps before the interruption too, as the uninterrupted
        run's does."""
        return {k: getattr(self, k) for k in self._SAVED}

    def load_state_dict(self, d):
        for k in self._SAVED:
            if k in d:
                setattr(self, k, type(getattr(self, k))(d[k]))

    def pause(self):
        self.time += time.perf_counter() - self.since

    def resume(self):
        self.since = time.perf_counter()

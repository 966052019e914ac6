"""The training loop and what it is made of, below the methods (supernet, cofi, baselines).

- :mod:`~nas_pruning.training.loop`: :func:`train_epoch`, the one training loop, driven by a
  :class:`TrainingSteps` object (what one step computes, its optimizers and clipping): the
  super-network's steps below, CoFi's pruning and fine-tuning steps in :mod:`nas_pruning.cofi`;
- :mod:`~nas_pruning.training.trainer`: :func:`train_supernet`, super-network training (plain
  fine-tuning with strategy ``standard``);
- :mod:`~nas_pruning.training.strategies`: which networks one optimizer step trains
  (full network, sampled sub-networks, distilled or not);
- :mod:`~nas_pruning.training.config`: :class:`TrainingConfig`, the loop's hyperparameters;
- :mod:`~nas_pruning.training.checkpoint`: resumable training state (random states, atomic
  files refused when damaged or written with other settings), for every method;
- :mod:`~nas_pruning.training.distributed`: data-parallel training over processes;
- :mod:`~nas_pruning.training.distillation`: the task loss and distillation from a teacher
  (logits, and CoFi's layer-wise hidden states).
"""

from nas_pruning.training.checkpoint import Checkpoint, TrainingState
from nas_pruning.training.config import TrainingConfig
from nas_pruning.training.distillation import DistillationLoss, task_loss
from nas_pruning.training.loop import TrainingSteps, train_epoch
from nas_pruning.training.strategies import (
    STRATEGIES,
    Pass,
    Strategy,
    as_strategy,
    get_strategy,
    random_subnetwork,
    smallest_subnetwork,
)
from nas_pruning.training.trainer import CHECKPOINT_DIR, train_supernet

__all__ = [
    "CHECKPOINT_DIR",
    "Checkpoint",
    "DistillationLoss",
    "Pass",
    "STRATEGIES",
    "Strategy",
    "TrainingConfig",
    "TrainingState",
    "TrainingSteps",
    "as_strategy",
    "get_strategy",
    "random_subnetwork",
    "smallest_subnetwork",
    "task_loss",
    "train_epoch",
    "train_supernet",
]

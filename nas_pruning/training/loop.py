"""The training loop of the package: one optimizer step per batch, whatever is trained.

Super-network training (:mod:`~nas_pruning.training.trainer`), CoFi's pruning stage
(hard-concrete gates, Lagrangian, distillation) and CoFi's fine-tuning (distillation, an
auxiliary task) differ only in what one step computes and in their optimizer settings. Each
is a :class:`TrainingSteps` object: its `forward_backward` runs the forward and backward
passes of a batch, and it names its optimizers, learning-rate schedules and gradient
clipping (the methods keep their own rules: the super-network decays weight matrices and
clips all weights, CoFi does not decay and clips what it says). :func:`train_epoch` does
the rest, in the same order for all of them::

    for batch in batches:
        forward and backward (the steps object)
        clip the gradient norm
        step every optimizer, then every schedule
        drop the gradients
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Iterable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

LOG_EVERY = 10  # steps between progress-bar loss updates


class TrainingSteps(ABC):
    """What one optimizer step of a run computes, and with which optimizers.

    Subclasses set:
    model: the network being trained (switched to train mode at every epoch's start).
    trained: every module the optimizers update (what a checkpoint saves); often `model`.
    optimizers: stepped in this order after every backward pass.
    schedulers: learning-rate schedules, stepped after the optimizers.
    max_grad_norm: clip the global norm of :meth:`clip_parameters`' gradients to this
        before the optimizers step; None: no clipping.
    """

    model: nn.Module
    trained: nn.Module
    optimizers: Sequence[torch.optim.Optimizer]
    schedulers: Sequence[torch.optim.lr_scheduler.LRScheduler] = ()
    max_grad_norm: float | None = None

    @abstractmethod
    def forward_backward(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, Any]:
        """Run the forward and backward passes of `batch` at optimizer step `step` (counted
        over the run) and return what the step measured, at least its `loss`."""

    def clip_parameters(self) -> Iterable[torch.Tensor]:
        """The parameters whose gradient norm is clipped (default: all of `trained`)."""
        return self.trained.parameters()

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to continue this training exactly."""
        return {
            "trained": self.trained.state_dict(),
            "optimizers": [optimizer.state_dict() for optimizer in self.optimizers],
            "schedulers": [scheduler.state_dict() for scheduler in self.schedulers],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.trained.load_state_dict(state["trained"])
        for optimizer, saved in zip(self.optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)
        for scheduler, saved in zip(self.schedulers, state["schedulers"], strict=True):
            scheduler.load_state_dict(saved)

    def zero_grad(self) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)


def train_epoch(
    steps: TrainingSteps,
    batches: Iterable[dict[str, torch.Tensor]],
    first_step: int = 0,
    stop_at: int | None = None,
    bar: tqdm | None = None,
) -> list[dict[str, Any]]:
    """One pass over `batches`, one optimizer step per batch; what each step measured.

    first_step: the run's step count at the start (steps are numbered over the run).
    stop_at: stop before step `stop_at` (a run's last step); None: use every batch.
    bar: a progress bar to advance by one per step (its postfix shows the loss).
    """
    steps.model.train()
    steps.zero_grad()
    results = []
    for step, batch in enumerate(batches, start=first_step):
        if stop_at is not None and step >= stop_at:
            break
        results.append(steps.forward_backward(batch, step))
        if steps.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(steps.clip_parameters(), steps.max_grad_norm)
        for optimizer in steps.optimizers:
            optimizer.step()
        for scheduler in steps.schedulers:
            scheduler.step()
        steps.zero_grad()
        if bar is not None and not bar.disable:
            bar.update()
            if bar.n % LOG_EVERY == 0:  # reading the loss waits for the device
                bar.set_postfix(loss=f"{float(results[-1]['loss']):.4f}")
    return results


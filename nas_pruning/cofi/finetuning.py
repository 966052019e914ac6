"""Fine-tuning a (pruned or unpruned) classifier, optionally with distillation and an auxiliary task.

Used twice in a run: to fine-tune the unpruned teacher on the target data, and
to fine-tune the pruned model after extraction (with logit distillation from the
teacher, and the auxiliary task when the run transfers at the fine-tuning stage).
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from nas_pruning.cofi.data import to_device, without_labels
from nas_pruning.cofi.divergence import check_finite
from nas_pruning.cofi.transfer import MultiTaskModel
from nas_pruning.training.distillation import logit_distillation_loss

MAX_GRAD_NORM = 1.0


class FineTuner:
    """Trains `model` (its target classifier and, if it has one, its auxiliary one).

    learning_rate: AdamW learning rate of all weights.
    teacher: if given, its logits are distilled into the target classifier.
    temperature: distillation temperature.
    task_loss_weight, logit_distill_weight, aux_weight: weights of the target's
        own loss, of the distillation loss and of the auxiliary task's loss.
    """

    def __init__(
        self,
        model: MultiTaskModel,
        learning_rate: float,
        teacher: nn.Module | None = None,
        temperature: float = 2.0,
        task_loss_weight: float = 1.0,
        logit_distill_weight: float = 1.0,
        aux_weight: float = 1.0,
    ) -> None:
        self.model = model
        self.teacher = teacher
        self.temperature = temperature
        self.weights = (task_loss_weight, logit_distill_weight, aux_weight)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)

    def train_epoch(
        self, batches, aux_batches: Iterator[dict] | None = None, description: str = "fine-tune", progress: bool = True
    ) -> float:
        """One pass over the target `batches` (one auxiliary batch per target batch if
        the model has an auxiliary classifier). Returns the mean target loss."""
        target, auxiliary = self.model.target, self.model.auxiliary
        device = next(target.parameters()).device
        task_weight, distill_weight, aux_weight = self.weights
        is_regression = target.config.problem_type == "regression"
        self.model.train()
        total, steps = 0.0, 0
        for step, batch in enumerate(tqdm(batches, desc=description, disable=not progress, leave=False)):
            batch = to_device(batch, device)
            output = target(**batch)
            loss = task_weight * output.loss
            if self.teacher is not None:
                with torch.no_grad():
                    teacher_logits = self.teacher(**without_labels(batch)).logits
                loss = loss + distill_weight * logit_distillation_loss(
                    output.logits, teacher_logits, self.temperature, is_regression
                )
            check_finite(loss, f"{description}, step {step}")
            loss.backward()
            if auxiliary is not None:
                aux_loss = aux_weight * auxiliary(**to_device(next(aux_batches), device)).loss
                check_finite(aux_loss, f"{description}, step {step} (auxiliary task)")
                aux_loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), MAX_GRAD_NORM)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            total, steps = total + loss.item(), steps + 1
        return total / max(steps, 1)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])

"""Fine-tuning a (pruned or unpruned) classifier, optionally with distillation and an auxiliary task.

Used twice in a run: to fine-tune the unpruned teacher on the target data, and
to fine-tune the pruned model after extraction (with logit distillation from the
teacher, and the auxiliary task when the run transfers at the fine-tuning stage).
The steps run on the package's training loop (:func:`nas_pruning.training.loop.train_epoch`)
with CoFi's settings: AdamW without weight decay, the gradient norm of all weights clipped
to 1, a constant learning rate.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from nas_pruning.cofi.data import to_device, without_labels
from nas_pruning.cofi.divergence import check_finite
from nas_pruning.cofi.transfer import MultiTaskModel
from nas_pruning.training.distillation import logit_distillation_loss
from nas_pruning.training.loop import TrainingSteps, train_epoch

MAX_GRAD_NORM = 1.0


class FineTuner(TrainingSteps):
    """Trains `model` (its target classifier and, if it has one, its auxiliary one).

    learning_rate: AdamW learning rate of all weights.
    teacher: if given, its logits are distilled into the target classifier.
    temperature: distillation temperature.
    task_loss_weight, logit_distill_weight, aux_weight: weights of the target's
        own loss, of the distillation loss and of the auxiliary task's loss.
    """

    max_grad_norm = MAX_GRAD_NORM

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
        self.model = self.trained = model
        self.teacher = teacher
        self.temperature = temperature
        self.weights = (task_loss_weight, logit_distill_weight, aux_weight)
        self.optimizers = [torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)]
        self.aux_batches: Iterator[dict] | None = None
        self.description = "fine-tune"

    def train_epoch(
        self, batches: Iterable[dict], aux_batches: Iterator[dict] | None = None, description: str = "fine-tune",
        progress: bool = True,
    ) -> float:  # fmt: skip
        """One pass over the target `batches` (one auxiliary batch per target batch if
        the model has an auxiliary classifier). Returns the mean target loss."""
        self.aux_batches, self.description = aux_batches, description
        # The bar wraps the batches (rather than counting steps) as it always has: tqdm.auto's bar starts an
        # iterator of its own, which draws a seed from the loader's generator, and so decides the data order.
        batches = tqdm(batches, desc=description, disable=not progress, leave=False)
        losses = [result["loss"] for result in train_epoch(self, batches)]
        return sum(losses) / max(len(losses), 1)

    def forward_backward(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, Any]:
        target, auxiliary = self.model.target, self.model.auxiliary
        device = next(target.parameters()).device
        task_weight, distill_weight, aux_weight = self.weights
        batch = to_device(batch, device)
        output = target(**batch)
        loss = task_weight * output.loss
        if self.teacher is not None:
            with torch.no_grad():
                teacher_logits = self.teacher(**without_labels(batch)).logits
            is_regression = target.config.problem_type == "regression"
            loss = loss + distill_weight * logit_distillation_loss(
                output.logits, teacher_logits, self.temperature, is_regression
            )
        check_finite(loss, f"{self.description}, step {step}")
        loss.backward()
        if auxiliary is not None:
            aux_loss = aux_weight * auxiliary(**to_device(next(self.aux_batches), device)).loss
            check_finite(aux_loss, f"{self.description}, step {step} (auxiliary task)")
            aux_loss.backward()
        return {"loss": loss.item()}

"""Training losses: the task loss and distillation from the full network's logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def task_loss(logits: torch.Tensor, labels: torch.Tensor, is_regression: bool) -> torch.Tensor:
    """Cross-entropy on class ids, or mean squared error on real targets (logits [N, 1])."""
    if is_regression:
        return F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
    return F.cross_entropy(logits, labels)


class DistillationLoss:
    """Loss of a student (a sub-network) that learns the teacher's (the full network's) outputs.

    Classification: KL(teacher || student) between the softmax distributions of the
    logits divided by `temperature`, times temperature^2 so that gradient sizes do
    not shrink as the temperature grows (Hinton et al. 2015). Regression: mean
    squared error between student and teacher outputs (no temperature there).
    The teacher's logits are detached: no gradient flows into the teacher pass.

    temperature: softmax temperature T > 0; higher T softens the teacher's distribution.
    task_weight: weight of the task loss on the labels added to the distillation
        loss (0 distils only).
    is_regression: the task predicts one real value.
    """

    def __init__(self, temperature: float = 1.0, task_weight: float = 0.0, is_regression: bool = False) -> None:
        if not temperature > 0:
            raise ValueError(f"distillation temperature must be > 0, got {temperature}")
        if not task_weight >= 0:
            raise ValueError(f"distillation task_weight must be >= 0, got {task_weight}")
        self.temperature = float(temperature)
        self.task_weight = float(task_weight)
        self.is_regression = is_regression

    def __call__(self, student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        teacher = teacher.detach()
        if self.is_regression:
            loss = F.mse_loss(student, teacher)
        else:
            t = self.temperature
            log_student = F.log_softmax(student / t, dim=-1)
            log_teacher = F.log_softmax(teacher / t, dim=-1)
            loss = F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True) * (t * t)
        if self.task_weight:
            loss = loss + self.task_weight * task_loss(student, labels, self.is_regression)
        return loss

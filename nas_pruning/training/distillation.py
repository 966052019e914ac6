"""Distillation from a teacher's outputs, shared by super-network training and CoFi.

Logits (:func:`logit_distillation_loss`): KL(softmax(teacher / T) || softmax(student / T))
* T^2, so that gradient sizes do not shrink as the temperature grows (Hinton et al. 2015);
mean squared error between the outputs for regression tasks (no temperature there).
Super-network training wraps it in :class:`DistillationLoss` (teacher detached, plus a
weighted task loss); CoFi calls it with its own temperature (``distill_temperature``).

Hidden states (CoFi, :class:`LayerDistillation`): a few teacher layers are each matched
to one student layer per batch. A learned linear map (initialised to the identity, so
an unpruned student starts with zero loss) carries student states into the teacher's
space; for every teacher layer, from the last to the first, the student layer with the
smallest mean squared error among those below the previous match is chosen, skipping
student layers that computed nothing in this step. The loss is the sum of the matched
errors, over real (non-padding) tokens.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def task_loss(logits: torch.Tensor, labels: torch.Tensor, is_regression: bool) -> torch.Tensor:
    """Cross-entropy on class ids, or mean squared error on real targets (logits [N, 1])."""
    if is_regression:
        return F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
    return F.cross_entropy(logits, labels)


def logit_distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float, is_regression: bool = False
) -> torch.Tensor:
    """Distillation loss between student and teacher logits [batch, classes] ([batch, 1] for regression).

    temperature: softmax temperature T > 0 (unused for regression).
    is_regression: the task predicts one real value: mean squared error instead of KL.
    """
    if is_regression:
        return F.mse_loss(student.squeeze(-1), teacher.squeeze(-1))
    return (
        F.kl_div(
            F.log_softmax(student / temperature, dim=-1),
            F.log_softmax(teacher / temperature, dim=-1),
            reduction="batchmean",
            log_target=True,
        )
        * temperature**2
    )


class DistillationLoss:
    """Loss of a student (a sub-network) that learns the teacher's (the full network's) outputs:
    :func:`logit_distillation_loss` plus, optionally, the weighted task loss on the labels.
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
        loss = logit_distillation_loss(student, teacher.detach(), self.temperature, self.is_regression)
        if self.task_weight:
            loss = loss + self.task_weight * task_loss(student, labels, self.is_regression)
        return loss


def default_teacher_layers(num_layers: int, count: int = 4) -> list[int]:
    """`count` evenly spaced teacher layers ending with the last (0-based; CoFi uses
    layers 2, 5, 8, 11 of BERT-base's 12)."""
    count = min(count, num_layers)
    return sorted({round((k + 1) * num_layers / count) - 1 for k in range(count)})


class LayerDistillation(nn.Module):
    """Hidden-state distillation with per-batch layer matching.

    hidden_size: width of the hidden states.
    teacher_layers: 0-based teacher layers to distil (default: see
        :func:`default_teacher_layers`, given `num_layers`).
    """

    def __init__(self, hidden_size: int, num_layers: int, teacher_layers: Sequence[int] | None = None) -> None:
        super().__init__()
        self.teacher_layers = list(teacher_layers) if teacher_layers is not None else default_teacher_layers(num_layers)
        if not self.teacher_layers or not all(0 <= i < num_layers for i in self.teacher_layers):
            raise ValueError(f"teacher_layers must be indices in [0, {num_layers}), got {self.teacher_layers}")
        self.transform = nn.Linear(hidden_size, hidden_size)
        with torch.no_grad():
            self.transform.weight.copy_(torch.eye(hidden_size))
            self.transform.bias.zero_()

    def forward(
        self,
        student_states: Sequence[torch.Tensor],
        teacher_states: Sequence[torch.Tensor],
        attention_mask: torch.Tensor,
        active_layers: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The matched layer loss.

        student_states, teacher_states: per-layer outputs [batch, seq, hidden]
            (without the embeddings), as in ``hidden_states[1:]`` of a Hugging
            Face model run with ``output_hidden_states=True``.
        attention_mask: [batch, seq], 1 for real tokens.
        active_layers: [num student layers] bool, the student layers that ran
            at least one block; others are never matched.
        """
        tokens = attention_mask.to(student_states[0].dtype)[..., None]
        count = tokens.sum() * student_states[0].shape[-1]
        transformed = [self.transform(state) for state in student_states]
        errors = torch.stack(
            [
                torch.stack([(((s - teacher_states[t]) ** 2) * tokens).sum() / count for s in transformed])
                for t in self.teacher_layers
            ]
        )  # [teacher layers, student layers]
        allowed = torch.ones(len(student_states), dtype=torch.bool)
        if active_layers is not None and bool(active_layers.any()):
            allowed = active_layers.detach().cpu().bool()
        return errors[range(len(self.teacher_layers)), _match(errors.detach().cpu(), allowed)].sum()


def _match(errors: torch.Tensor, allowed: torch.Tensor) -> list[int]:
    """Student layer per teacher layer: from the last teacher layer down, the allowed
    student layer of least error strictly below the previous choice (the previous
    choice again when none is left below). `allowed` keeps at least one layer."""
    chosen: list[int] = []
    upper = errors.shape[1]
    for row in reversed(range(errors.shape[0])):
        below = [j for j in range(upper) if allowed[j]] or chosen[-1:]
        best = min(below, key=lambda j: float(errors[row, j]))
        chosen.append(best)
        upper = best
    return chosen[::-1]

"""Distillation from the fine-tuned (teacher) model: logits and layer-wise hidden states.

Logits: KL(softmax(teacher / T) || softmax(student / T)) * T^2, the usual
temperature-scaled distillation; mean squared error for regression tasks.

Hidden states (CoFi): a few teacher layers are each matched to one student layer
per batch. A learned linear map (initialised to the identity, so an unpruned
student starts with zero loss) carries student states into the teacher's space;
for every teacher layer, from the last to the first, the student layer with the
smallest mean squared error among those below the previous match is chosen,
skipping student layers that computed nothing in this step. The loss is the sum
of the matched errors, over real (non-padding) tokens.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def logit_distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float = 2.0, is_regression: bool = False
) -> torch.Tensor:
    """Distillation loss between student and teacher logits [batch, classes]."""
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

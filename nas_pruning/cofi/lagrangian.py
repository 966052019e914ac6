"""The Lagrangian that drives expected sparsity to a target, and the target's warm-up.

CoFi adds lambda1 (s - t) + lambda2 (s - t)^2 to the loss, where s is the expected
sparsity and t the target. The model and gates minimise it; the multipliers
lambda1, lambda2 *maximise* it (gradient ascent, e.g. an optimizer with
``maximize=True``), so that any persistent gap s - t makes the penalty grow until
the gates close it.
"""

from __future__ import annotations

import torch
from torch import nn


class Lagrangian(nn.Module):
    """lambda1 (s - t) + lambda2 (s - t)^2 with learned multipliers (initially 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.lambda_1 = nn.Parameter(torch.zeros(()))
        self.lambda_2 = nn.Parameter(torch.zeros(()))

    def forward(self, expected_sparsity: torch.Tensor, target: float) -> torch.Tensor:
        gap = expected_sparsity - target
        return self.lambda_1 * gap + self.lambda_2 * gap * gap


class TargetSchedule:
    """The target sparsity at each step: linear from 0 to `target` over `warmup_steps`,
    then constant."""

    def __init__(self, target: float, warmup_steps: int) -> None:
        if not 0.0 < target < 1.0:
            raise ValueError(f"target sparsity must lie strictly between 0 and 1, got {target}")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.target = target
        self.warmup_steps = warmup_steps

    def __call__(self, step: int) -> float:
        if step >= self.warmup_steps:
            return self.target
        return self.target * step / self.warmup_steps

"""Stopping a run whose loss diverged, before it writes a broken model."""

from __future__ import annotations

import math

import torch


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stops and writes no model."""


def check_finite(loss: torch.Tensor, where: str) -> None:
    """Raise :class:`TrainingDiverged` if `loss` is NaN or infinite; `where` says which
    stage, epoch and step, for the message."""
    value = float(loss.detach())
    if not math.isfinite(value):
        raise TrainingDiverged(
            f"the loss became {value} at {where}; no model was written. Lower the learning rates "
            "(--learning-rate, --gate-learning-rate, --lambda-learning-rate) or check the data."
        )

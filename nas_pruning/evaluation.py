"""Scoring a model (or one of its sub-networks) on a task's data."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch
from torch import nn

from nas_pruning.models import SubNetwork, select_subnetwork
from nas_pruning.tasks import Task


@torch.inference_mode()
def predict(model: nn.Module, batches: Iterable[dict], sub: SubNetwork | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Logits [N, C] and labels [N] of `model` (as sub-network `sub` if given) over `batches`."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    outputs, labels = [], []
    try:
        with select_subnetwork(model, sub) if sub is not None else nullcontext():
            for batch in batches:
                batch = {k: v.to(device) for k, v in batch.items()}
                target = batch.pop("labels")
                outputs.append(model(**batch).logits.float().cpu())
                labels.append(target.cpu())
    finally:
        model.train(was_training)
    return torch.cat(outputs).numpy(), torch.cat(labels).numpy()


def evaluate(model: nn.Module, batches: Iterable[dict], task: Task, sub: SubNetwork | None = None) -> dict[str, float]:
    """`metric` (the task's, higher is better) and `error` = 1 - metric, the minimised objective."""
    logits, labels = predict(model, batches, sub)
    metric = task.metric(logits, labels)
    return {"metric": metric, "error": 1.0 - metric}


@dataclass(frozen=True)
class Yardsticks:
    """What a pruned model's metric is judged against, on the validation and test splits:
    the task's trivial predictor (:meth:`Task.trivial_metric`) and the unpruned model."""

    trivial_validation: float
    trivial_test: float
    unpruned_validation: float
    unpruned_test: float

    def kept(self, metric: float, split: str = "test") -> float:
        """`metric` as a fraction of the unpruned model's on `split`."""
        return metric / getattr(self, f"unpruned_{split}")

    def gap_kept(self, metric: float, split: str = "test") -> float:
        """(m - m_trivial) / (m_unpruned - m_trivial) on `split`: the share of what the unpruned
        model learned beyond the trivial predictor that `metric` keeps (<= 0: nothing learned).
        NaN when the unpruned model itself is no better than the trivial predictor."""
        trivial, unpruned = getattr(self, f"trivial_{split}"), getattr(self, f"unpruned_{split}")
        return (metric - trivial) / (unpruned - trivial) if unpruned > trivial else float("nan")

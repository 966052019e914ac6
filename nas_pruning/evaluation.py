"""Scoring a model (or one of its sub-networks) on a task's data."""

from __future__ import annotations

from contextlib import nullcontext
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

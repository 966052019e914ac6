"""Scoring a model (or one of its sub-networks) on a task's data."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from nas_pruning.models import SubNetwork, get_adapter, select_subnetwork
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


class _CachedEmbeddings(nn.Module):
    """Stands in for a model's embedding layer: returns the stored output of inputs seen before.

    A call counts as seen before when it gets the very same tensor objects (resident
    batches) and the same other arguments; anything else runs the real layer.
    """

    def __init__(self, base: nn.Module, cache: "SharedEmbeddings") -> None:
        super().__init__()
        self.base, self.cache = base, cache

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        inputs = [*enumerate(args), *sorted(kwargs.items())]
        key = tuple((name, id(value) if torch.is_tensor(value) else value) for name, value in inputs)
        hit = self.cache.entries.get(key)
        if hit is not None:
            return hit[1]
        output = self.base(*args, **kwargs)
        if self.cache.fits(output):
            # Keeping the inputs alive keeps their ids from being reused by other tensors.
            self.cache.entries[key] = (inputs, output)
        return output


class SharedEmbeddings:
    """The embedding layer's output of resident batches, computed once and reused by every sub-network.

    Sub-networks that keep the whole hidden size (all that `select_subnetwork` runs)
    share the embedding layer, so its output on a batch is the same for all of them.
    Within `installed(model)`, the model's own forward runs as usual, except that
    its embedding layer returns the output it gave for the same batch tensors
    before. Valid only while the model's weights do not change, and only in eval mode.

    max_bytes: memory the stored outputs may take; batches beyond it are embedded
        at every call.
    """

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = max_bytes
        self.entries: dict[tuple, tuple[list, torch.Tensor]] = {}

    def fits(self, output: torch.Tensor) -> bool:
        used = sum(out.numel() * out.element_size() for _, out in self.entries.values())
        return used + output.numel() * output.element_size() <= self.max_bytes

    @contextmanager
    def installed(self, model: nn.Module) -> Iterator[nn.Module]:
        """Within the block, `model`'s embedding layer reuses the stored outputs."""
        if model.training:
            raise ValueError("shared embeddings need a model in eval mode (dropout would make outputs differ)")
        base = get_adapter(model).base_model(model)
        original = base.embeddings
        base.embeddings = _CachedEmbeddings(original, self)
        try:
            yield model
        finally:
            base.embeddings = original

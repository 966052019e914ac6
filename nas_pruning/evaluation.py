"""Scoring a model (or one of its sub-networks) on a task's data."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from nas_pruning.models import SubNetwork, get_adapter, select_subnetwork
from nas_pruning.models.selection import Patches, SlicedLinear
from nas_pruning.models.slicing import take
from nas_pruning.tasks import Task


@torch.inference_mode()
def predict(
    model: nn.Module, batches: Iterable[dict], sub: SubNetwork | None = None, shared: "SharedEmbeddings | None" = None
) -> tuple[np.ndarray, np.ndarray]:
    """Logits [N, C] and labels [N] of `model` (as sub-network `sub` if given) over `batches`.

    shared: reuse what it stored of earlier calls on the same resident batches (see :class:`SharedEmbeddings`).
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    outputs, labels = [], []
    try:
        # The sharing goes inside the selection: it wraps the projections the sub-network runs.
        with select_subnetwork(model, sub) if sub is not None else nullcontext(), \
                shared.installed(model) if shared is not None else nullcontext():
            for batch in batches:
                batch = {k: v.to(device) for k, v in batch.items()}
                target = batch.pop("labels")
                outputs.append(model(**batch).logits.float().cpu())
                labels.append(target.cpu())
    finally:
        model.train(was_training)
    return torch.cat(outputs).numpy(), torch.cat(labels).numpy()


def evaluate(
    model: nn.Module, batches: Iterable[dict], task: Task, sub: SubNetwork | None = None,
    shared: "SharedEmbeddings | None" = None,
) -> dict[str, float]:
    """`metric` (the task's, higher is better) and `error` = 1 - metric, the minimised objective
    (`sub`, `shared`: see :func:`predict`)."""
    logits, labels = predict(model, batches, sub, shared)
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
        if self.cache.fits(output.numel() * output.element_size()):
            # Keeping the inputs alive keeps their ids from being reused by other tensors.
            self.cache.entries[key] = (inputs, output)
            self.cache.embedded.add(id(output))
        return output


class _SharedProjection(nn.Module):
    """Stands in for a query/key/value projection of the first layer a sub-network runs: on a stored
    embedding output it returns the rows it keeps of the full projection, computed once per batch.

    Every head's projection is its own rows of the full one (the same dot products), so any
    sub-network reads its heads from the one full output.
    """

    def __init__(self, module: nn.Module, cache: "SharedEmbeddings") -> None:
        super().__init__()
        self.module, self.cache = module, cache
        self.linear, self.rows = (module.base, module.rows) if isinstance(module, SlicedLinear) else (module, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if id(x) not in self.cache.embedded:
            return self.module(x)
        key = (id(self.linear), id(x))  # x is a stored embedding output: its id is not reused
        full = self.cache.projections.get(key)
        if full is None:
            if not self.cache.fits(x[..., :1].numel() * self.linear.out_features * x.element_size()):
                return self.module(x)
            full = self.cache.projections[key] = self.linear(x)
        return full if self.rows is None else take(full, -1, self.rows)


class SharedEmbeddings:
    """What every sub-network computes alike on resident batches, computed once and reused:
    the embedding layer's output, and the query/key/value projections of the first layer.

    Sub-networks that keep the whole hidden size (all that `select_subnetwork` runs)
    share the embedding layer, so its output on a batch is the same for all of them;
    the first layer they run reads that output, so its query/key/value projections of
    the kept heads are rows of the full projections of that layer. Within
    `installed(model)`, the model's own forward runs as usual, except that its
    embedding layer returns the output it gave for the same batch tensors before, and
    the first layer's projections read the stored full projections of that output.
    Valid only while the model's weights do not change, and only in eval mode.

    max_bytes: memory the stored outputs may take; beyond it, outputs are computed at every call.
    """

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = max_bytes
        self.entries: dict[tuple, tuple[list, torch.Tensor]] = {}
        self.embedded: set[int] = set()  # ids of the stored embedding outputs
        self.projections: dict[tuple[int, int], torch.Tensor] = {}

    def fits(self, nbytes: int) -> bool:
        """Whether `nbytes` more stay within `max_bytes`."""
        stored = [out for _, out in self.entries.values()] + list(self.projections.values())
        return sum(out.numel() * out.element_size() for out in stored) + nbytes <= self.max_bytes

    @contextmanager
    def installed(self, model: nn.Module) -> Iterator[nn.Module]:
        """Within the block, `model`'s embedding layer and its first layer's projections reuse the
        stored outputs. To run a sub-network, enter it within `select_subnetwork`'s block (as
        :func:`predict` does with `shared`), so that it wraps the projections the sub-network runs."""
        if model.training:
            raise ValueError("shared embeddings need a model in eval mode (dropout would make outputs differ)")
        adapter = get_adapter(model)
        base = adapter.base_model(model)
        patches = Patches()
        patches.set(base, "embeddings", _CachedEmbeddings(base.embeddings, self))
        attention = getattr(adapter.layers(model)[0].attention, "self", None)  # None: the block is skipped
        for name in ("query", "key", "value"):
            module = getattr(attention, name, None)
            if isinstance(module, nn.Linear) or (isinstance(module, SlicedLinear) and module.cols is None):
                patches.set(attention, name, _SharedProjection(module, self))
        try:
            yield model
        finally:
            patches.restore()

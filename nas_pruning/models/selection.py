"""Run a model as one of its sub-networks, with the shared weights.

`select_subnetwork` swaps, for the duration of a `with` block, the projections of
each layer for thin wrappers that read only the kept rows/columns of the original
weights (views for "first k" selections, gathers otherwise), skips blocks with
nothing kept and drops empty layers. The computation is the extracted model's, so
a sub-network costs about what its extracted copy costs, and gradients flow into
the shared weights (super-network training uses the same path).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from nas_pruning.models.adapter import HEADS, UNITS
from nas_pruning.models.dims import ModelDims
from nas_pruning.models.pruned_modeling import SkipAttention, SkipIntermediate, SkipOutput
from nas_pruning.models.registry import get_adapter
from nas_pruning.models.slicing import Index, index_size, layer_indices, take
from nas_pruning.models.subnetwork import SubNetwork


class SlicedLinear(nn.Module):
    """`base` restricted to output rows `rows` and/or input columns `cols`."""

    def __init__(self, base: nn.Linear, rows: Index | None = None, cols: Index | None = None) -> None:
        super().__init__()
        self.base, self.rows, self.cols = base, rows, cols

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.base.weight, self.base.bias
        if self.rows is not None:
            weight = take(weight, 0, self.rows)
            bias = None if bias is None else take(bias, 0, self.rows)
        if self.cols is not None:
            weight = take(weight, 1, self.cols)
        return F.linear(x, weight, bias)


class Patches:
    """Module attributes swapped for the duration of a selection, restored in reverse."""

    def __init__(self) -> None:
        self._saved: list[tuple[nn.Module, str, nn.Module]] = []

    def set(self, owner: nn.Module, attr: str, module: nn.Module) -> None:
        self._saved.append((owner, attr, getattr(owner, attr)))
        setattr(owner, attr, module)

    def restore(self) -> None:
        for owner, attr, module in reversed(self._saved):
            setattr(owner, attr, module)
        self._saved.clear()


@contextmanager
def select_subnetwork(model: nn.Module, sub: SubNetwork) -> Iterator[nn.Module]:
    """Within the block, `model(**batch)` computes sub-network `sub` with shared weights.

    Not re-entrant and not thread-safe on one model: concurrent evaluations need one
    model replica each. Hidden-dimension masks are supported by extraction only.
    """
    adapter = get_adapter(model)
    dims = adapter.dims(model.config)
    sub.check_fits(dims)
    if sub.hidden_mask is not None and not bool(sub.hidden_mask.all()):
        raise ValueError("select_subnetwork cannot prune hidden dimensions; use extract_subnetwork for that")
    patches = Patches()
    layers = adapter.layers(model)
    kept = sub.kept_layers()
    try:
        for i in kept:
            _patch_layer(patches, layers[i], layer_indices(sub, dims, i), dims)
        if len(kept) < len(layers):
            patches.set(adapter.encoder(model), "layer", nn.ModuleList([layers[i] for i in kept]))
        yield model
    finally:
        patches.restore()


def _patch_layer(patches: Patches, layer: nn.Module, indices: dict[str, Index], dims: ModelDims) -> None:
    heads, units = indices[HEADS], indices[UNITS]
    head_dims = index_size(heads)
    if head_dims == 0:
        patches.set(layer, "attention", SkipAttention())
    elif head_dims < dims.num_heads * dims.head_size:
        attn = layer.attention.self
        for name in ("query", "key", "value"):
            patches.set(attn, name, SlicedLinear(getattr(attn, name), rows=heads))
        patches.set(layer.attention.output, "dense", SlicedLinear(layer.attention.output.dense, cols=heads))
    num_units = index_size(units)
    if num_units == 0:
        patches.set(layer, "intermediate", SkipIntermediate())
        patches.set(layer, "output", SkipOutput())
    elif num_units < dims.intermediate_size:
        patches.set(layer.intermediate, "dense", SlicedLinear(layer.intermediate.dense, rows=units))
        patches.set(layer.output, "dense", SlicedLinear(layer.output.dense, cols=units))

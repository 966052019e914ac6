"""Which rows/columns of each weight a sub-network keeps, as indices or (cheaper) slices."""

from __future__ import annotations

import torch

from nas_pruning.models.adapter import HEADS, HIDDEN, UNITS
from nas_pruning.models.dims import ModelDims
from nas_pruning.models.subnetwork import SubNetwork

Index = torch.Tensor | slice


def mask_index(mask: torch.Tensor, group: int = 1) -> Index:
    """Indices of the kept entries of a 1-D mask, each entry covering `group`
    consecutive rows (a head covers head_size rows). A kept prefix becomes a slice,
    so that weights are taken as views instead of copies."""
    kept = torch.nonzero(mask).flatten()
    count = len(kept)
    if count == 0 or int(kept[-1]) == count - 1:
        return slice(0, count * group)
    if group == 1:
        return kept
    return (kept[:, None] * group + torch.arange(group)[None, :]).flatten()


def index_size(index: Index) -> int:
    return index.stop - index.start if isinstance(index, slice) else len(index)


def layer_indices(sub: SubNetwork, dims: ModelDims, layer: int) -> dict[str, Index]:
    """Kept indices per role (hidden, heads, units) for one encoder layer."""
    return {
        HIDDEN: hidden_index(sub, dims),
        HEADS: mask_index(sub.head_mask[layer], dims.head_size),
        UNITS: mask_index(sub.ffn_mask[layer]),
    }


def hidden_index(sub: SubNetwork, dims: ModelDims) -> Index:
    if sub.hidden_mask is None:
        return slice(0, dims.hidden_size)
    return mask_index(sub.hidden_mask)


def take(tensor: torch.Tensor, dim: int, index: Index) -> torch.Tensor:
    """tensor restricted to `index` along `dim` (a view for slices)."""
    if isinstance(index, slice):
        return tensor.narrow(dim, index.start, index.stop - index.start)
    return tensor.index_select(dim, index.to(tensor.device))

"""`SubNetwork`: which heads, FFN units (and optionally hidden dimensions) of a model to keep."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from nas_pruning.models.dims import ModelDims


@dataclass(frozen=True, eq=False)
class SubNetwork:
    """A structural sub-network of a transformer encoder.

    head_mask: bool tensor [num_layers, num_heads]; True keeps the head.
    ffn_mask: bool tensor [num_layers, intermediate_size]; True keeps the FFN unit.
    hidden_mask: optional bool tensor [hidden_size] over the residual stream's
        dimensions (CoFi prunes them); None keeps them all.

    A layer with no heads skips its attention block entirely (residual and
    LayerNorm included), one with no units skips its FFN block; a layer with
    neither is dropped (identity).
    """

    head_mask: torch.Tensor
    ffn_mask: torch.Tensor
    hidden_mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        for name in ("head_mask", "ffn_mask", "hidden_mask"):
            mask = getattr(self, name)
            if mask is None:
                continue
            if not isinstance(mask, torch.Tensor):
                mask = torch.as_tensor(mask)
            if mask.dtype != torch.bool:
                if not bool(((mask == 0) | (mask == 1)).all()):
                    raise ValueError(f"SubNetwork.{name} must be boolean (or 0/1), got values {mask.unique().tolist()}")
                mask = mask.bool()
            object.__setattr__(self, name, mask.detach().cpu())
        if self.head_mask.dim() != 2 or self.ffn_mask.dim() != 2:
            raise ValueError(
                f"head_mask and ffn_mask must be 2-D [layers, heads] / [layers, units], got shapes "
                f"{tuple(self.head_mask.shape)} and {tuple(self.ffn_mask.shape)}"
            )
        if self.head_mask.shape[0] != self.ffn_mask.shape[0]:
            raise ValueError(
                f"head_mask has {self.head_mask.shape[0]} layers but ffn_mask has {self.ffn_mask.shape[0]}"
            )
        if self.hidden_mask is not None and self.hidden_mask.dim() != 1:
            raise ValueError(f"hidden_mask must be 1-D [hidden_size], got shape {tuple(self.hidden_mask.shape)}")

    # -- constructors -----------------------------------------------------
    @classmethod
    def full(cls, dims: ModelDims) -> "SubNetwork":
        """The whole model."""
        return cls.from_counts(dims, [dims.num_heads] * dims.num_layers, [dims.intermediate_size] * dims.num_layers)

    @classmethod
    def from_counts(cls, dims: ModelDims, num_heads: Sequence[int], num_units: Sequence[int]) -> "SubNetwork":
        """Keep the first `num_heads[i]` heads and first `num_units[i]` units of layer i."""
        if len(num_heads) != dims.num_layers or len(num_units) != dims.num_layers:
            raise ValueError(
                f"expected {dims.num_layers} per-layer counts, "
                f"got {len(num_heads)} head and {len(num_units)} unit counts"
            )
        for i, (h, u) in enumerate(zip(num_heads, num_units)):
            if not 0 <= h <= dims.num_heads:
                raise ValueError(f"layer {i}: {h} heads is outside [0, {dims.num_heads}]")
            if not 0 <= u <= dims.intermediate_size:
                raise ValueError(f"layer {i}: {u} units is outside [0, {dims.intermediate_size}]")
        heads = torch.arange(dims.num_heads)[None, :] < torch.tensor(num_heads)[:, None]
        units = torch.arange(dims.intermediate_size)[None, :] < torch.tensor(num_units)[:, None]
        return cls(heads, units)

    # -- views --------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return int(self.head_mask.shape[0])

    def heads_per_layer(self) -> list[int]:
        return self.head_mask.sum(dim=1).tolist()

    def units_per_layer(self) -> list[int]:
        return self.ffn_mask.sum(dim=1).tolist()

    def kept_layers(self) -> list[int]:
        """Indices of layers that keep at least one head or unit."""
        keep = self.head_mask.any(dim=1) | self.ffn_mask.any(dim=1)
        return torch.nonzero(keep).flatten().tolist()

    def check_fits(self, dims: ModelDims) -> None:
        """Raise ValueError if the masks do not match the model's shape."""
        expected = {
            "head_mask": (dims.num_layers, dims.num_heads),
            "ffn_mask": (dims.num_layers, dims.intermediate_size),
        }
        if self.hidden_mask is not None:
            expected["hidden_mask"] = (dims.hidden_size,)
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"SubNetwork.{name} has shape {got}, but this model needs {shape}")
        if self.hidden_mask is not None and not bool(self.hidden_mask.any()):
            raise ValueError("hidden_mask keeps no dimension: at least one hidden dimension must remain")

    def __repr__(self) -> str:
        hidden = "" if self.hidden_mask is None else f", hidden={int(self.hidden_mask.sum())}"
        return f"SubNetwork(heads={self.heads_per_layer()}, units={self.units_per_layer()}{hidden})"

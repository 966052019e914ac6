"""CoFi's five kinds of gates, their learned scores, and the gate values of one forward pass.

Kinds (L layers, H heads, I FFN units, D hidden dimensions):

- ``head`` [L, H]: one attention head,
- ``mha`` [L]: a whole attention block,
- ``unit`` [L, I]: one FFN unit (intermediate neuron),
- ``ffn`` [L]: a whole FFN block,
- ``hidden`` [D]: one dimension of the residual stream, in every layer at once.

A *score* tensor holds ``log_alpha`` per gate (see ``hard_concrete``); a
:class:`GateValues` holds the gate values of one forward pass and which
structures they keep.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nas_pruning.cofi import hard_concrete
from nas_pruning.models import ModelDims, SubNetwork

KINDS = ("head", "mha", "unit", "ffn", "hidden")

Scores = dict[str, torch.Tensor]
"""log_alpha per gate kind; a kind that is not pruned is absent."""


def gate_shapes(dims: ModelDims) -> dict[str, tuple[int, ...]]:
    """Shape of each kind's gate tensor for a model of size `dims`."""
    return {
        "head": (dims.num_layers, dims.num_heads),
        "mha": (dims.num_layers,),
        "unit": (dims.num_layers, dims.intermediate_size),
        "ffn": (dims.num_layers,),
        "hidden": (dims.hidden_size,),
    }


def check_kinds(kinds) -> tuple[str, ...]:
    """`kinds` as a tuple, or ValueError naming the unknown ones."""
    kinds = tuple(kinds)
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"gate kinds must be a non-empty subset of {KINDS}, got {list(kinds)}")
    return kinds


@dataclass(frozen=True, eq=False)
class GateValues:
    """Gate values of one forward pass.

    values: kind -> float tensor in [0, 1] that scales the structures' outputs;
        a kind that is absent is not gated (all ones).
    keep: kind -> bool tensor, which structures exist. By default the non-zero
        values; a deterministic selection may keep a structure whose value is 0.

    A block (attention or FFN of one layer) runs only if its block gate keeps it
    and it keeps at least one head / unit; otherwise it is skipped, residual and
    LayerNorm included, exactly as in an extracted model. The LayerNorms
    normalise over the kept hidden dimensions only.
    """

    values: dict[str, torch.Tensor]
    keep: dict[str, torch.Tensor]

    @classmethod
    def from_values(cls, values: dict[str, torch.Tensor]) -> "GateValues":
        return cls(values, {kind: value > 0 for kind, value in values.items()})

    def to(self, device) -> "GateValues":
        """The same gates with their values on `device`."""
        return GateValues({kind: value.to(device) for kind, value in self.values.items()}, self.keep)

    def value(self, kind: str) -> torch.Tensor | None:
        return self.values.get(kind)

    def kept(self, kind: str, shape: tuple[int, ...]) -> torch.Tensor:
        keep = self.keep.get(kind)
        return torch.ones(shape, dtype=torch.bool) if keep is None else keep.detach().cpu()

    def attention_active(self, dims: ModelDims) -> torch.Tensor:
        """[L] bool: which attention blocks run."""
        heads = self.kept("head", (dims.num_layers, dims.num_heads))
        return self.kept("mha", (dims.num_layers,)) & heads.any(dim=1)

    def ffn_active(self, dims: ModelDims) -> torch.Tensor:
        """[L] bool: which FFN blocks run."""
        units = self.kept("unit", (dims.num_layers, dims.intermediate_size))
        return self.kept("ffn", (dims.num_layers,)) & units.any(dim=1)

    def to_subnetwork(self, dims: ModelDims) -> SubNetwork:
        """The structure these gates keep, for extraction and parameter counts."""
        heads = self.kept("head", (dims.num_layers, dims.num_heads)) & self.attention_active(dims)[:, None]
        units = self.kept("unit", (dims.num_layers, dims.intermediate_size)) & self.ffn_active(dims)[:, None]
        hidden = self.keep.get("hidden")
        return SubNetwork(heads, units, None if hidden is None else hidden.detach().cpu())


def sample_gates(scores: Scores) -> GateValues:
    """Hard-concrete samples of every gate, for one training step."""
    return GateValues.from_values({kind: hard_concrete.sample(log_alpha) for kind, log_alpha in scores.items()})


class MaskScores(nn.Module):
    """Learned log_alpha of the gates of `kinds`, initialised to `init` (plus a little
    noise that breaks ties between otherwise identical structures)."""

    def __init__(self, dims: ModelDims, kinds=KINDS, init: float = 1.0, noise: float = 0.01) -> None:
        super().__init__()
        shapes = gate_shapes(dims)
        self.log_alpha = nn.ParameterDict(
            {kind: nn.Parameter(init + noise * torch.randn(shapes[kind])) for kind in check_kinds(kinds)}
        )

    def scores(self) -> Scores:
        return dict(self.log_alpha.items())

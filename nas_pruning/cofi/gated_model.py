"""Running a BERT/RoBERTa sequence classifier under CoFi gates, and folding gates into weights.

Within ``with apply_gates(model, gates): model(**batch)``:

- head gates scale each head's context vector (the input of
  ``attention.output.dense``), unit gates scale the FFN activations (the input of
  ``output.dense``);
- the whole-block gate and the hidden-dimension gates scale the block's output
  before the residual sum;
- every LayerNorm (embeddings and blocks) normalises over the kept hidden
  dimensions only and its output is scaled by the hidden gates, as are the
  outputs of the pooler / classifier projections that map hidden to hidden;
- a block that does not run (see :class:`~nas_pruning.cofi.masks.GateValues`) is
  skipped entirely, residual and LayerNorm included.

With 0/1 gates this is exactly what the extracted sub-network computes: pruned
dimensions carry zeros, which the next projection ignores. The model's modules
are swapped and hooked only for the duration of the block, so parameter names
(and hence extraction and checkpoints) never change.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from nas_pruning.cofi.masks import GateValues
from nas_pruning.models import extract_subnetwork, get_adapter
from nas_pruning.models.adapter import HIDDEN
from nas_pruning.models.pruned_modeling import SkipAttention, SkipIntermediate, SkipOutput
from nas_pruning.models.selection import Patches


class MaskedLayerNorm(nn.Module):
    """`base` (a LayerNorm) over the dims where `keep` is True, output scaled by `values`
    (which are 0 outside `keep`). Shares `base`'s parameters."""

    def __init__(self, base: nn.LayerNorm, values: torch.Tensor, keep: torch.Tensor) -> None:
        super().__init__()
        self.base = base
        self.values = values
        self.mask = keep.to(device=values.device, dtype=values.dtype)
        self.count = self.mask.sum().clamp(min=1)  # a sample may switch every dimension off

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = (x * self.mask).sum(dim=-1, keepdim=True) / self.count
        centred = (x - mean) * self.mask
        variance = (centred * centred).sum(dim=-1, keepdim=True) / self.count
        normalised = centred * torch.rsqrt(variance + self.base.eps)
        return (normalised * self.base.weight + self.base.bias) * (self.values * self.mask)


class _GatePatches(Patches):
    """Swapped module attributes (as in sub-network selection) plus hooks that scale a module's
    input or output by a gate; `restore` removes the hooks, then swaps the attributes back."""

    def __init__(self) -> None:
        super().__init__()
        self._hooks = []

    def scale_input(self, module: nn.Module, scale: torch.Tensor) -> None:
        self._hooks.append(module.register_forward_pre_hook(lambda _, args: (args[0] * scale,) + tuple(args[1:])))

    def scale_output(self, module: nn.Module, scale: torch.Tensor) -> None:
        self._hooks.append(module.register_forward_hook(lambda _, args, output: output * scale))

    def restore(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        super().restore()


@contextmanager
def apply_gates(model: nn.Module, gates: GateValues) -> Iterator[nn.Module]:
    """Within the block, `model` computes under `gates` (see the module docstring).
    Not re-entrant; gradients flow into the weights and into the gate values."""
    adapter = get_adapter(model)
    dims = adapter.dims(model.config)
    gates = gates.to(next(model.parameters()).device)
    hidden, hidden_keep = gates.value("hidden"), gates.keep.get("hidden")
    attention_runs, ffn_runs = gates.attention_active(dims), gates.ffn_active(dims)
    patches = _GatePatches()
    try:
        if hidden is not None:
            embeddings = getattr(model, adapter.base_prefix).embeddings
            patches.set(embeddings, "LayerNorm", MaskedLayerNorm(embeddings.LayerNorm, hidden, hidden_keep))
            for linear in _hidden_projections(model, adapter):
                patches.scale_output(linear, hidden)
        for i, layer in enumerate(adapter.layers(model)):
            if not attention_runs[i]:
                patches.set(layer, "attention", SkipAttention())
            else:
                _gate_block(patches, layer.attention.output, gates, "head", "mha", i, dims.head_size)
            if not ffn_runs[i]:
                patches.set(layer, "intermediate", SkipIntermediate())
                patches.set(layer, "output", SkipOutput())
            else:
                _gate_block(patches, layer.output, gates, "unit", "ffn", i, 1)
        yield model
    finally:
        patches.restore()


def _gate_block(
    patches: _GatePatches, output: nn.Module, gates: GateValues, item: str, block: str, layer: int, group: int
):
    """Gate one block through its output module (dense, dropout, LayerNorm)."""
    items = gates.value(item)
    if items is not None:
        patches.scale_input(output.dense, items[layer].repeat_interleave(group))
    scale = gates.value(block)[layer] if gates.value(block) is not None else None
    hidden = gates.value("hidden")
    if hidden is not None:
        scale = hidden if scale is None else scale * hidden
        patches.set(output, "LayerNorm", MaskedLayerNorm(output.LayerNorm, hidden, gates.keep["hidden"]))
    if scale is not None:
        patches.scale_output(output.dense, scale)


def _hidden_projections(model: nn.Module, adapter) -> list[nn.Linear]:
    """Linear layers outside the encoder whose outputs are hidden dimensions (pooler,
    RoBERTa's classifier.dense): extraction slices their output rows."""
    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            layer, _, roles = adapter.parameter_role(f"{name}.weight")
            if layer is None and roles[0] == HIDDEN:
                found.append(module)
    return found


@torch.no_grad()
def fold_gates(model: nn.Module, gates: GateValues) -> None:
    """Multiply the gate values into the weights, in place, so that the model restricted
    to the kept structures (``extract_subnetwork(model, gates.to_subnetwork(dims))``)
    computes what ``apply_gates(model, gates)`` computes, without gates."""
    adapter = get_adapter(model)
    hidden = gates.value("hidden")
    if hidden is not None:
        _scale_norm(getattr(model, adapter.base_prefix).embeddings.LayerNorm, hidden)
        for linear in _hidden_projections(model, adapter):
            _scale_rows(linear, hidden)
    dims = adapter.dims(model.config)
    for i, layer in enumerate(adapter.layers(model)):
        for output, item, block, group in (
            (layer.attention.output, "head", "mha", dims.head_size),
            (layer.output, "unit", "ffn", 1),
        ):
            if gates.value(item) is not None:
                output.dense.weight.mul_(gates.value(item)[i].repeat_interleave(group).to(output.dense.weight))
            rows = torch.ones(dims.hidden_size, device=output.dense.weight.device)
            if gates.value(block) is not None:
                rows = rows * gates.value(block)[i].to(rows)
            if hidden is not None:
                rows = rows * hidden.to(rows)
                _scale_norm(output.LayerNorm, hidden)
            _scale_rows(output.dense, rows)


def _scale_rows(linear: nn.Linear, scale: torch.Tensor) -> None:
    scale = scale.to(linear.weight)
    linear.weight.mul_(scale[:, None])
    if linear.bias is not None:
        linear.bias.mul_(scale)


def _scale_norm(norm: nn.LayerNorm, scale: torch.Tensor) -> None:
    norm.weight.mul_(scale.to(norm.weight))
    norm.bias.mul_(scale.to(norm.bias))


def extract_gated(model: nn.Module, gates: GateValues) -> nn.Module:
    """The standalone pruned model that computes what `model` computes under `gates`:
    a copy with the gate values folded in, restricted to the kept structures.

    Leaves the global random number generators as they were: building the smaller
    model initialises weights it then overwrites, and a run that extracts (to score
    the would-be export) must train as if it had not."""
    folded = copy.deepcopy(model)
    fold_gates(folded, gates)
    dims = get_adapter(model).dims(model.config)
    with torch.random.fork_rng():
        return extract_subnetwork(folded, gates.to_subnetwork(dims))

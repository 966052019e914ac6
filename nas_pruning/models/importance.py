"""Gradient-based importance of heads and FFN units, and reordering by it.

Importance follows Michel et al. (2019): put a gate of value 1 on every head's
output (and every FFN unit's activation) and accumulate |dLoss/dgate| over training
batches. Reordering permutes heads and units inside each layer, most important
first, so that the search spaces' "first k" keep the most important ones. It does
not change what the model computes.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from nas_pruning.models.registry import get_adapter


def importance_scores(
    model: nn.Module, batches: Iterable[dict], max_batches: int | None = None, progress: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Head importance [L, H] and unit importance [L, I], summed over `batches`.

    Each batch is a dict of model inputs including `labels`. Dropout is off while
    scoring. Scores are per batch |gradient| sums (not normalised per layer).
    """
    adapter = get_adapter(model)
    dims = adapter.dims(model.config)
    device = next(model.parameters()).device
    head_gates = torch.ones(dims.num_layers, dims.num_heads, device=device, requires_grad=True)
    unit_gates = torch.ones(dims.num_layers, dims.intermediate_size, device=device, requires_grad=True)
    head_scores = torch.zeros(dims.num_layers, dims.num_heads)
    unit_scores = torch.zeros(dims.num_layers, dims.intermediate_size)
    hooks = []
    for i, layer in enumerate(adapter.layers(model)):
        # The input of attention.output.dense is the concatenation of head outputs,
        # that of output.dense the FFN activations: gate them there.
        hooks.append(layer.attention.output.dense.register_forward_pre_hook(_gate(head_gates[i], dims.head_size)))
        hooks.append(layer.output.dense.register_forward_pre_hook(_gate(unit_gates[i], 1)))
    was_training = model.training
    model.eval()
    try:
        for step, batch in enumerate(tqdm(batches, desc="importance", disable=not progress, total=max_batches)):
            if max_batches is not None and step >= max_batches:
                break
            loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
            head_grad, unit_grad = torch.autograd.grad(loss, (head_gates, unit_gates))
            head_scores += head_grad.abs().cpu()
            unit_scores += unit_grad.abs().cpu()
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return head_scores, unit_scores


def _gate(gates: torch.Tensor, group: int):
    def hook(module, args):
        return (args[0] * gates.repeat_interleave(group),) + tuple(args[1:])

    return hook


@torch.no_grad()
def reorder_by_importance(model: nn.Module, head_scores: torch.Tensor, unit_scores: torch.Tensor) -> None:
    """Permute each layer's heads and units in place, most important first."""
    adapter = get_adapter(model)
    dims = adapter.dims(model.config)
    for i, layer in enumerate(adapter.layers(model)):
        heads = torch.argsort(head_scores[i], descending=True)
        rows = (heads[:, None] * dims.head_size + torch.arange(dims.head_size)[None, :]).flatten()
        attn = layer.attention.self
        for linear in (attn.query, attn.key, attn.value):
            _permute(linear, rows, dim=0)
        _permute(layer.attention.output.dense, rows, dim=1)
        units = torch.argsort(unit_scores[i], descending=True)
        _permute(layer.intermediate.dense, units, dim=0)
        _permute(layer.output.dense, units, dim=1)


def _permute(linear: nn.Linear, order: torch.Tensor, dim: int) -> None:
    order = order.to(linear.weight.device)
    linear.weight.copy_(linear.weight.index_select(dim, order))
    if dim == 0 and linear.bias is not None:
        linear.bias.copy_(linear.bias.index_select(0, order))

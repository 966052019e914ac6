"""Per-example gradients of the loss with respect to head and FFN-unit mask variables.

A mask variable multiplies one attention head's output (its columns of the input of
``attention.output.dense``) or one FFN unit's activation (its column of the input of
``output.dense``); at value 1 the model is unchanged. Head pruning (Michel et al.
2019) scores heads by E|dL/dm|, retraining-free pruning (Kwon et al. 2022) by the
Fisher information E[(dL/dm)^2]: both need the gradient of every example on its own.
Giving each example of a batch its own copy of the mask variables yields them from one
backward pass: the summed loss depends on copy b only through example b.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from nas_pruning.models import SubNetwork, get_adapter, select_subnetwork


@dataclass(frozen=True)
class MaskGradients:
    """Per-example gradients of the loss w.r.t. the mask variables.

    heads: [N, L, H]; units: [N, L, I]. Entries of heads and units that the
    sub-network prunes are 0 (they have no mask variable).
    """

    heads: torch.Tensor
    units: torch.Tensor


class _Gates:
    """Mask variables of the current batch, per layer: [B, kept heads] and [B, kept units]."""

    def __init__(self) -> None:
        self.heads: dict[int, torch.Tensor] = {}
        self.units: dict[int, torch.Tensor] = {}


def _gate_hook(gates: _Gates, kind: str, layer: int, group: int):
    def hook(module, args):
        scale = getattr(gates, kind)[layer].repeat_interleave(group, dim=1)  # [B, columns]
        return (args[0] * scale[:, None, :],) + tuple(args[1:])

    return hook


@contextmanager
def _gated(model: nn.Module, sub: SubNetwork, gates: _Gates) -> Iterator[None]:
    """Run `model` as `sub`, with every kept head and unit multiplied by its gate in `gates`."""
    adapter = get_adapter(model)
    head_size = adapter.dims(model.config).head_size
    layers = adapter.layers(model)
    hooks = []
    with select_subnetwork(model, sub):
        try:
            # Hooks go on the modules selection installed (sliced projections), whose
            # inputs hold the kept heads and units only, in their original order.
            for i in sub.kept_layers():
                if sub.head_mask[i].any():
                    dense = layers[i].attention.output.dense
                    hooks.append(dense.register_forward_pre_hook(_gate_hook(gates, "heads", i, head_size)))
                if sub.ffn_mask[i].any():
                    hooks.append(layers[i].output.dense.register_forward_pre_hook(_gate_hook(gates, "units", i, 1)))
            yield
        finally:
            for hook in hooks:
                hook.remove()


def mask_gradients(
    model: nn.Module,
    batches: Iterable[dict],
    sub: SubNetwork | None = None,
    progress: bool = False,
) -> MaskGradients:
    """Per-example gradients of the loss w.r.t. every kept head's and unit's mask variable.

    model: a fine-tuned sequence classifier (its own loss is used, so batches need `labels`).
    batches: dicts of model inputs, e.g. a `nas_pruning.tasks.make_loader` loader.
    sub: the sub-network to differentiate (default: the whole model); pruned heads
        and units are absent, exactly as in the extracted model.
    Dropout is off while differentiating; the model's weights get no gradients.
    """
    adapter = get_adapter(model)
    dims = adapter.dims(model.config)
    sub = sub if sub is not None else SubNetwork.full(dims)
    sub.check_fits(dims)
    kept_heads = {i: torch.nonzero(sub.head_mask[i]).flatten() for i in sub.kept_layers() if sub.head_mask[i].any()}
    kept_units = {i: torch.nonzero(sub.ffn_mask[i]).flatten() for i in sub.kept_layers() if sub.ffn_mask[i].any()}
    device = next(model.parameters()).device
    head_grads, unit_grads = [], []
    gates = _Gates()
    was_training = model.training
    model.eval()
    weights = [p for p in model.parameters() if p.requires_grad]
    for p in weights:
        p.requires_grad_(False)  # only the gates need gradients
    try:
        with _gated(model, sub, gates):
            for batch in tqdm(batches, desc="mask gradients", disable=not progress):
                batch = {k: v.to(device) for k, v in batch.items()}
                size = len(batch["labels"])
                gates.heads = {i: _ones(size, len(h), device) for i, h in kept_heads.items()}
                gates.units = {i: _ones(size, len(u), device) for i, u in kept_units.items()}
                # The model's loss is a mean over the batch; times its size it is the sum.
                loss = model(**batch).loss * size
                grads = iter(torch.autograd.grad(loss, list(gates.heads.values()) + list(gates.units.values())))
                heads = torch.zeros(size, dims.num_layers, dims.num_heads)
                units = torch.zeros(size, dims.num_layers, dims.intermediate_size)
                for i, index in kept_heads.items():
                    heads[:, i, index] = next(grads).cpu()
                for i, index in kept_units.items():
                    units[:, i, index] = next(grads).cpu()
                head_grads.append(heads)
                unit_grads.append(units)
    finally:
        for p in weights:
            p.requires_grad_(True)
        model.train(was_training)
    if not head_grads:
        raise ValueError("mask_gradients got no examples: the batches are empty")
    return MaskGradients(torch.cat(head_grads), torch.cat(unit_grads))


def _ones(size: int, width: int, device: torch.device | str) -> torch.Tensor:
    """Gates at 1 (the unchanged model) whose gradient is the mask gradient."""
    return torch.ones(size, width, device=device, requires_grad=True)

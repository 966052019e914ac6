"""Mask tuning by layer-wise least squares (the last step of Kwon et al. 2022).

After pruning, every kept head and FFN unit gets a real-valued scale (its mask value,
1 so far) chosen so that each pruned block reproduces the unpruned model's block on
sample data. Per layer, top to bottom, the target is the unpruned model's sum before
the LayerNorm (block output + residual) computed on the *unpruned* model's input,
while the pruned block sees the *pruned* model's input (already tuned layers below),
so tuning also compensates errors from lower layers. With

    head h:  a_h = (context of head h) @ W_o[:, h]^T       (a vector of the hidden size)
    unit u:  a_u = activation_u * W_2[:, u]

the block's output is sum_k m_k a_k + bias + residual, linear in the mask values m:
the best m solves a linear least-squares problem. Its normal equations
(G m = c, G[k, j] = sum over tokens <a_k, a_j>) are accumulated batch by batch and
solved with `torch.linalg.lstsq`; the scales are then folded into W_o's and W_2's
columns, so the tuned model is an ordinary (extractable) model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from nas_pruning.models import SubNetwork, get_adapter, select_subnetwork


@dataclass(frozen=True)
class LayerFit:
    """The least-squares fit of one block.

    layer: index of the layer in the unpruned model; block: "attention" or "ffn".
    scales: fitted mask values of the kept heads / units, in their order.
    error_before / error_after: squared reconstruction error, summed over the
    sample's tokens, with all mask values 1 and with the fitted ones.
    """

    layer: int
    block: str
    scales: torch.Tensor
    error_before: float
    error_after: float


@dataclass
class _Sample:
    """One batch on its way up the encoder, through the unpruned and the pruned model."""

    tokens: torch.Tensor  # [B, T] bool: real (not padding) tokens
    layer_args: tuple  # what the encoder passes every layer besides the hidden states
    layer_kwargs: dict[str, Any]
    original: torch.Tensor  # [B, T, D] input of the current layer, unpruned model
    pruned: torch.Tensor  # [B, T, D] input of the current layer, pruned and tuned model
    targets: dict[str, torch.Tensor] = field(default_factory=dict)  # block -> pre-LayerNorm sum


class _Stop(Exception):
    """Raised by a hook once it has what it needs, to skip the rest of the forward pass."""


class _NormalEquations:
    """G m = c of min_m ||sum_k m_k a_k - b||^2, accumulated over tokens (float64)."""

    def __init__(self, size: int) -> None:
        self.gram = torch.zeros(size, size, dtype=torch.float64)
        self.rhs = torch.zeros(size, dtype=torch.float64)
        self.target_norm = 0.0

    def add(self, gram: torch.Tensor, rhs: torch.Tensor, target: torch.Tensor) -> None:
        self.gram += gram.double().cpu()
        self.rhs += rhs.double().cpu()
        self.target_norm += float(target.double().pow(2).sum())

    def error(self, scales: torch.Tensor) -> float:
        return float(scales @ self.gram @ scales - 2 * scales @ self.rhs + self.target_norm)

    def solve(self) -> tuple[torch.Tensor, float, float]:
        """(scales, error at scales 1, error at scales), never worse than scales 1."""
        ones = torch.ones_like(self.rhs)
        # gelsd copes with rank-deficient G (e.g. a unit that is never active).
        scales = torch.linalg.lstsq(self.gram, self.rhs[:, None], driver="gelsd").solution.squeeze(1)
        before, after = self.error(ones), self.error(scales)
        if not after <= before:  # round-off on an already exact fit
            scales, after = ones, before
        return scales, before, after


def tune_masks(model: nn.Module, sub: SubNetwork, batches: Iterable[dict], progress: bool = False) -> list[LayerFit]:
    """Fit the mask values of `sub`'s kept heads and units and fold them into `model`.

    model: the unpruned (fine-tuned) model; its W_o and W_2 columns of kept heads and
        units are rescaled in place, the rest of it is unchanged. Extract `sub` from
        it afterwards to get the tuned pruned model.
    sub: the sub-network to tune (no hidden-dimension mask).
    batches: sample inputs (a `labels` entry is ignored), a few thousand examples in
        Kwon et al.; they are held in memory layer by layer.
    Returns one `LayerFit` per tuned block, bottom to top.
    """
    adapter = get_adapter(model)
    dims = adapter.dims(model.config)
    sub.check_fits(dims)
    layers = list(adapter.layers(model))
    was_training = model.training
    model.eval()
    fits = []
    try:
        with torch.no_grad():
            samples = [_first_layer_input(model, layers[0], batch) for batch in batches]
            if not samples:
                raise ValueError("tune_masks got no batches to fit the mask values on")
            kept = sub.kept_layers()
            for i in tqdm(range(dims.num_layers), desc="mask tuning", disable=not progress):
                for sample in samples:
                    _run_original(layers[i], sample)
                if i not in kept:
                    continue  # a dropped layer passes its input on unchanged
                with select_subnetwork(model, sub):
                    if sub.head_mask[i].any():
                        fits.append(_tune_attention(layers[i], i, sub, dims.head_size, samples))
                    if sub.ffn_mask[i].any():
                        fits.append(_tune_ffn(layers[i], i, sub, samples))
                    for sample in samples:
                        sample.pruned = layers[i](sample.pruned, *sample.layer_args, **sample.layer_kwargs)
    finally:
        model.train(was_training)
    return fits


def _first_layer_input(model: nn.Module, first_layer: nn.Module, batch: dict) -> _Sample:
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
    captured = {}

    def hook(module, args, kwargs):
        captured.update(args=args, kwargs=kwargs)
        raise _Stop

    handle = first_layer.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        model(**inputs)
    except _Stop:
        pass
    finally:
        handle.remove()
    hidden = captured["args"][0]
    tokens = inputs.get("attention_mask", torch.ones(hidden.shape[:2], device=device)).bool()
    return _Sample(tokens, captured["args"][1:], captured["kwargs"], original=hidden, pruned=hidden)


def _run_original(layer: nn.Module, sample: _Sample) -> None:
    """Advance the unpruned model by one layer, keeping its pre-LayerNorm sums as targets."""
    handles = [
        layer.attention.output.LayerNorm.register_forward_pre_hook(_keep(sample.targets, "attention")),
        layer.output.LayerNorm.register_forward_pre_hook(_keep(sample.targets, "ffn")),
    ]
    try:
        sample.original = layer(sample.original, *sample.layer_args, **sample.layer_kwargs)
    finally:
        for handle in handles:
            handle.remove()


def _keep(store: dict, key: str):
    def hook(module, args):
        store[key] = args[0]

    return hook


def _block_inputs(layer: nn.Module, block_output: nn.Module, sample: _Sample) -> tuple[torch.Tensor, torch.Tensor]:
    """(input of the block's output projection, residual) of the pruned layer, real tokens only."""
    captured = {}

    def hook(module, args):
        captured.update(inputs=args[0], residual=args[1])
        raise _Stop

    handle = block_output.register_forward_pre_hook(hook)
    try:
        layer(sample.pruned, *sample.layer_args, **sample.layer_kwargs)
    except _Stop:
        pass
    finally:
        handle.remove()
    return captured["inputs"][sample.tokens], captured["residual"][sample.tokens]


def _tune_attention(layer: nn.Module, index: int, sub: SubNetwork, head_size: int, samples: list[_Sample]) -> LayerFit:
    dense = layer.attention.output.dense
    # Under selection `dense` wraps the unpruned projection; fold into that one.
    linear = getattr(dense, "base", dense)
    heads = torch.nonzero(sub.head_mask[index]).flatten()
    columns = (heads[:, None] * head_size + torch.arange(head_size)[None, :]).flatten().to(linear.weight.device)
    weight = linear.weight[:, columns].view(linear.out_features, len(heads), head_size)  # [D, k, d]
    equations = _NormalEquations(len(heads))
    for sample in samples:
        context, residual = _block_inputs(layer, layer.attention.output, sample)
        per_head = torch.einsum("tkd,Dkd->tkD", context.view(len(context), len(heads), head_size), weight)
        target = sample.targets["attention"][sample.tokens] - residual - linear.bias
        equations.add(
            torch.einsum("tkD,tjD->kj", per_head, per_head), torch.einsum("tkD,tD->k", per_head, target), target
        )
    scales, before, after = equations.solve()
    linear.weight[:, columns] *= scales.to(linear.weight).repeat_interleave(head_size)
    return LayerFit(index, "attention", scales.float(), before, after)


def _tune_ffn(layer: nn.Module, index: int, sub: SubNetwork, samples: list[_Sample]) -> LayerFit:
    linear = getattr(layer.output.dense, "base", layer.output.dense)
    units = torch.nonzero(sub.ffn_mask[index]).flatten().to(linear.weight.device)
    weight = linear.weight[:, units]  # [D, k]
    # <a_k, a_j> = act_k act_j <W_2[:, k], W_2[:, j]>: no per-unit vectors needed.
    weight_gram = weight.T @ weight
    equations = _NormalEquations(len(units))
    for sample in samples:
        activations, residual = _block_inputs(layer, layer.output, sample)
        target = sample.targets["ffn"][sample.tokens] - residual - linear.bias
        equations.add((activations.T @ activations) * weight_gram, (activations * (target @ weight)).sum(0), target)
    scales, before, after = equations.solve()
    linear.weight[:, units] *= scales.to(linear.weight)
    return LayerFit(index, "ffn", scales.float(), before, after)

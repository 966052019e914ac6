"""Sparsity as CoFi counts it: the encoder layers' parameters, exactly and in expectation.

Prunable parameters are those of the encoder layers (attention and FFN blocks:
weights, biases and LayerNorms); embeddings, pooler and classifier are not
counted. With h kept heads of size s, u kept units and D' kept hidden
dimensions, a layer holds

    attention: 4 s h D' + 3 s h + 3 D'   (Q, K, V, output weights; Q, K, V biases;
                                          output bias and LayerNorm), 0 if h = 0,
    FFN:       2 u D' + u + 3 D'          (two weights, two biases, LayerNorm), 0 if u = 0,

which is what :func:`nas_pruning.models.extract_subnetwork` keeps. The expected
count replaces each gate by its probability of being non-zero (gates are
independent), so for 0/1 probabilities it equals the exact count.
"""

from __future__ import annotations

import torch
from torch import nn

from nas_pruning.cofi import hard_concrete
from nas_pruning.cofi.masks import Scores
from nas_pruning.models import ModelDims, SubNetwork


def attention_parameters(dims: ModelDims, heads, hidden):
    """Parameters of an attention block with `heads` heads over `hidden` dims, if it runs."""
    return (4 * dims.head_size * hidden + 3 * dims.head_size) * heads + 3 * hidden


def ffn_parameters(units, hidden):
    """Parameters of an FFN block with `units` units over `hidden` dims, if it runs."""
    return (2 * hidden + 1) * units + 3 * hidden


def full_prunable_parameters(dims: ModelDims) -> int:
    """Prunable parameters of the unpruned model."""
    per_layer = attention_parameters(dims, dims.num_heads, dims.hidden_size) + ffn_parameters(
        dims.intermediate_size, dims.hidden_size
    )
    return dims.num_layers * per_layer


def prunable_parameters(dims: ModelDims, sub: SubNetwork) -> int:
    """Prunable parameters that sub-network `sub` keeps (exact)."""
    hidden = dims.hidden_size if sub.hidden_mask is None else int(sub.hidden_mask.sum())
    total = 0
    for heads, units in zip(sub.heads_per_layer(), sub.units_per_layer()):
        total += attention_parameters(dims, heads, hidden) if heads else 0
        total += ffn_parameters(units, hidden) if units else 0
    return total


def sparsity(dims: ModelDims, sub: SubNetwork) -> float:
    """Fraction of prunable parameters that `sub` removes."""
    return 1.0 - prunable_parameters(dims, sub) / full_prunable_parameters(dims)


def measured_sparsity(model: nn.Module, dims: ModelDims) -> float:
    """Sparsity of a model's encoder layers, counted from its parameters, relative to
    the unpruned model of size `dims` (for models made by extraction)."""
    kept = sum(p.numel() for name, p in model.named_parameters() if ".encoder.layer." in name)
    return 1.0 - kept / full_prunable_parameters(dims)


def nonzero_probabilities(scores: Scores) -> dict[str, torch.Tensor]:
    """P(gate > 0) per kind, for gates with log_alpha `scores`."""
    return {kind: hard_concrete.prob_nonzero(log_alpha) for kind, log_alpha in scores.items()}


def expected_prunable_parameters(dims: ModelDims, probs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Expected prunable parameters when each gate is non-zero with probability `probs[kind]`
    (independently; differentiable in the probabilities). Absent kinds are always on."""
    reference = next(iter(probs.values()))

    def prob(kind: str, shape: tuple[int, ...]) -> torch.Tensor:
        if kind in probs:
            return probs[kind]
        return torch.ones(shape, dtype=reference.dtype, device=reference.device)

    layers = dims.num_layers
    heads = prob("head", (layers, dims.num_heads))
    units = prob("unit", (layers, dims.intermediate_size))
    hidden = prob("hidden", (dims.hidden_size,)).sum()
    mha, ffn = prob("mha", (layers,)), prob("ffn", (layers,))
    # A block's bias and LayerNorm exist if its block gate and at least one head / unit are on.
    attention_runs = mha * (1 - torch.prod(1 - heads, dim=1))
    ffn_runs = ffn * (1 - torch.prod(1 - units, dim=1))
    per_layer = (
        mha * (4 * dims.head_size * hidden + 3 * dims.head_size) * heads.sum(dim=1)
        + ffn * (2 * hidden + 1) * units.sum(dim=1)
        + 3 * hidden * (attention_runs + ffn_runs)
    )
    return per_layer.sum()


def expected_sparsity(dims: ModelDims, scores: Scores) -> torch.Tensor:
    """1 - expected prunable parameters / those of the full model, under hard-concrete
    gates with log_alpha `scores`."""
    expected = expected_prunable_parameters(dims, nonzero_probabilities(scores))
    return 1 - expected / full_prunable_parameters(dims)

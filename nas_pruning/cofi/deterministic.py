"""From learned gate scores to the deterministic gates of the final model.

CoFi rounds each gate group to its expected number of zeros, which leaves the
real sparsity of the pruned model wherever the expectation happened to be. We
instead choose the kept structures so that the real prunable parameter count
meets the target:

1. hidden dimensions: keep the round(E[#kept]) dimensions of highest log_alpha
   (at least one), which fixes the cost of every head and unit;
2. heads and units (or whole blocks for a kind that is not gated individually)
   are ranked by log P(structure and its block gate are non-zero) and kept
   greedily, most probable first, while they fit the parameter budget
   (1 - target) x prunable parameters; a block's bias and LayerNorm are charged
   with its first structure.

Cheap units fill what expensive heads leave, so the real sparsity ends within a
few units' parameters of the target (always at or above it), unless the target
keeps less than one structure, in which case the single most probable one is
kept. Kept gates take the noise-free point estimate of
:func:`nas_pruning.cofi.hard_concrete.point_estimate` (exactly 1 for confident
gates); :func:`nas_pruning.cofi.gated_model.fold_gates` moves those values into
the weights before extraction.
"""

from __future__ import annotations

import torch

from nas_pruning.cofi import hard_concrete
from nas_pruning.cofi.masks import GateValues, Scores
from nas_pruning.cofi.sparsity import full_prunable_parameters
from nas_pruning.models import ModelDims

# block -> (kind gating its items, kind gating the whole block)
_BLOCKS = {"attention": ("head", "mha"), "ffn": ("unit", "ffn")}


def deterministic_gates(scores: Scores, dims: ModelDims, target_sparsity: float) -> GateValues:
    """Deterministic gates keeping about (1 - target_sparsity) of the prunable parameters."""
    if not 0.0 <= target_sparsity < 1.0:
        raise ValueError(f"target sparsity must lie in [0, 1), got {target_sparsity}")
    scores = {kind: log_alpha.detach().float().cpu() for kind, log_alpha in scores.items()}
    keep, hidden = _hidden_keep(scores, dims)
    budget = (1.0 - target_sparsity) * full_prunable_parameters(dims)
    sizes = {"attention": dims.num_heads, "ffn": dims.intermediate_size}
    item_cost = {"attention": 4 * dims.head_size * hidden + 3 * dims.head_size, "ffn": 2 * hidden + 1}
    block_cost = 3 * hidden

    kept_items = {block: torch.zeros(dims.num_layers, sizes[block], dtype=torch.bool) for block in _BLOCKS}
    candidates = []  # (log probability, block, layer, item index or None for the whole block)
    used = 0.0
    for block, (item_kind, block_kind) in _BLOCKS.items():
        block_logp = _log_prob(scores, block_kind, (dims.num_layers,))
        if item_kind in scores:
            item_logp = hard_concrete.log_prob_nonzero(scores[item_kind]) + block_logp[:, None]
            candidates += [
                (float(item_logp[layer, i]), block, layer, i)
                for layer in range(dims.num_layers)
                for i in range(sizes[block])
            ]
        elif block_kind in scores:
            candidates += [(float(block_logp[layer]), block, layer, None) for layer in range(dims.num_layers)]
        else:  # nothing gates this block: it always stays
            kept_items[block][:] = True
            used += dims.num_layers * (sizes[block] * item_cost[block] + block_cost)

    candidates.sort(key=lambda candidate: -candidate[0])
    for position, (_, block, layer, item) in enumerate(candidates):
        items = slice(None) if item is None else item
        cost = item_cost[block] * (sizes[block] if item is None else 1)
        if not kept_items[block][layer].any():
            cost += block_cost
        if used + cost <= budget or (position == 0 and used == 0):
            kept_items[block][layer, items] = True
            used += cost

    keep.update(head=kept_items["attention"], unit=kept_items["ffn"])
    keep.update(mha=kept_items["attention"].any(dim=1), ffn=kept_items["ffn"].any(dim=1))
    keep = {kind: keep[kind] for kind in scores}
    values = {kind: hard_concrete.point_estimate(scores[kind]) * keep[kind] for kind in scores}
    return GateValues(values, keep)


def _hidden_keep(scores: Scores, dims: ModelDims) -> tuple[dict[str, torch.Tensor], int]:
    if "hidden" not in scores:
        return {}, dims.hidden_size
    log_alpha = scores["hidden"]
    count = int(round(float(hard_concrete.prob_nonzero(log_alpha).sum())))
    count = min(max(count, 1), dims.hidden_size)
    keep = torch.zeros(dims.hidden_size, dtype=torch.bool)
    keep[torch.argsort(log_alpha, descending=True, stable=True)[:count]] = True
    return {"hidden": keep}, count


def _log_prob(scores: Scores, kind: str, shape: tuple[int, ...]) -> torch.Tensor:
    if kind not in scores:
        return torch.zeros(shape)
    return hard_concrete.log_prob_nonzero(scores[kind])

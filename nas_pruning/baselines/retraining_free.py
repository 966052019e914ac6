"""Retraining-free pruning (Kwon et al. 2022, "A Fast Post-Training Pruning Framework
for Transformers"): prune a fine-tuned model to a budget with a few thousand examples
and no retraining, in three steps.

1. Mask search. Every head and FFN unit has a mask variable m (1 = kept). Removing a
   set of them raises the loss by about 1/2 (1-m)^T F (1-m), F the Fisher information
   of the mask variables (mean over examples of g g^T, g the per-example gradient).
   With F's diagonal only, the cost of a selection is the sum of the pruned entries'
   diagonal Fisher, and the budgeted selection is solved exactly: for each number n
   of kept heads, keep the n heads of highest Fisher and fill the rest of the budget
   with the units of highest Fisher; keep the best n.
2. Mask rearrangement. Per layer, with the numbers of heads and units fixed by the
   search, choose *which* to keep under the layer's full (block-diagonal) Fisher
   block, which sees that removing two correlated masks costs more than the sum of
   their diagonal entries (and two opposite ones less): a greedy choice of the
   pruned set (or the search's, if better under the block), improved by swaps.
3. Mask tuning: layer-wise least squares on the kept masks' real values
   (`nas_pruning.baselines.mask_tuning`), folded into the weights.

The budget is a fraction of the cost of all heads and FFN units of the encoder, the
convention of Kwon et al. (`cost="params"`: their parameters; `cost="flops"`: their
FLOPs at a sequence length). Embeddings and the rest stay, so the `params` column of
the results (ratio of the whole model, embeddings included) is higher than the budget.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from nas_pruning.baselines.data import BaselineData
from nas_pruning.baselines.mask_gradients import MaskGradients, mask_gradients
from nas_pruning.baselines.mask_tuning import LayerFit, tune_masks
from nas_pruning.baselines.results import ResultsTable, structure_columns
from nas_pruning.models import ModelDims, SubNetwork, count_parameters, extract_subnetwork, get_adapter

DEFAULT_BUDGETS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
COSTS = ("params", "flops")


@dataclass(frozen=True)
class MaskCosts:
    """What keeping one head and one FFN unit costs, in parameters or FLOPs."""

    head: float
    unit: float

    @classmethod
    def of(cls, dims: ModelDims, cost: str = "params", seq_len: int = 128) -> "MaskCosts":
        """Costs of `dims`' heads and units.

        cost: "params": a head's query, key, value rows and biases and output columns
            (4 D d + 3 d), a unit's input row, bias and output column (2 D + 1);
            "flops": multiply-adds per sequence of `seq_len` tokens, as in Kwon et al.
            (head: 4 T D d + 2 T^2 d, unit: 2 T D).
        """
        d, D, T = dims.head_size, dims.hidden_size, seq_len
        if cost == "params":
            return cls(head=4 * D * d + 3 * d, unit=2 * D + 1)
        if cost == "flops":
            if seq_len < 1:
                raise ValueError(f"seq_len must be >= 1, got {seq_len}")
            return cls(head=4 * T * D * d + 2 * T * T * d, unit=2 * T * D)
        raise ValueError(f"unknown cost {cost!r}; choose one of {COSTS}")

    def total(self, dims: ModelDims) -> float:
        """Cost of all heads and units of the encoder."""
        return dims.num_layers * (dims.num_heads * self.head + dims.intermediate_size * self.unit)

    def of_subnetwork(self, sub: SubNetwork) -> float:
        return int(sub.head_mask.sum()) * self.head + int(sub.ffn_mask.sum()) * self.unit


@dataclass(frozen=True)
class RetrainingFreeResult:
    """model: the pruned, tuned, extracted model; sub: its structure in the unpruned
    model; fits: the least-squares fit of every tuned block (empty without tuning)."""

    model: nn.Module
    sub: SubNetwork
    fits: list[LayerFit]


@dataclass(frozen=True)
class FisherInformation:
    """Empirical Fisher information of the mask variables (mean over examples of g g^T).

    heads: [L, H, H] and units: [L, I, I], the per-layer blocks of its block diagonal.
    """

    heads: torch.Tensor
    units: torch.Tensor

    @classmethod
    def from_gradients(cls, grads: MaskGradients) -> "FisherInformation":
        """From per-example mask gradients (float64 blocks)."""
        return cls(_blocks(grads.heads), _blocks(grads.units))

    def diagonal(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The diagonal: [L, H] for heads and [L, I] for units."""
        return self.heads.diagonal(dim1=1, dim2=2), self.units.diagonal(dim1=1, dim2=2)


def _blocks(grads: torch.Tensor) -> torch.Tensor:
    g = grads.double().transpose(0, 1)  # [L, N, K]
    return g.transpose(1, 2) @ g / grads.shape[0]


def search_masks(
    head_fisher: torch.Tensor, unit_fisher: torch.Tensor, costs: MaskCosts, budget: float
) -> SubNetwork:
    """The selection of heads and units within `budget` (a fraction of all heads' and
    units' cost) that keeps the most diagonal Fisher information (step 1).

    head_fisher: [L, H] and unit_fisher: [L, I], the diagonal Fisher information.
    """
    if not 0.0 < budget <= 1.0:
        raise ValueError(f"budget must be a fraction in (0, 1] of the heads' and units' cost, got {budget}")
    num_layers, num_heads = head_fisher.shape
    capacity = budget * (head_fisher.numel() * costs.head + unit_fisher.numel() * costs.unit)
    head_order = torch.argsort(head_fisher.flatten(), descending=True, stable=True)
    unit_order = torch.argsort(unit_fisher.flatten(), descending=True, stable=True)
    zero = torch.zeros(1, dtype=torch.float64)
    head_gain = torch.cat([zero, head_fisher.flatten()[head_order].double().cumsum(0)])
    unit_gain = torch.cat([zero, unit_fisher.flatten()[unit_order].double().cumsum(0)])
    kept_heads = torch.arange(head_fisher.numel() + 1, dtype=torch.float64)
    # A tiny slack: a budget of exactly k units must not lose one to round-off.
    room = (capacity - kept_heads * costs.head) / costs.unit + 1e-9
    kept_units = room.clamp(min=0).floor().long().clamp(max=unit_fisher.numel())
    gains = torch.where(room >= 0, head_gain + unit_gain[kept_units], torch.tensor(-math.inf, dtype=torch.float64))
    best = int(torch.argmax(gains))
    heads = torch.zeros(head_fisher.numel(), dtype=torch.bool)
    heads[head_order[:best]] = True
    units = torch.zeros(unit_fisher.numel(), dtype=torch.bool)
    units[unit_order[: int(kept_units[best])]] = True
    sub = SubNetwork(heads.view(num_layers, num_heads), units.view_as(unit_fisher))
    if not sub.kept_layers():
        raise ValueError(f"budget {budget} is too small to keep a single head or unit")
    return sub


def rearrange_masks(sub: SubNetwork, fisher: FisherInformation) -> SubNetwork:
    """Within each layer, the same numbers of heads and units as `sub`, chosen under the
    layer's block of the Fisher information (step 2); never worse than `sub` there."""
    heads = torch.stack([_rearrange(sub.head_mask[i], fisher.heads[i]) for i in range(sub.num_layers)])
    units = torch.stack([_rearrange(sub.ffn_mask[i], fisher.units[i]) for i in range(sub.num_layers)])
    return SubNetwork(heads, units)


def pruning_loss(pruned: torch.Tensor, fisher_block: torch.Tensor) -> float:
    """The Fisher estimate of the loss increase of pruning the masks `pruned` ([K] bool)
    of one layer, up to the factor 1/2: 1_Z^T F 1_Z with F the layer's block [K, K]."""
    return float(fisher_block[pruned][:, pruned].sum())


def _rearrange(kept: torch.Tensor, fisher: torch.Tensor, max_swaps: int | None = None) -> torch.Tensor:
    """The kept mask of one layer: as many pruned as in `kept`, the pruned set Z chosen
    to make 1_Z^T F 1_Z small: a greedy start, then the best improving swaps."""
    size, count = len(kept), int((~kept).sum())
    if count in (0, size):
        return kept
    diagonal = fisher.diagonal()
    # Greedy: add the mask whose removal raises the loss least given those pruned so
    # far, F_ii + 2 (F 1_Z)_i.
    pruned = torch.zeros(size, dtype=torch.bool)
    coupling = torch.zeros(size, dtype=fisher.dtype)  # F 1_Z
    for _ in range(count):
        choice = int(torch.argmin((diagonal + 2 * coupling).masked_fill(pruned, math.inf)))
        pruned[choice] = True
        coupling += fisher[:, choice]
    if pruning_loss(~kept, fisher) < pruning_loss(pruned, fisher):
        pruned = ~kept
        coupling = fisher[:, pruned].sum(dim=1)
    # Swaps: un-prune i, prune j changes the loss by
    # -2 (F 1_Z)_i + F_ii + 2 (F 1_Z)_j - 2 F_ij + F_jj; the greedy start misses
    # pairs that cancel (two masks with opposite gradients).
    for _ in range(max_swaps if max_swaps is not None else size):
        out, into = torch.nonzero(pruned).flatten(), torch.nonzero(~pruned).flatten()
        change = (
            (diagonal[out] - 2 * coupling[out])[:, None]
            + (diagonal[into] + 2 * coupling[into])[None, :]
            - 2 * fisher[out][:, into]
        )
        best = int(torch.argmin(change))
        if change.flatten()[best] >= -1e-12 * max(1.0, float(diagonal.abs().max())):
            break
        i, j = int(out[best // len(into)]), int(into[best % len(into)])
        pruned[i], pruned[j] = False, True
        coupling += fisher[:, j] - fisher[:, i]
    return ~pruned


def prune_retraining_free(
    model: nn.Module,
    budget: float,
    batches: Iterable[dict],
    fisher: FisherInformation | None = None,
    costs: MaskCosts | None = None,
    rearrange: bool = True,
    tune: bool = True,
    progress: bool = False,
) -> RetrainingFreeResult:
    """Prune the fine-tuned `model` (left unchanged) to `budget` without retraining.

    budget: fraction in (0, 1] of the cost of all heads and units to keep.
    batches: sample data (with labels) for the Fisher information and mask tuning;
        must be re-iterable. Kwon et al. use 2048 examples.
    fisher: the Fisher information of the unpruned model's masks on `batches`, to
        share between budgets; computed if None.
    costs: per head / unit costs; default parameters.
    rearrange, tune: run steps 2 and 3 (both on in the paper).
    """
    dims = get_adapter(model).dims(model.config)
    costs = costs or MaskCosts.of(dims)
    if fisher is None:
        fisher = FisherInformation.from_gradients(mask_gradients(model, batches, progress=progress))
    sub = search_masks(*fisher.diagonal(), costs, budget)
    if rearrange:
        sub = rearrange_masks(sub, fisher)
    fits = []
    source = model
    if tune:
        source = copy.deepcopy(model)  # the tuned mask values are folded into its weights
        fits = tune_masks(source, sub, batches, progress=progress)
    return RetrainingFreeResult(extract_subnetwork(source, sub), sub, fits)


def retraining_free(
    model: nn.Module,
    data: BaselineData,
    budgets: Sequence[float] = DEFAULT_BUDGETS,
    cost: str = "params",
    seq_len: int = 128,
    num_examples: int = 2048,
    rearrange: bool = True,
    tune: bool = True,
    results_path: str | os.PathLike | None = None,
    models_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per budget: `model` pruned retraining-free to that budget.

    model: a fine-tuned sequence classifier (left unchanged).
    data: task, training batches (the sample), validation and test batches.
    budgets: fractions of the heads' and units' cost (params or FLOPs) to keep.
    cost: "params" or "flops" (at `seq_len` tokens), see `MaskCosts`.
    num_examples: training examples for the Fisher information and mask tuning.
    rearrange, tune: run mask rearrangement and mask tuning.
    results_path: CSV of the results table (finished budgets are skipped on a rerun).
    models_dir: save every pruned model there (folder `budget{budget}`).
    Columns besides the common ones: budget, cost, cost_ratio (cost kept, in the
    budget's unit), num_heads, num_units, heads and units (per layer, JSON).
    """
    dims = get_adapter(model).dims(model.config)
    costs = MaskCosts.of(dims, cost, seq_len)
    for budget in budgets:
        if not 0.0 < budget <= 1.0:
            raise ValueError(f"budgets must be fractions in (0, 1] of the heads' and units' cost, got {budget}")
    table = ResultsTable("retraining_free", results_path, models_dir)
    todo = [budget for budget in budgets if not table.has("budget", budget)]
    if not todo:
        return table.frame
    full = count_parameters(model)
    batches = data.sample(num_examples)
    fisher = FisherInformation.from_gradients(mask_gradients(model, batches, progress=progress))
    for budget in tqdm(todo, desc="retraining-free pruning", disable=not progress):
        result = prune_retraining_free(model, budget, batches, fisher, costs, rearrange, tune)
        table.add_model(
            result.model, full, data, f"budget{budget}",
            budget=budget, cost=cost, cost_ratio=costs.of_subnetwork(result.sub) / costs.total(dims),
            num_heads=int(result.sub.head_mask.sum()), num_units=int(result.sub.ffn_mask.sum()),
            **structure_columns(result.sub),
        )
    return table.frame

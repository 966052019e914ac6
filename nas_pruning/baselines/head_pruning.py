"""Iterative head pruning (Michel et al. 2019, "Are Sixteen Heads Really Better than One?").

A head's importance is the expected absolute gradient of the loss with respect to a
mask variable on its output, E_x |dL(x)/dm_h|, over training examples, normalised
by its layer's L2 norm (which they found essential for comparing heads across
layers). Each step removes the `heads_per_step` least important of the remaining
heads (10% of all heads by default, as in their experiments) and recomputes the
importance on the network pruned so far. FFN units are kept. Optionally each pruned
model is fine-tuned again before scoring; pruning itself always continues from the
un-retrained masks, as in the paper.
"""

from __future__ import annotations

import math
import os
from typing import Iterable, Iterator

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from nas_pruning.baselines.data import BaselineData
from nas_pruning.baselines.mask_gradients import mask_gradients
from nas_pruning.baselines.results import ResultsTable, structure_columns
from nas_pruning.models import SubNetwork, count_parameters, extract_subnetwork, get_adapter
from nas_pruning.training import TrainingConfig


def head_importance(
    model: nn.Module, batches: Iterable[dict], sub: SubNetwork | None = None, normalize: bool = True
) -> torch.Tensor:
    """Importance [L, H] of every head of `sub` (default: all heads); NaN for pruned heads.

    batches: training examples with `labels` (per-example gradients are taken).
    normalize: divide each layer's scores by their L2 norm over the layer's kept heads.
    """
    dims = get_adapter(model).dims(model.config)
    sub = sub if sub is not None else SubNetwork.full(dims)
    scores = mask_gradients(model, batches, sub).heads.abs().sum(dim=0)
    if normalize:
        norms = scores.norm(dim=1, keepdim=True)
        scores = scores / torch.where(norms > 0, norms, torch.ones_like(norms))
    return scores.masked_fill(~sub.head_mask, math.nan)


def prune_heads(
    model: nn.Module,
    batches: Iterable[dict],
    heads_per_step: int,
    normalize: bool = True,
    start: SubNetwork | None = None,
) -> Iterator[SubNetwork]:
    """The sub-networks after each pruning step, until no head is left.

    start: the sub-network to continue from (default: the whole model); its FFN
        units are kept throughout. `batches` must be re-iterable (a list or loader).
    """
    if heads_per_step < 1:
        raise ValueError(f"heads_per_step must be >= 1, got {heads_per_step}")
    dims = get_adapter(model).dims(model.config)
    sub = start if start is not None else SubNetwork.full(dims)
    while sub.head_mask.any():
        remaining = torch.nonzero(sub.head_mask.flatten()).flatten()
        if len(remaining) <= heads_per_step:
            drop = remaining  # the last step: nothing to rank
        else:
            scores = head_importance(model, batches, sub, normalize).flatten()[remaining]
            drop = remaining[torch.argsort(scores, stable=True)[:heads_per_step]]
        mask = sub.head_mask.flatten().clone()
        mask[drop] = False
        sub = SubNetwork(mask.view_as(sub.head_mask), sub.ffn_mask)
        yield sub


def head_pruning(
    model: nn.Module,
    data: BaselineData,
    heads_per_step: int | None = None,
    num_examples: int = 512,
    normalize: bool = True,
    finetune: TrainingConfig | None = None,
    results_path: str | os.PathLike | None = None,
    models_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per pruning step, from the whole model (step 0) to no heads left.

    model: a fine-tuned sequence classifier (left unchanged).
    data: task, training batches (importance, re-fine-tuning), validation and test batches.
    heads_per_step: heads removed per step; default 10% of all heads (rounded up).
    num_examples: training examples the importance is computed on (the same at every step).
    normalize: per-layer L2 normalisation of the importance.
    finetune: if given, every pruned model is fine-tuned with it before scoring
        (method "head_pruning+finetune"); None scores them as they are ("head_pruning").
    results_path: CSV of the results table; a rerun continues after its last step.
    models_dir: save every pruned model there (folder `step{step}`).
    Columns besides the common ones: step, num_heads (heads kept in all), head_mask
    (one 0/1 string per layer, joined by "|"), heads and units (per layer, JSON).
    """
    table = ResultsTable("head_pruning" + ("+finetune" if finetune else ""), results_path, models_dir)
    dims = get_adapter(model).dims(model.config)
    total_heads = dims.num_layers * dims.num_heads
    heads_per_step = math.ceil(0.1 * total_heads) if heads_per_step is None else heads_per_step
    full = count_parameters(model)
    batches = data.sample(num_examples)

    def record(step: int, sub: SubNetwork) -> None:
        pruned = extract_subnetwork(model, sub)
        if finetune is not None:
            data.finetune(pruned, finetune)
        table.add_model(
            pruned, full, data, f"step{step}",
            step=step, num_heads=int(sub.head_mask.sum()), head_mask=_mask_to_string(sub.head_mask),
            **structure_columns(sub),
        )

    if table.rows:
        last = table.rows[-1]
        step = int(last["step"])
        start = SubNetwork(_mask_from_string(last["head_mask"]), SubNetwork.full(dims).ffn_mask)
    else:
        step, start = 0, SubNetwork.full(dims)
        record(step, start)
    remaining = math.ceil(int(start.head_mask.sum()) / heads_per_step)
    steps = prune_heads(model, batches, heads_per_step, normalize, start)
    for sub in tqdm(steps, total=remaining, desc="head pruning", disable=not progress):
        step += 1
        record(step, sub)
    return table.frame


def _mask_to_string(mask: torch.Tensor) -> str:
    return "|".join("".join("1" if kept else "0" for kept in layer) for layer in mask.tolist())


def _mask_from_string(text: str) -> torch.Tensor:
    return torch.tensor([[c == "1" for c in layer] for layer in text.split("|")])

"""Layer dropping (Sajjad et al., "On the Effect of Dropping Layers of Pre-trained
Transformer Models"): remove the top k encoder layers of a fine-tuned model.

Their best strategy drops the layers closest to the output, keeping the bottom
L - k; k = 0 .. L-1 gives one model per k (at least one layer stays). Each model can
be fine-tuned again for a few epochs, as they do; without it, the rows show what the
remaining layers achieve unchanged.
"""

from __future__ import annotations

import os

import pandas as pd
from torch import nn
from tqdm.auto import tqdm

from nas_pruning.baselines.data import BaselineData
from nas_pruning.baselines.results import ResultsTable
from nas_pruning.models import ModelDims, SubNetwork, count_parameters, extract_subnetwork, get_adapter
from nas_pruning.training import TrainingConfig


def top_layers_dropped(dims: ModelDims, k: int) -> SubNetwork:
    """The sub-network without the top `k` layers (0 <= k < num_layers)."""
    if not 0 <= k < dims.num_layers:
        raise ValueError(f"can drop 0 to {dims.num_layers - 1} of the {dims.num_layers} layers, not {k}")
    kept = dims.num_layers - k
    heads = [dims.num_heads if i < kept else 0 for i in range(dims.num_layers)]
    units = [dims.intermediate_size if i < kept else 0 for i in range(dims.num_layers)]
    return SubNetwork.from_counts(dims, heads, units)


def layer_drop(
    model: nn.Module,
    data: BaselineData,
    finetune: TrainingConfig | None = None,
    results_path: str | os.PathLike | None = None,
    models_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per k = 0 .. L-1: the fine-tuned `model` without its top k layers.

    model: a fine-tuned sequence classifier (left unchanged).
    data: task, training batches (for re-fine-tuning), validation and test batches.
    finetune: if given, every pruned model is fine-tuned with it first
        (method "layer_drop+finetune"); None scores them as they are ("layer_drop").
    results_path: CSV of the results table (resumed if it exists).
    models_dir: save every pruned model there (folder `k{k}`).
    Columns besides the common ones: k (layers dropped), num_layers (layers kept).
    """
    table = ResultsTable("layer_drop" + ("+finetune" if finetune else ""), results_path, models_dir)
    dims = get_adapter(model).dims(model.config)
    full = count_parameters(model)
    for k in tqdm(range(dims.num_layers), desc="layer drop", disable=not progress):
        if table.has("k", k):
            continue
        pruned = extract_subnetwork(model, top_layers_dropped(dims, k))
        if finetune is not None:
            data.finetune(pruned, finetune)
        table.add_model(pruned, full, data, f"k{k}", k=k, num_layers=dims.num_layers - k)
    return table.frame

"""Physical extraction of a sub-network into a standalone model, and exact parameter counts."""

from __future__ import annotations

import functools
import json
import math

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, PretrainedConfig

from nas_pruning.models.adapter import HEADS, HIDDEN, UNITS, ArchitectureAdapter
from nas_pruning.models.loading import classifier_class
from nas_pruning.models.registry import get_adapter
from nas_pruning.models.slicing import hidden_index, index_size, layer_indices, take
from nas_pruning.models.subnetwork import SubNetwork

# Config entries that describe the source model, not the pruned one.
_SOURCE_ONLY_KEYS = ("model_type", "architectures", "auto_map", "transformers_version", "_name_or_path")


def count_parameters(model: nn.Module | PretrainedConfig, sub: SubNetwork | None = None) -> int:
    """Parameters of `model` restricted to `sub` (all of them if sub is None).

    Equals `sum(p.numel() for p in extract_subnetwork(model, sub).parameters())`
    exactly: both walk the same per-parameter slicing rules. Accepts a model or
    its config (then counted on a weightless meta-device copy).
    """
    if isinstance(model, PretrainedConfig):
        model = _meta_model(model.to_json_string())
    if sub is None:
        return sum(p.numel() for p in model.parameters())
    adapter = get_adapter(model)
    dims = adapter.dims(model.config)
    sub.check_fits(dims)
    per_layer = [
        {role: index_size(index) for role, index in layer_indices(sub, dims, i).items()}
        for i in range(dims.num_layers)
    ]
    outer = {HIDDEN: index_size(hidden_index(sub, dims))}
    total = 0
    for name, param in model.named_parameters():
        layer, block, roles = adapter.parameter_role(name)
        sizes = outer if layer is None else per_layer[layer]
        if layer is not None and _block_removed(block, sizes):
            continue
        total += math.prod(sizes[role] if role else param.shape[d] for d, role in enumerate(roles))
    return total


def parameter_ratio(model: nn.Module | PretrainedConfig, sub: SubNetwork) -> float:
    """Parameters of the sub-network over those of the full model (embeddings included)."""
    return count_parameters(model, sub) / count_parameters(model)


def extract_subnetwork(model: nn.Module, sub: SubNetwork) -> nn.Module:
    """A physically smaller standalone copy of `model` restricted to `sub`.

    The result is a Hugging Face `PreTrainedModel` (per-layer sizes in its config)
    whose `save_pretrained` folder loads with plain transformers
    (`AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True)`),
    and whose outputs equal `select_subnetwork(model, sub)`'s.
    """
    adapter = get_adapter(model)
    dims = adapter.dims(model.config)
    sub.check_fits(dims)
    kept = sub.kept_layers()
    if not kept:
        raise ValueError(f"{sub} keeps no layer: a sub-network needs at least one head or FFN unit")
    pruned = adapter.pruned_model_class(_pruned_config(adapter, model.config, sub, kept))
    source = model.state_dict()
    params = dict(pruned.named_parameters())
    state = {}
    for name, tensor in pruned.state_dict().items():
        if name not in params:  # buffers (position ids): copy when shapes agree
            old = source.get(name)
            state[name] = old.clone() if old is not None and old.shape == tensor.shape else tensor
            continue
        layer, _, roles = adapter.parameter_role(name)
        if layer is None:
            indices, old_name = {HIDDEN: hidden_index(sub, dims)}, name
        else:
            indices = layer_indices(sub, dims, kept[layer])
            old_name = adapter.layer_param_name(kept[layer], name.split(f".layer.{layer}.", 1)[1])
        value = source[old_name]
        for dim, role in enumerate(roles):
            if role:
                value = take(value, dim, indices[role])
        state[name] = value.detach().clone()
    pruned.load_state_dict(state)
    first = next(model.parameters())
    return pruned.to(device=first.device, dtype=first.dtype).train(model.training)


def _block_removed(block: str, sizes: dict[str, int]) -> bool:
    return sizes[HEADS if block == "attention" else UNITS] == 0


def _pruned_config(adapter: ArchitectureAdapter, config: PretrainedConfig, sub: SubNetwork, kept: list[int]):
    values = {k: v for k, v in config.to_dict().items() if k not in _SOURCE_ONLY_KEYS}
    dims = adapter.dims(config)
    heads, units = sub.heads_per_layer(), sub.units_per_layer()
    values.update(
        num_hidden_layers=len(kept),
        hidden_size=index_size(hidden_index(sub, dims)),
        layer_heads=[heads[i] for i in kept],
        layer_units=[units[i] for i in kept],
        attention_head_size=dims.head_size,
    )
    return adapter.pruned_config_class(**values)


@functools.lru_cache(maxsize=8)
def _meta_model(config_json: str) -> nn.Module:
    """A weightless model built from a config, to read parameter names and shapes."""
    values = json.loads(config_json)
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    with torch.device("meta"):
        cls = classifier_class(config)
        return cls.from_config(config) if cls is AutoModelForSequenceClassification else cls(config)

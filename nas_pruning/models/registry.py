"""Maps a model (or its config) to the adapter of its architecture family."""

from __future__ import annotations

from nas_pruning.models.adapter import ArchitectureAdapter
from nas_pruning.models.bert import BertAdapter
from nas_pruning.models.roberta import RobertaAdapter

ADAPTERS: tuple[ArchitectureAdapter, ...] = (BertAdapter(), RobertaAdapter())


def supported_model_types() -> list[str]:
    return [t for adapter in ADAPTERS for t in adapter.model_types]


def is_pruned(config) -> bool:
    """Whether `config` describes a model pruned by nas_pruning (it has per-layer head counts)."""
    return getattr(config, "layer_heads", None) is not None


def get_adapter(model_or_config) -> ArchitectureAdapter:
    """The adapter for a Hugging Face model or config; ValueError if unsupported."""
    config = getattr(model_or_config, "config", model_or_config)
    if is_pruned(config):
        raise ValueError(
            "this model was already pruned by nas_pruning (per-layer sizes in its config); "
            "search spaces and super-networks start from an unpruned BERT/RoBERTa checkpoint"
        )
    model_type = getattr(config, "model_type", None)
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter
    raise ValueError(
        f"unsupported architecture {model_type!r}; nas_pruning supports model types "
        f"{supported_model_types()} (Hugging Face sequence classifiers of those families)"
    )

"""Maps a model (or its config) to the adapter of its architecture family."""

from __future__ import annotations

from nas_pruning.models.adapter import ArchitectureAdapter
from nas_pruning.models.bert import BertAdapter
from nas_pruning.models.roberta import RobertaAdapter

ADAPTERS: tuple[ArchitectureAdapter, ...] = (BertAdapter(), RobertaAdapter())


def supported_model_types() -> list[str]:
    return [t for adapter in ADAPTERS for t in adapter.model_types]


def get_adapter(model_or_config) -> ArchitectureAdapter:
    """The adapter for a Hugging Face model or config; ValueError if unsupported."""
    config = getattr(model_or_config, "config", model_or_config)
    model_type = getattr(config, "model_type", None)
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter
    raise ValueError(
        f"unsupported architecture {model_type!r}; nas_pruning supports model types "
        f"{supported_model_types()} (Hugging Face sequence classifiers of those families)"
    )

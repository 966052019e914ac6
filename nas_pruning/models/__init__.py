"""Architectures, sub-networks, extraction and exact parameter counts."""

from nas_pruning.models.dims import ModelDims
from nas_pruning.models.extraction import count_parameters, extract_subnetwork, parameter_ratio
from nas_pruning.models.loading import DEFAULT_MODEL_NAME, default_model_path, load_model, load_tokenizer
from nas_pruning.models.registry import get_adapter, supported_model_types
from nas_pruning.models.selection import select_subnetwork
from nas_pruning.models.subnetwork import SubNetwork

__all__ = [
    "DEFAULT_MODEL_NAME",
    "ModelDims",
    "SubNetwork",
    "count_parameters",
    "default_model_path",
    "extract_subnetwork",
    "get_adapter",
    "load_model",
    "load_tokenizer",
    "parameter_ratio",
    "select_subnetwork",
    "supported_model_types",
]

"""The interface between nas_pruning and one architecture family.

An adapter says where a model keeps its encoder layers and what every parameter's
dimensions mean (hidden, heads, units, or untouched), which is all that selection,
extraction and parameter counting need. Supporting a new family (DistilBERT, say)
is one new module with one `ArchitectureAdapter` subclass, registered in
`nas_pruning.models.registry`.
"""

from __future__ import annotations

import re
from typing import ClassVar

from torch import nn

from nas_pruning.models.dims import ModelDims

# What one dimension of a parameter indexes.
HIDDEN, HEADS, UNITS = "hidden", "heads", "units"
Roles = tuple  # one entry per tensor dimension: HIDDEN | HEADS | UNITS | None (kept whole)

# Parameters inside an encoder layer, shared by BERT-like layouts:
# name suffix -> (block, roles). Blocks: "attention" or "ffn".
BERT_LAYER_PARAMS: dict[str, tuple[str, Roles]] = {
    "attention.self.query.weight": ("attention", (HEADS, HIDDEN)),
    "attention.self.query.bias": ("attention", (HEADS,)),
    "attention.self.key.weight": ("attention", (HEADS, HIDDEN)),
    "attention.self.key.bias": ("attention", (HEADS,)),
    "attention.self.value.weight": ("attention", (HEADS, HIDDEN)),
    "attention.self.value.bias": ("attention", (HEADS,)),
    "attention.output.dense.weight": ("attention", (HIDDEN, HEADS)),
    "attention.output.dense.bias": ("attention", (HIDDEN,)),
    "attention.output.LayerNorm.weight": ("attention", (HIDDEN,)),
    "attention.output.LayerNorm.bias": ("attention", (HIDDEN,)),
    "intermediate.dense.weight": ("ffn", (UNITS, HIDDEN)),
    "intermediate.dense.bias": ("ffn", (UNITS,)),
    "output.dense.weight": ("ffn", (HIDDEN, UNITS)),
    "output.dense.bias": ("ffn", (HIDDEN,)),
    "output.LayerNorm.weight": ("ffn", (HIDDEN,)),
    "output.LayerNorm.bias": ("ffn", (HIDDEN,)),
}


class ArchitectureAdapter:
    """Base class for a BERT-like family whose layers follow BERT's module names.

    Subclasses set:
      model_types: the Hugging Face `config.model_type` values the adapter serves,
      base_prefix: attribute of the sequence classifier holding the encoder model,
      outer_params: regex -> roles for every parameter outside the encoder layers,
      pruned_config_class / pruned_model_class: the standalone pruned classes,
      model_class: the sequence classifier honouring `config.classifier_pooling`.
    """

    model_types: ClassVar[tuple[str, ...]] = ()
    base_prefix: ClassVar[str] = ""
    outer_params: ClassVar[dict[str, Roles]] = {}
    pruned_config_class: ClassVar[type] = None
    pruned_model_class: ClassVar[type] = None
    model_class: ClassVar[type] = None

    def __init__(self) -> None:
        self._layer_re = re.compile(rf"^{self.base_prefix}\.encoder\.layer\.(\d+)\.(.+)$")
        self._outer = [(re.compile(pattern), roles) for pattern, roles in self.outer_params.items()]

    def dims(self, config) -> ModelDims:
        return ModelDims.from_config(config)

    def base_model(self, model: nn.Module) -> nn.Module:
        """The encoder model under the task head (`model.bert`, `model.roberta`): embeddings and encoder."""
        return getattr(model, self.base_prefix)

    def encoder(self, model: nn.Module) -> nn.Module:
        return self.base_model(model).encoder

    def layers(self, model: nn.Module) -> nn.ModuleList:
        return self.encoder(model).layer

    def parameter_role(self, name: str) -> tuple[int | None, str | None, Roles]:
        """Where parameter `name` lives: (layer index or None, block or None, roles per dim)."""
        match = self._layer_re.match(name)
        if match:
            suffix = match.group(2)
            if suffix not in BERT_LAYER_PARAMS:
                raise ValueError(f"{type(self).__name__}: unknown encoder-layer parameter {name!r}")
            block, roles = BERT_LAYER_PARAMS[suffix]
            return int(match.group(1)), block, roles
        for pattern, roles in self._outer:
            if pattern.fullmatch(name):
                return None, None, roles
        raise ValueError(f"{type(self).__name__}: unknown parameter {name!r}; cannot tell how pruning slices it")

    def layer_param_name(self, layer: int, suffix: str) -> str:
        return f"{self.base_prefix}.encoder.layer.{layer}.{suffix}"

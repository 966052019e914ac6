"""The four search spaces of the paper as Syne Tune config spaces.

All integer ranges are inclusive; L layers, H heads, I FFN units per layer.

- SMALL: `num_layers` in [1, L], `num_heads` in [1, H], `num_units` in [1, I]; keep the
  first `num_layers` layers and in each the first `num_heads` heads / `num_units` units.
- MEDIUM: per layer i, `num_heads_i` in [0, H] and `num_units_i` in [0, I] (first k);
  a layer with 0 heads and 0 units is dropped.
- LAYER: per layer i, `layer_i` in {0, 1}: keep or drop the whole layer.
- LARGE: one binary choice per head (`head_{i}_{h}`) and per FFN unit (`unit_{i}_{u}`).

"First k" means first in the model's stored order; `nas_pruning.models.importance`
can reorder heads and units once so that the first are the most important.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from syne_tune.config_space import Domain, randint

from nas_pruning.models import ModelDims, SubNetwork, get_adapter, parameter_ratio

Config = dict[str, Any]


class SearchSpace(ABC):
    """A family of sub-networks of one model, exposed as a Syne Tune config space.

    model_config: the Hugging Face config of the model the sub-networks come from.
    Attributes: `config_space` (name -> syne_tune Domain, pass it to any scheduler),
    `dims` (the model's sizes).
    """

    name: ClassVar[str] = ""

    def __init__(self, model_config) -> None:
        self.model_config = model_config
        self.dims: ModelDims = get_adapter(model_config).dims(model_config)
        self.config_space: dict[str, Domain] = self._domains()

    @abstractmethod
    def _domains(self) -> dict[str, Domain]:
        """The config space: hyperparameter name -> domain."""

    @abstractmethod
    def _subnetwork(self, config: Config) -> SubNetwork:
        """The sub-network of a valid config (possibly empty)."""

    @abstractmethod
    def _fraction(self, fraction: float) -> Config:
        """The config keeping about `fraction` of every choice (first-k), at least one of each."""

    # -- public -------------------------------------------------------------
    def to_subnetwork(self, config: Config) -> SubNetwork:
        """The sub-network a config describes; ValueError if the config is not in this space."""
        self.validate(config)
        sub = self._subnetwork(config)
        if not sub.kept_layers():
            raise ValueError(f"{self.name} config keeps no layer at all; a sub-network needs at least one head or unit")
        return sub

    def validate(self, config: Config) -> None:
        missing = sorted(set(self.config_space) - set(config))
        unknown = sorted(set(config) - set(self.config_space))
        if missing or unknown:
            raise ValueError(
                f"config does not belong to the {self.name!r} search space of this model "
                f"({self.dims.num_layers} layers, {self.dims.num_heads} heads, {self.dims.intermediate_size} units): "
                f"missing {_short(missing)}, unknown {_short(unknown)}"
            )
        for key, domain in self.config_space.items():
            value = config[key]
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or not domain.is_valid(value):
                raise ValueError(
                    f"{key}={value!r} is outside the {self.name!r} search space of this model: "
                    f"accepted integers in {domain.domain_str} (inclusive)"
                )

    def largest(self) -> Config:
        return self._fraction(1.0)

    def smallest(self) -> Config:
        return self._fraction(0.0)

    def midpoint(self) -> Config:
        return self._fraction(0.5)

    def initial_design(self) -> list[Config]:
        """Largest, smallest and midpoint: every optimizer starts from these."""
        return [self.largest(), self.smallest(), self.midpoint()]

    def sample(self, random_state: np.random.RandomState | int | None = None) -> Config:
        """A uniformly random config that keeps at least one layer."""
        rng = random_state if isinstance(random_state, np.random.RandomState) else np.random.RandomState(random_state)
        while True:
            config = {key: _item(domain.sample(random_state=rng)) for key, domain in self.config_space.items()}
            if self._subnetwork(config).kept_layers():
                return config

    def parameter_ratio(self, config: Config) -> float:
        """Parameters of the config's sub-network over the full model's."""
        return parameter_ratio(self.model_config, self.to_subnetwork(config))


class SmallSearchSpace(SearchSpace):
    name = "small"

    def _domains(self) -> dict[str, Domain]:
        d = self.dims
        return {
            "num_layers": randint(1, d.num_layers),
            "num_heads": randint(1, d.num_heads),
            "num_units": randint(1, d.intermediate_size),
        }

    def _subnetwork(self, config: Config) -> SubNetwork:
        d = self.dims
        kept = range(config["num_layers"])
        heads = [config["num_heads"] if i in kept else 0 for i in range(d.num_layers)]
        units = [config["num_units"] if i in kept else 0 for i in range(d.num_layers)]
        return SubNetwork.from_counts(d, heads, units)

    def _fraction(self, fraction: float) -> Config:
        d = self.dims
        return {
            "num_layers": _at_least_one(fraction, d.num_layers),
            "num_heads": _at_least_one(fraction, d.num_heads),
            "num_units": _at_least_one(fraction, d.intermediate_size),
        }


class MediumSearchSpace(SearchSpace):
    name = "medium"

    def _domains(self) -> dict[str, Domain]:
        d = self.dims
        space = {}
        for i in range(d.num_layers):
            space[f"num_heads_{i}"] = randint(0, d.num_heads)
            space[f"num_units_{i}"] = randint(0, d.intermediate_size)
        return space

    def _subnetwork(self, config: Config) -> SubNetwork:
        layers = range(self.dims.num_layers)
        return SubNetwork.from_counts(
            self.dims, [config[f"num_heads_{i}"] for i in layers], [config[f"num_units_{i}"] for i in layers]
        )

    def _fraction(self, fraction: float) -> Config:
        d = self.dims
        if fraction == 0.0:  # one head and one unit in the first layer: the smallest non-empty network
            config = {key: 0 for key in self.config_space}
            config.update(num_heads_0=1, num_units_0=1)
            return config
        config = {}
        for i in range(d.num_layers):
            config[f"num_heads_{i}"] = _at_least_one(fraction, d.num_heads)
            config[f"num_units_{i}"] = _at_least_one(fraction, d.intermediate_size)
        return config


class LayerSearchSpace(SearchSpace):
    name = "layer"

    def _domains(self) -> dict[str, Domain]:
        return {f"layer_{i}": randint(0, 1) for i in range(self.dims.num_layers)}

    def _subnetwork(self, config: Config) -> SubNetwork:
        d = self.dims
        keep = [config[f"layer_{i}"] for i in range(d.num_layers)]
        return SubNetwork.from_counts(d, [d.num_heads * k for k in keep], [d.intermediate_size * k for k in keep])

    def _fraction(self, fraction: float) -> Config:
        kept = _at_least_one(fraction, self.dims.num_layers)
        return {f"layer_{i}": int(i < kept) for i in range(self.dims.num_layers)}


class LargeSearchSpace(SearchSpace):
    name = "large"

    def _domains(self) -> dict[str, Domain]:
        d = self.dims
        space = {f"head_{i}_{h}": randint(0, 1) for i in range(d.num_layers) for h in range(d.num_heads)}
        space.update({f"unit_{i}_{u}": randint(0, 1) for i in range(d.num_layers) for u in range(d.intermediate_size)})
        return space

    def _subnetwork(self, config: Config) -> SubNetwork:
        d = self.dims
        heads = [[config[f"head_{i}_{h}"] for h in range(d.num_heads)] for i in range(d.num_layers)]
        units = [[config[f"unit_{i}_{u}"] for u in range(d.intermediate_size)] for i in range(d.num_layers)]
        return SubNetwork(torch.tensor(heads, dtype=torch.bool), torch.tensor(units, dtype=torch.bool))

    def _fraction(self, fraction: float) -> Config:
        d = self.dims
        if fraction == 0.0:
            config = {key: 0 for key in self.config_space}
            config.update(head_0_0=1, unit_0_0=1)
            return config
        heads, units = _at_least_one(fraction, d.num_heads), _at_least_one(fraction, d.intermediate_size)
        config = {f"head_{i}_{h}": int(h < heads) for i in range(d.num_layers) for h in range(d.num_heads)}
        config.update(
            {f"unit_{i}_{u}": int(u < units) for i in range(d.num_layers) for u in range(d.intermediate_size)}
        )
        return config


SEARCH_SPACES: dict[str, type[SearchSpace]] = {
    cls.name: cls for cls in (SmallSearchSpace, MediumSearchSpace, LargeSearchSpace, LayerSearchSpace)
}


def get_search_space(name: str, model_config) -> SearchSpace:
    """The search space `name` ("small" | "medium" | "large" | "layer") over `model_config`'s model."""
    key = name.lower()
    if key not in SEARCH_SPACES:
        raise ValueError(f"unknown search space {name!r}; choose one of {sorted(SEARCH_SPACES)}")
    return SEARCH_SPACES[key](model_config)


def _at_least_one(fraction: float, total: int) -> int:
    return max(1, math.ceil(fraction * total))


def _item(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _short(keys: list[str], limit: int = 5) -> str:
    if not keys:
        return "none"
    return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")

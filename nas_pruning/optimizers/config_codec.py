"""`ConfigCodec`: the one place that knows how the searchers key, sample, mutate and encode
configurations of a Syne Tune config space (the unit-cube encoding is Syne Tune's own)."""

from typing import Any

import numpy as np
from syne_tune.config_space import Categorical, Domain, FiniteRange, Integer
from syne_tune.optimizer.schedulers.searchers.utils import make_hyperparameter_ranges

Config = dict[str, Any]


class ConfigCodec:
    """How the searchers see a Syne Tune config space.

    Only non-constant entries (Syne Tune ``Domain`` objects) are
    hyperparameters; constants are added back by the scheduler.

    :param config_space: Syne Tune config space.
    """

    def __init__(self, config_space: Config):
        self.domains = {name: value for name, value in config_space.items() if isinstance(value, Domain)}
        # Syne Tune's own [0, 1] encoding: scaled numbers, rounding for
        # integers, one-hot (argmax on decoding) for categorical values.
        self._ranges = make_hyperparameter_ranges(config_space)

    @property
    def dim(self) -> int:
        """Number of coordinates of the unit-cube encoding."""
        return self._ranges.ndarray_size

    def key(self, config: Config) -> tuple:
        """Hashable identity of a configuration (its hyperparameter values)."""
        return tuple(domain.cast(config[name]) for name, domain in self.domains.items())

    def encode(self, config: Config) -> np.ndarray:
        """Point in [0, 1]^dim for ``config``."""
        return self._ranges.to_ndarray(config)

    def decode(self, x: np.ndarray) -> Config:
        """Configuration for a point of [0, 1]^dim."""
        config = self._ranges.from_ndarray(np.clip(x, 0.0, 1.0))
        return {name: domain.cast(config[name]) for name, domain in self.domains.items()}

    def sample(self, rng: np.random.RandomState) -> Config:
        """Configuration drawn from each domain's own distribution."""
        return {name: domain.sample(random_state=rng) for name, domain in self.domains.items()}

    def sample_many(self, size: int, rng: np.random.RandomState) -> list[Config]:
        """`size` configurations drawn at once (each domain draws its `size` values in one call)."""
        draws = {name: domain.sample(size=size, random_state=rng) for name, domain in self.domains.items()}
        return [
            {name: domain.cast(value) for (name, domain), value in zip(self.domains.items(), values)}
            for values in zip(*draws.values())
        ]

    def mutate(self, config: Config, rng: np.random.RandomState) -> Config:
        """Copy of ``config`` with one hyperparameter set to another value of its domain."""
        mutable = [name for name, domain in self.domains.items() if len(domain) != 1]
        child = {name: config[name] for name in self.domains}
        if mutable:
            name = mutable[rng.randint(len(mutable))]
            child[name] = _other_value(self.domains[name], config[name], rng)
        return child


def _other_value(domain: Domain, value: Any, rng: np.random.RandomState) -> Any:
    """A value of ``domain`` different from ``value``, uniform over the others
    for finite domains, from the domain's sampler for continuous ones."""
    if isinstance(domain, (Categorical, FiniteRange)):
        values = list(domain.categories if isinstance(domain, Categorical) else domain.values)
        others = [v for v in values if v != value] or values
        return others[rng.randint(len(others))]
    if isinstance(domain, Integer):
        draw = rng.randint(domain.lower, domain.upper)  # one of the other upper - lower values
        return draw + 1 if draw >= value else draw
    for _ in range(100):
        draw = domain.sample(random_state=rng)
        if draw != value:
            break
    return draw

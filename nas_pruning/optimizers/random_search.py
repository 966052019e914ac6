"""`RandomSearcher`: seeded uniform sampling for any number of objectives (Syne Tune 0.16's
multi-objective random searcher draws from NumPy's global state)."""

import numpy as np
from syne_tune.optimizer.schedulers.searchers.searcher import BaseSearcher

from nas_pruning.optimizers.config_codec import Config, ConfigCodec


class RandomSearcher(BaseSearcher):
    """Uniform random search for any number of objectives, seeded.

    :param config_space: Syne Tune config space.
    :param points_to_evaluate: Configurations suggested first, in order.
    :param random_seed: Seed of the sampler.
    """

    def __init__(
        self, config_space: Config, points_to_evaluate: list[Config] | None = None, random_seed: int | None = None
    ):
        super().__init__(config_space, points_to_evaluate=points_to_evaluate, random_seed=random_seed)
        self._codec = ConfigCodec(config_space)
        self._rng = np.random.RandomState(self.random_seed)

    def suggest(self, **kwargs) -> Config | None:
        initial = self._next_points_to_evaluate()
        return initial if initial is not None else self._codec.sample(self._rng)

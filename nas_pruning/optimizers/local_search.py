"""`LocalSearch`: multi-objective local search around the Pareto archive of evaluated configurations."""

import numpy as np
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from syne_tune.optimizer.schedulers.searchers.searcher import BaseSearcher

from nas_pruning.optimizers.config_codec import Config, ConfigCodec


class LocalSearch(BaseSearcher):
    """Multi-objective local search around a Pareto archive.

    After the initial design, each suggestion takes a random member of the
    current Pareto front of evaluated configurations and changes one
    hyperparameter to another value of its domain. A candidate that was
    suggested before is redrawn up to ``max_retries`` times, then a random
    configuration is used. Before any result has arrived, suggestions are
    random.

    :param config_space: Syne Tune config space.
    :param points_to_evaluate: Configurations suggested first, in order.
    :param random_seed: Seed of the sampler.
    :param max_retries: Attempts to find a configuration not suggested before.
    """

    def __init__(
        self,
        config_space: Config,
        points_to_evaluate: list[Config] | None = None,
        random_seed: int | None = None,
        max_retries: int = 20,
    ):
        super().__init__(config_space, points_to_evaluate=points_to_evaluate, random_seed=random_seed)
        self._codec = ConfigCodec(config_space)
        self._rng = np.random.RandomState(self.random_seed)
        self._max_retries = max_retries
        self._suggested: set[tuple] = set()
        self._results: dict[tuple, tuple[Config, np.ndarray]] = {}

    def suggest(self, **kwargs) -> Config | None:
        config = self._next_points_to_evaluate()
        if config is None:
            config = self._propose()
        self._suggested.add(self._codec.key(config))
        return config

    def on_trial_complete(self, trial_id: int, config: Config, metrics: list[float]):
        key = self._codec.key(config)
        self._results[key] = (config, np.asarray(metrics, dtype=float))
        self._suggested.add(key)  # also results told without a suggestion (a resumed search's)

    def _propose(self) -> Config:
        archive = self._archive()
        for _ in range(self._max_retries):
            if archive:
                candidate = self._codec.mutate(archive[self._rng.randint(len(archive))], self._rng)
            else:
                candidate = self._codec.sample(self._rng)
            if self._codec.key(candidate) not in self._suggested:
                return candidate
        return self._codec.sample(self._rng)

    def _archive(self) -> list[Config]:
        if not self._results:
            return []
        configs, objectives = zip(*self._results.values())
        front = NonDominatedSorting().do(np.vstack(objectives), only_non_dominated_front=True)
        return [configs[i] for i in front]

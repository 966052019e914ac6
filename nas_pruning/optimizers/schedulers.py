"""The Syne Tune schedulers the registry builds around a searcher: `MultiObjectiveScheduler` (single fidelity)
and `InitialDesignMOASHA` (multi-fidelity)."""

from collections.abc import Sequence

from syne_tune.backend.trial_status import Trial
from syne_tune.config_space import postprocess_config, remove_constant_and_cast
from syne_tune.optimizer.scheduler import TrialSuggestion
from syne_tune.optimizer.schedulers.multiobjective.moasha import MOASHA
from syne_tune.optimizer.schedulers.searchers.searcher import BaseSearcher
from syne_tune.optimizer.schedulers.single_fidelity_scheduler import SingleFidelityScheduler

from nas_pruning.optimizers.config_codec import Config
from nas_pruning.optimizers.random_search import RandomSearcher
from nas_pruning.optimizers.trial_aware import TrialAwareSearcher


class MultiObjectiveScheduler(SingleFidelityScheduler):
    """Syne Tune's single-fidelity scheduler, minimising all ``metrics``, that
    also tells a :class:`~nas_pruning.optimizers.trial_aware.TrialAwareSearcher` which
    trial runs which suggestion.

    :param config_space: Syne Tune config space.
    :param metrics: Names of the reported metrics to minimise.
    :param searcher: The searcher proposing configurations.
    :param random_seed: Seed of the scheduler.
    """

    def __init__(
        self, config_space: Config, metrics: Sequence[str], searcher: BaseSearcher, random_seed: int | None = None
    ):
        super().__init__(
            config_space, metrics=list(metrics), do_minimize=True, searcher=searcher, random_seed=random_seed
        )

    def on_trial_add(self, trial: Trial):
        if isinstance(self.searcher, TrialAwareSearcher):
            self.searcher.on_trial_add(trial.trial_id, remove_constant_and_cast(trial.config, self.config_space))


class InitialDesignMOASHA(MOASHA):
    """Syne Tune's MOASHA, which in 0.16 ignores ``points_to_evaluate`` and
    samples from NumPy's global random state: this one suggests
    ``points_to_evaluate`` first, then seeded random configurations.

    :param config_space: Syne Tune config space.
    :param metrics: Names of the reported metrics to minimise.
    :param points_to_evaluate: Configurations suggested first, in order.
    :param kwargs: MOASHA's arguments (``time_attr``, ``max_t``, ...).
    """

    def __init__(
        self, config_space: Config, metrics: Sequence[str], points_to_evaluate: list[Config] | None = None, **kwargs
    ):
        super().__init__(config_space, metrics=list(metrics), do_minimize=True, **kwargs)
        self._sampler = RandomSearcher(config_space, points_to_evaluate, random_seed=self.random_seed)

    def suggest(self) -> TrialSuggestion | None:
        return TrialSuggestion.start_suggestion(postprocess_config(self._sampler.suggest(), self.config_space))

"""`SeededMOREA`: Syne Tune's multi-objective regularized evolution with its random phase seeded."""

from syne_tune.optimizer.schedulers.multiobjective.multi_objective_regularized_evolution import (
    MultiObjectiveRegularizedEvolution,
)

from nas_pruning.optimizers.config_codec import Config, ConfigCodec


class SeededMOREA(MultiObjectiveRegularizedEvolution):
    """Multi-objective regularized evolution whose every draw follows ``random_seed``.

    Until the population holds ``population_size`` members (100 by default, so
    the whole of a short search) Syne Tune samples new configurations with
    ``Domain.sample()`` from NumPy's global state, ignoring the seed; here they
    come from the searcher's own random state. Mutation is Syne Tune's, already seeded.
    """

    def __init__(self, config_space: Config, **kwargs):
        super().__init__(config_space, **kwargs)
        self._codec = ConfigCodec(config_space)

    def suggest(self, **kwargs) -> Config | None:
        if self.points_to_evaluate or len(self.population) >= self.population_size:
            return super().suggest(**kwargs)
        return self._codec.sample(self.random_state)

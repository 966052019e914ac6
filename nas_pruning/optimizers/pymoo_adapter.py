"""`PymooSearcher`: any pymoo algorithm (NSGA-II, SMS-EMOA, MOEA/D, ...) as a Syne Tune searcher,
driven through pymoo's ask/tell interface."""

import copy
import logging
from dataclasses import dataclass

import numpy as np
from pymoo.core.algorithm import Algorithm
from pymoo.core.evaluator import Evaluator
from pymoo.core.individual import Individual
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.termination import NoTermination
from pymoo.problems.static import StaticProblem

from nas_pruning.optimizers.config_codec import Config, ConfigCodec
from nas_pruning.optimizers.trial_aware import TrialAwareSearcher

logger = logging.getLogger(__name__)


@dataclass
class _Slot:
    """One individual of the pymoo generation being evaluated."""

    config: Config
    key: tuple
    dispatched: bool = False
    objectives: np.ndarray | None = None
    failed: bool = False

    @property
    def finished(self) -> bool:
        return self.failed or self.objectives is not None


class PymooSearcher(TrialAwareSearcher):
    """Runs a pymoo algorithm through its ask/tell interface.

    pymoo optimises over [0, 1]^d (:class:`ConfigCodec` decodes each point into
    a configuration). Individuals of the asked generation are suggested one at
    a time; the generation is told to pymoo once all of its results are in.
    The initial design is suggested before anything else and replaces the
    first individuals of the first generation (as many as fit). Results are
    cached by configuration: an individual whose configuration was evaluated
    before is not evaluated again. A failed trial counts as worse than every
    observed result (observed maximum + 1 in each objective) and its
    configuration is not retried. While the whole generation is out but
    results are missing, suggestions are random configurations (not told to
    pymoo), so parallel workers never wait. Loop-wise algorithms such as
    MOEA/D ask one individual at a time after their initial population.

    :param config_space: Syne Tune config space.
    :param algorithm: A pymoo algorithm object (copied, then set up here).
    :param num_objectives: Number of metrics the scheduler passes.
    :param points_to_evaluate: Configurations suggested first, in order.
    :param random_seed: Seed of pymoo and of the random fallback.
    :param max_asks: Generations asked in one :meth:`suggest` whose members
        were all evaluated before, before falling back to a random configuration.
    """

    def __init__(
        self,
        config_space: Config,
        algorithm: Algorithm,
        num_objectives: int = 2,
        points_to_evaluate: list[Config] | None = None,
        random_seed: int | None = None,
        max_asks: int = 10,
    ):
        super().__init__(config_space, points_to_evaluate=points_to_evaluate, random_seed=random_seed)
        self._codec = ConfigCodec(config_space)
        self._rng = np.random.RandomState(self.random_seed)
        self._problem = Problem(n_var=self._codec.dim, n_obj=num_objectives, xl=0.0, xu=1.0)
        self._algorithm = copy.deepcopy(algorithm)
        self._algorithm.setup(self._problem, termination=NoTermination(), seed=self.random_seed, verbose=False)
        self._max_asks = max_asks
        self._initial_design = list(self.points_to_evaluate)
        self._infills: Population | Individual | None = None
        self._slots: list[_Slot] = []
        self._observed: dict[tuple, np.ndarray | None] = {}  # None: the configuration failed
        self._trial_keys: dict[int, tuple] = {}

    def suggest(self, **kwargs) -> Config | None:
        config = self._next_points_to_evaluate()
        if config is not None:
            return config
        for _ in range(self._max_asks):
            slot = self._next_slot()
            if slot is not None:
                slot.dispatched = True
                return slot.config
            if not all(slot.finished for slot in self._slots):
                break  # results outstanding: do not block the worker
            self._next_generation()
        return self._codec.sample(self._rng)

    def on_trial_add(self, trial_id: int, config: Config) -> None:
        self._trial_keys[trial_id] = self._codec.key(config)

    def on_trial_complete(self, trial_id: int, config: Config, metrics: list[float]):
        self._trial_keys.pop(trial_id, None)
        self._record(self._codec.key(config), np.asarray(metrics, dtype=float))

    def on_trial_error(self, trial_id: int):
        key = self._trial_keys.pop(trial_id, None)
        if key is None:
            logger.warning(
                "trial %s failed but its configuration is unknown (use nas_pruning.optimizers.make_scheduler)", trial_id
            )
            return
        self._record(key, None)

    def _record(self, key: tuple, objectives: np.ndarray | None) -> None:
        self._observed[key] = objectives
        for slot in self._slots:
            if slot.key == key and not slot.finished:
                self._fill(slot)

    def _fill(self, slot: _Slot) -> None:
        result = self._observed[slot.key]
        slot.failed, slot.objectives = result is None, result

    def _next_slot(self) -> _Slot | None:
        """The next individual to evaluate; duplicates of configurations that
        were evaluated or are running are resolved without a new trial."""
        running = {slot.key for slot in self._slots if slot.dispatched and not slot.finished}
        for slot in self._slots:
            if slot.dispatched or slot.finished:
                continue
            if slot.key in self._observed:
                self._fill(slot)
            elif slot.key in running:
                slot.dispatched = True
            else:
                return slot
        return None

    def _next_generation(self) -> None:
        if self._infills is not None:
            self._tell()
        self._infills = self._algorithm.ask()
        batch = _as_population(self._infills)
        x = batch.get("X")
        initial, self._initial_design = self._initial_design[: len(batch)], []
        for i, config in enumerate(initial):
            x[i] = self._codec.encode(config)
        batch.set("X", x)
        configs = initial + [self._codec.decode(row) for row in x[len(initial) :]]
        self._slots = [_Slot(config, self._codec.key(config)) for config in configs]
        for slot in self._slots[: len(initial)]:
            slot.dispatched = True  # already suggested as points_to_evaluate
            if slot.key in self._observed:
                self._fill(slot)

    def _tell(self) -> None:
        valid = [value for value in self._observed.values() if value is not None]
        penalty = np.max(valid, axis=0) + 1.0 if valid else np.zeros(self._problem.n_obj)
        objectives = np.vstack([penalty if slot.failed else slot.objectives for slot in self._slots])
        Evaluator().eval(StaticProblem(self._problem, F=objectives), _as_population(self._infills))
        self._algorithm.tell(infills=self._infills)


def _as_population(infills: Population | Individual) -> Population:
    # Loop-wise algorithms (MOEA/D) ask for single individuals.
    return Population.create(infills) if isinstance(infills, Individual) else infills

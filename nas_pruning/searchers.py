"""Multi-objective Syne Tune searchers that Syne Tune 0.16 lacks or gets wrong.

All searchers minimise every objective (the scheduler passes metrics already
signed for minimisation) and evaluate their ``points_to_evaluate`` first.

* :class:`RandomSearcher`: seeded uniform sampling (Syne Tune's
  multi-objective random searcher draws from the global NumPy state).
* :class:`SeededMOREA`: Syne Tune's multi-objective regularized evolution with
  its random phase seeded (Syne Tune's draws it from the global NumPy state).
* :class:`LocalSearch`: Pareto archive, mutate one hyperparameter.
* :class:`PymooSearcher`: any pymoo algorithm (NSGA-II, SMS-EMOA, MOEA/D,
  ...) driven through its ask/tell interface.
* :class:`Float64EHVI`: Syne Tune's EHVI with its dtype and bookkeeping bugs
  worked around.

:class:`ConfigCodec` is the one place that knows how configurations are
keyed, sampled, mutated and encoded into the unit cube.
"""

import copy
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pymoo.core.algorithm import Algorithm
from pymoo.core.evaluator import Evaluator
from pymoo.core.individual import Individual
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.termination import NoTermination
from pymoo.problems.static import StaticProblem
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from syne_tune.config_space import Categorical, Domain, FiniteRange, Integer
from syne_tune.optimizer.schedulers.multiobjective.multi_objective_regularized_evolution import (
    MultiObjectiveRegularizedEvolution,
)
from syne_tune.optimizer.schedulers.multiobjective.expected_hyper_volume_improvement import (
    ExpectedHyperVolumeImprovement,
)
from syne_tune.optimizer.schedulers.searchers.searcher import BaseSearcher
from syne_tune.optimizer.schedulers.searchers.utils import make_hyperparameter_ranges

logger = logging.getLogger(__name__)

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


class TrialAwareSearcher(BaseSearcher):
    """A searcher that wants to know which trial runs which of its suggestions.

    Syne Tune 0.16 tells searchers the trial id only with results, and
    ``on_trial_error`` gets the id alone; the scheduler of
    :mod:`nas_pruning.optimizers` calls :meth:`on_trial_add` so that such
    searchers can tell which suggestion failed.
    """

    def on_trial_add(self, trial_id: int, config: Config) -> None:
        """``config`` (hyperparameters only) now runs as trial ``trial_id``."""


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


class Float64EHVI(ExpectedHyperVolumeImprovement):
    """Syne Tune 0.16's EHVI searcher, made to work.

    Workarounds, each a small override:

    * dtype: Syne Tune builds the GP in float64 (``double_precision=True``)
      but creates inputs, outcomes and the reference point with
      ``torch.Tensor(...)`` / ``torch.ones``, i.e. in the default float32.
      BoTorch's qLogEHVI kernel then fails with ``RuntimeError: expected
      scalar type Double but found Float``. :meth:`suggest` therefore runs
      with torch's default dtype set to float64, restored afterwards.
    * reference point: Syne Tune fixes it at 2.0 in BoTorch's maximisation
      space (negated objectives), where no point in [0, 1] ever improves on it,
      so every candidate has the same (zero) improvement. :meth:`objectives`
      rescales each objective so that its worst observed value maps to -2.1
      and its best to -3.1: the fixed reference point then lies 10% of the
      observed range beyond the worst point (BoTorch's usual choice). The map
      is monotone per objective, so dominance is unchanged.
    * bookkeeping: observations are kept in completion order but
      configurations in suggestion order, which pairs the wrong rows when
      trials finish out of order; and a failed trial stays pending forever.
      Both lists are taken in suggestion order here, and a failed trial is
      dropped. Like Syne Tune, trial ids are assumed to follow suggestion
      order (true under :class:`syne_tune.Tuner`).
    """

    def suggest(self) -> Config | None:
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            return super().suggest()
        finally:
            torch.set_default_dtype(previous)

    def on_trial_error(self, trial_id: int):
        self.pending_trials.discard(trial_id)

    def objectives(self) -> np.ndarray:
        raw = np.array(
            [self.trial_observations[trial] for trial in self.trial_configs if trial in self.trial_observations],
            dtype=float,
        )
        if len(raw) == 0:
            return raw
        best, worst = raw.min(axis=0), raw.max(axis=0)
        width = np.where(worst > best, worst - best, 1.0)
        return (raw - worst) / width - 2.1

    def _configs_with_results(self) -> list[Config]:
        return [config for trial, config in self.trial_configs.items() if trial in self.trial_observations]

"""Optimizers: the one registry from an optimizer name to a Syne Tune scheduler, and the searchers behind it.

``make_scheduler(method, config_space, ...)`` accepts a name of
:data:`OPTIMIZERS`, a ready Syne Tune ``TrialScheduler`` (returned unchanged)
or any pymoo algorithm object (driven by
:class:`~nas_pruning.optimizers.pymoo_adapter.PymooSearcher`). All objectives are
minimised; every method evaluates ``points_to_evaluate`` first.

========================  =====================================================
``random``                seeded multi-objective random search (Syne Tune
                          0.16's ``RandomSearch`` asserts a single metric)
``morea``                 Syne Tune's multi-objective regularized evolution
                          (its defaults ``population_size=100``,
                          ``sample_size=10``: the first 100 are random)
``nsga2``                 pymoo's NSGA-II (``pop_size`` defaults to 20)
``ehvi``                  BoTorch's analytic EHVI on one GP per objective
                          (needs ``botorch``), maximised over
                          ``num_candidates=500`` sampled unseen configs; GP
                          hyperparameters refit every ``refit_every=10``
                          results (conditioned on new ones in between);
                          qLogEHVI (``mc_samples=64``) while trials pend
``local_search``          Pareto-archive local search
``moasha``                Syne Tune's MOASHA for multi-fidelity trials
                          (``max_t`` required; ``time_attr="epoch"``,
                          ``grace_period=1``, ``reduction_factor=3``)
========================  =====================================================

Extra keyword arguments go to the searcher (to MOASHA for ``moasha``, to
pymoo's ``NSGA2`` for ``nsga2``, to :class:`~nas_pruning.optimizers.pymoo_adapter.PymooSearcher`
for a pymoo algorithm object).

The searchers Syne Tune 0.16 lacks or gets wrong, one module each (all minimise every objective and
evaluate their ``points_to_evaluate`` first): ``random_search`` (``RandomSearcher``, seeded),
``morea`` (``SeededMOREA``), ``local_search`` (``LocalSearch``, around the Pareto archive),
``pymoo_adapter`` (``PymooSearcher``, any pymoo algorithm through ask/tell), ``ehvi`` (``Float64EHVI``).
``config_codec.ConfigCodec`` is how they key, sample, mutate and encode configurations;
``schedulers`` holds the schedulers they run in, ``trial_aware`` the searchers told which trial runs
which suggestion.
"""

import importlib.util
from collections.abc import Callable, Sequence

from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.algorithm import Algorithm
from syne_tune.optimizer.scheduler import TrialScheduler

from nas_pruning.optimizers.config_codec import Config
from nas_pruning.optimizers.ehvi import Float64EHVI
from nas_pruning.optimizers.local_search import LocalSearch
from nas_pruning.optimizers.morea import SeededMOREA
from nas_pruning.optimizers.pymoo_adapter import PymooSearcher
from nas_pruning.optimizers.random_search import RandomSearcher
from nas_pruning.optimizers.schedulers import InitialDesignMOASHA, MultiObjectiveScheduler


def _random(config_space, metrics, points_to_evaluate, random_seed, **kwargs) -> TrialScheduler:
    searcher = RandomSearcher(config_space, points_to_evaluate, random_seed, **kwargs)
    return MultiObjectiveScheduler(config_space, metrics, searcher, random_seed)


def _morea(config_space, metrics, points_to_evaluate, random_seed, **kwargs) -> TrialScheduler:
    searcher = SeededMOREA(
        config_space, points_to_evaluate=points_to_evaluate, random_seed=random_seed, **kwargs
    )
    return MultiObjectiveScheduler(config_space, metrics, searcher, random_seed)


def _nsga2(config_space, metrics, points_to_evaluate, random_seed, pop_size: int = 20, **kwargs) -> TrialScheduler:
    return _pymoo(NSGA2(pop_size=pop_size, **kwargs), config_space, metrics, points_to_evaluate, random_seed)


def _pymoo(algorithm, config_space, metrics, points_to_evaluate, random_seed, **kwargs) -> TrialScheduler:
    searcher = PymooSearcher(config_space, algorithm, len(metrics), points_to_evaluate, random_seed, **kwargs)
    return MultiObjectiveScheduler(config_space, metrics, searcher, random_seed)


def _ehvi(config_space, metrics, points_to_evaluate, random_seed, **kwargs) -> TrialScheduler:
    if importlib.util.find_spec("botorch") is None:
        raise ImportError("the 'ehvi' optimizer needs BoTorch: pip install botorch")
    searcher = Float64EHVI(config_space, points_to_evaluate=points_to_evaluate, random_seed=random_seed, **kwargs)
    return MultiObjectiveScheduler(config_space, metrics, searcher, random_seed)


def _local_search(config_space, metrics, points_to_evaluate, random_seed, **kwargs) -> TrialScheduler:
    searcher = LocalSearch(config_space, points_to_evaluate, random_seed, **kwargs)
    return MultiObjectiveScheduler(config_space, metrics, searcher, random_seed)


def _moasha(config_space, metrics, points_to_evaluate, random_seed, **kwargs) -> TrialScheduler:
    if "max_t" not in kwargs:
        raise ValueError("the 'moasha' optimizer needs max_t, the largest value of time_attr (epochs)")
    settings = {"time_attr": "epoch", "grace_period": 1, "reduction_factor": 3, **kwargs}
    return InitialDesignMOASHA(config_space, metrics, points_to_evaluate, random_seed=random_seed, **settings)


#: Optimizer name -> factory ``(config_space, metrics, points_to_evaluate, random_seed, **kwargs) -> TrialScheduler``.
OPTIMIZERS: dict[str, Callable[..., TrialScheduler]] = {
    "random": _random,
    "morea": _morea,
    "nsga2": _nsga2,
    "ehvi": _ehvi,
    "local_search": _local_search,
    "moasha": _moasha,
}


def make_scheduler(
    method: str | TrialScheduler | Algorithm,
    config_space: Config,
    metrics: Sequence[str] = ("error", "params"),
    points_to_evaluate: list[Config] | None = None,
    random_seed: int = 0,
    **kwargs,
) -> TrialScheduler:
    """A Syne Tune scheduler minimising ``metrics`` over ``config_space``.

    :param method: A name of :data:`OPTIMIZERS`, a Syne Tune scheduler
        (returned unchanged) or a pymoo algorithm object such as
        ``NSGA2(pop_size=10)``.
    :param config_space: Syne Tune config space.
    :param metrics: Reported metrics to minimise.
    :param points_to_evaluate: Initial design, evaluated first in this order.
    :param random_seed: Seed of the scheduler and its searcher.
    :param kwargs: Method-specific settings, see the module docstring.
    """
    if isinstance(method, TrialScheduler):
        return method
    if isinstance(method, Algorithm):
        return _pymoo(method, config_space, list(metrics), points_to_evaluate, random_seed, **kwargs)
    if not (isinstance(method, str) and method in OPTIMIZERS):
        raise ValueError(
            f"unknown optimizer {method!r}; known names: {', '.join(OPTIMIZERS)} "
            "(or pass a Syne Tune TrialScheduler or a pymoo Algorithm)"
        )
    return OPTIMIZERS[method](config_space, list(metrics), points_to_evaluate, random_seed, **kwargs)

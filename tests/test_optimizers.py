import datetime
import importlib.util

import numpy as np
import pandas as pd
import pytest
from pymoo.algorithms.moo.moead import MOEAD
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.algorithms.moo.sms import SMSEMOA
from pymoo.util.ref_dirs import get_reference_directions
from syne_tune.backend.trial_status import Trial
from syne_tune.config_space import Domain, choice, randint, uniform
from syne_tune.optimizer.baselines import RandomSearch
from syne_tune.optimizer.scheduler import SchedulerDecision

from nas_pruning.optimizers import OPTIMIZERS, make_scheduler
from nas_pruning.pareto import hypervolume, pareto_front

SPACE = {"layers": randint(1, 12), "act": choice(["relu", "gelu", "tanh"]), "width": uniform(0.0, 1.0), "seq_len": 128}
INITIAL = [
    {"layers": 12, "act": "relu", "width": 1.0, "seq_len": 128},
    {"layers": 1, "act": "relu", "width": 0.0, "seq_len": 128},
    {"layers": 6, "act": "gelu", "width": 0.5, "seq_len": 128},
]
SINGLE_FIDELITY = [name for name in OPTIMIZERS if name != "moasha"]
FAST_SETTINGS = {
    "nsga2": {"pop_size": 10},
    "ehvi": {"num_candidates": 50, "mc_samples": 16},
}
HAS_BOTORCH = importlib.util.find_spec("botorch") is not None


def toy(config, epoch=None):
    """Two conflicting objectives: bigger models have lower error."""
    size = config["layers"] / 12 * (0.3 + 0.7 * config["width"])
    penalty = {"relu": 0.0, "gelu": 0.05, "tanh": 0.15}[config["act"]]
    error = min(1.0, 0.8 * (1 - size) ** 2 + penalty)
    if epoch is not None:
        error = min(1.0, error + 0.3 / epoch)
    return {"error": error, "params": size}


def run(scheduler, num_trials, fail=lambda trial_id: False):
    """Drive a scheduler as syne_tune.Tuner does, one trial at a time."""
    configs, points = [], []
    for trial_id in range(num_trials):
        suggestion = scheduler.suggest()
        trial = Trial(trial_id=trial_id, config=suggestion.config, creation_time=datetime.datetime.now())
        scheduler.on_trial_add(trial)
        configs.append(suggestion.config)
        if fail(trial_id):
            scheduler.on_trial_error(trial)
            continue
        result = toy(suggestion.config)
        scheduler.on_trial_result(trial, result)
        scheduler.on_trial_complete(trial, result)
        points.append([result["error"], result["params"]])
    return configs, np.array(points)


def assert_in_space(config):
    assert set(config) == set(SPACE)
    for name, domain in SPACE.items():
        assert domain.is_valid(config[name]) if isinstance(domain, Domain) else config[name] == domain


def make(name, **kwargs):
    if name == "ehvi" and not HAS_BOTORCH:
        pytest.skip("botorch is not installed")
    settings = {**FAST_SETTINGS.get(name, {}), **kwargs}
    return make_scheduler(name, SPACE, points_to_evaluate=INITIAL, random_seed=1, **settings)


@pytest.mark.parametrize("name", SINGLE_FIDELITY)
def test_methods_start_with_the_initial_design_and_stay_in_the_space(name):
    configs, points = run(make(name), 8 if name == "ehvi" else 30)
    assert configs[: len(INITIAL)] == INITIAL
    for config in configs:
        assert_in_space(config)
    assert hypervolume(points) >= hypervolume(points[: len(INITIAL)])


@pytest.mark.parametrize("name", [name for name in SINGLE_FIDELITY if name != "ehvi"])
def test_the_same_seed_gives_the_same_search_whatever_the_global_random_state(name):
    np.random.seed(0)
    first, _ = run(make(name), 15)
    np.random.seed(1)
    second, _ = run(make(name), 15)
    assert first == second


@pytest.mark.parametrize("name", ["nsga2", "local_search"])
def test_custom_searchers_improve_on_the_initial_design(name):
    _, points = run(make(name), 30)
    assert hypervolume(points) > hypervolume(points[: len(INITIAL)]) + 0.1


@pytest.mark.parametrize("name", SINGLE_FIDELITY)
def test_failed_trials_do_not_break_the_searchers(name):
    fails = lambda trial_id: trial_id % 4 == 1  # noqa: E731
    configs, points = run(make(name), 8 if name == "ehvi" else 24, fail=fails)
    for config in configs:
        assert_in_space(config)
    assert len(points) == sum(not fails(trial_id) for trial_id in range(len(configs)))


@pytest.mark.parametrize(
    "algorithm",
    [
        NSGA2(pop_size=6),
        SMSEMOA(pop_size=6),
        MOEAD(get_reference_directions("uniform", 2, n_partitions=5), n_neighbors=3),
    ],
    ids=["nsga2", "sms-emoa", "moead"],
)
def test_pymoo_algorithm_objects_work_in_place_of_a_name(algorithm):
    scheduler = make_scheduler(algorithm, SPACE, points_to_evaluate=INITIAL, random_seed=0)
    configs, points = run(scheduler, 20, fail=lambda trial_id: trial_id == 7)
    assert configs[: len(INITIAL)] == INITIAL
    for config in configs:
        assert_in_space(config)
    assert hypervolume(points) > hypervolume(points[: len(INITIAL)])
    assert not algorithm.is_initialized  # the caller's object is left untouched


def test_unknown_names_are_refused_with_the_known_ones():
    with pytest.raises(ValueError) as error:
        make_scheduler("bayesian", SPACE)
    for name in OPTIMIZERS:
        assert name in str(error.value)
    with pytest.raises(ValueError):
        make_scheduler(42, SPACE)


def test_a_ready_scheduler_is_returned_unchanged():
    scheduler = RandomSearch(SPACE, metrics=["error"])
    assert make_scheduler(scheduler, SPACE) is scheduler


def test_ehvi_asks_for_botorch_when_missing(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(ImportError, match="pip install botorch"):
        make_scheduler("ehvi", SPACE)


def test_moasha_needs_max_t():
    with pytest.raises(ValueError, match="max_t"):
        make_scheduler("moasha", SPACE)


def test_moasha_stops_poor_trials_early():
    max_t = 9
    scheduler = make_scheduler("moasha", SPACE, points_to_evaluate=INITIAL, random_seed=0, max_t=max_t)
    configs, epochs_run = [], []
    for trial_id in range(20):
        suggestion = scheduler.suggest()
        trial = Trial(trial_id=trial_id, config=suggestion.config, creation_time=datetime.datetime.now())
        scheduler.on_trial_add(trial)
        configs.append(suggestion.config)
        for epoch in range(1, max_t + 1):
            result = {**toy(suggestion.config, epoch), "epoch": epoch}
            if scheduler.on_trial_result(trial, result) == SchedulerDecision.STOP:
                break
        scheduler.on_trial_complete(trial, result)
        epochs_run.append(epoch)
    assert configs[: len(INITIAL)] == INITIAL
    for config in configs:
        assert_in_space(config)
    assert min(epochs_run) < max_t and max(epochs_run) == max_t


def toy_trial(layers, act, width, seq_len):
    """Trial function for PythonBackend: runs in a fresh process, so imports are local."""
    from syne_tune import Reporter

    size = layers / 12 * (0.3 + 0.7 * width)
    Reporter()(error=0.8 * (1 - size) ** 2 + (0.1 if act != "relu" else 0.0), params=size)


def test_a_custom_searcher_runs_under_the_syne_tune_tuner(tmp_path, monkeypatch):
    from syne_tune import StoppingCriterion, Tuner
    from syne_tune.backend import PythonBackend
    from syne_tune.experiments import load_experiment

    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path))
    scheduler = make_scheduler("nsga2", SPACE, points_to_evaluate=INITIAL, random_seed=0, pop_size=4)
    tuner = Tuner(
        trial_backend=PythonBackend(toy_trial, SPACE),
        scheduler=scheduler,
        stop_criterion=StoppingCriterion(max_num_trials_finished=5),
        n_workers=2,
        sleep_time=0.1,
    )
    tuner.run()  # also dill-pickles the scheduler (save_tuner)
    results = load_experiment(tuner.name).results
    first = results.sort_values("trial_id").groupby("trial_id").head(1).head(len(INITIAL))
    assert first["config_layers"].tolist() == [config["layers"] for config in INITIAL]
    assert results["trial_id"].nunique() >= 5
    front = pareto_front(results)
    assert not front.empty and hypervolume(results) > 0


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_minimises_three_objectives(name):
    """error, params and latency (here: a cost that depends on the activation and the layers)."""
    settings = {"max_t": 1} if name == "moasha" else {}
    scheduler = make(name, metrics=("error", "params", "latency"), **settings)
    points = []
    for trial_id in range(12):
        suggestion = scheduler.suggest()
        assert_in_space(suggestion.config)
        trial = Trial(trial_id=trial_id, config=suggestion.config, creation_time=datetime.datetime.now())
        scheduler.on_trial_add(trial)
        config = suggestion.config
        result = {**toy(config), "latency": config["layers"] * {"relu": 1.0, "gelu": 1.2, "tanh": 1.5}[config["act"]]}
        scheduler.on_trial_result(trial, {**result, "epoch": 1})
        scheduler.on_trial_complete(trial, {**result, "epoch": 1})
        points.append([result["error"], result["params"], result["latency"]])
    front = pareto_front(pd.DataFrame(points, columns=["error", "params", "latency"]), ("error", "params", "latency"))
    assert 1 <= len(front) <= 12

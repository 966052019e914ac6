import numpy as np
import pytest
import torch
from pymoo.algorithms.moo.nsga2 import NSGA2
from syne_tune.config_space import Domain, FiniteRange, choice, finrange, loguniform, ordinal, randint, uniform

from nas_pruning.optimizers.config_codec import ConfigCodec
from nas_pruning.optimizers.ehvi import Float64EHVI
from nas_pruning.optimizers.local_search import LocalSearch
from nas_pruning.optimizers.pymoo_adapter import PymooSearcher
from nas_pruning.optimizers.random_search import RandomSearcher

SPACE = {
    "layers": randint(1, 12),
    "act": choice(["relu", "gelu", "tanh"]),
    "width": uniform(0.0, 1.0),
    "lr": loguniform(1e-5, 1e-1),
    "bits": finrange(2.0, 8.0, 4),
    "size": ordinal([16, 32, 64]),
    "flag": choice([True, False]),
    "epochs": 3,
}


def objectives(config):
    size = config["layers"] / 12
    return [(1 - size) ** 2, size]


def assert_in_space(config, space):
    for name, domain in space.items():
        if isinstance(domain, FiniteRange):  # has no is_valid in Syne Tune 0.16
            assert config[name] in domain.values, (name, config[name])
        elif isinstance(domain, Domain):
            assert domain.is_valid(config[name]), (name, config[name])


def test_codec_round_trip_and_keys():
    codec = ConfigCodec(SPACE)
    rng = np.random.RandomState(0)
    for _ in range(20):
        config = codec.sample(rng)
        assert "epochs" not in config
        assert_in_space(config, SPACE)
        x = codec.encode(config)
        assert x.shape == (codec.dim,) and np.all((x >= 0) & (x <= 1))
        decoded = codec.decode(x)
        assert codec.key(decoded) == pytest.approx(codec.key(config))
        assert codec.key({**config, "epochs": 3, "layers": np.int64(config["layers"])}) == codec.key(config)
    for x in np.random.RandomState(1).uniform(-0.1, 1.1, size=(20, codec.dim)):
        assert_in_space(codec.decode(x), SPACE)


def test_codec_mutates_exactly_one_hyperparameter():
    codec = ConfigCodec(SPACE)
    rng = np.random.RandomState(0)
    parent = codec.sample(rng)
    changed = set()
    for _ in range(200):
        child = codec.mutate(parent, rng)
        assert_in_space(child, SPACE)
        diff = [name for name in child if child[name] != parent[name]]
        assert len(diff) == 1
        changed.update(diff)
    assert changed == set(codec.domains)


def test_random_searcher_is_seeded_and_starts_with_initial_design():
    initial = [{"layers": 12, "act": "relu"}]
    space = {"layers": randint(1, 12), "act": choice(["relu", "gelu"])}
    first = RandomSearcher(space, initial, random_seed=3)
    second = RandomSearcher(space, initial, random_seed=3)
    runs = [[searcher.suggest() for _ in range(10)] for searcher in (first, second)]
    assert runs[0] == runs[1]
    assert runs[0][0] == initial[0]


def test_local_search_mutates_the_archive_without_repeats():
    space = {"layers": randint(1, 12), "act": choice(["relu", "gelu", "tanh"]), "heads": randint(0, 9)}
    initial = [{"layers": 12, "act": "relu", "heads": 9}, {"layers": 1, "act": "relu", "heads": 0}]
    searcher = LocalSearch(space, initial, random_seed=0)
    codec = ConfigCodec(space)
    evaluated = []
    for trial_id in range(25):
        config = searcher.suggest()
        if trial_id >= len(initial):
            distances = [sum(config[k] != old[k] for k in space) for old in evaluated]
            assert min(distances) == 1
        searcher.on_trial_complete(trial_id, config, objectives(config))
        evaluated.append(config)
    assert [evaluated[0], evaluated[1]] == initial
    assert len({codec.key(config) for config in evaluated}) == len(evaluated)


def test_local_search_falls_back_to_random_when_the_space_is_exhausted():
    space = {"act": choice(["relu", "gelu"])}
    searcher = LocalSearch(space, [{"act": "relu"}], random_seed=0, max_retries=3)
    for trial_id in range(5):
        config = searcher.suggest()
        assert config["act"] in ("relu", "gelu")
        searcher.on_trial_complete(trial_id, config, [0.5, 0.5])


def drive(searcher, num_trials, fail=lambda trial_id: False, workers=1):
    """Tuner-like loop with ``workers`` trials in flight; returns suggestions."""
    suggestions, running = [], []
    for trial_id in range(num_trials):
        config = searcher.suggest()
        suggestions.append(config)
        searcher.on_trial_add(trial_id, config)
        running.append((trial_id, config))
        if len(running) == workers or trial_id == num_trials - 1:
            for done_id, done_config in running[::-1]:  # finish out of order
                if fail(done_id):
                    searcher.on_trial_error(done_id)
                else:
                    searcher.on_trial_complete(done_id, done_config, objectives(done_config))
            running = []
    return suggestions


def test_pymoo_searcher_puts_the_initial_design_into_the_first_generation():
    space = {"layers": randint(1, 12), "act": choice(["relu", "gelu"])}
    initial = [{"layers": 12, "act": "relu"}, {"layers": 1, "act": "gelu"}]
    searcher = PymooSearcher(space, NSGA2(pop_size=4), points_to_evaluate=initial, random_seed=0)
    suggestions = drive(searcher, 4)
    assert suggestions[:2] == initial
    searcher.suggest()  # tells the first generation, asks the second
    told = [searcher._codec.decode(x) for x in searcher._algorithm.pop.get("X")]
    assert all(config in told for config in initial)
    assert sorted(searcher._algorithm.pop.get("F").tolist()) == sorted(objectives(config) for config in suggestions)


@pytest.mark.parametrize("workers", [1, 3])
def test_pymoo_searcher_survives_failures_and_parallel_workers(workers):
    space = {"layers": randint(1, 12), "act": choice(["relu", "gelu"]), "width": uniform(0, 1)}
    searcher = PymooSearcher(space, NSGA2(pop_size=5), random_seed=0)
    suggestions = drive(searcher, 40, fail=lambda trial_id: trial_id % 4 == 1, workers=workers)
    for config in suggestions:
        assert_in_space(config, space)
    assert searcher._algorithm.n_iter >= 4


def test_pymoo_searcher_does_not_reevaluate_known_configs():
    space = {"act": choice(["relu", "gelu"]), "layers": randint(1, 2)}  # 4 configs
    searcher = PymooSearcher(space, NSGA2(pop_size=8), random_seed=0)
    suggestions = drive(searcher, 12)
    codec = ConfigCodec(space)
    assert len({codec.key(config) for config in suggestions[:4]}) == 4
    assert searcher._algorithm.n_iter >= 3


@pytest.fixture
def ehvi_space():
    pytest.importorskip("botorch")
    return {"layers": randint(1, 12), "width": uniform(0.0, 1.0)}


def test_ehvi_pairs_configs_and_results_when_trials_finish_out_of_order(ehvi_space):
    initial = [{"layers": n, "width": 0.5} for n in (3, 12, 7)]
    searcher = Float64EHVI(ehvi_space, points_to_evaluate=initial, random_seed=0)
    for trial_id in range(3):
        searcher.suggest()
    for trial_id in (2, 0, 1):
        searcher.on_trial_complete(trial_id, initial[trial_id], objectives(initial[trial_id]))
    layers = [config["layers"] for config in searcher._configs_with_results()]
    params_order = np.argsort(searcher.objectives()[:, 1])
    assert [layers[i] for i in params_order] == [3, 7, 12]
    # every point lies beyond the reference point 2 of BoTorch's maximisation space
    assert np.all(-searcher.objectives() >= 2.1 - 1e-9)


def test_ehvi_suggests_in_float64_and_restores_the_dtype(ehvi_space):
    searcher = Float64EHVI(
        ehvi_space,
        random_seed=0,
        num_init_random=2,
        num_candidates=20,
    )
    for trial_id in range(4):
        config = searcher.suggest()
        assert_in_space(config, ehvi_space)
        assert torch.get_default_dtype() == torch.float32
        if trial_id == 1:
            searcher.on_trial_error(trial_id)
            assert trial_id not in searcher.pending_trials
        else:
            searcher.on_trial_complete(trial_id, config, objectives(config))


def drive_ehvi(space, num_trials, **settings):
    """Suggestions of a seeded EHVI searcher told `objectives` of each, and the searcher."""
    searcher = Float64EHVI(space, random_seed=3, **settings)
    suggestions = []
    for trial_id in range(num_trials):
        config = searcher.suggest()
        suggestions.append(config)
        searcher.on_trial_complete(trial_id, config, objectives(config))
    return suggestions, searcher


def test_ehvi_is_reproducible_never_repeats_and_refits_every_k_results(ehvi_space, monkeypatch):
    from nas_pruning.optimizers import ehvi

    fits = []

    def counting_fit(mll, **kwargs):
        fits.append(len(mll.model.models[0].train_targets))
        return fit(mll, **kwargs)

    fit = ehvi.fit_gpytorch_mll
    monkeypatch.setattr(ehvi, "fit_gpytorch_mll", counting_fit)
    space = {"layers": randint(1, 12), "heads": randint(1, 4)}  # 48 configs
    first, searcher = drive_ehvi(space, 16, num_candidates=30, refit_every=4, mc_samples=8)
    second, _ = drive_ehvi(space, 16, num_candidates=30, refit_every=4, mc_samples=8)
    assert first == second
    codec = ConfigCodec(space)
    assert len({codec.key(config) for config in first}) == 16
    # GP hyperparameters fitted on the first 3 results (num_init_random), then at 7, 11, 15: conditioned between
    assert fits == [3, 7, 11, 15] * 2


def test_ehvi_rejects_bad_settings(ehvi_space):
    with pytest.raises(ValueError, match="num_candidates, refit_every and mc_samples >= 1"):
        Float64EHVI(ehvi_space, refit_every=0)

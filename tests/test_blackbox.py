"""The search space as a Syne Tune blackbox: tabulate, reload, query; surrogate answers; agreement with
the live evaluator and with a live search. A tiny random STS-B super-network: its sub-networks' Spearman
correlations differ, so errors are not all equal."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_STSB_VALIDATION as VALIDATION
from conftest import tiny_model
from syne_tune.blackbox_repository.blackbox_tabular import deserialize

from nas_pruning.blackbox import load_tabulated, space_filling_design
from nas_pruning.cli import main
from nas_pruning.optimizer_benchmark import simulate
from nas_pruning.experiments.weight_sharing import front_configs, prepare_evaluation
from nas_pruning.search_spaces import get_search_space
from nas_pruning.supernet import load_supernet


def test_tabulate_reload_and_query(tiny_stsb):
    blackbox = load_tabulated(tiny_stsb["blackbox"])
    table = blackbox.dataframe()
    search = front_configs(pd.read_csv(tiny_stsb["search"] / "results.csv"))
    meta = blackbox.metadata
    design = meta["design"]
    assert design["initial_design"] == 3 and design["space_filling"] == 24
    assert design[f"search:{tiny_stsb['search']}"] == len(search) >= 20  # the Tuner may finish one more
    assert len(table) == design["tabulated"] and 24 <= len(table) <= 3 + 24 + len(search)
    assert not table[list(blackbox.configuration_space)].duplicated().any()
    assert all(blackbox.is_tabulated(config) for config in search + blackbox.space.initial_design())
    assert blackbox.objectives_names == ["error", "params", "eval_time"]
    assert table["error"].nunique() > 1 and (table["eval_time"] > 0).all() and (table["params"] <= 1).all()

    # Syne Tune reads the folder as it wrote it; the readable copy holds the same values.
    (tabular,) = deserialize(str(tiny_stsb["blackbox"])).values()
    assert tabular.objectives_evaluations.dtype == np.float64
    csv = pd.read_csv(tiny_stsb["blackbox"] / "table.csv")
    assert csv["error"].to_numpy() == pytest.approx(table["error"].to_numpy(), abs=1e-15)
    for row in table.head(5).to_dict("records"):
        config = {name: row[name] for name in blackbox.configuration_space}
        values = blackbox.objective_function(config, fidelity=1)
        assert values == {name: row[name] for name in blackbox.objectives_names}

    # The metadata: task, metric, yardsticks, the reference point at the trivial predictor.
    assert meta["task"] == "stsb" and meta["metric"] == "spearman" and meta["search_space"] == "small"
    marks = blackbox.yardsticks
    assert marks.trivial_validation == 0 and marks.trivial_test == 0  # a constant has no rank correlation
    assert blackbox.reference_point() == pytest.approx((1 - marks.trivial_validation, 1.0))
    assert blackbox.reference_point("fixed") == (1.0, 1.0)
    assert meta["hypervolume_reference_point"] == pytest.approx(blackbox.reference_point())
    # The yardsticks are the ones the live search computed (one computation, shared code).
    live_summary = json.loads((tiny_stsb["search"] / "summary.json").read_text())
    assert meta["yardsticks"] == live_summary["yardsticks"]
    assert meta["validation"]["examples"] == VALIDATION
    held = meta["surrogate"]["heldout"]
    assert set(held) == {"error", "eval_time"} and all(set(s) == {"r2", "spearman"} for s in held.values())
    out = tiny_stsb["printed"]
    assert f"R^2 {held['error']['r2']:.3f}, Spearman {held['error']['spearman']:.3f}" in out
    assert json.loads((tiny_stsb["blackbox"] / "metadata.json").read_text())["task_names"] == ["stsb"]


def test_an_untabulated_config_gets_exact_params_and_a_surrogate_guess(tiny_stsb):
    blackbox = load_tabulated(tiny_stsb["blackbox"])
    table = blackbox.dataframe()
    space = blackbox.space
    unseen = next(c for c in (space.sample(seed) for seed in range(1000)) if not blackbox.is_tabulated(c))
    values = blackbox.objective_function(unseen, fidelity=1)
    assert values["params"] == space.parameter_ratio(unseen)
    # A forest's prediction averages tabulated values: it stays within their range.
    for name in ("error", "eval_time"):
        assert table[name].min() <= values[name] <= table[name].max()
    assert blackbox.objective_function(unseen, fidelity=1) == values
    knn = load_tabulated(tiny_stsb["blackbox"], surrogate="knn")
    assert knn.objective_function(unseen, fidelity=1)["params"] == values["params"]
    with pytest.raises(ValueError, match="outside the 'small' search space"):
        blackbox.objective_function({**unseen, "num_heads": 99})


def test_tabulated_values_are_exactly_the_live_evaluators(tiny_stsb):
    model, info = load_supernet(tiny_stsb["supernet"])
    space = get_search_space(info.search_space, model.config)
    setup = prepare_evaluation(
        tiny_stsb["supernet"], model, info, space, max_validation_examples=VALIDATION, subset_seed=1, progress=False
    )
    blackbox = load_tabulated(tiny_stsb["blackbox"])
    for row in blackbox.dataframe().head(12).to_dict("records"):
        config = {name: int(row[name]) for name in blackbox.configuration_space}
        live = setup.evaluator(config)
        stored = blackbox.objective_function(config, fidelity=1)
        assert (stored["error"], stored["params"]) == (live["error"], live["params"])


def test_a_seeded_search_on_the_blackbox_makes_the_live_searchs_first_20_suggestions(tiny_stsb, tmp_path):
    live = pd.read_csv(tiny_stsb["search"] / "results.csv").sort_values("trial_id")
    blackbox = load_tabulated(tiny_stsb["blackbox"])
    replay = simulate(blackbox, "local_search", seed=1, num_evaluations=20, experiments_dir=tmp_path)
    replay = replay.sort_values("trial_id")
    assert len(replay) == len(live) == 20 and front_configs(replay) == front_configs(live)
    assert replay["tabulated"].all()
    # The values the live search saw, exactly (results.csv keeps floats to the last bit).
    assert replay["error"].tolist() == live["error"].tolist()
    assert replay["params"].tolist() == live["params"].tolist()
    # Another seed of the same optimizer goes elsewhere: the comparison above can fail.
    other = simulate(blackbox, "local_search", seed=2, num_evaluations=20, experiments_dir=tmp_path)
    assert front_configs(other.sort_values("trial_id"))[:20] != front_configs(live)[:20]


def test_space_filling_design_is_distinct_valid_and_seeded(family):
    model = tiny_model(family)
    space = get_search_space("medium", model.config)
    configs = space_filling_design(space, 40, seed=3)
    assert len(configs) == 40 and len({tuple(c.values()) for c in configs}) == 40
    for config in configs:
        space.to_subnetwork(config)  # raises for a config outside the space or keeping no layer
    assert configs == space_filling_design(space, 40, seed=3) != space_filling_design(space, 40, seed=4)
    # Each coordinate covers its range: a Sobol design fills both halves of every dimension.
    heads = np.array([c["num_heads_0"] for c in configs])
    assert (heads <= 2).sum() >= 10 and (heads >= 3).sum() >= 10
    # A space with fewer configs than asked for gives all of them.
    layer = get_search_space("layer", model.config)
    assert len(space_filling_design(layer, 50)) == 2 ** model.config.num_hidden_layers - 1


def test_tabulate_rejects_bad_input(tiny_stsb, tmp_path, capsys):
    argv = ["tabulate", "--supernet", str(tiny_stsb["supernet"]), "--output-dir", str(tmp_path / "bb"),
            "--num-configs", "2", "--include-search", str(tmp_path / "nowhere")]
    assert main(argv) == 2
    assert "results.csv not found" in capsys.readouterr().err
    assert main(["benchmark", "--blackbox", str(tmp_path), "--output-dir", str(tmp_path / "out")]) == 2
    assert "not a blackbox folder" in capsys.readouterr().err


def test_tabulate_with_latency_records_it_and_its_spec(tiny_stsb, tmp_path):
    argv = ["tabulate", "--supernet", str(tiny_stsb["supernet"]), "--output-dir", str(tmp_path / "bb"),
            "--num-configs", "2", "--max-validation-examples", "8", "--latency", "--threads", "1"]
    assert main(argv) == 0
    blackbox = load_tabulated(tmp_path / "bb")
    assert blackbox.objectives_names == ["error", "params", "latency", "eval_time"]
    assert (blackbox.dataframe()["latency"] > 0).all()
    assert blackbox.metadata["latency"] == {"runtime": "torch", "batch_size": 1, "length": 128, "warmup": 2,
                                            "repeats": 10}

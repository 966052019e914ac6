"""Optimizers compared on the tiny STS-B blackbox in simulated time (Syne Tune's simulator)."""

import json

import numpy as np
import pandas as pd
import pytest
from pymoo.algorithms.moo.sms import SMSEMOA

from nas_pruning.blackbox import load_tabulated
from nas_pruning.cli import main
from nas_pruning.optimizer_benchmark import benchmark, simulate
from nas_pruning.optimizers import make_scheduler
from nas_pruning.pareto import hypervolume


def test_simulated_time_charges_each_trial_its_tabulated_evaluation_time(tiny_stsb, tmp_path):
    blackbox = load_tabulated(tiny_stsb["blackbox"])
    results = simulate(blackbox, "random", seed=0, num_evaluations=15, experiments_dir=tmp_path)
    results = results.sort_values("st_tuner_time")
    assert len(results) == 15  # exactly the budget, as a live search runs
    # One worker: trials run one after another, each finishing at least its eval_time after the last.
    gaps = np.diff(np.concatenate([[0.0], results["st_tuner_time"].to_numpy()]))
    assert (gaps >= results["eval_time"].to_numpy() - 1e-9).all()
    # Waiting jumps to the next event: no fixed 5 s steps of Syne Tune's default in the simulated time.
    assert results["st_tuner_time"].iloc[-1] < results["eval_time"].sum() + 5.0


def test_two_optimizers_two_seeds_from_the_command_line(tiny_stsb, tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["benchmark", "--blackbox", str(tiny_stsb["blackbox"]), "--output-dir", str(out),
            "--optimizers", "random", "local_search", "--seeds", "2", "--num-evaluations", "12"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    final = pd.read_csv(out / "final.csv")
    runs = pd.read_csv(out / "runs.csv")
    summary = pd.read_csv(out / "summary.csv")
    pairwise = pd.read_csv(out / "mannwhitneyu.csv", index_col="optimizer")
    curves = pd.read_csv(out / "hypervolume_over_time.csv")
    assert sorted(zip(final["optimizer"], final["seed"])) == [
        ("local_search", 0), ("local_search", 1), ("random", 0), ("random", 1)
    ]
    assert "Mann-Whitney" in printed and "hypervolume_mean" in printed
    blackbox = load_tabulated(tiny_stsb["blackbox"])
    reference = blackbox.reference_point()
    record = json.loads((out / "benchmark.json").read_text())
    assert record["hypervolume_reference"] == "trivial" and record["hypervolume_reference_point"] == list(reference)
    assert record["hypervolume_bounds"] == {"error": [0.0, 1.0], "params": [0.0, 1.0]}
    assert record["yardsticks"] == blackbox.metadata["yardsticks"] and record["seeds"] == [0, 1]
    assert "reference: trivial" in printed
    for (optimizer, seed), run in runs.groupby(["optimizer", "seed"]):
        row = final[(final["optimizer"] == optimizer) & (final["seed"] == seed)].iloc[0]
        assert len(run) == row["evaluations"] == 12
        assert row["hypervolume"] == pytest.approx(hypervolume(run, reference_point=reference))
        assert row["tabulated_share"] == pytest.approx(run["tabulated"].mean())
    # Both start from the space's initial design, then differ.
    assert final["hypervolume"].gt(0).all()
    assert set(summary["optimizer"]) == {"random", "local_search"} and summary["mean_rank"].sum() == pytest.approx(3)
    for optimizer, group in summary.set_index("optimizer").iterrows():
        volumes = final.loc[final["optimizer"] == optimizer, "hypervolume"]
        assert group["hypervolume_mean"] == pytest.approx(volumes.mean())
    assert pairwise.loc["random", "local_search"] == pairwise.loc["local_search", "random"]
    assert 0 < pairwise.loc["random", "local_search"] <= 1
    for optimizer, band in curves.groupby("optimizer"):
        assert band["time"].is_monotonic_increasing and band["mean"].is_monotonic_increasing
        assert (band["min"] <= band["mean"]).all() and (band["mean"] <= band["max"]).all()
        assert band["mean"].iloc[-1] == pytest.approx(summary.set_index("optimizer").loc[optimizer, "hypervolume_mean"])
    assert (out / "hypervolume.png").stat().st_size > 0
    assert len(list((out / "syne-tune").iterdir())) == 4


def test_a_pymoo_algorithm_and_a_scheduler_factory_through_the_python_api(tiny_stsb):
    blackbox = load_tabulated(tiny_stsb["blackbox"])
    space = blackbox.space.config_space

    def my_random(seed):
        return make_scheduler("random", space, random_seed=seed)

    outcome = benchmark(
        blackbox, {"sms-emoa": SMSEMOA(pop_size=6), "mine": my_random}, seeds=[3, 4], num_evaluations=10,
        progress=False,
    )
    assert set(outcome.final["optimizer"]) == {"sms-emoa", "mine"} and set(outcome.final["seed"]) == {3, 4}
    first = outcome.runs.sort_values("trial_id").groupby(["optimizer", "seed"]).head(1)
    # The registry's optimizers start from the initial design; a user's scheduler starts where it likes.
    largest = blackbox.space.largest()
    sms_first = first[first["optimizer"] == "sms-emoa"]
    assert (sms_first["config_num_layers"] == largest["num_layers"]).all()
    runs = {seed: run for seed, run in outcome.runs[outcome.runs["optimizer"] == "mine"].groupby("seed")}
    assert runs[3]["config_num_units"].tolist() != runs[4]["config_num_units"].tolist()


def test_benchmark_rejects_bad_input(tiny_stsb):
    blackbox = load_tabulated(tiny_stsb["blackbox"])
    with pytest.raises(ValueError, match="unknown optimizers"):
        benchmark(blackbox, ["random", "annealing"], seeds=1, num_evaluations=5, progress=False)
    scheduler = make_scheduler("random", blackbox.space.config_space)
    with pytest.raises(ValueError, match="function from a seed"):
        benchmark(blackbox, {"one": scheduler}, seeds=2, num_evaluations=5, progress=False)
    with pytest.raises(ValueError, match="unknown hypervolume reference"):
        benchmark(blackbox, ["random"], seeds=1, num_evaluations=5, progress=False, reference="zero")


def test_runs_in_two_worker_processes_equal_the_serial_runs(tiny_stsb):
    blackbox = load_tabulated(tiny_stsb["blackbox"])
    settings = dict(seeds=[0, 1], num_evaluations=8, progress=False)
    serial = benchmark(blackbox, ["ehvi", "random"], processes=1, **settings)
    parallel = benchmark(blackbox, ["ehvi", "random"], processes=2, **settings)
    assert parallel.record["processes"] == 2
    columns = [c for c in serial.runs.columns if c.startswith("config_")] + ["error", "params", "optimizer", "seed"]
    pd.testing.assert_frame_equal(serial.runs[columns], parallel.runs[columns])
    pd.testing.assert_series_equal(serial.final["hypervolume"], parallel.final["hypervolume"])
    assert (parallel.final["cpu_s"] > 0).all()
    with pytest.raises(ValueError, match="processes must be at least 1"):
        benchmark(blackbox, ["random"], processes=0, **settings)

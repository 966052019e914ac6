"""benchmarks/search_spaces.py's reading of finished benchmarks: the hypervolume after the first k
evaluations and over simulated time, recomputed from a benchmark's runs.csv with its own bounds and reference."""

import sys
from pathlib import Path

import pytest

from nas_pruning.blackbox import load_tabulated
from nas_pruning.optimizer_benchmark import benchmark

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import search_spaces  # noqa: E402


def test_early_and_final_hypervolume_from_a_finished_benchmark(tiny_stsb, tmp_path):
    out = tmp_path / "bench"
    outcome = benchmark(
        load_tabulated(tiny_stsb["blackbox"]), ["random", "local_search"], seeds=2, num_evaluations=10,
        output_dir=out, progress=False,
    )
    final = outcome.final.set_index(["optimizer", "seed"])
    all_of_them, _ = search_spaces.per_run(out, early=10)
    for row in all_of_them.itertuples():
        # k = the whole run: the benchmark's own final hypervolume and simulated time
        assert row.hypervolume_at_10 == pytest.approx(final.loc[(row.optimizer, row.seed), "hypervolume"])
        assert row.hypervolume_final == pytest.approx(row.hypervolume_at_10)
        assert row.simulated_s_final == pytest.approx(final.loc[(row.optimizer, row.seed), "simulated_s"])

    early, curves = search_spaces.per_run(out, early=4)
    assert (early["evaluations"] == 10).all()
    assert (early["hypervolume_at_4"] <= early["hypervolume_final"] + 1e-12).all()
    assert (early["simulated_s_at_4"] < early["simulated_s_final"]).all()
    # only the initial design (3 configs) and one suggestion count at k = 4: not every run's final value
    assert (early["hypervolume_at_4"] < early["hypervolume_final"]).any()
    # the curves over simulated time end at the final hypervolume and pass the early value at its time
    for row in early.itertuples():
        (curve,) = [c for c in curves[row.optimizer] if c["time"].iloc[-1] == pytest.approx(row.simulated_s_final)]
        assert curve["hypervolume"].iloc[-1] == pytest.approx(row.hypervolume_final)
        at_early = curve.loc[curve["time"] <= row.simulated_s_at_4, "hypervolume"].iloc[-1]
        assert at_early == pytest.approx(row.hypervolume_at_4)
    assert sorted(curves) == ["local_search", "random"] and all(len(runs) == 2 for runs in curves.values())

"""The common report every experiment writes (nas_pruning.experiments.report)."""

import json

import pandas as pd
import pytest

from nas_pruning.experiments.report import (
    FRONT_FILE,
    FRONT_PLOT,
    HYPERVOLUME_FILE,
    HYPERVOLUME_PLOT,
    RESULTS_FILE,
    SUMMARY_FILE,
    Report,
    write_report,
)
from nas_pruning.pareto import hypervolume_over_time, pareto_front


@pytest.fixture
def results():
    return pd.DataFrame({
        "trial_id": [0, 1, 2, 3], "error": [0.2, 0.3, 0.25, 0.5], "params": [1.0, 0.5, 0.8, 0.4],
        "config_num_layers": [6, 3, 5, 2], "st_tuner_time": [1.0, 2.0, 3.0, 4.0],
    })


def test_report_writes_the_tables_summary_and_plots(results, tmp_path):
    front = pareto_front(results, ("error", "params"))
    curve = hypervolume_over_time(results, objectives=("error", "params"))
    summary = {"trials": 4, "hypervolume": 0.5}
    write_report(tmp_path / "out", Report(
        results, front, summary, curve, label="method", objectives=("error", "params"), all_points=results,
        trivial_error=0.6,
    ))
    out = tmp_path / "out"
    pd.testing.assert_frame_equal(pd.read_csv(out / RESULTS_FILE), results)
    pd.testing.assert_frame_equal(pd.read_csv(out / FRONT_FILE), front.reset_index(drop=True))
    assert list(pd.read_csv(out / HYPERVOLUME_FILE).columns) == list(curve.columns)
    assert json.loads((out / SUMMARY_FILE).read_text()) == summary
    assert (out / FRONT_PLOT).stat().st_size > 0 and (out / HYPERVOLUME_PLOT).stat().st_size > 0
    assert not list(out.glob(".*.tmp"))  # written atomically: no staging file left behind


def test_report_writes_a_record_as_its_own_json(results, tmp_path):
    class Record:
        def to_json(self) -> str:
            return '{"version": 1}\n'

    front = pareto_front(results, ("error", "params"))
    curve = hypervolume_over_time(results, objectives=("error", "params"))
    write_report(tmp_path, Report(results, front, Record(), curve, "m", ("error", "params"), front_plot="p.png"))
    assert (tmp_path / SUMMARY_FILE).read_text() == '{"version": 1}\n' and (tmp_path / "p.png").is_file()

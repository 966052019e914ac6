"""Nothing lost, nothing silently wrong (issue 18): damaged checkpoints, killed and resumed
searches, protected outputs, bad options and bad data, each a clear one-line error or the
right result. Tiny models; seconds per test."""

import _thread
import json

import pandas as pd
import pytest

from nas_pruning.backends.weight_sharing import SubnetworkEvaluator
from nas_pruning.cli import main

SEARCH = ["--optimizer", "random", "--max-validation-examples", "16", "--threads", "1"]


def search(supernet, output_dir, evaluations: int, *extra: str) -> int:
    argv = ["search", "--supernet", str(supernet), "--output-dir", str(output_dir), "--num-evaluations"]
    return main([*argv, str(evaluations), *SEARCH, *extra])


def one_line_error(capsys, *fragments: str) -> str:
    """The command's stderr: a single line holding every fragment."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


# -- searches ------------------------------------------------------------------------------------


def test_a_search_runs_exactly_the_evaluations_asked_for(tiny_supernet, tmp_path, capsys):
    assert search(tiny_supernet, tmp_path / "s", 4) == 0
    results = pd.read_csv(tmp_path / "s" / "results.csv")
    assert sorted(results["trial_id"]) == [0, 1, 2, 3]
    assert json.loads((tmp_path / "s" / "summary.json").read_text())["evaluations"] == 4


def test_an_interrupted_search_keeps_its_results_and_resumes_to_exactly_n(tiny_supernet, tmp_path, capsys, monkeypatch):
    evaluate, calls = SubnetworkEvaluator.__call__, []

    def interrupted_after_two(self, config):
        result = evaluate(self, config)
        calls.append(config)
        if len(calls) == 2:
            _thread.interrupt_main()  # Ctrl-C while the search runs
        return result

    monkeypatch.setattr(SubnetworkEvaluator, "__call__", interrupted_after_two)
    assert search(tiny_supernet, tmp_path / "s", 6) == 130
    one_line_error(capsys, "search interrupted", "run the same command again to resume")
    kept = pd.read_csv(tmp_path / "s" / "results.csv")
    assert 1 <= len(kept) < 6 and (tmp_path / "s" / "pareto.csv").is_file()
    assert not (tmp_path / "s" / "summary.json").exists()

    monkeypatch.setattr(SubnetworkEvaluator, "__call__", evaluate)
    assert search(tiny_supernet, tmp_path / "s", 6) == 0
    results = pd.read_csv(tmp_path / "s" / "results.csv")
    assert sorted(results["trial_id"]) == list(range(6))
    columns = ["trial_id", "error", "params"] + [c for c in kept.columns if c.startswith("config_")]
    pd.testing.assert_frame_equal(results[columns].iloc[: len(kept)], kept[columns])
    # the resumed part did not redo the initial design (largest, smallest, midpoint) it had done
    configs = results[[c for c in columns if c.startswith("config_")]]
    assert not configs.duplicated().any()

    # a finished search asked again for the same budget runs nothing more
    assert search(tiny_supernet, tmp_path / "s", 6) == 0
    assert len(pd.read_csv(tmp_path / "s" / "results.csv")) == 6


def test_resuming_a_search_with_other_settings_or_a_smaller_budget_is_refused(tiny_supernet, tmp_path, capsys):
    assert search(tiny_supernet, tmp_path / "s", 3) == 0
    capsys.readouterr()
    assert search(tiny_supernet, tmp_path / "s", 3, "--search-seed", "1") == 2
    one_line_error(capsys, "other settings", "seed: before 0, now 1", "delete")
    assert search(tiny_supernet, tmp_path / "s", 2) == 2
    one_line_error(capsys, "already holds 3 evaluations")

"""The common report of an experiment, written into its folder by one writer for every method:

```
output_dir/
  results.csv       one row per reported result (`write_results`; the weight-sharing search
                    rewrites it as each evaluation arrives, standard NAS writes only this)
  pareto.csv        the non-dominated rows, with whatever columns the method adds
  hypervolume.csv   hypervolume over wall-clock time
  summary.json      the method's summary (a dict or a dataclass record)
  front.png         the front over every evaluated point (CoFi-transfer: pareto_front.png)
  hypervolume.png   the hypervolume curve
```

Tables and summary.json are written atomically: an interrupted experiment leaves the old file or
the new one, never half of one.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from nas_pruning.files import atomic_write, write_text_atomic
from nas_pruning.plots import plot_front, plot_hypervolume

RESULTS_FILE = "results.csv"
FRONT_FILE = "pareto.csv"
HYPERVOLUME_FILE = "hypervolume.csv"
SUMMARY_FILE = "summary.json"
FRONT_PLOT = "front.png"
HYPERVOLUME_PLOT = "hypervolume.png"


def write_table(table: pd.DataFrame, path: Path) -> None:
    """`table` as a CSV file without the index, written atomically."""
    with atomic_write(path) as staging:
        table.to_csv(staging, index=False)


def write_results(output_dir: Path, results: pd.DataFrame) -> Path:
    """results.csv in `output_dir` (created if missing); returns its path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    write_table(results, output_dir / RESULTS_FILE)
    return output_dir / RESULTS_FILE


def write_summary(output_dir: Path, summary: Mapping[str, Any] | Any) -> None:
    """summary.json in `output_dir`: `summary` is a dict, or a record with `to_json()`."""
    text = summary.to_json() if hasattr(summary, "to_json") else json.dumps(dict(summary), indent=2) + "\n"
    write_text_atomic(output_dir / SUMMARY_FILE, text)


@dataclasses.dataclass
class Report:
    """What `write_report` writes.

    results: every reported result; front: its non-dominated rows (plus the method's columns).
    summary: summary.json's content (a dict, or a record with `to_json()`).
    curve: hypervolume over time (`nas_pruning.pareto.hypervolume_over_time`).
    label: the method's name in the plots' legends.
    objectives: (y-axis, x-axis) objectives of the front plot (further ones are not drawn).
    all_points: the points drawn in grey behind the front; None: none.
    trivial_error: the trivial predictor's error, a dashed line in the front plot; None: no line.
    hypervolume_reference: name of the hypervolume's reference point, on the curve's y axis.
    front_plot: file name of the front plot.
    """

    results: pd.DataFrame
    front: pd.DataFrame
    summary: Mapping[str, Any] | Any
    curve: pd.DataFrame
    label: str
    objectives: Sequence[str]
    all_points: pd.DataFrame | None = None
    trivial_error: float | None = None
    hypervolume_reference: str | None = None
    front_plot: str = FRONT_PLOT


def write_report(output_dir: Path, report: Report) -> None:
    """Write the common report (see the module's docstring) into `output_dir`."""
    write_results(output_dir, report.results)
    write_table(report.front, output_dir / FRONT_FILE)
    write_table(report.curve, output_dir / HYPERVOLUME_FILE)
    write_summary(output_dir, report.summary)
    plot_front(
        {report.label: report.front}, output_dir / report.front_plot, tuple(report.objectives[:2]),
        all_points=report.all_points, trivial_error=report.trivial_error,
    )
    plot_hypervolume(
        {report.label: report.curve}, output_dir / HYPERVOLUME_PLOT, reference=report.hypervolume_reference
    )

"""Plots of search results, drawn with matplotlib (a bare Agg figure per plot, no pyplot state):
Pareto fronts (`plot_front`) and hypervolume over time (`plot_hypervolume`). The fronts and curves
they draw are computed by :mod:`nas_pruning.pareto`.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nas_pruning.pareto import DEFAULT_OBJECTIVES, ERROR, PARAMS, curves_on_grid

AXIS_LABELS = {PARAMS: "parameter ratio", ERROR: "validation error", "latency": "latency"}


def plot_front(
    fronts: Mapping[str, pd.DataFrame],
    path: str | Path,
    objectives: Sequence[str] = DEFAULT_OBJECTIVES,
    all_points: pd.DataFrame | None = None,
    trivial_error: float | None = None,
) -> Path:
    """Write a PNG with one step line per method's Pareto front.

    :param fronts: Method name -> front table.
    :param path: Where to write the PNG.
    :param objectives: (y-axis objective, x-axis objective), error over
        parameter ratio by default.
    :param all_points: Optional table of all evaluated points, drawn as a
        grey scatter behind the fronts.
    :param trivial_error: Optional error of the task's trivial predictor, drawn
        as a dashed line: members on or above it learned nothing.
    """
    y_name, x_name = objectives[0], objectives[1]
    figure, axes = _new_axes()
    if all_points is not None:
        axes.scatter(all_points[x_name], all_points[y_name], s=8, color="0.7", label="evaluated")
    for method, front in fronts.items():
        ordered = front.sort_values(x_name)
        axes.step(ordered[x_name], ordered[y_name], where="post", marker="o", markersize=3, label=method)
    if trivial_error is not None and y_name == ERROR:
        axes.axhline(trivial_error, color="0.3", linestyle="--", linewidth=1, label="trivial predictor")
    axes.set_xlabel(AXIS_LABELS.get(x_name, x_name))
    axes.set_ylabel(AXIS_LABELS.get(y_name, y_name))
    return _save(figure, axes, path)


def plot_hypervolume(
    curves: Mapping[str, pd.DataFrame | Sequence[pd.DataFrame]],
    path: str | Path,
    reference: str | None = None,
    time_label: str = "wall-clock time (s)",
) -> Path:
    """Write a PNG of hypervolume over time.

    :param curves: Method name -> one curve or a list of curves (one per
        seed), each as returned by :func:`~nas_pruning.pareto.hypervolume_over_time`. Several
        curves are drawn as their mean with a min/max band; before its first
        result a curve counts as 0.
    :param path: Where to write the PNG.
    :param reference: Name of the reference point (:data:`REFERENCES`), shown
        on the y axis.
    :param time_label: Label of the time axis (simulated time, for a benchmark on a blackbox).
    """
    figure, axes = _new_axes()
    for method, runs in curves.items():
        runs = [runs] if isinstance(runs, pd.DataFrame) else list(runs)
        grid, values = curves_on_grid(runs)
        (line,) = axes.step(grid, values.mean(axis=0), where="post", label=method)
        if len(runs) > 1:
            band = (values.min(axis=0), values.max(axis=0))
            axes.fill_between(grid, *band, step="post", alpha=0.2, color=line.get_color())
    axes.set_xlabel(time_label)
    axes.set_ylabel("hypervolume" if reference is None else f"hypervolume (reference: {reference})")
    return _save(figure, axes, path)


def _new_axes():
    # A bare Figure with an Agg canvas: no pyplot state, no global backend switch.
    figure = Figure(figsize=(6, 4))
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _save(figure: Figure, axes, path: str | Path) -> Path:
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend()
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, format="png")
    return path

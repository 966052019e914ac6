"""Pareto fronts and hypervolume of search results, computed with pymoo (plots: :mod:`nas_pruning.plots`).

Every objective is **minimised**: ``error`` (1 - task metric, in [0, 1]),
``params`` (parameter ratio of the full model, in (0, 1]) and optionally
``latency``. Inputs are pandas tables with one column per objective, such as
the results table of a Syne Tune experiment
(``syne_tune.experiments.load_experiment(name).results``).

Normalisation and reference point
---------------------------------
Before computing a hypervolume, each objective ``y`` is mapped to

    (y - lower) / (upper - lower)

with ``bounds = {objective: (lower, upper)}``. The default bounds are
``error`` in [0, 1] and ``params`` in [0, 1]: both are ratios already, so the
default normalisation is the identity and hypervolumes of different methods
and runs on the same task are comparable without looking at the data. Any
other objective (``latency``) has no default and needs explicit bounds, for
example those of :func:`joint_bounds`, the minimum and maximum over all
methods of a benchmark. A zero-width range (``upper == lower``) is treated as
width 1.

The reference point is given in normalised space; :func:`make_reference_point`
builds it by name (:data:`REFERENCES`):

- ``"trivial"`` (what searches use): the error's coordinate is the task's trivial
  predictor's validation error (majority class, or a constant for regression),
  every other objective's 1.0. A sub-network no better than a constant predictor
  then adds nothing, however small it is.
- ``"fixed"``: :data:`DEFAULT_REFERENCE_POINT` = (1.0, 1.0), i.e. 1.0 for every
  objective: the worst error and the full model. On a task whose trivial
  predictor already scores well (MRPC: F1 0.81 for "always paraphrase") most of
  this hypervolume is earned by constant predictors.

Points that do not lie strictly inside the box spanned by the ideal point and the
reference point contribute nothing and are removed before pymoo's ``HV``
indicator is called.
"""

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

ERROR = "error"
PARAMS = "params"
DEFAULT_OBJECTIVES = (ERROR, PARAMS)
DEFAULT_BOUNDS: dict[str, tuple[float, float]] = {ERROR: (0.0, 1.0), PARAMS: (0.0, 1.0)}
DEFAULT_REFERENCE_POINT = (1.0, 1.0)
REFERENCES = ("trivial", "fixed")

Bounds = Mapping[str, tuple[float, float]]


def final_results(df: pd.DataFrame) -> pd.DataFrame:
    """The last report of every trial.

    :param df: Results table with a ``trial_id`` column, rows in reporting
        order (as Syne Tune writes them). With a ``tuner_name`` column (Syne
        Tune's results), a trial is identified by both, so that tables of
        several experiments concatenated keep each experiment's trials apart.
    :return: One row per trial, in the order of the input.
    """
    if "trial_id" not in df.columns:
        raise ValueError("final_results needs a 'trial_id' column")
    keys = ["tuner_name", "trial_id"] if "tuner_name" in df.columns else ["trial_id"]
    return df.groupby(keys, sort=False, dropna=False).tail(1)


def pareto_front(df: pd.DataFrame, objectives: Sequence[str] = DEFAULT_OBJECTIVES) -> pd.DataFrame:
    """The non-dominated rows of a results table.

    :param df: Results table. With a ``trial_id`` column, only the last report
        of each trial counts (:func:`final_results`).
    :param objectives: Columns to minimise.
    :return: The non-dominated rows, each point once, sorted by ``params``
        (by the first objective if ``params`` is not one of them), with a
        fresh 0-based index. Rows with a missing objective (failed trials)
        are ignored.
    """
    objectives = list(objectives)
    valid = _valid_rows(df, objectives)
    if valid.empty:
        return valid.reset_index(drop=True)
    best = NonDominatedSorting().do(valid[objectives].to_numpy(dtype=float), only_non_dominated_front=True)
    front = valid.iloc[np.sort(best)].drop_duplicates(subset=objectives)
    sort_key = PARAMS if PARAMS in objectives else objectives[0]
    order = [sort_key] + [name for name in objectives if name != sort_key]
    return front.sort_values(order, kind="stable").reset_index(drop=True)


def joint_bounds(
    dfs: Sequence[pd.DataFrame], objectives: Sequence[str] = DEFAULT_OBJECTIVES
) -> dict[str, tuple[float, float]]:
    """Minimum and maximum of each objective over several results tables.

    :param dfs: Results tables, e.g. all methods and seeds of one benchmark.
    :param objectives: Columns to look at; missing values are ignored.
    :return: ``{objective: (lower, upper)}``, to pass as ``bounds``.
    """
    values = pd.concat([df[list(objectives)] for df in dfs], ignore_index=True)
    return {name: (float(values[name].min()), float(values[name].max())) for name in objectives}


def normalise(points: np.ndarray, objectives: Sequence[str], bounds: Bounds | None = None) -> np.ndarray:
    """Map objective values to [0, 1] with ``(y - lower) / (upper - lower)``.

    :param points: Array of shape (n, len(objectives)).
    :param objectives: Objective name of each column.
    :param bounds: ``{objective: (lower, upper)}``, merged over
        :data:`DEFAULT_BOUNDS`; every objective needs bounds.
    """
    merged = {**DEFAULT_BOUNDS, **(bounds or {})}
    missing = [name for name in objectives if name not in merged]
    if missing:
        raise ValueError(f"no bounds for objectives {missing}; pass bounds, e.g. from joint_bounds()")
    lower = np.array([merged[name][0] for name in objectives], dtype=float)
    width = np.array([merged[name][1] for name in objectives], dtype=float) - lower
    return (np.asarray(points, dtype=float) - lower) / np.where(width > 0, width, 1.0)


def hypervolume(
    df_or_array: pd.DataFrame | np.ndarray,
    objectives: Sequence[str] = DEFAULT_OBJECTIVES,
    reference_point: float | Sequence[float] | None = None,
    bounds: Bounds | None = None,
) -> float:
    """Hypervolume dominated by a set of points (see the module docstring).

    :param df_or_array: Results table (last report per trial when it has a
        ``trial_id`` column; rows with missing objectives ignored) or an array
        of shape (n, len(objectives)) in raw objective units.
    :param objectives: Objectives to minimise, in the column order of an array.
    :param reference_point: In normalised space; one value for all objectives
        or one per objective. Defaults to 1.0 for every objective.
    :param bounds: Normalisation bounds, see :func:`normalise`.
    """
    objectives = list(objectives)
    if isinstance(df_or_array, pd.DataFrame):
        points = _valid_rows(df_or_array, objectives)[objectives].to_numpy(dtype=float)
    else:
        points = np.asarray(df_or_array, dtype=float).reshape(-1, len(objectives))
        points = points[~np.isnan(points).any(axis=1)]
    reference = np.broadcast_to(
        np.asarray(1.0 if reference_point is None else reference_point, dtype=float), (len(objectives),)
    )
    normalised = normalise(points, objectives, bounds)
    inside = normalised[(normalised < reference).all(axis=1)]
    if len(inside) == 0:
        return 0.0
    return float(HV(ref_point=reference).do(inside))


def make_reference_point(
    objectives: Sequence[str] = DEFAULT_OBJECTIVES,
    reference: str = "trivial",
    trivial_error: float | None = None,
    bounds: Bounds | None = None,
) -> tuple[float, ...]:
    """The reference point (normalised space) that :data:`REFERENCES` names.

    :param reference: ``"trivial"`` or ``"fixed"`` (see the module docstring).
    :param trivial_error: the trivial predictor's validation error (1 - its metric);
        required by ``"trivial"``.
    :param bounds: normalisation bounds, see :func:`normalise`.
    """
    if reference not in REFERENCES:
        raise ValueError(f"unknown hypervolume reference {reference!r}; choose one of {', '.join(REFERENCES)}")
    point = [1.0] * len(objectives)
    if reference == "trivial" and ERROR in objectives:
        if trivial_error is None:
            raise ValueError("the 'trivial' hypervolume reference needs the trivial predictor's error")
        column = list(objectives).index(ERROR)
        point[column] = float(normalise(np.array([[trivial_error]]), [ERROR], bounds)[0, 0])
    return tuple(point)


def hypervolume_over_time(
    df: pd.DataFrame,
    time_column: str = "st_tuner_time",
    objectives: Sequence[str] = DEFAULT_OBJECTIVES,
    reference_point: float | Sequence[float] | None = None,
    bounds: Bounds | None = None,
) -> pd.DataFrame:
    """Hypervolume of everything reported up to each point in time.

    Every row counts from its time on, intermediate reports of a trial
    included (that model existed then), so the curve never decreases; with
    several reports per trial its last value may exceed :func:`hypervolume`,
    which only uses each trial's last report.

    :param df: Results table with ``time_column`` and the objective columns.
    :param time_column: Column with the time of each report.
    :param objectives, reference_point, bounds: As in :func:`hypervolume`.
    :return: Columns ``time`` and ``hypervolume``, one row per distinct time
        at which a valid result arrived.
    """
    objectives = list(objectives)
    rows = df.dropna(subset=objectives)
    times, volumes = [], []
    front = np.empty((0, len(objectives)))
    for time, group in rows.groupby(time_column, sort=True):
        candidates = np.vstack([front, group[objectives].to_numpy(dtype=float)])
        front = candidates[NonDominatedSorting().do(candidates, only_non_dominated_front=True)]
        times.append(time)
        volumes.append(hypervolume(front, objectives, reference_point, bounds))
    return pd.DataFrame({"time": np.asarray(times, dtype=float), "hypervolume": np.asarray(volumes, dtype=float)})


def select_member(front_df: pd.DataFrame, index: int | None = None, max_params: float | None = None) -> pd.Series:
    """Pick one member of a Pareto front.

    :param front_df: A front, e.g. from :func:`pareto_front`.
    :param index: Position in the front sorted by ``params`` (smallest
        first; negative positions count from the end).
    :param max_params: Instead of ``index``: the member with the lowest
        error among those with ``params <= max_params``.
    :return: The chosen row.
    """
    if (index is None) == (max_params is None):
        raise ValueError("pass exactly one of index and max_params")
    ordered = front_df.sort_values([PARAMS, ERROR], kind="stable")
    if index is not None:
        if not -len(ordered) <= index < len(ordered):
            raise ValueError(f"index {index} out of range for a front of {len(ordered)} members")
        return ordered.iloc[index]
    allowed = ordered[ordered[PARAMS] <= max_params]
    if allowed.empty:
        raise ValueError(
            f"no front member has params <= {max_params}; the smallest available is {ordered[PARAMS].min()}"
        )
    return allowed.sort_values([ERROR, PARAMS], kind="stable").iloc[0]


def knee_point(
    front_df: pd.DataFrame, objectives: Sequence[str] = DEFAULT_OBJECTIVES, bounds: Bounds | None = None
) -> pd.Series:
    """The front member closest to the ideal point.

    Distances are Euclidean, measured in normalised space (see
    :func:`normalise`) from the ideal point, 0 in every objective (no error,
    no parameters).

    :param front_df: A front, e.g. from :func:`pareto_front`.
    :param objectives: Objectives spanning the space.
    :param bounds: Normalisation bounds.
    """
    if front_df.empty:
        raise ValueError("knee_point of an empty front")
    points = normalise(front_df[list(objectives)].to_numpy(dtype=float), objectives, bounds)
    return front_df.iloc[int(np.argmin(np.linalg.norm(points, axis=1)))]


def curves_on_grid(runs: Sequence[pd.DataFrame]) -> tuple[np.ndarray, np.ndarray]:
    """Several hypervolume curves (one per seed, as returned by :func:`hypervolume_over_time`)
    as step functions on one time grid.

    :return: ``(grid, values)``: the sorted union of the curves' times, and an array of
        shape (len(runs), len(grid)) with each curve's value at each grid time (0 before
        its first result).
    """
    grid = np.unique(np.concatenate([run["time"].to_numpy(dtype=float) for run in runs]))
    return grid, np.vstack([_step_values(run, grid) for run in runs])


def _valid_rows(df: pd.DataFrame, objectives: list[str]) -> pd.DataFrame:
    rows = final_results(df) if "trial_id" in df.columns else df
    return rows.dropna(subset=objectives)


def _step_values(curve: pd.DataFrame, grid: np.ndarray) -> np.ndarray:
    times = curve["time"].to_numpy(dtype=float)
    values = np.concatenate([[0.0], curve["hypervolume"].to_numpy(dtype=float)])
    return values[np.searchsorted(times, grid, side="right")]

"""Comparing multi-objective optimizers on a tabulated search space, in simulated time.

Each optimizer x seed is a Syne Tune experiment: the Tuner drives the optimizer's
scheduler against `UserBlackboxBackend` over a `nas_pruning.blackbox.TabulatedSpace`,
with Syne Tune's simulator (`SimulatorCallback`) charging every trial the tabulated
evaluation time (`eval_time`) instead of waiting for it; simulated time also counts the
optimizer's own computing time (Syne Tune's simulator adds the real time spent outside
the backend), as a live search's wall-clock time does. The scheduler is built as a
live search builds it (`make_scheduler`, the space's initial design first, the same
seed), so a run on the blackbox replays the live search for as long as its configs are
tabulated.

`benchmark` writes into its output folder:

```
benchmark.json              what was compared: blackbox (task, metric, yardsticks), optimizers, seeds,
                            evaluations, workers, and the hypervolume's objectives, bounds and reference
runs.csv                    every evaluation of every run: optimizer, seed, trial_id, config_*,
                            objectives, st_tuner_time (simulated seconds), tabulated (0: surrogate)
hypervolume_over_time.csv   per optimizer, on the union of its runs' times: mean, std, min, max
hypervolume.png             the mean per optimizer with a min/max band over seeds
final.csv                   per run: hypervolume after all evaluations, simulated, wall and CPU seconds
summary.csv                 per optimizer: mean/std final hypervolume, mean rank over seeds, share
                            of answers from the surrogate, wall and CPU seconds
mannwhitneyu.csv            two-sided Mann-Whitney U p-value of each pair of optimizers' final
                            hypervolumes over the seeds
syne-tune/                  Syne Tune's own record of every run
```

Every run's hypervolume uses the same bounds (`nas_pruning.pareto.DEFAULT_BOUNDS`) and the same
reference point, made by `nas_pruning.pareto.make_reference_point` as a search makes it: by default
("trivial") at the trivial predictor's validation error from the blackbox's yardsticks (and params 1),
so a constant predictor adds nothing; "fixed" puts it at (1, 1).
"""

from __future__ import annotations

import copy
import itertools
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Union

import numpy as np
import pandas as pd
import torch
from pymoo.core.algorithm import Algorithm
from scipy.stats import mannwhitneyu, rankdata
from syne_tune import StoppingCriterion, Tuner
from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback
from syne_tune.backend.trial_status import Status
from syne_tune.blackbox_repository.simulated_tabular_backend import UserBlackboxBackend
from syne_tune.optimizer.scheduler import TrialScheduler
from tqdm.auto import tqdm

from nas_pruning.blackbox import ELAPSED_TIME, TabulatedSpace
from nas_pruning.experiments.runner import run_experiment
from nas_pruning.optimizers import OPTIMIZERS, make_scheduler
from nas_pruning.pareto import (
    DEFAULT_BOUNDS,
    DEFAULT_OBJECTIVES,
    curves_on_grid,
    hypervolume,
    hypervolume_over_time,
)
from nas_pruning.plots import plot_hypervolume
from nas_pruning.experiments.weight_sharing import BudgetedScheduler, front_configs

#: A name of OPTIMIZERS, a pymoo algorithm (copied for each seed), a Syne Tune scheduler
#: (one seed only: it keeps its state) or a function from a seed to a fresh scheduler.
Optimizer = Union[str, Algorithm, TrialScheduler, Callable[[int], TrialScheduler]]
TIME = "st_tuner_time"


class SimulatedBackend(UserBlackboxBackend):
    """Syne Tune's `UserBlackboxBackend` that fails a trial whose config the blackbox refuses
    (a config keeping no layer), as the live backend fails such an evaluation, instead of
    ending the whole simulation."""

    def _run_job_and_collect_results(self, trial_id: int, config: dict | None = None) -> tuple[str, list[dict]]:
        try:
            return super()._run_job_and_collect_results(trial_id, config)
        except ValueError:
            return Status.failed, []

    def next_event_time(self) -> float | None:
        """Simulated time of the next pending event (a start, result or completion); None if none is."""
        heap = self._simulator_state.event_heap
        return heap[0][0] if heap else None


class EventDrivenSimulatorCallback(SimulatorCallback):
    """Syne Tune's `SimulatorCallback`, except that whenever the Tuner waits (all workers busy)
    simulated time jumps to the next pending event instead of advancing by a fixed step (5 s by
    default): each trial is charged exactly its tabulated time, and the loop runs a few
    iterations per trial, not one per step."""

    def on_tuning_start(self, tuner: Tuner):
        super().on_tuning_start(tuner)
        self._backend = tuner.trial_backend

    def on_tuning_sleep(self, sleep_time: float):
        next_time = self._backend.next_event_time()
        if next_time is None:
            super().on_tuning_sleep(sleep_time)
        else:
            self._time_keeper.advance_to(next_time)


def scheduler_for(
    optimizer: Optimizer, blackbox: TabulatedSpace, seed: int, metrics: Sequence[str] = DEFAULT_OBJECTIVES
) -> TrialScheduler:
    """The scheduler `optimizer` stands for, seeded with `seed`, over the blackbox's search space
    with its initial design first (as `nas-pruning search` builds it)."""
    if callable(optimizer) and not isinstance(optimizer, (TrialScheduler, Algorithm)):
        return optimizer(seed)
    if isinstance(optimizer, Algorithm):
        optimizer = copy.deepcopy(optimizer)  # pymoo algorithms keep their state: one fresh copy per run
    return make_scheduler(
        optimizer,
        blackbox.space.config_space,
        metrics,
        points_to_evaluate=blackbox.space.initial_design(),
        random_seed=seed,
        **({"max_t": 1} if optimizer == "moasha" else {}),
    )


def simulate(
    blackbox: TabulatedSpace,
    optimizer: Optimizer,
    seed: int = 0,
    num_evaluations: int = 200,
    n_workers: int = 1,
    metrics: Sequence[str] = DEFAULT_OBJECTIVES,
    experiments_dir: str | os.PathLike | None = None,
    name: str = "simulated",
) -> pd.DataFrame:
    """One optimizer run on the blackbox in simulated time.

    optimizer: see `Optimizer`; seed: its seed.
    num_evaluations: trials to run (the initial design included): exactly this many, as in a live search.
    n_workers: concurrent simulated evaluations (1: as `nas-pruning search` by default).
    metrics: objectives the optimizer minimises.
    experiments_dir: where Syne Tune writes its record (default: SYNETUNE_FOLDER or ~/syne-tune).

    Returns Syne Tune's results table: one row per finished evaluation with `config_*`,
    the objectives, `st_tuner_time` (simulated seconds since the start) and `tabulated`
    (1 when the value is tabulated, 0 when the surrogate answered).
    """
    callback = EventDrivenSimulatorCallback()
    run_experiment(
        SimulatedBackend(blackbox, elapsed_time_attr=ELAPSED_TIME, seed=0),
        BudgetedScheduler(scheduler_for(optimizer, blackbox, seed, metrics), num_evaluations),
        StoppingCriterion(max_num_trials_finished=num_evaluations),
        experiments_dir,
        name,
        n_workers,
        max_failures=num_evaluations,  # a failing evaluation is reported, not fatal (as in a live search)
        callbacks=[callback],
        sleep_time=0,
        results_update_interval=3600.0,  # real seconds: the record is written once, at the end
        print_update_interval=3600.0,
        save_tuner=False,
    )
    results = callback.dataframe()
    results["tabulated"] = [int(blackbox.is_tabulated(config)) for config in front_configs(results)]
    return results


@dataclass
class BenchmarkOutcome:
    """What `benchmark` measured (see the module docstring for the columns)."""

    runs: pd.DataFrame
    curves: pd.DataFrame
    final: pd.DataFrame
    summary: pd.DataFrame
    pairwise: pd.DataFrame
    record: dict


def benchmark(
    blackbox: TabulatedSpace,
    optimizers: Sequence[str] | Mapping[str, Optimizer],
    seeds: int | Sequence[int] = 10,
    num_evaluations: int = 200,
    n_workers: int = 1,
    output_dir: str | os.PathLike | None = None,
    progress: bool = True,
    reference: str = "trivial",
    processes: int = 1,
) -> BenchmarkOutcome:
    """Run every optimizer with every seed on the blackbox in simulated time and compare them.

    optimizers: names of nas_pruning.optimizers.OPTIMIZERS, or label -> `Optimizer`.
    seeds: how many seeds (0, 1, ...) or which.
    num_evaluations, n_workers: per run, see `simulate`.
    output_dir: write the tables and the plot there (see the module docstring); None: only return them.
    reference: the hypervolume reference point, a name of nas_pruning.pareto.REFERENCES (the same for every run).
    processes: runs simulated at once, each in its own (spawned) worker process; the optimizers and the
        blackbox must then be picklable (names and pymoo algorithms are). Every run uses one torch thread
        whatever `processes` is, so the runs' configs and objectives do not depend on it; their wall and
        simulated seconds do (simulated time includes the optimizer's own computing time).
    """
    if processes < 1:
        raise ValueError(f"processes must be at least 1, got {processes}")
    optimizers = _labelled(optimizers)
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise ValueError("benchmark needs at least one seed")
    for label, optimizer in optimizers.items():
        if isinstance(optimizer, TrialScheduler) and len(seeds) > 1:
            raise ValueError(
                f"optimizer {label!r} is one scheduler object, which keeps its state between runs: pass a "
                "function from a seed to a fresh scheduler to run it with several seeds"
            )
    reference_point = blackbox.reference_point(reference)  # refuses an unknown name before any run
    experiments = Path(output_dir) / "syne-tune" if output_dir is not None else None
    jobs = list(itertools.product(optimizers, seeds))
    setting = (blackbox, optimizers, num_evaluations, n_workers, experiments)
    if processes == 1:
        _set_run_setting(*setting)
        done = map(_run_job, jobs)
    else:  # spawned workers: nothing of this process's threads or torch state is inherited
        pool = ProcessPoolExecutor(
            max_workers=processes, mp_context=multiprocessing.get_context("spawn"), initializer=_set_run_setting,
            initargs=setting,
        )
        done = pool.map(_run_job, jobs)
    runs, curves, final = [], [], []
    try:
        for (label, seed), (results, wall, cpu) in tqdm(
            zip(jobs, done), total=len(jobs), desc="simulating", unit="run", disable=not progress
        ):
            curve = hypervolume_over_time(results, TIME, reference_point=reference_point, bounds=DEFAULT_BOUNDS)
            runs.append(results.assign(optimizer=label, seed=seed))
            curves.append(curve.assign(optimizer=label, seed=seed))
            final.append({
                "optimizer": label,
                "seed": seed,
                "hypervolume": hypervolume(results, reference_point=reference_point, bounds=DEFAULT_BOUNDS),
                "evaluations": len(results),
                "tabulated_share": float(results["tabulated"].mean()) if len(results) else float("nan"),
                "simulated_s": float(results[TIME].max()) if len(results) else 0.0,
                "wall_s": wall,
                "cpu_s": cpu,
            })
    finally:
        if processes > 1:
            pool.shutdown(cancel_futures=True)
        else:
            _SETTING.clear()  # do not keep the blackbox alive after the call
    final = pd.DataFrame(final)
    outcome = BenchmarkOutcome(
        runs=pd.concat(runs, ignore_index=True),
        curves=pd.concat(curves, ignore_index=True),
        final=final,
        summary=_summary(final),
        pairwise=_pairwise(final),
        record={
            "blackbox": {key: blackbox.metadata[key] for key in ("task", "metric", "search_space", "supernet")},
            "yardsticks": asdict(blackbox.yardsticks),
            "optimizers": list(optimizers),
            "seeds": seeds,
            "num_evaluations": num_evaluations,
            "n_workers": n_workers,
            "processes": processes,
            "hypervolume_objectives": list(DEFAULT_OBJECTIVES),
            "hypervolume_bounds": DEFAULT_BOUNDS,
            "hypervolume_reference": reference,
            "hypervolume_reference_point": reference_point,
        },
    )
    if output_dir is not None:
        write_benchmark(outcome, output_dir)
    return outcome


#: What every run of one `benchmark` call shares, set once per process (in each worker by its initializer).
_SETTING: dict = {}


def _set_run_setting(
    blackbox: TabulatedSpace, optimizers: dict[str, Optimizer], num_evaluations: int, n_workers: int,
    experiments: Path | None,
) -> None:
    _SETTING.update(
        blackbox=blackbox, optimizers=optimizers, num_evaluations=num_evaluations, n_workers=n_workers,
        experiments=experiments,
    )


def _run_job(job: tuple[str, int]) -> tuple[pd.DataFrame, float, float]:
    """One optimizer x seed run of the current setting, with one torch thread (as in a worker process, so
    that serial and parallel runs compute the same); returns its results, wall and CPU seconds."""
    label, seed = job
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start, cpu = time.perf_counter(), time.process_time()
    try:
        results = simulate(
            _SETTING["blackbox"], _SETTING["optimizers"][label], seed, _SETTING["num_evaluations"],
            _SETTING["n_workers"], experiments_dir=_SETTING["experiments"], name=f"{label}-seed{seed}",
        )
    finally:
        torch.set_num_threads(threads)
    return results, time.perf_counter() - start, time.process_time() - cpu


def write_benchmark(outcome: BenchmarkOutcome, output_dir: str | os.PathLike) -> Path:
    """Write the outcome's tables and plot into `output_dir` (see the module docstring)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    first = ["optimizer", "seed", "trial_id"]
    outcome.runs[first + [c for c in outcome.runs.columns if c not in first]].to_csv(
        output_dir / "runs.csv", index=False
    )
    outcome.final.to_csv(output_dir / "final.csv", index=False)
    outcome.summary.to_csv(output_dir / "summary.csv", index=False)
    outcome.pairwise.to_csv(output_dir / "mannwhitneyu.csv")
    (output_dir / "benchmark.json").write_text(json.dumps(outcome.record, indent=2) + "\n")
    per_optimizer = {
        label: [run for _, run in group.groupby("seed", sort=True)] for label, group in outcome.curves.groupby(
            "optimizer", sort=False
        )
    }
    bands = []
    for label, runs in per_optimizer.items():
        grid, values = curves_on_grid(runs)
        bands.append(pd.DataFrame({
            "optimizer": label, "time": grid, "mean": values.mean(axis=0), "std": values.std(axis=0),
            "min": values.min(axis=0), "max": values.max(axis=0),
        }))
    pd.concat(bands, ignore_index=True).to_csv(output_dir / "hypervolume_over_time.csv", index=False)
    plot_hypervolume(
        per_optimizer, output_dir / "hypervolume.png", reference=outcome.record["hypervolume_reference"],
        time_label="simulated time (s)",
    )
    return output_dir


def _labelled(optimizers: Sequence[str] | Mapping[str, Optimizer]) -> dict[str, Optimizer]:
    if isinstance(optimizers, Mapping):
        labelled = dict(optimizers)
    else:
        unknown = [name for name in optimizers if name not in OPTIMIZERS]
        if unknown:
            raise ValueError(f"unknown optimizers {unknown}; known names: {', '.join(OPTIMIZERS)}")
        labelled = {name: name for name in optimizers}
    if not labelled:
        raise ValueError("benchmark needs at least one optimizer")
    return labelled


def _summary(final: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer: final hypervolume (mean, std over seeds), mean rank (1 = largest
    hypervolume of the seed; ties share the mean rank), tabulated share, wall and CPU seconds."""
    table = final.pivot(index="seed", columns="optimizer", values="hypervolume")
    ranks = pd.DataFrame(
        np.vstack([rankdata(-row) for row in table.to_numpy()]), index=table.index, columns=table.columns
    )
    grouped = final.groupby("optimizer", sort=False)
    summary = pd.DataFrame({
        "hypervolume_mean": grouped["hypervolume"].mean(),
        "hypervolume_std": grouped["hypervolume"].std(ddof=1),
        "mean_rank": ranks.mean(axis=0),
        "seeds": grouped["seed"].count(),
        "tabulated_share": grouped["tabulated_share"].mean(),
        "simulated_s_mean": grouped["simulated_s"].mean(),
        "wall_s_total": grouped["wall_s"].sum(),
        "cpu_s_total": grouped["cpu_s"].sum(),
    })
    return summary.sort_values("mean_rank", kind="stable").rename_axis("optimizer").reset_index()


def _pairwise(final: pd.DataFrame) -> pd.DataFrame:
    """Two-sided Mann-Whitney U p-values of the final hypervolumes, optimizer x optimizer."""
    labels = list(dict.fromkeys(final["optimizer"]))
    volumes = {label: final.loc[final["optimizer"] == label, "hypervolume"].to_numpy() for label in labels}
    p_values = pd.DataFrame(np.nan, index=labels, columns=labels)
    for a, b in itertools.combinations(labels, 2):
        p_values.loc[a, b] = p_values.loc[b, a] = mannwhitneyu(volumes[a], volumes[b], alternative="two-sided").pvalue
    return p_values.rename_axis("optimizer")

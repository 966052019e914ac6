"""Standard NAS as a Syne Tune experiment: every SMALL-space candidate fine-tuned on its own.

`standard_nas` drives the trials (`nas_pruning.baselines.standard_nas`, the trial
script) with any optimizer of `nas_pruning.optimizers` and returns the common results
table (one row per report, `trial_id` identifying the candidate, `wall_time` = seconds
since tuning started). An interrupted tuning run is not resumed: rerun it (the
benchmark script skips finished runs).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from syne_tune import StoppingCriterion, Tuner
from syne_tune.constants import ST_TUNER_TIME
from syne_tune.optimizer.scheduler import TrialScheduler
from transformers import AutoConfig

from nas_pruning.backends.trial_engine import RayTrials, check_command_line, script_backend
from nas_pruning.baselines import standard_nas as trial
from nas_pruning.baselines.results import RESULT_COLUMNS
from nas_pruning.experiments.report import write_results
from nas_pruning.experiments.runner import read_results, run_experiment
from nas_pruning.models.loading import resolve_model_path
from nas_pruning.optimizers import make_scheduler
from nas_pruning.search_spaces import get_search_space
from nas_pruning.tasks import DEFAULT_MAX_LENGTH

logger = logging.getLogger(__name__)


def standard_nas(
    task: str,
    model: str | None = None,
    optimizer: str | TrialScheduler = "moasha",
    pooling: str = "auto",
    epochs: int = 5,
    max_trials: int | None = None,
    max_wallclock_time: float | None = None,
    n_workers: int = 1,
    seed: int = 0,
    split_seed: int | None = None,
    data_dir: str | os.PathLike | None = None,
    batch_size: int = 32,
    learning_rate: float = 2e-5,
    max_train_examples: int | None = None,
    max_validation_examples: int | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
    num_threads: int | None = None,
    output_dir: str | os.PathLike | None = None,
    optimizer_kwargs: dict[str, Any] | None = None,
    ray: bool = False,
    ray_address: str | None = None,
    cpus_per_trial: float | None = None,
    gpus_per_trial: float | None = None,
) -> pd.DataFrame:
    """Run standard NAS over the SMALL space of `model` on `task` with Syne Tune.

    model: pre-trained checkpoint (hub name or folder); None: all-MiniLM-L6-v2.
    pooling: what every candidate's classifier reads ("auto" | "cls" | "mean", see load_model).
    optimizer: a name of `nas_pruning.optimizers.OPTIMIZERS` or a Syne Tune scheduler
        (built over this function's config space). "moasha" gets max_t = epochs.
    epochs: fine-tuning epochs of every candidate (its largest fidelity).
    max_trials / max_wallclock_time: stop once this many trials have finished
        (completed, stopped early or failed) / after this many seconds (at least one
        is required); trials still running then are stopped.
    n_workers: trials run in parallel (each uses `num_threads` CPU threads).
    seed: seeds the optimizer and every trial's training.
    split_seed: seeds the 70/30 train/validation split (default: `seed`); pass the split
        seed of the fine-tuned model the other methods start from, so that every
        method is scored on the same validation examples.
    output_dir: write the results table to `output_dir/results.csv` and Syne Tune's
        record (trial logs and checkpoints) to `output_dir/syne-tune/`; None leaves
        the record in Syne Tune's default folder (env SYNETUNE_FOLDER or ~/syne-tune).
    optimizer_kwargs: extra arguments of `make_scheduler`.
    ray, ray_address, cpus_per_trial, gpus_per_trial: run each trial as a Ray task
        with these resources (see `nas_pruning.backends.trial_engine.RayTrials`); a
        trial's torch threads are then its CPUs, whatever `num_threads` says.
    The other arguments are those of the trials (see `nas_pruning.baselines.standard_nas.TRIAL_SETTINGS`).
    Failed trials are logged (with their log folder) and do not stop the run.
    Returns the common results table: one row per report, plus trial_id, epoch,
    config_num_layers, config_num_heads, config_num_units, metric and st_tuner_time.
    """
    if max_trials is None and max_wallclock_time is None:
        raise ValueError("standard NAS needs a stopping criterion: pass max_trials and/or max_wallclock_time")
    if max_trials is not None and max_trials < 1:
        raise ValueError(f"max_trials must be >= 1, got {max_trials}")
    ray_trials = RayTrials(ray, ray_address, cpus_per_trial, gpus_per_trial)
    model_path = resolve_model_path(model)
    space = get_search_space(trial.SEARCH_SPACE, AutoConfig.from_pretrained(model_path, trust_remote_code=True))
    settings = {
        "task": task, "model": model_path, "pooling": pooling, "epochs": epochs, "seed": seed, "split_seed": split_seed,
        "data_dir": data_dir, "batch_size": batch_size, "learning_rate": learning_rate,
        "max_train_examples": max_train_examples,
        "max_validation_examples": max_validation_examples, "max_length": max_length,
        "num_threads": ray_trials.threads(num_threads),
    }
    constants = {name: value if isinstance(value, (int, float)) else str(value)
                 for name, value in settings.items() if value is not None}
    check_command_line(constants)
    config_space = {**space.config_space, **constants}
    kwargs = dict(optimizer_kwargs or {})
    if optimizer == "moasha":
        kwargs.setdefault("max_t", epochs)
    scheduler = make_scheduler(
        optimizer, config_space, metrics=("error", "params"),
        points_to_evaluate=[{**point, **constants} for point in space.initial_design()],
        random_seed=seed, **kwargs,
    )
    stop = StoppingCriterion(
        max_wallclock_time=max_wallclock_time, max_num_trials_finished=None if max_trials is None else max_trials - 1
    )
    record = Path(output_dir) / "syne-tune" if output_dir is not None else None
    with script_backend(str(Path(trial.__file__).resolve()), ray_trials) as backend:
        tuner = run_experiment(
            backend, scheduler, stop, record, f"standard-nas-{task}", n_workers,
            max_failures=sys.maxsize,  # a failing candidate is reported, not fatal
            sleep_time=1.0, results_update_interval=30.0, save_tuner=False,
        )
    _log_failures(tuner)
    results = _common_table(tuner)
    if output_dir is not None:
        write_results(Path(output_dir), results)
    return results


def _log_failures(tuner: Tuner) -> None:
    failed = [trial_id for trial_id, status in tuner.tuning_status.last_trial_status_seen.items() if status == "Failed"]
    if failed:
        logger.warning(
            "standard NAS: %d trial(s) failed: %s; their logs are in %s/<trial id>/std.err",
            len(failed), failed, tuner.trial_backend_path,
        )


def _common_table(tuner: Tuner) -> pd.DataFrame:
    frame = read_results(tuner, columns=list(RESULT_COLUMNS) + ["trial_id", "epoch"])
    if frame.empty:  # no trial reported before the time ran out
        return frame
    frame.insert(0, "method", trial.METHOD)
    frame["wall_time"] = frame[ST_TUNER_TIME]
    first = list(RESULT_COLUMNS) + ["trial_id", "epoch"]
    return frame[first + [c for c in frame.columns if c not in first]]

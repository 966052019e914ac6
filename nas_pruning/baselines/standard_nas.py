"""Standard NAS, the slow and honest reference of weight-sharing NAS.

Every candidate of the SMALL search space (first `num_layers` layers, first
`num_heads` heads and `num_units` units in each) is extracted from the
*pre-trained* model (not the fine-tuned one), gets a fresh classification head and
is fine-tuned on its own. Each candidate is one Syne Tune trial run by the
LocalBackend (or as a Ray task: `nas_pruning.backends.trial_engine`) with this file
as entry point:

    python -m nas_pruning.baselines.standard_nas --num_layers 3 --num_heads 6 \
        --num_units 768 --task rte --epochs 5

which reports `epoch`, `error` (validation), `params` (parameter ratio of the
extracted candidate), `metric`, `test_error` and `test_metric` after every epoch,
so that multi-fidelity schedulers (MOASHA: grace period 1, reduction factor 3) can
stop poor candidates early. `standard_nas` drives the trials with any optimizer of
`nas_pruning.optimizers` and returns the common results table (one row per report,
`trial_id` identifying the candidate, `wall_time` = seconds since tuning started).

A trial checkpoints after every epoch in Syne Tune's checkpoint folder and resumes
from it when restarted there (schedulers that pause and resume trials); checkpoints
of finished trials are deleted. An interrupted tuning run is not resumed: rerun it
(the benchmark script skips finished runs).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import pandas as pd
import torch
from syne_tune import Reporter, StoppingCriterion, Tuner
from syne_tune.constants import ST_CHECKPOINT_DIR, ST_RESULTS_DATAFRAME_FILENAME, ST_TUNER_TIME, SYNE_TUNE_ENV_FOLDER
from syne_tune.optimizer.scheduler import TrialScheduler
from transformers import AutoConfig

from nas_pruning.backends.trial_engine import RayTrials, script_backend
from nas_pruning.baselines.data import load_baseline_data
from nas_pruning.baselines.results import RESULT_COLUMNS
from nas_pruning.models import extract_subnetwork, load_model, load_tokenizer, parameter_ratio
from nas_pruning.models.loading import resolve_model_path
from nas_pruning.optimizers import make_scheduler
from nas_pruning.search_spaces import get_search_space
from nas_pruning.supernet import TrainingConfig, train_supernet

logger = logging.getLogger(__name__)

METHOD = "standard_nas"
SEARCH_SPACE = "small"

# The trial's settings besides the candidate: name -> (type, default). `task` is
# required; model None is the bundled all-MiniLM-L6-v2.
TRIAL_SETTINGS: dict[str, tuple[type, Any]] = {
    "task": (str, None),
    "model": (str, None),
    "pooling": (str, "auto"),
    "epochs": (int, 5),
    "seed": (int, 0),
    "split_seed": (int, None),
    "data_dir": (str, None),
    "batch_size": (int, 32),
    "learning_rate": (float, 2e-5),
    "max_train_examples": (int, None),
    "max_validation_examples": (int, None),
    "max_length": (int, 128),
    "num_threads": (int, None),
}


def train_candidate(config: dict[str, Any], checkpoint_dir: str | os.PathLike | None = None) -> None:
    """Fine-tune one candidate and report after every epoch (the body of a trial).

    config: num_layers, num_heads, num_units (the SMALL-space candidate) and the
        settings of TRIAL_SETTINGS (task, model, epochs, ...).
    checkpoint_dir: where to checkpoint after every epoch and resume from.
    """
    torch.set_num_threads(config.get("num_threads") or os.cpu_count())
    tokenizer = load_tokenizer(config["model"])
    data = load_baseline_data(
        config["task"], tokenizer, config.get("data_dir"), seed=config["seed"], split_seed=config.get("split_seed"),
        batch_size=config["batch_size"],
        max_train_examples=config.get("max_train_examples"),
        max_validation_examples=config.get("max_validation_examples"), max_length=config["max_length"],
    )
    torch.manual_seed(config["seed"])  # the new classification head
    pretrained = load_model(
        config["model"], num_labels=data.task.num_labels, is_regression=data.task.is_regression,
        pooling=config.get("pooling", "auto"),
    )
    space = get_search_space(SEARCH_SPACE, pretrained.config)
    sub = space.to_subnetwork({name: config[name] for name in space.config_space})
    params = parameter_ratio(pretrained, sub)
    model = extract_subnetwork(pretrained, sub)
    del pretrained
    # The GPU Ray (or LocalBackend) gave this trial, if any; training and scoring follow the model.
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    report = Reporter()

    def on_epoch_end(epoch: int, metrics: dict[str, Any]) -> None:
        report(epoch=epoch, params=params, **data.score(model))

    training = TrainingConfig(
        epochs=config["epochs"], learning_rate=config["learning_rate"], batch_size=config["batch_size"],
        seed=config["seed"], num_threads=config.get("num_threads"),
    )
    train_supernet(
        model, data.train, data.task, strategy="standard", config=training,
        output_dir=checkpoint_dir, on_epoch_end=on_epoch_end, progress=False,
    )


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
    max_length: int = 128,
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
    The other arguments are those of the trials (see TRIAL_SETTINGS).
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
    space = get_search_space(SEARCH_SPACE, AutoConfig.from_pretrained(model_path, trust_remote_code=True))
    settings = {
        "task": task, "model": model_path, "pooling": pooling, "epochs": epochs, "seed": seed, "split_seed": split_seed,
        "data_dir": data_dir, "batch_size": batch_size, "learning_rate": learning_rate,
        "max_train_examples": max_train_examples,
        "max_validation_examples": max_validation_examples, "max_length": max_length,
        "num_threads": ray_trials.threads(num_threads),
    }
    constants = {name: value if isinstance(value, (int, float)) else str(value)
                 for name, value in settings.items() if value is not None}
    for name, value in constants.items():
        # LocalBackend passes the config on a command line split at spaces.
        if isinstance(value, str) and re.search(r"\s", value):
            raise ValueError(f"{name}={value!r} contains whitespace, which Syne Tune's LocalBackend cannot pass on")
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
    with _synetune_folder(record), script_backend(str(Path(__file__).resolve()), ray_trials) as backend:
        tuner = Tuner(
            trial_backend=backend,
            scheduler=scheduler,
            stop_criterion=stop,
            n_workers=n_workers,
            sleep_time=1.0,
            results_update_interval=30.0,
            max_failures=sys.maxsize,  # a failing candidate is reported, not fatal
            tuner_name=f"standard-nas-{task}",
            save_tuner=False,
        )
        tuner.run()
    _log_failures(tuner)
    results = _common_table(tuner)
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        results.to_csv(Path(output_dir) / "results.csv", index=False)
    return results


@contextmanager
def _synetune_folder(folder: Path | None) -> Iterator[None]:
    """Point Syne Tune's experiment folder (env SYNETUNE_FOLDER) at `folder` for a while."""
    if folder is None:
        yield
        return
    previous = os.environ.get(SYNE_TUNE_ENV_FOLDER)
    os.environ[SYNE_TUNE_ENV_FOLDER] = str(folder)
    try:
        yield
    finally:
        if previous is None:
            del os.environ[SYNE_TUNE_ENV_FOLDER]
        else:
            os.environ[SYNE_TUNE_ENV_FOLDER] = previous


def _log_failures(tuner: Tuner) -> None:
    failed = [trial_id for trial_id, status in tuner.tuning_status.last_trial_status_seen.items() if status == "Failed"]
    if failed:
        logger.warning(
            "standard NAS: %d trial(s) failed: %s; their logs are in %s/<trial id>/std.err",
            len(failed), failed, tuner.trial_backend_path,
        )


def _common_table(tuner: Tuner) -> pd.DataFrame:
    path = Path(tuner.tuner_path) / ST_RESULTS_DATAFRAME_FILENAME
    try:
        frame = pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError):  # no trial reported before the time ran out
        return pd.DataFrame(columns=list(RESULT_COLUMNS) + ["trial_id", "epoch"])
    frame.insert(0, "method", METHOD)
    frame["wall_time"] = frame[ST_TUNER_TIME]
    first = list(RESULT_COLUMNS) + ["trial_id", "epoch"]
    return frame[first + [c for c in frame.columns if c not in first]]


def _parse_args(argv: Sequence[str] | None) -> tuple[dict[str, Any], str | None]:
    parser = argparse.ArgumentParser(description="Fine-tune one SMALL-space candidate (a standard-NAS trial)")
    for name in ("num_layers", "num_heads", "num_units"):
        parser.add_argument(f"--{name}", type=int, required=True)
    for name, (kind, default) in TRIAL_SETTINGS.items():
        parser.add_argument(f"--{name}", type=kind, default=default, required=name == "task")
    parser.add_argument(f"--{ST_CHECKPOINT_DIR}", default=None)
    args = vars(parser.parse_args(argv))
    return args, args.pop(ST_CHECKPOINT_DIR)


if __name__ == "__main__":
    trial_config, trial_checkpoint_dir = _parse_args(sys.argv[1:])
    train_candidate(trial_config, trial_checkpoint_dir)

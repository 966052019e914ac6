"""CoFi pruning with transfer learning as a Syne Tune experiment.

Each trial is one run of :func:`nas_pruning.cofi.run_cofi` in its own process under
Syne Tune's ``LocalBackend`` (or as a Ray task): the trial script is
:mod:`nas_pruning.cofi.trial`, which reports ``error``, ``params``, ``speedup`` and more
after every pruning and fine-tuning epoch and leaves each finished trial's pruned model
in ``<trial folder>/result/model``.

    space = cofi_transfer_config_space("rte", target_examples=1000, data_dir="../shared/data/glue")
    results = run_cofi_search(space, "cofi-search-rte", optimizer="moasha", n_trials=20)

or, for one trial by hand,
``python -m nas_pruning.cofi.trial --task rte --coupling delta --output-dir out``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ContextManager, Mapping, Sequence

import pandas as pd
from syne_tune import StoppingCriterion
from syne_tune.backend import LocalBackend
from syne_tune.config_space import Domain, choice, loguniform, uniform

from nas_pruning.backends.trial_engine import RayTrials, check_command_line, script_backend
from nas_pruning.cofi import trial as cofi_trial
from nas_pruning.cofi.config import DEFAULT_AUXILIARY, SEARCHED_SETTINGS, CoFiConfig
from nas_pruning.cofi.pipeline import MODEL_FOLDER, prepare_teacher
from nas_pruning.cofi.transfer import COUPLINGS, STAGES, TRANSFERS, check_choice
from nas_pruning.experiments.report import Report, write_report
from nas_pruning.experiments.runner import read_results, run_experiment
from nas_pruning.optimizers import make_scheduler
from nas_pruning.pareto import final_results, hypervolume, hypervolume_over_time, pareto_front

METRICS = ("error", "params")


def fixed_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """The CoFi settings of a search that every trial shares: those of `values` (e.g. parsed
    command-line options) that are CoFiConfig settings, neither searched nor the task, and not
    at their default (the defaults need not be repeated in the config space)."""
    defaults = CoFiConfig.__dataclass_fields__
    shared = [name for name in CoFiConfig.setting_names() if name not in SEARCHED_SETTINGS and name != "task"]
    return {name: values[name] for name in shared if name in values and values[name] != defaults[name].default}


def cofi_transfer_config_space(
    task: str = "rte",
    aux_tasks: Sequence[str] | None = None,
    sparsity_range: tuple[float, float] = (0.5, 0.97),
    lambda_delta_range: tuple[float, float] = (1e-4, 1.0),
    couplings: Sequence[str] = COUPLINGS,
    stages: Sequence[str] = STAGES,
    transfers: Sequence[str] = TRANSFERS,
    **settings,
) -> dict:
    """A Syne Tune config space over target sparsity, coupling, lambda_delta, auxiliary
    task, stage and what is transferred, for target `task`.

    aux_tasks: candidate auxiliary tasks (default: the benchmark's partner of `task`).
    sparsity_range: (low, high) of the uniform target sparsity, inside (0, 1).
    lambda_delta_range: (low, high) of the log-uniform delta-penalty weight.
    couplings, stages, transfers: the choices offered for each.
    settings: any other :class:`~nas_pruning.cofi.CoFiConfig` setting, fixed for
        every trial (e.g. ``target_examples=1000, prune_epochs=5``).
    """
    if aux_tasks is None:
        if task not in DEFAULT_AUXILIARY:
            raise ValueError(f"pass aux_tasks for target {task!r}; defaults exist for {sorted(DEFAULT_AUXILIARY)}")
        aux_tasks = [DEFAULT_AUXILIARY[task]]
    unknown = set(settings) - set(CoFiConfig.setting_names())
    if unknown or set(settings) & set(SEARCHED_SETTINGS):
        raise ValueError(
            f"settings {sorted(unknown | (set(settings) & set(SEARCHED_SETTINGS)))} cannot be fixed here; "
            f"searched: {SEARCHED_SETTINGS}; fixed settings are the other CoFiConfig fields"
        )
    low, high = sparsity_range
    if not 0.0 < low <= high < 1.0:
        raise ValueError(f"sparsity_range must satisfy 0 < low <= high < 1, got {sparsity_range}")
    if not 0.0 < lambda_delta_range[0] <= lambda_delta_range[1]:
        raise ValueError(f"lambda_delta_range must be positive and ordered, got {lambda_delta_range}")
    offered = (("coupling", couplings, COUPLINGS), ("stage", stages, STAGES), ("transfer", transfers, TRANSFERS))
    for name, values, accepted in offered:
        if not values:
            raise ValueError(f"offer at least one {name}")
        for value in values:
            check_choice(name, value, accepted)
    fixed = {name: value for name, value in settings.items() if value is not None}
    check_command_line(fixed)
    # Fail now, not in every trial: check the fixed settings with each auxiliary task.
    for aux_task in aux_tasks:
        CoFiConfig(task=task, aux_task=aux_task, coupling=couplings[-1], **fixed)
    space = {
        "task": task,
        "target_sparsity": uniform(low, high) if low < high else low,
        "coupling": _choice(couplings),
        "lambda_delta": loguniform(*lambda_delta_range),
        "aux_task": _choice(aux_tasks),
        "stage": _choice(stages),
        "transfer": _choice(transfers),
    }
    space.update({name: ",".join(value) if isinstance(value, tuple) else value for name, value in fixed.items()})
    return space


def _choice(values: Sequence[str]):
    return choice(list(values)) if len(values) > 1 else values[0]


def max_epochs(config_space: dict) -> int:
    """Epochs each trial reports (pruning + fine-tuning): MOASHA's max_t."""
    defaults = CoFiConfig.__dataclass_fields__
    epochs = {name: config_space.get(name, defaults[name].default) for name in ("prune_epochs", "finetune_epochs")}
    if any(isinstance(value, Domain) for value in epochs.values()):
        raise ValueError("prune_epochs and finetune_epochs must be fixed, not searched")
    return int(epochs["prune_epochs"]) + int(epochs["finetune_epochs"])


def trial_backend(ray_trials: RayTrials = RayTrials()) -> ContextManager[LocalBackend]:
    """The backend that runs :mod:`nas_pruning.cofi.trial` as the trial script, for a `with` block: a process
    per trial, or a Ray task per trial (see `RayTrials`). Checkpoints (hundreds of MB
    each) go once a trial ends; its model, outside them, stays."""
    return script_backend(str(Path(cofi_trial.__file__).resolve()), ray_trials)


def run_cofi_search(
    config_space: dict,
    output_dir: str | os.PathLike,
    optimizer="moasha",
    n_trials: int = 20,
    n_workers: int = 1,
    max_wallclock_time: float | None = None,
    random_seed: int = 0,
    ray: bool = False,
    ray_address: str | None = None,
    cpus_per_trial: float | None = None,
    gpus_per_trial: float | None = None,
    **optimizer_kwargs,
) -> dict[str, pd.DataFrame]:
    """Run a Syne Tune experiment over `config_space` and summarise it in `output_dir`.

    optimizer: a name from :data:`nas_pruning.optimizers.OPTIMIZERS`, a Syne Tune
        scheduler or a pymoo algorithm, minimising ``error`` and ``params``.
    n_trials: trials to start; all of them run to their end (or early stop).
    max_wallclock_time: seconds after which no new trial starts (None: no limit).
    ray, ray_address, cpus_per_trial, gpus_per_trial: run each trial as a Ray task
        with these resources, see :class:`~nas_pruning.backends.trial_engine.RayTrials`;
        a trial's torch threads are then its CPUs. The teacher is trained here first
        and cached in ``cache_dir``: on a multi-node cluster, put it (and the
        experiment folder) on a shared file system.

    Writes ``results.csv`` (every report of every trial), ``pareto.csv`` (the final
    non-dominated trials, with the folders of their models), ``hypervolume.csv``
    (over wall-clock time), ``summary.json`` (final hypervolume; error and params
    are ratios, taken as they are, with reference point (1, 1), see
    :mod:`nas_pruning.pareto`), ``pareto_front.png`` and ``hypervolume.png`` (the common
    report, :mod:`nas_pruning.experiments.report`). Syne Tune's record,
    with one folder per trial (logs, and the model of each finished trial), is
    in ``syne-tune/``. Returns the tables by name.
    """
    if n_trials < 1 or n_workers < 1:
        raise ValueError(f"n_trials and n_workers must be at least 1, got {n_trials} and {n_workers}")
    ray_trials = RayTrials(ray, ray_address, cpus_per_trial, gpus_per_trial)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    prepare_teacher(_fixed_config(config_space))  # trained once here, loaded by every trial
    threads = ray_trials.threads(config_space.get("num_threads"))
    if threads is not None:
        config_space = {**config_space, "num_threads": threads}
    if optimizer == "moasha":
        optimizer_kwargs.setdefault("max_t", max_epochs(config_space))
    scheduler = make_scheduler(optimizer, config_space, METRICS, random_seed=random_seed, **optimizer_kwargs)
    with trial_backend(ray_trials) as backend:
        tuner = run_experiment(
            backend, scheduler,
            StoppingCriterion(max_num_trials_started=n_trials - 1, max_wallclock_time=max_wallclock_time),
            output_dir / "syne-tune", "cofi-transfer", n_workers,
            max_failures=n_trials,  # a failing trial is reported, not fatal
            wait_trial_completion_when_stopping=True, sleep_time=1.0,
        )
    results = read_results(tuner, columns=("trial_id", *METRICS))
    return summarise(results, output_dir, Path(tuner.trial_backend_path))


def summarise(results: pd.DataFrame, output_dir: Path, trials_dir: Path) -> dict[str, pd.DataFrame]:
    """Write and return the tables and the plots of a finished search whose trial
    folders are in `trials_dir`."""
    front = pareto_front(results, METRICS)
    front["model_dir"] = [_model_dir(trials_dir, trial) for trial in front["trial_id"]]
    curve = hypervolume_over_time(results, objectives=METRICS)
    summary = {"trials": int(results["trial_id"].nunique()), "hypervolume": hypervolume(results, METRICS)}
    write_report(output_dir, Report(
        results, front, summary, curve, label="CoFi transfer", objectives=METRICS,
        all_points=final_results(results), front_plot="pareto_front.png",
    ))
    return {"results": results, "pareto": front, "hypervolume": curve}


def _model_dir(trials_dir: Path, trial_id) -> str | None:
    folder = trials_dir / str(int(trial_id)) / cofi_trial.TRIAL_RESULT_FOLDER / MODEL_FOLDER
    return str(folder) if folder.exists() else None


def _fixed_config(config_space: dict) -> CoFiConfig:
    """The settings every trial shares (the searched ones at a valid value), for the teacher."""
    values = {name: value for name, value in config_space.items() if not isinstance(value, Domain)}
    values.pop("coupling", None)
    settings = {name: value for name, value in values.items() if name in CoFiConfig.setting_names()}
    return CoFiConfig(**settings, coupling="none")

"""The weight-sharing search: the Syne Tune experiment behind `nas-pruning search`.

From a trained super-network folder to a results table, its Pareto front (scored
on the validation split, members re-scored on the test split), the hypervolume and
plots, all written into one output folder:

```
output_dir/
  syne-tune/<experiment>/   Syne Tune's own record (load_experiment reads it)
  search.json               what the search was started with (a resumed search must match)
  results.csv               one row per evaluated sub-network, written as each finishes
  pareto.csv                the non-dominated rows; provisional (validation only) while the
                            search runs, then with test_metric / test_error
  summary.json              hypervolume, reference point, bounds, settings
  hypervolume.csv, front.png, hypervolume.png
```
(the common report of `nas_pruning.experiments.report`)

Objectives (`SearchSettings.objectives`): error and parameter ratio (default), error and
latency, or all three. Latency is measured on the extracted sub-network in the chosen runtime
(nas_pruning.runtimes.LatencySpec) and cached per architecture. For the hypervolume it is
normalised by the bounds [0, latency of the full model measured the same way]: a sub-network
slower than the full model adds nothing. The bounds and the measurement settings are stored in
summary.json (`hypervolume_bounds`, `latency`).

Running a search again into the same folder resumes it: the evaluations in
results.csv are kept and told to the optimizer as already evaluated, and only the
rest of the budget (evaluations and time) runs, so the folder ends with exactly
`num_evaluations` evaluations. Ctrl-C stops a search with `SearchInterrupted`,
keeping every finished evaluation.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from syne_tune import StoppingCriterion
from syne_tune.backend.trial_backend import TrialBackend
from syne_tune.backend.trial_status import Trial
from syne_tune.constants import ST_TRIAL_ID, ST_TUNER_TIME
from syne_tune.optimizer.scheduler import TrialScheduler, TrialSuggestion
from syne_tune.results_callback import StoreResultsCallback
from tqdm.auto import tqdm

from nas_pruning.backends.ray_backend import RayWeightSharingBackend, import_ray
from nas_pruning.backends.weight_sharing import SubnetworkEvaluator, WeightSharingBackend
from nas_pruning.evaluation import Yardsticks, evaluate
from nas_pruning.experiments.report import (
    FRONT_FILE,
    RESULTS_FILE,
    SUMMARY_FILE,
    Report,
    write_report,
    write_results,
    write_table,
)
from nas_pruning.experiments.runner import run_experiment
from nas_pruning.files import absolute_path, stored_path, write_text_atomic
from nas_pruning.models import SubNetwork, get_adapter, load_tokenizer
from nas_pruning.optimizers import make_scheduler
from nas_pruning.pareto import (
    DEFAULT_BOUNDS,
    DEFAULT_OBJECTIVES,
    hypervolume,
    hypervolume_over_time,
    make_reference_point,
    pareto_front,
)
from nas_pruning.runtimes import RUNTIMES, LatencyMeter, LatencySpec
from nas_pruning.search_spaces import SearchSpace, get_search_space
from nas_pruning.supernet import SupernetRecord, load_supernet
from nas_pruning.supernet.storage import record_fields, versioned_json
from nas_pruning.tasks import SPLITS, Task, TaskData, encode, get_task, load_task, make_loader

#: Version of the summary.json a search writes (its "version" field); a summary without one was
#: written before summaries were versioned and loads the same way.
SUMMARY_VERSION = 1
STARTED_FILE = "search.json"
# Settings a resumed search may change: they do not change what an evaluation measures
# (threads do when latency is measured: see `_resume`).
RUNTIME_SETTINGS = (
    "num_evaluations", "max_wallclock_time", "n_workers", "batch_size", "num_threads",
    "ray_actors", "ray_address", "actor_cpus", "actor_gpus",
)  # fmt: skip
LATENCY = "latency"
#: The accepted sets of minimised objectives.
OBJECTIVE_SETS = (DEFAULT_OBJECTIVES, ("error", LATENCY), (*DEFAULT_OBJECTIVES, LATENCY))


class SearchInterrupted(Exception):
    """The search was stopped (Ctrl-C); the message says what was kept and how to resume."""


def parse_objectives(objectives: str | Sequence[str]) -> tuple[str, ...]:
    """One of OBJECTIVE_SETS from "error,latency" or a sequence of names; ValueError for anything else."""
    names = tuple(n.strip() for n in objectives.split(",")) if isinstance(objectives, str) else tuple(objectives)
    if names not in OBJECTIVE_SETS:
        accepted = " | ".join(",".join(o) for o in OBJECTIVE_SETS)
        raise ValueError(f"unknown objectives {','.join(names)!r}; accepted: {accepted}")
    return names


@dataclass
class SearchSettings:
    """How to search.

    search_space: space of sub-networks ("small" | "medium" | "large" | "layer");
        None: the one the super-network was trained with.
    optimizer: a name of nas_pruning.optimizers.OPTIMIZERS.
    num_evaluations: sub-networks to evaluate (the initial design included).
    max_wallclock_time: optional time limit in seconds.
    n_workers: concurrent evaluations (one model replica each).
    seed: seed of the optimizer (a resumed search continues with seed + the number of
        evaluations it keeps, so that it does not draw the same configs again).
    batch_size: evaluation batch size. Validation batches are sorted by length, so smaller
        batches pad less (400 STS-B validation examples: 5% padding tokens at 16, 24% at 64) and
        evaluate faster on a CPU (docs/throughput.md); on a GPU larger batches may be faster.
    max_validation_examples: score on a random subset of the validation split
        (faster, noisier); None: all of it.
    objectives: minimised objectives, one of OBJECTIVE_SETS.
    measure_latency: also record each sub-network's `latency` when it is not an objective.
    runtime: where latency is measured: "torch" or "onnxruntime" (needs nas_pruning[onnx]).
    latency_batch_size, latency_length: shape of the timed batch (random tokens, no padding).
    latency_warmup, latency_repeats: untimed passes, then timed passes whose median is the latency.
        Latency is timed with `num_threads` torch (and ONNX Runtime) threads, on Ray actors with
        `actor_cpus`; the full model's latency (the hypervolume bound) is timed in this process.
    hypervolume_reference: "trivial" (the error's reference is the trivial predictor's
        validation error, so constant predictors add nothing) or "fixed" ((1, 1)); see
        nas_pruning.pareto.
    num_threads: torch threads; None: all cores.
    ray_actors: evaluate on this many Ray actors (one model replica each, see
        nas_pruning.backends.ray_backend) instead of in-process threads; None: in
        process, unless `ray_address` is set (then one actor per worker).
    ray_address: the Ray cluster to run the actors on ("auto": the one this machine
        belongs to); None: a local Ray instance, started for the search.
    actor_cpus: CPUs per Ray actor (also its torch threads).
    actor_gpus: GPUs per Ray actor (0: evaluate on CPU).
    """

    search_space: str | None = None
    optimizer: str = "local_search"
    num_evaluations: int = 100
    max_wallclock_time: float | None = None
    n_workers: int = 1
    seed: int = 0
    batch_size: int = 16
    max_validation_examples: int | None = None
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES
    measure_latency: bool = False
    runtime: str = "torch"
    latency_batch_size: int = 1
    latency_length: int = 128
    latency_warmup: int = 2
    latency_repeats: int = 10
    hypervolume_reference: str = "trivial"
    num_threads: int | None = None
    ray_actors: int | None = None
    ray_address: str | None = None
    actor_cpus: float = 1.0
    actor_gpus: float = 0.0

    def __post_init__(self) -> None:
        checks = {
            "num_evaluations": (self.num_evaluations >= 1, ">= 1"),
            "max_wallclock_time": (self.max_wallclock_time is None or self.max_wallclock_time > 0, "> 0 or None"),
            "n_workers": (self.n_workers >= 1, ">= 1"),
            "batch_size": (self.batch_size >= 1, ">= 1"),
            "max_validation_examples": (
                self.max_validation_examples is None or self.max_validation_examples >= 1, ">= 1 or None"
            ),
        }
        for name, (ok, accepted) in checks.items():
            if not ok:
                raise ValueError(f"SearchSettings.{name} must be {accepted}, got {getattr(self, name)!r}")
        self.objectives = parse_objectives(self.objectives)
        if self.runtime not in RUNTIMES:  # also when latency is not measured: a typo is still a mistake
            raise ValueError(f"unknown runtime {self.runtime!r}; accepted: {', '.join(RUNTIMES)}")
        self.latency_spec()  # a missing runtime or a bad shape fails here, before anything loads

    def latency_spec(self) -> LatencySpec | None:
        """How latency is measured, or None when it is neither an objective nor asked for."""
        if LATENCY not in self.objectives and not self.measure_latency:
            return None
        return LatencySpec(
            self.runtime, self.latency_batch_size, self.latency_length, self.latency_warmup, self.latency_repeats
        )

    @property
    def uses_ray(self) -> bool:
        return self.ray_actors is not None or self.ray_address is not None

    @property
    def concurrent_evaluations(self) -> int:
        return (self.ray_actors or self.n_workers) if self.uses_ray else self.n_workers


@dataclass
class SearchOutcome:
    results: pd.DataFrame
    front: pd.DataFrame
    hypervolume: float
    output_dir: Path
    experiment: str
    yardsticks: Yardsticks


@dataclass
class SearchSummary:
    """summary.json of a finished search, as `load_search_summary` reads it back; what an older
    summary leaves out takes the defaults below.

    supernet: the searched super-network's folder. task, metric: its task and the task's metric.
    experiment: name of the (last) Syne Tune experiment. evaluations: evaluations that succeeded.
    front_size: members of the front. hypervolume: of the front (validation objectives).
    hypervolume_objectives, hypervolume_bounds, hypervolume_reference, hypervolume_reference_point:
        how the hypervolume was computed (see nas_pruning.pareto).
    objectives: the minimised objectives. latency: how latency was measured (a LatencySpec's
        fields, `full_model_latency`, `bounds`); None: not measured.
    yardsticks: the trivial predictor and the unpruned model; None: not recorded.
    settings: the search's settings, `search_space` the one searched.
    """

    supernet: str
    task: str | None = None
    metric: str | None = None
    experiment: str | None = None
    evaluations: int = 0
    front_size: int = 0
    hypervolume: float | None = None
    hypervolume_objectives: list[str] = field(default_factory=lambda: list(DEFAULT_OBJECTIVES))
    hypervolume_bounds: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_BOUNDS))
    hypervolume_reference: str | None = None
    hypervolume_reference_point: list[float] | None = None
    objectives: list[str] = field(default_factory=lambda: list(DEFAULT_OBJECTIVES))
    latency: dict[str, Any] | None = None
    yardsticks: Yardsticks | None = None
    settings: SearchSettings = field(default_factory=SearchSettings)

    def to_json(self) -> str:
        return versioned_json(self, SUMMARY_VERSION)

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str | os.PathLike) -> "SearchSummary":
        """The summary in the JSON object `data` read from the file `source`."""
        values = record_fields(cls, data, SUMMARY_VERSION, source)
        if "supernet" not in values:
            raise ValueError(f"{source} names no super-network (no 'supernet'): it is not a search's summary")
        values["supernet"] = stored_path(values["supernet"], source)
        values["hypervolume_bounds"] = {
            **DEFAULT_BOUNDS, **{k: tuple(v) for k, v in (values.get("hypervolume_bounds") or {}).items()}
        }
        if values.get("yardsticks") is not None:
            values["yardsticks"] = Yardsticks(**values["yardsticks"])
        settings = record_fields(SearchSettings, values.get("settings") or {}, SUMMARY_VERSION, source)
        values["settings"] = SearchSettings(**settings)
        return cls(**values)


def load_search_summary(search_dir: str | os.PathLike) -> SearchSummary:
    """The summary.json of the finished search in folder `search_dir`."""
    summary_file = Path(search_dir) / SUMMARY_FILE
    if not summary_file.is_file():
        raise FileNotFoundError(f"{search_dir} is not a search folder: no {SUMMARY_FILE} (run `nas-pruning search`)")
    return SearchSummary.from_json(json.loads(summary_file.read_text()), summary_file)


def run_search(
    supernet_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    settings: SearchSettings = SearchSettings(),
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> SearchOutcome:
    """Search sub-networks of the super-network in `supernet_dir`; write everything to `output_dir`."""
    torch.set_num_threads(settings.num_threads or os.cpu_count())
    if settings.uses_ray:
        import_ray()  # before the model and data load: says how to install Ray if it is missing
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model, info = load_supernet(supernet_dir)
    space = get_search_space(settings.search_space or info.searched_space, model.config)
    previous = _resume(output_dir, supernet_dir, settings, space)
    spec = settings.latency_spec()
    meter = LatencyMeter(spec) if spec is not None else None
    setup = prepare_evaluation(
        supernet_dir, model, info, space, data_dir, settings.batch_size, settings.max_validation_examples,
        settings.seed, meter, progress,
    )
    evaluator, task, yardsticks, test_batches = setup.evaluator, setup.task, setup.yardsticks, setup.test_batches
    objectives, bounds, latency_record = settings.objectives, dict(DEFAULT_BOUNDS), None
    if meter is not None:
        for config, latency in zip(front_configs(previous), previous.get(LATENCY, [])):
            if pd.notna(latency):  # measured by an earlier run of this search: not timed again
                meter.remember(space.to_subnetwork(config), latency)
        # The full model's latency, measured like every candidate's, is the upper bound of latency.
        full_latency = meter(model, SubNetwork.full(get_adapter(model).dims(model.config)))
        bounds[LATENCY] = (0.0, full_latency)
        latency_record = {**spec.as_dict(), "full_model_latency": full_latency, "bounds": [0.0, full_latency]}

    results, experiment = _tune(evaluator, space, settings, output_dir, previous)
    write_results(output_dir, results)  # before the front is scored on test: kept if that fails
    front = _score_on_test(evaluator, pareto_front(results, objectives), test_batches, yardsticks, progress)
    reference = make_reference_point(
        objectives, settings.hypervolume_reference, trivial_error=1.0 - yardsticks.trivial_validation, bounds=bounds
    )
    volume = hypervolume(front, objectives, reference_point=reference, bounds=bounds)
    summary = SearchSummary(
        supernet=absolute_path(supernet_dir),
        task=task.name,
        metric=task.metric_name,
        experiment=experiment,
        evaluations=int(results["error"].notna().sum()),
        front_size=len(front),
        hypervolume=volume,
        hypervolume_objectives=list(objectives),
        hypervolume_bounds=bounds,
        hypervolume_reference=settings.hypervolume_reference,
        hypervolume_reference_point=reference,
        objectives=list(objectives),
        latency=latency_record,
        yardsticks=yardsticks,
        settings=dataclasses.replace(settings, search_space=space.name),
    )
    # Error over the second objective (parameter ratio, or latency when it is the only other one).
    write_report(output_dir, Report(
        results, front, summary,
        curve=hypervolume_over_time(results, objectives=objectives, reference_point=reference, bounds=bounds),
        label=settings.optimizer, objectives=objectives, all_points=results,
        trivial_error=1.0 - yardsticks.trivial_validation, hypervolume_reference=settings.hypervolume_reference,
    ))
    return SearchOutcome(results, front, volume, output_dir, experiment, yardsticks)


def _resume(output_dir: Path, supernet_dir, settings: SearchSettings, space: SearchSpace) -> pd.DataFrame:
    """The evaluations a previous run of this search left in `output_dir` (none: an empty table).

    Records what the search is started with in search.json; refuses a folder holding
    another search, or more evaluations than `settings` asks for.
    """
    free = set(RUNTIME_SETTINGS)
    if settings.latency_spec() is not None:  # the threads a latency is timed with change it
        free -= {"num_threads", "actor_cpus"}
    started = {
        "supernet": absolute_path(supernet_dir),
        **{k: v for k, v in asdict(settings).items() if k not in free},
        "search_space": space.name,
    }
    started = json.loads(json.dumps(started))  # as search.json holds it (tuples become lists)
    record, results_file = output_dir / STARTED_FILE, output_dir / RESULTS_FILE
    restart = f"use another --output-dir, or delete {output_dir} to start this search over"
    if record.is_file():
        before = json.loads(record.read_text())
        changed = [f"{k}: before {before.get(k)!r}, now {v!r}" for k, v in started.items() if before.get(k) != v]
        if changed:
            details = "; ".join(changed)
            raise ValueError(f"{output_dir} holds a search started with other settings ({details}); {restart}")
    elif results_file.is_file():
        raise ValueError(f"{output_dir} holds a {RESULTS_FILE} that no resumable search wrote; {restart}")
    else:
        write_text_atomic(record, json.dumps(started, indent=2) + "\n")
    previous = pd.read_csv(results_file) if results_file.is_file() else pd.DataFrame()
    done = previous[ST_TRIAL_ID].nunique() if len(previous) else 0
    if done > settings.num_evaluations:
        raise ValueError(
            f"{output_dir} already holds {done} evaluations, more than the {settings.num_evaluations} asked for: "
            f"ask for at least {done}, or {restart}"
        )
    if done:
        print(f"resuming the search in {output_dir}: {done} of {settings.num_evaluations} evaluations done")
    return previous


def load_supernet_data(
    info: SupernetRecord,
    tokenizer,
    data_dir: str | os.PathLike | None = None,
    splits: tuple[str, ...] = SPLITS,
    max_validation_examples: int | None = None,
    seed: int = 0,
) -> TaskData:
    """The splits of a super-network's task, split and subsampled as when it was trained.

    info: the super-network's record (`load_supernet`); data_dir: GLUE folder, default the one it
    was trained on; max_validation_examples: a random validation subset of this size (drawn with
    `seed`). Validation and test are encoded; train, when asked for, is left as text: only its
    labels are used (they decide the trivial prediction).
    """
    split = info.data
    data = load_task(
        info.task,
        data_dir if data_dir is not None else split.data_dir,
        seed=split.split_seed,
        val_fraction=split.val_fraction,
        max_train_examples=split.max_train_examples,
        splits=splits,
    )
    validation = data.validation
    if validation is not None and max_validation_examples is not None and max_validation_examples < len(validation):
        subset = validation.shuffle(seed=seed).select(range(max_validation_examples))
        data = dataclasses.replace(data, validation=subset)
    encoded = encode(dataclasses.replace(data, train=None), tokenizer, max_length=split.max_length)
    return dataclasses.replace(encoded, train=data.train)


@dataclass
class EvaluationSetup:
    """What scoring sub-networks of one super-network needs, loaded once.

    evaluator: scores configs of the search space on the validation batches it holds.
    task: the super-network's task.
    yardsticks: the trivial predictor and the unpruned model on validation and test.
    test_batches: the test split (the GLUE dev set), batched.
    """

    evaluator: SubnetworkEvaluator
    task: Task
    yardsticks: Yardsticks
    test_batches: list[dict]


def prepare_evaluation(
    supernet_dir: str | os.PathLike,
    model: torch.nn.Module,
    info: SupernetRecord,
    space: SearchSpace,
    data_dir: str | os.PathLike | None = None,
    batch_size: int = 16,
    max_validation_examples: int | None = None,
    subset_seed: int = 0,
    latency: LatencyMeter | None = None,
    progress: bool = True,
) -> EvaluationSetup:
    """The evaluator a search scores sub-networks of `space` with, on the super-network's data split
    as it was trained, and the yardsticks it is judged against.

    supernet_dir, model, info: the super-network's folder and what `load_supernet` read from it.
    data_dir: folder of GLUE TSVs; None: the one recorded with the super-network.
    max_validation_examples: score on a random validation subset of this size (drawn with
        `subset_seed`; a search draws it with its own seed); None: all of it.
    latency: the evaluator also reports each sub-network's `latency`, measured by this meter.
    progress: show a progress bar while the unpruned model is scored on test.
    """
    task = get_task(info.task)
    tokenizer = load_tokenizer(supernet_dir)
    data = load_supernet_data(info, tokenizer, data_dir, SPLITS, max_validation_examples, subset_seed)
    val_batches = list(make_loader(data.validation, tokenizer, batch_size=batch_size, by_length=True))
    test_batches = list(make_loader(data.test, tokenizer, batch_size=batch_size, by_length=True))
    evaluator = SubnetworkEvaluator(model, space, val_batches, task, latency=latency)
    yardsticks = _yardsticks(evaluator, data.train["label"], test_batches, progress)
    return EvaluationSetup(evaluator, task, yardsticks, test_batches)


def _tune(
    evaluator: SubnetworkEvaluator,
    space: SearchSpace,
    settings: SearchSettings,
    output_dir: Path,
    previous: pd.DataFrame,
) -> tuple[pd.DataFrame, str]:
    """Run the rest of the search's budget; the results of the whole search and the last experiment's name."""
    done_configs = front_configs(previous) if len(previous) else []
    remaining = settings.num_evaluations - len(done_configs)
    elapsed = float(previous[ST_TUNER_TIME].max()) if len(previous) else 0.0
    time_left = None if settings.max_wallclock_time is None else settings.max_wallclock_time - elapsed
    name = f"weight-sharing-{settings.optimizer}"
    if remaining <= 0 or (time_left is not None and time_left <= 0):
        return previous, name
    scheduler = make_scheduler(
        settings.optimizer,
        space.config_space,
        metrics=settings.objectives,
        points_to_evaluate=[c for c in space.initial_design() if c not in done_configs],
        random_seed=settings.seed + len(done_configs),
        **({"max_t": 1} if settings.optimizer == "moasha" else {}),
    )
    _replay(scheduler, previous)
    store = IncrementalResults(
        output_dir, previous, settings.objectives, trial_offset=len(done_configs), time_offset=elapsed
    )
    backend = _backend(evaluator, settings)
    try:
        tuner = run_experiment(
            backend,
            BudgetedScheduler(scheduler, remaining),
            StoppingCriterion(max_num_trials_finished=remaining, max_wallclock_time=time_left),
            output_dir / "syne-tune",
            name,
            n_workers=min(settings.concurrent_evaluations, remaining),
            max_failures=settings.num_evaluations,  # a failing evaluation is reported, not fatal
            callbacks=[store],
            sleep_time=0.01,
            results_update_interval=5.0,
            print_update_interval=60.0,
        )
    except KeyboardInterrupt:
        kept = store.table()
        raise SearchInterrupted(
            f"search interrupted: {kept[ST_TRIAL_ID].nunique() if len(kept) else 0} of {settings.num_evaluations} "
            f"evaluations kept in {output_dir / RESULTS_FILE}; run the same command again to resume"
        ) from None
    finally:
        backend.close()
    return store.table(), tuner.name


def _replay(scheduler: TrialScheduler, previous: pd.DataFrame) -> None:
    """Tell the scheduler the evaluations of an earlier run of the search, as the Tuner would
    have (negative trial ids: the Tuner numbers the new trials from 0)."""
    for i, (config, (_, row)) in enumerate(zip(front_configs(previous), previous.iterrows())):
        trial = Trial(trial_id=-1 - i, config=config, creation_time=datetime.now())
        scheduler.on_trial_add(trial)
        if pd.isna(row.get("error")):
            scheduler.on_trial_error(trial)
        else:
            scheduler.on_trial_complete(trial, {**{k: row[k] for k in scheduler.metric_names()}, "epoch": 1})


class BudgetedScheduler(TrialScheduler):
    """A scheduler that suggests at most `budget` trials, then none.

    Syne Tune's Tuner starts a new trial before it checks its stopping criterion, so
    `max_num_trials_finished=N` alone runs N + 1; once the budget is suggested, the
    Tuner waits for the running trials and stops.
    """

    def __init__(self, scheduler: TrialScheduler, budget: int) -> None:
        super().__init__(random_seed=scheduler.random_seed)
        self.scheduler = scheduler
        self.budget = budget

    def suggest(self) -> TrialSuggestion | None:
        if self.budget <= 0:
            return None
        suggestion = self.scheduler.suggest()
        if suggestion is not None and suggestion.spawn_new_trial_id:
            self.budget -= 1
        return suggestion

    def on_trial_add(self, trial: Trial):
        self.scheduler.on_trial_add(trial)

    def on_trial_error(self, trial: Trial):
        self.scheduler.on_trial_error(trial)

    def on_trial_result(self, trial: Trial, result: dict[str, Any]) -> str:
        return self.scheduler.on_trial_result(trial, result)

    def on_trial_complete(self, trial: Trial, result: dict[str, Any]):
        self.scheduler.on_trial_complete(trial, result)

    def on_trial_remove(self, trial: Trial):
        self.scheduler.on_trial_remove(trial)

    def metadata(self) -> dict[str, Any]:
        return self.scheduler.metadata()

    def __getattr__(self, name: str):
        if name == "scheduler":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.scheduler, name)


class IncrementalResults(StoreResultsCallback):
    """Syne Tune's results callback that also rewrites results.csv and a provisional pareto.csv
    (validation objectives only, over `objectives`) in `output_dir` as each result arrives, after
    the rows of an earlier run of the search (`previous`); this run's trial ids and tuner times
    are shifted by `trial_offset` and `time_offset` so that they continue those rows."""

    def __init__(
        self,
        output_dir: Path,
        previous: pd.DataFrame,
        objectives: Sequence[str],
        trial_offset: int,
        time_offset: float,
    ) -> None:
        super().__init__()
        self.output_dir = output_dir
        self.previous = previous
        self.objectives = list(objectives)
        self.trial_offset = trial_offset
        self.time_offset = time_offset
        self.rows: list[dict[str, Any]] = []

    def on_trial_result(self, trial: Trial, status: str, result: dict[str, Any], decision: str):
        super().on_trial_result(trial, status, result, decision)
        row = dict(self.results[-1])
        row[ST_TRIAL_ID] += self.trial_offset
        row[ST_TUNER_TIME] = row.get(ST_TUNER_TIME, 0.0) + self.time_offset
        self.rows.append(row)
        table = self.table()
        write_results(self.output_dir, table)
        if set(self.objectives) <= set(table.columns):
            write_table(pareto_front(table, self.objectives), self.output_dir / FRONT_FILE)

    def table(self) -> pd.DataFrame:
        """The rows of the earlier runs and of this one."""
        frames = [frame for frame in (self.previous, pd.DataFrame(self.rows)) if len(frame)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _backend(evaluator: SubnetworkEvaluator, settings: SearchSettings) -> TrialBackend:
    if not settings.uses_ray:
        return WeightSharingBackend(evaluator, n_replicas=settings.n_workers)
    return RayWeightSharingBackend(
        evaluator,
        num_actors=settings.concurrent_evaluations,
        num_cpus_per_actor=settings.actor_cpus,
        num_gpus_per_actor=settings.actor_gpus,
        ray_address=settings.ray_address,
    )


def _yardsticks(
    evaluator: SubnetworkEvaluator, train_labels, test_batches: list[dict], progress: bool = True
) -> Yardsticks:
    """The trivial predictor (majority class / mean of the train part) and the unpruned
    super-network, each scored on the validation and the test split."""
    task = evaluator.task
    shown = tqdm(test_batches, desc="scoring the unpruned model on test", unit="batch", disable=not progress)

    def labels(batches: list[dict]):
        return torch.cat([batch["labels"] for batch in batches]).numpy()

    return Yardsticks(
        trivial_validation=task.trivial_metric(train_labels, labels(evaluator.batches)),
        trivial_test=task.trivial_metric(train_labels, labels(test_batches)),
        unpruned_validation=evaluate(evaluator.model, evaluator.batches, task)["metric"],
        unpruned_test=evaluate(evaluator.model, shown, task)["metric"],
    )


def _score_on_test(
    evaluator: SubnetworkEvaluator,
    front: pd.DataFrame,
    test_batches: list[dict],
    yardsticks: Yardsticks,
    progress: bool = True,
) -> pd.DataFrame:
    """Add every front member's test metric and error, and on both splits the share of the
    unpruned metric (`kept`, `test_kept`) and of its gap over the trivial predictor
    (`gap_kept`, `test_gap_kept`) it keeps."""
    configs = tqdm(front_configs(front), desc="scoring the front on test", unit="member", disable=not progress)
    scores = [
        evaluate(evaluator.model, test_batches, evaluator.task, evaluator.search_space.to_subnetwork(config))
        for config in configs
    ]
    front = front.copy()
    front["test_metric"] = [s["metric"] for s in scores]
    front["test_error"] = [s["error"] for s in scores]
    for prefix, split, column in (("", "validation", "metric"), ("test_", "test", "test_metric")):
        front[f"{prefix}kept"] = [yardsticks.kept(m, split) for m in front[column]]
        front[f"{prefix}gap_kept"] = [yardsticks.gap_kept(m, split) for m in front[column]]
    return front


def front_configs(front: pd.DataFrame) -> list[dict]:
    """The configs of a front table's rows (from its `config_*` columns)."""
    config_columns = [c for c in front.columns if c.startswith("config_")]
    return [{c[len("config_") :]: _plain(row[c]) for c in config_columns} for _, row in front.iterrows()]


def _plain(value):
    """A Python scalar; integral floats (pandas turns int columns with gaps into floats) become ints."""
    value = value.item() if hasattr(value, "item") else value
    return int(value) if isinstance(value, float) and value.is_integer() else value

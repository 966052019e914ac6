"""`search`: the Syne Tune experiment behind `nas-pruning search`.

From a trained super-network folder to a results table, its Pareto front (scored
on the validation split, members re-scored on the test split), the hypervolume and
plots, all written into one output folder:

```
output_dir/
  syne-tune/<experiment>/   Syne Tune's own record (load_experiment reads it)
  results.csv               one row per evaluated sub-network
  pareto.csv                the non-dominated rows, with test_metric / test_error
  summary.json              hypervolume, reference point, bounds, settings
  front.png, hypervolume.png
```

Objectives (`SearchSettings.objectives`): error and parameter ratio (default), error and
latency, or all three. Latency is measured on the extracted sub-network in the chosen runtime
(nas_pruning.runtimes.LatencySpec) and cached per architecture. For the hypervolume it is
normalised by the bounds [0, latency of the full model measured the same way]: a sub-network
slower than the full model adds nothing. The bounds and the measurement settings are stored in
summary.json (`hypervolume_bounds`, `latency`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from syne_tune import StoppingCriterion, Tuner
from syne_tune.backend.trial_backend import TrialBackend
from syne_tune.experiments import load_experiment

from nas_pruning.backends.ray_backend import RayWeightSharingBackend, import_ray
from nas_pruning.backends.weight_sharing import SubnetworkEvaluator, WeightSharingBackend
from nas_pruning.evaluation import evaluate
from nas_pruning.models import SubNetwork, get_adapter, load_tokenizer
from nas_pruning.optimizers import make_scheduler
from nas_pruning.pareto import (
    DEFAULT_BOUNDS,
    DEFAULT_OBJECTIVES,
    hypervolume,
    hypervolume_over_time,
    pareto_front,
    plot_front,
    plot_hypervolume,
)
from nas_pruning.runtimes import RUNTIMES, LatencyMeter, LatencySpec
from nas_pruning.search_spaces import SearchSpace, get_search_space
from nas_pruning.supernet import load_supernet
from nas_pruning.tasks import TaskData, encode, get_task, load_task, make_loader

SEARCH_SETTINGS_FILE = "summary.json"
LATENCY = "latency"
#: The accepted sets of minimised objectives.
OBJECTIVE_SETS = (DEFAULT_OBJECTIVES, ("error", LATENCY), (*DEFAULT_OBJECTIVES, LATENCY))


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
    seed: seed of the optimizer.
    batch_size: evaluation batch size.
    max_validation_examples: score on a random subset of the validation split
        (faster, noisier); None: all of it.
    objectives: minimised objectives, one of OBJECTIVE_SETS.
    measure_latency: also record each sub-network's `latency` when it is not an objective.
    runtime: where latency is measured: "torch" or "onnxruntime" (needs nas_pruning[onnx]).
    latency_batch_size, latency_length: shape of the timed batch (random tokens, no padding).
    latency_warmup, latency_repeats: untimed passes, then timed passes whose median is the latency.
        Latency is timed with `num_threads` torch (and ONNX Runtime) threads, on Ray actors with
        `actor_cpus`; the full model's latency (the hypervolume bound) is timed in this process.
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
    batch_size: int = 64
    max_validation_examples: int | None = None
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES
    measure_latency: bool = False
    runtime: str = "torch"
    latency_batch_size: int = 1
    latency_length: int = 128
    latency_warmup: int = 2
    latency_repeats: int = 10
    num_threads: int | None = None
    ray_actors: int | None = None
    ray_address: str | None = None
    actor_cpus: float = 1.0
    actor_gpus: float = 0.0

    def __post_init__(self) -> None:
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
    space = get_search_space(settings.search_space or info.get("search_space") or "small", model.config)
    task = get_task(info["task"])
    tokenizer = load_tokenizer(supernet_dir)
    data = load_supernet_data(info, tokenizer, data_dir, ("validation", "test"), settings.max_validation_examples,
                              settings.seed)
    val_batches = list(make_loader(data.validation, tokenizer, batch_size=settings.batch_size))
    spec = settings.latency_spec()
    meter = LatencyMeter(spec) if spec is not None else None
    evaluator = SubnetworkEvaluator(model, space, val_batches, task, latency=meter)
    objectives, bounds, latency_record = settings.objectives, dict(DEFAULT_BOUNDS), {}
    if meter is not None:
        # The full model's latency, measured like every candidate's, is the upper bound of latency.
        full_latency = meter(model, SubNetwork.full(get_adapter(model).dims(model.config)))
        bounds[LATENCY] = (0.0, full_latency)
        latency_record = {
            LATENCY: {**spec.as_dict(), "full_model_latency": full_latency, "bounds": [0.0, full_latency]}
        }

    results, experiment = _tune(evaluator, space, settings, output_dir)
    results.to_csv(output_dir / "results.csv", index=False)
    front = pareto_front(results, objectives)
    front = _score_on_test(evaluator, front, list(make_loader(data.test, tokenizer, batch_size=settings.batch_size)))
    front.to_csv(output_dir / "pareto.csv", index=False)
    volume = hypervolume(front, objectives, bounds=bounds)
    summary = {
        "supernet": str(supernet_dir),
        "task": task.name,
        "metric": task.metric_name,
        "experiment": experiment,
        "evaluations": int(results["error"].notna().sum()),
        "front_size": len(front),
        "hypervolume": volume,
        "hypervolume_objectives": list(objectives),
        "hypervolume_bounds": bounds,
        "hypervolume_reference_point": [1.0] * len(objectives),  # in normalised space, every objective
        "objectives": list(objectives),
        **latency_record,
        "settings": {**asdict(settings), "search_space": space.name},
    }
    (output_dir / SEARCH_SETTINGS_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    # Error over the second objective (parameter ratio, or latency when it is the only other one).
    plot_front({settings.optimizer: front}, output_dir / "front.png", objectives[:2], all_points=results)
    curve = hypervolume_over_time(results, objectives=objectives, bounds=bounds)
    plot_hypervolume({settings.optimizer: curve}, output_dir / "hypervolume.png")
    return SearchOutcome(results, front, volume, output_dir, experiment)


def load_supernet_data(
    info: dict,
    tokenizer,
    data_dir: str | os.PathLike | None = None,
    splits: tuple[str, ...] = ("validation", "test"),
    max_validation_examples: int | None = None,
    seed: int = 0,
) -> TaskData:
    """The encoded splits of a super-network's task, split as when it was trained.

    info: the super-network's record (`load_supernet`); data_dir: GLUE folder, default the one
    it was trained on; max_validation_examples: a random validation subset of this size (drawn with `seed`).
    """
    split = info.get("data", {})
    data = load_task(
        info["task"],
        data_dir if data_dir is not None else split.get("data_dir"),
        seed=split.get("split_seed", 0),
        val_fraction=split.get("val_fraction", 0.3),
        splits=splits,
    )
    if max_validation_examples is not None and max_validation_examples < len(data.validation):
        subset = data.validation.shuffle(seed=seed).select(range(max_validation_examples))
        data = dataclasses.replace(data, validation=subset)
    return encode(data, tokenizer, max_length=split.get("max_length", 128))


def _tune(
    evaluator: SubnetworkEvaluator, space: SearchSpace, settings: SearchSettings, output_dir: Path
) -> tuple[pd.DataFrame, str]:
    experiments = output_dir / "syne-tune"
    os.environ["SYNETUNE_FOLDER"] = str(experiments)  # where the Tuner writes its record
    scheduler = make_scheduler(
        settings.optimizer,
        space.config_space,
        metrics=settings.objectives,
        points_to_evaluate=space.initial_design(),
        random_seed=settings.seed,
        **({"max_t": 1} if settings.optimizer == "moasha" else {}),
    )
    backend = _backend(evaluator, settings)
    tuner = Tuner(
        trial_backend=backend,
        scheduler=scheduler,
        stop_criterion=StoppingCriterion(
            max_num_trials_finished=settings.num_evaluations, max_wallclock_time=settings.max_wallclock_time
        ),
        n_workers=settings.concurrent_evaluations,
        sleep_time=0.01,
        results_update_interval=5.0,
        print_update_interval=60.0,
        max_failures=settings.num_evaluations,  # a failing evaluation is reported, not fatal
        tuner_name=f"weight-sharing-{settings.optimizer}",
    )
    try:
        tuner.run()
    finally:
        backend.close()
    results = load_experiment(tuner.name, local_path=str(experiments)).results
    return results, tuner.name


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


def _score_on_test(evaluator: SubnetworkEvaluator, front: pd.DataFrame, test_batches: list[dict]) -> pd.DataFrame:
    """Add the test-split metric and error of every front member."""
    scores = [
        evaluate(evaluator.model, test_batches, evaluator.task, evaluator.search_space.to_subnetwork(config))
        for config in front_configs(front)
    ]
    front = front.copy()
    front["test_metric"] = [s["metric"] for s in scores]
    front["test_error"] = [s["error"] for s in scores]
    return front


def front_configs(front: pd.DataFrame) -> list[dict]:
    """The configs of a front table's rows (from its `config_*` columns)."""
    config_columns = [c for c in front.columns if c.startswith("config_")]
    return [{c[len("config_") :]: _plain(row[c]) for c in config_columns} for _, row in front.iterrows()]


def _plain(value):
    """A Python scalar; integral floats (pandas turns int columns with gaps into floats) become ints."""
    value = value.item() if hasattr(value, "item") else value
    return int(value) if isinstance(value, float) and value.is_integer() else value

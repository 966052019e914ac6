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
"""

from __future__ import annotations

import json
import os
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
from nas_pruning.models import load_tokenizer
from nas_pruning.optimizers import make_scheduler
from nas_pruning.pareto import (
    DEFAULT_BOUNDS,
    DEFAULT_REFERENCE_POINT,
    hypervolume,
    hypervolume_over_time,
    pareto_front,
    plot_front,
    plot_hypervolume,
)
from nas_pruning.search_spaces import SearchSpace, get_search_space
from nas_pruning.supernet import load_supernet
from nas_pruning.tasks import encode, get_task, load_task, make_loader

SEARCH_SETTINGS_FILE = "summary.json"


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
    measure_latency: also record each sub-network's measured `latency` (not optimised).
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
    measure_latency: bool = False
    num_threads: int | None = None
    ray_actors: int | None = None
    ray_address: str | None = None
    actor_cpus: float = 1.0
    actor_gpus: float = 0.0

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
    split = info.get("data", {})
    tokenizer = load_tokenizer(supernet_dir)
    data = load_task(
        task.name,
        data_dir if data_dir is not None else split.get("data_dir"),
        seed=split.get("split_seed", 0),
        val_fraction=split.get("val_fraction", 0.3),
        splits=("validation", "test"),
    )
    if settings.max_validation_examples is not None and settings.max_validation_examples < len(data.validation):
        data = type(data)(
            data.task,
            validation=data.validation.shuffle(seed=settings.seed).select(range(settings.max_validation_examples)),
            test=data.test,
        )
    data = encode(data, tokenizer, max_length=split.get("max_length", 128))
    val_batches = list(make_loader(data.validation, tokenizer, batch_size=settings.batch_size, by_length=True))
    evaluator = SubnetworkEvaluator(
        model, space, val_batches, task, latency_batch=_latency_batch(val_batches) if settings.measure_latency else None
    )

    results, experiment = _tune(evaluator, space, settings, output_dir)
    results.to_csv(output_dir / "results.csv", index=False)
    front = pareto_front(results)
    test_batches = list(make_loader(data.test, tokenizer, batch_size=settings.batch_size, by_length=True))
    front = _score_on_test(evaluator, front, test_batches)
    front.to_csv(output_dir / "pareto.csv", index=False)
    volume = hypervolume(front)
    summary = {
        "supernet": str(supernet_dir),
        "task": task.name,
        "metric": task.metric_name,
        "experiment": experiment,
        "evaluations": int(results["error"].notna().sum()),
        "front_size": len(front),
        "hypervolume": volume,
        "hypervolume_objectives": ["error", "params"],
        "hypervolume_bounds": DEFAULT_BOUNDS,
        "hypervolume_reference_point": DEFAULT_REFERENCE_POINT,
        "settings": {**asdict(settings), "search_space": space.name},
    }
    (output_dir / SEARCH_SETTINGS_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    plot_front({settings.optimizer: front}, output_dir / "front.png", all_points=results)
    plot_hypervolume({settings.optimizer: hypervolume_over_time(results)}, output_dir / "hypervolume.png")
    return SearchOutcome(results, front, volume, output_dir, experiment)


def _tune(
    evaluator: SubnetworkEvaluator, space: SearchSpace, settings: SearchSettings, output_dir: Path
) -> tuple[pd.DataFrame, str]:
    experiments = output_dir / "syne-tune"
    os.environ["SYNETUNE_FOLDER"] = str(experiments)  # where the Tuner writes its record
    scheduler = make_scheduler(
        settings.optimizer,
        space.config_space,
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


def _latency_batch(batches: list[dict]) -> dict:
    return {k: v for k, v in batches[0].items() if k != "labels"}

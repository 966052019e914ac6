"""Evaluations per minute of weight-sharing search: in-process backend vs Ray actors.

Evaluates the same list of random SMALL-space sub-networks of MiniLM on real RTE
validation rows under Syne Tune's Tuner with three engines:

- `in-process`: `WeightSharingBackend`, one replica, torch on all cores;
- `ray-1`: `RayWeightSharingBackend`, one actor with all cores;
- `ray-2` (and more with --actors): that many actors, the cores shared out.

Throughput counts evaluations finished per minute of the Tuner's run; actor start-up
(each actor loads the model) is measured apart. The point on one machine is the
overhead of the Ray mode (ray-1 should be within 1.1x of in-process); with 2 cores,
2 actors gain little. Evaluation is deterministic, so every engine must report the
same errors for the same configs: the table says how far apart they were.

    python benchmarks/ray_throughput.py            # full scale
    python benchmarks/ray_throughput.py --quick    # a couple of minutes

Writes docs/ray_throughput.csv, docs/ray_throughput.md and docs/ray_throughput.png.
The super-network is MiniLM as loaded (not fine-tuned): evaluation costs the same.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from syne_tune import StoppingCriterion

from nas_pruning.backends.ray_backend import RayWeightSharingBackend, import_ray
from nas_pruning.backends.weight_sharing import SubnetworkEvaluator, WeightSharingBackend
from nas_pruning.experiments.runner import read_results, run_experiment
from nas_pruning.models import load_model, load_tokenizer
from nas_pruning.optimizers import make_scheduler
from nas_pruning.search_spaces import get_search_space
from nas_pruning.tasks import encode, load_task, make_loader

ROOT = Path(__file__).resolve().parents[1]


def build_evaluator(args: argparse.Namespace) -> SubnetworkEvaluator:
    tokenizer = load_tokenizer(args.model)
    data = load_task(args.task, args.data_dir, seed=0, splits=("validation",))
    data = type(data)(data.task, validation=data.validation.select(range(args.validation_examples)))
    data = encode(data, tokenizer, max_length=args.max_length)
    model = load_model(args.model, num_labels=data.task.num_labels, is_regression=data.task.is_regression)
    batches = list(make_loader(data.validation, tokenizer, batch_size=args.batch_size))
    return SubnetworkEvaluator(model, get_search_space("small", model.config), batches, data.task)


def run_engine(
    name: str, backend, n_workers: int, config_space: dict, configs: list[dict], folder: Path
) -> tuple[pd.DataFrame, float]:
    """Results of evaluating `configs` on `backend`, and the Tuner's wall-clock seconds."""
    start = time.perf_counter()
    try:
        tuner = run_experiment(
            backend,
            make_scheduler("random", config_space, points_to_evaluate=configs, random_seed=0),
            StoppingCriterion(max_num_trials_finished=len(configs)),
            folder,
            f"throughput-{name}",
            n_workers,
            max_failures=len(configs),
            sleep_time=0.01,
            results_update_interval=10.0,
            print_update_interval=600.0,
        )
    finally:
        backend.close()
    seconds = time.perf_counter() - start
    return read_results(tuner), seconds


def errors_by_config(results: pd.DataFrame) -> pd.Series:
    keys = ["config_num_layers", "config_num_heads", "config_num_units"]
    return results.drop_duplicates(keys).set_index(keys)["error"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="12 evaluations on 64 examples (a couple of minutes)")
    parser.add_argument("--evaluations", type=int, default=40, help="sub-networks each engine evaluates")
    parser.add_argument("--validation-examples", type=int, default=256, help="RTE validation rows per evaluation")
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2], help="Ray pool sizes to measure")
    parser.add_argument("--task", default="rte")
    parser.add_argument("--model", default=None, help="default: the bundled all-MiniLM-L6-v2")
    parser.add_argument("--data-dir", default=None, help="GLUE TSVs; default: env GLUE_DIR, else the hub")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0, help="seed of the config list")
    parser.add_argument("--output-dir", default=str(ROOT / "docs"))
    args = parser.parse_args()
    if args.quick:
        args.evaluations, args.validation_examples = 12, 64

    cores = os.cpu_count()
    torch.set_num_threads(cores)
    evaluator = build_evaluator(args)
    space = evaluator.search_space
    rng = np.random.RandomState(args.seed)
    configs = [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(args.evaluations - 2)]

    ray = import_ray()
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    engines = [("in-process", 1, lambda: WeightSharingBackend(evaluator, n_replicas=1))]
    for actors in args.actors:
        cpus = max(1.0, cores / actors)
        engines.append(
            (f"ray-{actors}", actors,
             lambda actors=actors, cpus=cpus: RayWeightSharingBackend(evaluator, actors, num_cpus_per_actor=cpus))
        )

    rows, reference = [], None
    with tempfile.TemporaryDirectory() as work:
        for name, workers, make_backend in engines:
            start = time.perf_counter()
            backend = make_backend()
            startup = time.perf_counter() - start
            results, seconds = run_engine(name, backend, workers, space.config_space, configs, Path(work) / name)
            errors = errors_by_config(results)
            reference = errors if reference is None else reference
            common = errors.index.intersection(reference.index)
            rows.append(
                {
                    "engine": name,
                    "workers": workers,
                    "evaluations": len(results),
                    "seconds": seconds,
                    "evaluations_per_minute": 60 * len(results) / seconds,
                    "startup_seconds": startup,
                    "max_error_difference": float((errors[common] - reference[common]).abs().max()),
                }
            )
            print(rows[-1])
    ray.shutdown()

    table = pd.DataFrame(rows)
    base = table.loc[table.engine == "in-process", "evaluations_per_minute"].iloc[0]
    table["speedup_vs_in_process"] = table["evaluations_per_minute"] / base
    write(table, args, Path(args.output_dir), cores)


def write(table: pd.DataFrame, args: argparse.Namespace, out: Path, cores: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "ray_throughput.csv", index=False)
    setup = (
        f"{args.task.upper()}, {args.validation_examples} validation rows per evaluation (max length "
        f"{args.max_length}, batch {args.batch_size}), {args.evaluations} SMALL-space sub-networks of "
        f"{args.model or 'all-MiniLM-L6-v2'}, {cores} CPU cores, Ray {__import__('ray').__version__}"
    )
    (out / "ray_throughput.md").write_text(
        "# Weight-sharing evaluations per minute: in-process vs Ray actors\n\n"
        f"Setup: {setup}.\n\n"
        "`startup_seconds`: building the backend (Ray actors load the super-network), not counted in the "
        "throughput. `max_error_difference`: largest difference of the reported error from the in-process "
        "backend's over the configs both evaluated (0: the same results).\n\n"
        + table.to_markdown(index=False, floatfmt=".3f")
        + "\n"
    )
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(table["engine"], table["evaluations_per_minute"], color="tab:blue")
    ax.set_ylabel("evaluations per minute")
    ax.set_title(f"weight-sharing search throughput ({cores} cores)")
    fig.tight_layout()
    fig.savefig(out / "ray_throughput.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()

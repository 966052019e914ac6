"""Weight-sharing NAS on MiniLM: `full` vs `standard` super-networks, every optimizer.

For each task, trains a `full` and a `standard` super-network (the `standard` one is
the unpruned model fine-tuned normally, the reference; with --warm-start `full`
continues from it instead of starting from the pre-trained model), then
searches the SMALL space with each optimizer for the same number of evaluations and
several search seeds. Evaluations are memoised per super-network (evaluation is
deterministic, so a config seen by one optimizer run is not recomputed for another);
hypervolume curves use *simulated* wall-clock time, the sum of the measured
evaluation times of the configs a run asked for, as Syne Tune's simulator does.

    python benchmarks/weight_sharing.py                      # full scale (hours on 2 cores)
    python benchmarks/weight_sharing.py --tasks stsb mrpc rte --num-evaluations 30 \\
        --epochs 3 --learning-rate 1e-4 --warmup-ratio 0.1 --warm-start \\
        --warm-start-learning-rate 1e-4 --importance-examples 512 \\
        --max-validation-examples 400 --out docs/weight_sharing_importance   # the run in docs/

Writes docs/weight_sharing.md, docs/weight_sharing_*.csv and PNGs. Work (super-
networks, evaluation caches) goes to --work-dir, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nas_pruning.backends.weight_sharing import SubnetworkEvaluator, ask_tell_search
from nas_pruning.evaluation import evaluate
from nas_pruning.models import extract_subnetwork, load_tokenizer
from nas_pruning.optimizers import make_scheduler
from nas_pruning.pareto import (
    hypervolume,
    hypervolume_over_time,
    pareto_front,
    plot_front,
    plot_hypervolume,
    select_member,
)
from nas_pruning.search_spaces import get_search_space
from nas_pruning.supernet import finetune, load_supernet, training_seconds
from nas_pruning.tasks import encode, load_task, make_loader

ROOT = Path(__file__).resolve().parents[1]


class MemoEvaluator:
    """Memoises an evaluator's results per config, on disk (CSV), across optimizer runs."""

    def __init__(self, evaluator: SubnetworkEvaluator, path: Path) -> None:
        self.evaluator, self.path = evaluator, path
        self.cache: dict[str, dict] = {}
        if path.exists():
            for row in pd.read_csv(path).to_dict("records"):
                self.cache[row.pop("key")] = row

    def __call__(self, config: dict) -> dict:
        key = json.dumps(config, sort_keys=True)
        if key not in self.cache:
            self.cache[key] = self.evaluator(config)
            pd.DataFrame([{"key": k, **v} for k, v in self.cache.items()]).to_csv(self.path, index=False)
        return dict(self.cache[key])


def train_supernets(args, task: str, work: Path) -> dict[str, Path]:
    """Train (or find, from an earlier run) one super-network per strategy; `standard` first.

    With --warm-start, the weight-sharing strategies start from the `standard`
    super-network (the fine-tuned model) instead of the pre-trained one.
    """
    folders = {}
    for strategy in sorted(args.strategies, key=lambda name: name != "standard"):
        folder = work / "supernets" / f"{task}-{strategy}"
        warm = args.warm_start and strategy != "standard"
        if not (folder / "supernet.json").exists():
            finetune(
                task, model=str(folders["standard"]) if warm else None, strategy=strategy, search_space="small",
                output_dir=folder, epochs=args.warm_start_epochs if warm else args.epochs, batch_size=32,
                learning_rate=args.warm_start_learning_rate if warm else args.learning_rate, seed=0,
                max_train_examples=args.max_train_examples, max_length=args.max_length, num_threads=args.threads,
                validate_subnetworks=False, warmup_ratio=args.warmup_ratio,
                importance_examples=args.importance_examples,
            )
        folders[strategy] = folder
    return folders


def load_evaluation(args, task: str, folder: Path):
    """The super-network in `folder`, its SMALL space, an evaluator on the validation subset, the test batches."""
    model, info = load_supernet(folder)
    tokenizer = load_tokenizer(folder)
    data = load_task(task, seed=info["data"]["split_seed"], splits=("validation", "test"))
    validation = data.validation.shuffle(seed=0).select(range(min(args.max_validation_examples, len(data.validation))))
    data = encode(type(data)(data.task, validation=validation, test=data.test), tokenizer, max_length=args.max_length)
    val_batches = list(make_loader(data.validation, tokenizer, batch_size=64))
    test_batches = list(make_loader(data.test, tokenizer, batch_size=64))
    space = get_search_space("small", model.config)
    return model, space, SubnetworkEvaluator(model, space, val_batches, data.task), data.task, val_batches, test_batches


def search_runs(args, task: str, strategy: str, folder: Path, work: Path):
    model, space, evaluator, task_spec, val_batches, test_batches = load_evaluation(args, task, folder)
    memo = MemoEvaluator(evaluator, work / f"evaluations-{task}-{strategy}.csv")
    runs = []
    for optimizer in args.optimizers:
        for seed in args.seeds:
            scheduler = make_scheduler(optimizer, space.config_space, points_to_evaluate=space.initial_design(),
                                       random_seed=seed)
            table = ask_tell_search(scheduler, memo, args.num_evaluations, progress=False)
            table["sim_time"] = table["eval_time"].cumsum()
            table[["task", "strategy", "optimizer", "seed"]] = task, strategy, optimizer, seed
            runs.append(table)
            print(f"{task} {strategy} {optimizer} seed {seed}: hypervolume {hypervolume(table):.4f}", flush=True)
    return model, space, evaluator, task_spec, val_batches, test_batches, runs


def throughput(evaluator: SubnetworkEvaluator, space, batches, task, rng: np.random.RandomState, n: int = 8):
    """Seconds per evaluation: shared weights (the backend's evaluator) vs extracted models, same data."""
    shared, extracted = [], []
    for _ in range(n):
        config = space.sample(rng)
        start = time.perf_counter()
        evaluator(config)
        shared.append(time.perf_counter() - start)
        small = extract_subnetwork(evaluator.model, space.to_subnetwork(config))
        start = time.perf_counter()
        evaluate(small, batches, task)
        extracted.append(time.perf_counter() - start)
    return float(np.sum(shared)), float(np.sum(extracted))


def print_throughput(args) -> None:
    """--throughput-only: measure the evaluation overhead again on the super-networks already trained."""
    for task in args.tasks:
        for strategy in args.strategies:
            _, space, evaluator, task_spec, val_batches, _ = load_evaluation(
                args, task, args.work_dir / "supernets" / f"{task}-{strategy}"
            )
            shared_s, extracted_s = throughput(evaluator, space, val_batches, task_spec, np.random.RandomState(0))
            print(f"{task} {strategy}: shared {shared_s:.2f} s, extracted {extracted_s:.2f} s, "
                  f"shared_over_extracted_time {shared_s / extracted_s:.3f}", flush=True)


def merged(table: pd.DataFrame, args, name: str) -> pd.DataFrame:
    """`table` with the rows of other tasks from an earlier run's CSV; written back to that CSV.

    So that tasks can be run one invocation at a time and still share one report.
    """
    path = args.out.parent / f"{args.out.name}_{name}.csv"
    if path.exists():
        earlier = pd.read_csv(path)
        table = pd.concat([earlier[~earlier["task"].isin(args.tasks)], table], ignore_index=True)
    table.to_csv(path, index=False)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["rte", "mrpc", "stsb"])
    parser.add_argument("--strategies", nargs="+", default=["full", "standard"])
    parser.add_argument("--optimizers", nargs="+", default=["random", "morea", "nsga2", "ehvi", "local_search"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--num-evaluations", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--warm-start", action="store_true",
                        help="weight-sharing strategies start from the `standard` super-network (needs it)")
    parser.add_argument("--warm-start-epochs", type=int, default=2)
    parser.add_argument("--warm-start-learning-rate", type=float, default=5e-5)
    parser.add_argument("--warmup-ratio", type=float, default=0.0,
                        help="fraction of steps warming the learning rate up")
    parser.add_argument("--importance-examples", type=int, default=0,
                        help="reorder heads and units by importance on this many training examples (see finetune)")
    parser.add_argument("--max-train-examples", type=int, default=None)
    parser.add_argument("--max-validation-examples", type=int, default=100_000)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--half-ratio", type=float, default=0.77, help="parameter ratio of 'half the encoder removed'")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--throughput-only", action="store_true",
                        help="only measure shared vs extracted evaluation time on the trained super-networks")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "benchmarks" / "runs" / "weight_sharing")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "weight_sharing")
    args = parser.parse_args()
    if args.warm_start and "standard" not in args.strategies:
        parser.error("--warm-start needs the `standard` strategy among --strategies")
    torch.set_num_threads(args.threads)
    if args.throughput_only:
        return print_throughput(args)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    all_runs, quality, speed = [], [], []
    for task in args.tasks:
        started = time.perf_counter()
        folders = train_supernets(args, task, args.work_dir)
        fronts, curves = {}, {}
        for strategy, folder in folders.items():
            model, space, evaluator, task_spec, val_batches, test_batches, runs = search_runs(
                args, task, strategy, folder, args.work_dir
            )
            all_runs += runs
            union = pd.concat(runs, ignore_index=True)
            # trial ids repeat across runs: without them every row counts (not only each id's last)
            fronts[strategy] = pareto_front(union.drop(columns="trial_id"))
            for optimizer in args.optimizers:
                curves[f"{strategy}/{optimizer}"] = [
                    hypervolume_over_time(r, time_column="sim_time")
                    for r in runs if r["optimizer"].iloc[0] == optimizer
                ]
            # The best front member with half the encoder removed (ratio ~0.77 for MiniLM), scored on test.
            half = select_member(fronts[strategy], max_params=args.half_ratio)
            config = {c[len("config_"):]: int(half[c]) for c in half.index if c.startswith("config_")}
            test = evaluate(model, test_batches, task_spec, space.to_subnetwork(config))
            full_test = evaluate(model, test_batches, task_spec)
            quality.append({
                "task": task, "strategy": strategy, "metric": task_spec.metric_name,
                "supernet_train_s": round(training_seconds(folder)), "full_test_metric": full_test["metric"],
                "half_config": json.dumps(config), "half_params": half["params"], "half_val_metric": half["metric"],
                "half_test_metric": test["metric"],
            })
            shared_s, extracted_s = throughput(evaluator, space, val_batches, task_spec, np.random.RandomState(0))
            evals = union.drop_duplicates(subset=[c for c in union.columns if c.startswith("config_")])
            speed.append({
                "task": task, "strategy": strategy, "validation_examples": sum(len(b["labels"]) for b in val_batches),
                "evaluations_per_minute": 60 * len(evals) / evals["eval_time"].sum(),
                "shared_over_extracted_time": shared_s / extracted_s,
            })
        plot_front(fronts, args.out.parent / f"{args.out.name}_front_{task}.png")
        plot_hypervolume(curves, args.out.parent / f"{args.out.name}_hypervolume_{task}.png")
        print(f"{task} done in {time.perf_counter() - started:.0f} s", flush=True)

    runs = merged(pd.concat(all_runs, ignore_index=True), args, "runs")
    volumes = runs.groupby(["task", "strategy", "optimizer", "seed"]).apply(hypervolume).rename("hypervolume")
    summary = volumes.groupby(["task", "strategy", "optimizer"]).agg(["mean", "std"]).reset_index()
    summary.to_csv(args.out.parent / f"{args.out.name}_hypervolume.csv", index=False)
    quality = pd.DataFrame(quality)
    unpruned = quality[quality.strategy == "standard"].groupby("task").full_test_metric.first()
    quality["half_over_unpruned"] = [
        row.half_test_metric / unpruned[row.task] if row.task in unpruned.index else np.nan
        for row in quality.itertuples()
    ]
    quality = merged(quality, args, "quality")
    speed = merged(pd.DataFrame(speed), args, "speed")
    args.tasks = list(dict.fromkeys(runs["task"]))
    command = "python benchmarks/weight_sharing.py " + " ".join(
        f"--{k.replace('_', '-')}" + ("" if v is True else f" {' '.join(map(str, v)) if isinstance(v, list) else v}")
        for k, v in vars(args).items() if k not in ("work_dir", "out") and v is not None and v is not False
    )
    report = [
        "# Weight-sharing NAS benchmark (MiniLM, SMALL space)\n",
        f"Re-run: `{command}`\n",
        "Hypervolume: objectives (validation error, parameter ratio), bounds [0, 1] each, reference point (1, 1) "
        "(see nas_pruning.pareto). Curves use simulated wall-clock time (sum of measured evaluation times).\n",
        "## Hypervolume per method (mean and std over search seeds)\n",
        summary.to_markdown(index=False, floatfmt=".4f"),
        "\n## Test scores: best front member at parameter ratio <= 0.77 vs the unpruned model\n",
        "`full_test_metric` of the `standard` row is the unpruned model fine-tuned with the same budget.\n",
        quality.to_markdown(index=False, floatfmt=".4f"),
        "\n## Evaluation speed\n",
        "`shared_over_extracted_time`: time of the backend's shared-weight evaluations over the time of evaluating "
        "the extracted sub-networks directly on the same data (8 random configs; target <= 1.2).\n",
        speed.to_markdown(index=False, floatfmt=".3f"),
        "",
    ]
    args.out.with_suffix(".md").write_text("\n".join(report))
    print("\n".join(report))


if __name__ == "__main__":
    main()

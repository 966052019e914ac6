"""The seed paper's search-space claim on STS-B: SMALL vs MEDIUM vs LAYER vs LARGE, in simulated time.

For every search space:

1. one super-network, all with the same recipe and budget: from one shared starting model (MiniLM,
   `nas-pruning finetune`'s default, plainly fine-tuned (`standard`) for --start-epochs, heads and
   FFN units then reordered by gradient importance), --epochs of the `full` strategy (sandwich +
   in-place distillation) sampling the space's sub-networks; the same fixed training subset,
   length, learning rate and seed (so also the same train/validation split) throughout. (`full`
   straight from the pre-trained model, with its new regression head, reached a validation
   Spearman of only 0.28 in 2 epochs on this subset: its sub-networks distil an untrained teacher.)
2. its blackbox (`nas_pruning.blackbox.tabulate`, the `nas-pruning tabulate` path): the initial
   design + a scrambled Sobol design, scored on the same validation subset for every space;
3. the same optimizers and seeds on it in simulated time (`nas_pruning.optimizer_benchmark.benchmark`,
   the `nas-pruning benchmark` path).

Every benchmark's hypervolume has the library's fixed bounds (error and parameter ratio of the
unpruned model, both in [0, 1]) and the trivial predictor's reference point; the script checks
that the four reference points are equal, so the four spaces' hypervolumes are comparable.

Each stage is skipped when its output exists (supernet.json, the blackbox's metadata.json, the
benchmark's final.csv), so a rerun resumes after any interruption and `--report-only` rebuilds
the tables and plots from the finished benchmarks alone. Written to --docs-prefix:

```
<prefix>_final.csv        per space x optimizer: hypervolume after --early-evaluations and after
                          all evaluations (mean, std over seeds), mean simulated seconds at both
<prefix>_runs.csv         the same per space x optimizer x seed
<prefix>_blackboxes.csv   per space: tabulated configs, surrogate held-out R^2, unpruned validation
                          score, training seconds, tabulated error / params / evaluation time ranges,
                          and the hypervolume of the tabulated design itself (no surrogate)
<prefix>_best.png         hypervolume over simulated time, per space its best optimizer (mean, band)
<prefix>_random.png       the same for random search
```

    GLUE_DIR=/work/shared/data/glue HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONPATH=. \\
        nice -n 5 python benchmarks/search_spaces.py --threads 1

Work (super-networks, blackboxes, benchmark outputs) goes to --work-dir (git-ignored).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from nas_pruning.blackbox import load_tabulated, tabulate
from nas_pruning.optimizer_benchmark import TIME, benchmark
from nas_pruning.optimizers import OPTIMIZERS
from nas_pruning.pareto import hypervolume, hypervolume_over_time
from nas_pruning.plots import plot_hypervolume
from nas_pruning.supernet import finetune, training_seconds

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["small", "medium", "layer", "large"]


def _training(args) -> dict:
    """What every training of this benchmark shares: data, length, optimiser settings, seed, threads."""
    return dict(
        batch_size=32, learning_rate=args.learning_rate, warmup_ratio=args.warmup_ratio, seed=args.seed,
        max_train_examples=args.train_examples, max_length=args.max_length, num_threads=args.threads,
        validate_subnetworks=False, progress=False,
    )


def start(args) -> Path:
    """The starting model of every space: plain fine-tuning, then reordered by importance (trained once)."""
    folder = args.work_dir / "start"
    if not (folder / "supernet.json").exists():
        finetune(args.task, strategy="standard", search_space="small", output_dir=folder, epochs=args.start_epochs,
                 importance_examples=args.importance_examples, **_training(args))
    return folder


def train(args, space: str) -> Path:
    """The space's super-network (trained once, then found; a killed run resumes from its checkpoint)."""
    folder = args.work_dir / space / "supernet"
    if not (folder / "supernet.json").exists():
        finetune(args.task, model=str(start(args)), strategy="full", search_space=space, output_dir=folder,
                 epochs=args.epochs, **_training(args))
    return folder


def blackbox_folder(args, space: str) -> Path:
    """The space's blackbox, tabulated once."""
    folder = args.work_dir / space / "blackbox"
    if not (folder / "metadata.json").exists():
        tabulate(
            train(args, space), folder, args.num_configs, max_validation_examples=args.max_validation_examples,
            subset_seed=args.seed, num_threads=args.threads, progress=False,
        )
    return folder


def benchmark_folder(args, space: str) -> Path:
    """The optimizers x seeds on the space's blackbox, run once."""
    folder = args.work_dir / space / "benchmark"
    if not (folder / "final.csv").exists():
        optimizers = [name for name in args.optimizers if f"{space}:{name}" not in args.exclude]
        benchmark(
            load_tabulated(blackbox_folder(args, space)), optimizers, args.seeds, args.num_evaluations,
            output_dir=folder, progress=False,
        )
    return folder


def per_run(folder: Path, early: int) -> tuple[pd.DataFrame, dict[str, list[pd.DataFrame]]]:
    """One benchmark's runs: hypervolume after the first `early` evaluations and after all of them,
    and each run's hypervolume over simulated time, all with the benchmark's own bounds and reference."""
    record = json.loads((folder / "benchmark.json").read_text())
    reference = record["hypervolume_reference_point"]
    bounds = {name: tuple(pair) for name, pair in record["hypervolume_bounds"].items()}
    rows, curves = [], {}
    for (optimizer, seed), run in pd.read_csv(folder / "runs.csv").groupby(["optimizer", "seed"], sort=False):
        run = run.sort_values(TIME, kind="stable")  # one worker: the order in which the results came
        head = run.head(early)
        rows.append({
            "optimizer": optimizer, "seed": seed, "evaluations": len(run),
            f"hypervolume_at_{early}": hypervolume(head, reference_point=reference, bounds=bounds),
            f"simulated_s_at_{early}": head[TIME].max(),
            "hypervolume_final": hypervolume(run, reference_point=reference, bounds=bounds),
            "simulated_s_final": run[TIME].max(),
        })
        curves.setdefault(optimizer, []).append(
            hypervolume_over_time(run, TIME, reference_point=reference, bounds=bounds)
        )
    return pd.DataFrame(rows), curves


def blackbox_row(args, space: str) -> dict:
    """The space's super-network and blackbox in one row; `table_hypervolume_*`: the hypervolume of the
    tabulated configs themselves (initial design, then the Sobol design, in that order), the first
    --early-evaluations of them and all: a space-filling search measured on the super-network, no surrogate."""
    folder = blackbox_folder(args, space)
    metadata = json.loads((folder / "metadata.json").read_text())
    table = pd.read_csv(folder / "table.csv")
    heldout = metadata["surrogate"]["heldout"]
    reference = metadata["hypervolume_reference_point"]
    bounds = {name: tuple(pair) for name, pair in metadata["hypervolume_bounds"].items()}
    return {
        "space": space, "hyperparameters": len(json.loads((folder / "configspace.json").read_text())),
        "tabulated": len(table), "validation_examples": metadata["validation"]["examples"],
        "unpruned_validation": metadata["yardsticks"]["unpruned_validation"],
        "trivial_validation": metadata["yardsticks"]["trivial_validation"],
        "reference_point": json.dumps(metadata["hypervolume_reference_point"]),
        "surrogate_error_r2": heldout["error"]["r2"], "surrogate_error_spearman": heldout["error"]["spearman"],
        "error_min": table["error"].min(), "error_median": table["error"].median(),
        "params_min": table["params"].min(), "eval_time_mean": table["eval_time"].mean(),
        f"table_hypervolume_at_{args.early_evaluations}": hypervolume(
            table.head(args.early_evaluations), reference_point=reference, bounds=bounds),
        "table_hypervolume_all": hypervolume(table, reference_point=reference, bounds=bounds),
        "unpruned_val_after_training": json.loads((train(args, space) / "supernet.json").read_text())[
            "history"][-1]["val_metric"],
        "train_seconds": round(training_seconds(train(args, space))),
    }


def report(args, spaces: list[str]) -> None:
    """The docs tables and plots from the finished benchmarks."""
    runs, curves = [], {}
    for space in spaces:
        table, space_curves = per_run(args.work_dir / space / "benchmark", args.early_evaluations)
        runs.append(table.assign(space=space))
        curves[space] = space_curves
    runs = pd.concat(runs, ignore_index=True)
    blackboxes = pd.DataFrame([blackbox_row(args, space) for space in spaces])
    if blackboxes["reference_point"].nunique() != 1:
        raise SystemExit(f"the blackboxes' reference points differ, hypervolumes not comparable:\n{blackboxes}")
    early = args.early_evaluations
    values = [f"hypervolume_at_{early}", f"simulated_s_at_{early}", "hypervolume_final", "simulated_s_final"]
    final = runs.groupby(["space", "optimizer"], sort=False)[values].agg(["mean", "std"])
    final.columns = [f"{value}_{stat}" for value, stat in final.columns]
    final = final.join(runs.groupby(["space", "optimizer"], sort=False).seed.count().rename("seeds")).reset_index()
    prefix = args.docs_prefix
    prefix.parent.mkdir(parents=True, exist_ok=True)
    runs[["space", *runs.columns.drop("space")]].to_csv(f"{prefix}_runs.csv", index=False, float_format="%.6g")
    final.to_csv(f"{prefix}_final.csv", index=False, float_format="%.6g")
    blackboxes.to_csv(f"{prefix}_blackboxes.csv", index=False, float_format="%.6g")
    best = final.loc[final.groupby("space", sort=False)["hypervolume_final_mean"].idxmax()]
    plot_hypervolume(
        {f"{row.space} ({row.optimizer})": curves[row.space][row.optimizer] for row in best.itertuples()},
        f"{prefix}_best.png", reference="trivial", time_label="simulated time (s)",
    )
    if "random" in args.optimizers:
        plot_hypervolume(
            {f"{space} (random)": curves[space]["random"] for space in spaces}, f"{prefix}_random.png",
            reference="trivial", time_label="simulated time (s)",
        )
    print(blackboxes.to_string(index=False))
    print(final.to_string(index=False, float_format="%.4f"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spaces", nargs="+", default=ORDER, choices=ORDER)
    parser.add_argument("--task", default="stsb")
    parser.add_argument("--seed", type=int, default=0, help="training seed, split seed and validation-subset seed")
    parser.add_argument("--train-examples", type=int, default=2000, help="fixed training subset (same for all)")
    parser.add_argument("--start-epochs", type=int, default=2, help="plain fine-tuning of the shared start")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of `full` from the start, per space")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--importance-examples", type=int, default=256, help="reorder the start on this many")
    parser.add_argument("--num-configs", type=int, default=100, help="Sobol configs tabulated (+ initial design)")
    parser.add_argument("--max-validation-examples", type=int, default=400)
    parser.add_argument("--optimizers", nargs="+", default=["random", "morea", "nsga2", "ehvi", "local_search"],
                        choices=list(OPTIMIZERS))
    parser.add_argument(
        "--exclude", nargs="*", default=["large:ehvi"], metavar="SPACE:OPTIMIZER",
        help="optimizers not run on a space; default: EHVI on LARGE, whose 9,288 binary hyperparameters make each "
             "suggestion (500 candidates encoded, a GP over 9,288 inputs) cost more than 5 CPU-s",
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--num-evaluations", type=int, default=100)
    parser.add_argument("--early-evaluations", type=int, default=25, help="the small budget of the report")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work-dir", type=Path, default=ROOT / "benchmarks" / "runs" / "search_spaces")
    parser.add_argument("--docs-prefix", type=Path, default=ROOT / "docs" / "search_spaces_stsb")
    parser.add_argument("--report-only", action="store_true", help="rebuild the tables and plots, run nothing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.report_only:
        # stage by stage, so that every super-network exists before the first (slower) tabulation
        for stage in (train, blackbox_folder, benchmark_folder):
            for space in args.spaces:
                print(f"{stage.__name__}: {space} -> {stage(args, space)}", flush=True)
    report(args, args.spaces)


if __name__ == "__main__":
    main()

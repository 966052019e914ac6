"""The four baselines next to weight-sharing NAS: MiniLM on RTE, MRPC and STS-B.

For every task and seed: fine-tune MiniLM once (plain fine-tuning, the starting point
of head pruning, layer dropping and retraining-free pruning; or take the model
--finetuned names), run the pruning baselines on it, with and without re-fine-tuning
each pruned model, run standard NAS from the pre-trained model, and read the
weight-sharing search of the same task and seed if its folder is given. Then per
task: the hypervolume of every method and seed (`nas_pruning.pareto.hypervolume`,
bounds joint over all methods and seeds of the task, reference point 1.1 in
normalised space so that each method's extreme points count), the wall time, a
plot of the Pareto fronts and one of hypervolume over wall-clock time.

Times are total compute from the pre-trained model: the pruning baselines' include
the fine-tuning of their starting model, weight sharing's its super-network
training, standard NAS's all of its trials.

With --finetuned, every seed starts from the same fine-tuned model and keeps its
train/validation split: the seed then varies what the method itself samples
(importance and Fisher examples, re-fine-tuning order), not the starting point.
Standard NAS then uses that split too (its seed varies the optimizer and the
candidates' training), so every method is scored on the same validation examples.

    python benchmarks/baselines.py                      # full scale (about a day, see --help)
    python benchmarks/baselines.py --quick              # RTE, one seed, small settings
    python benchmarks/baselines.py --methods head_pruning layer_drop --seeds 0
    python benchmarks/baselines.py --report-only        # tables and plots from what has run
    python benchmarks/baselines.py --report-only --earlier-rows docs/baselines_rows.csv  # + the committed rows
    python benchmarks/baselines.py --search-results 'runs/search/{task}-seed{seed}'

Every part checkpoints under --work-dir and a rerun skips or resumes finished parts.
Writes docs/baselines.csv, docs/baselines.md, docs/baselines_rows.csv, docs/baselines_at_max_ratio.csv and
docs/baselines_<task>_front.png, docs/baselines_<task>_hypervolume.png. Text below
the line notes.NOTES_MARK in an existing docs/baselines.md is kept when the table above
it is rewritten.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nas_pruning.baselines.data import load_baseline_data
from nas_pruning.baselines.registry import BASELINES
from nas_pruning.baselines.retraining_free import DEFAULT_BUDGETS
from nas_pruning.experiments.standard_nas import standard_nas
from nas_pruning.models import load_tokenizer
from nas_pruning.pareto import hypervolume, hypervolume_over_time, joint_bounds, pareto_front, select_member
from nas_pruning.plots import plot_front, plot_hypervolume
from nas_pruning.supernet import INFO_FILE, TrainingConfig, finetune, load_supernet, read_info, training_seconds
from notes import write_keeping_notes

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: Every registered pruning baseline under its report name (underscores), and "+finetune" for its
#: re-fine-tuned variant where it has one: a method added to the registry joins the comparison.
PRUNING_METHODS = tuple(
    name.replace("-", "_") + variant
    for name, baseline in BASELINES.items()
    for variant in (("", "+finetune") if baseline.refinetune else ("",))
)
METHODS = ("standard_nas", *PRUNING_METHODS)
REFERENCE_POINT = 1.1
OBJECTIVES = ("error", "params")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["rte", "mrpc", "stsb"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--model", default=None, help="pre-trained model (default: bundled all-MiniLM-L6-v2)")
    parser.add_argument(
        "--data-dir", default=os.environ.get("GLUE_DIR") or str(ROOT.parent / "shared" / "data" / "glue")
    )
    parser.add_argument("--work-dir", default=str(ROOT / "runs" / "baselines"), help="checkpoints and per-run tables")
    parser.add_argument("--finetuned", default=None,
                        help="starting model of the pruning baselines, a folder pattern with {task} (and {seed}), "
                             "fine-tuned there first if missing; standard NAS uses its split. "
                             "Default: fine-tune one per task and seed under --work-dir")
    parser.add_argument("--search-results", default=None,
                        help="folder pattern of `nas-pruning search` outputs with {task} and {seed}, e.g. "
                             "'runs/search/{task}-seed{seed}' (added as method weight_sharing)")
    parser.add_argument("--report-only", action="store_true", help="only build tables and plots from existing runs")
    parser.add_argument("--earlier-rows", default=None,
                        help="a rows table an earlier report wrote (e.g. docs/baselines_rows.csv): its rows of the "
                             "chosen tasks and seeds join the report wherever --work-dir has no results for that "
                             "task, seed and method, so a lost or partial work dir keeps what was measured")
    parser.add_argument("--docs", default=str(DOCS), help="where tables and plots go")
    parser.add_argument("--max-ratios", nargs="+", type=float, default=[0.77, 0.65],
                        help="report each method's best model (on validation) at parameter ratio <= each of these "
                             "(0.77: half the encoder of MiniLM removed)")
    parser.add_argument("--quick", action="store_true", help="RTE, seed 0 and the small settings below")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    scale = parser.add_argument_group("scale (full-scale defaults)")
    scale.add_argument("--finetune-epochs", type=int, default=5, help="fine-tuning of the starting model")
    scale.add_argument("--max-train-examples", type=int, default=None)
    scale.add_argument("--max-validation-examples", type=int, default=None)
    scale.add_argument("--head-examples", type=int, default=512, help="head pruning: importance examples")
    scale.add_argument("--heads-per-step", type=int, default=None, help="head pruning: default 10%% of all heads")
    scale.add_argument("--refinetune-epochs", type=int, default=3, help="+finetune methods: epochs per pruned model")
    scale.add_argument("--refinetune-learning-rate", type=float, default=1e-4, help="+finetune methods: peak rate")
    scale.add_argument("--rfp-examples", type=int, default=2048, help="retraining-free: Fisher / tuning sample")
    scale.add_argument("--rfp-budgets", nargs="+", type=float, default=list(DEFAULT_BUDGETS))
    scale.add_argument("--nas-epochs", type=int, default=5, help="standard NAS: epochs per candidate (max_t)")
    scale.add_argument("--nas-time", type=float, default=7200, help="standard NAS: seconds per task and seed")
    scale.add_argument("--nas-learning-rate", type=float, default=2e-5, help="standard NAS: fine-tuning learning rate")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.seeds = ["rte"], [0]
        args.finetune_epochs, args.max_train_examples, args.max_validation_examples = 1, 400, 200
        args.head_examples, args.heads_per_step, args.refinetune_epochs = 64, 18, 1
        args.rfp_examples, args.rfp_budgets = 128, [0.5, 0.7, 0.9]
        args.nas_epochs, args.nas_time = 1, 300
    return args


def run_seed(args: argparse.Namespace, task: str, seed: int, folder: Path) -> None:
    """Fine-tune the starting model and run the chosen baselines for one task and seed."""
    if "standard_nas" in args.methods and not (folder / "standard_nas" / "results.csv").is_file():
        standard_nas(
            task, model=args.model, optimizer="moasha", epochs=args.nas_epochs, max_wallclock_time=args.nas_time,
            learning_rate=args.nas_learning_rate, seed=seed, split_seed=split_seed(args, task, seed, folder),
            data_dir=args.data_dir,
            max_train_examples=args.max_train_examples, max_validation_examples=args.max_validation_examples,
            num_threads=args.threads,
            output_dir=folder / "standard_nas",
        )
    pruning = [m for m in args.methods if m != "standard_nas"]
    if not pruning:
        return
    start = prepare_starting_model(args, task, seed, folder)
    model, info = load_supernet(start)
    data = load_baseline_data(
        task, load_tokenizer(start), args.data_dir, seed=seed, split_seed=info.data.split_seed,
        max_train_examples=args.max_train_examples, max_validation_examples=args.max_validation_examples,
    )
    refinetune = TrainingConfig(
        epochs=args.refinetune_epochs, learning_rate=args.refinetune_learning_rate, warmup_ratio=0.1, seed=seed,
        num_threads=args.threads,
    )
    settings = {  # the benchmark's own settings of some methods; the others run with their defaults
        "head_pruning": dict(heads_per_step=args.heads_per_step, num_examples=args.head_examples),
        "retraining_free": dict(budgets=args.rfp_budgets, num_examples=args.rfp_examples),
    }
    for method in pruning:
        name, _, variant = method.partition("+")
        baseline = BASELINES[name.replace("_", "-")]
        options = dict(settings.get(name, {}))
        if baseline.refinetune:
            options["finetune"] = refinetune if variant else None
        baseline.prune(model, data, results_path=folder / results_file(method), **options)


def starting_model(args: argparse.Namespace, task: str, seed: int, folder: Path) -> Path:
    """The fine-tuned model the pruning baselines of this task and seed start from."""
    return Path(args.finetuned.format(task=task, seed=seed)) if args.finetuned else folder / "finetuned"


def prepare_starting_model(args: argparse.Namespace, task: str, seed: int, folder: Path) -> Path:
    """The starting model, fine-tuned first if it is not there yet."""
    start = starting_model(args, task, seed, folder)
    if not (start / INFO_FILE).is_file():  # else done (an unfinished one resumes from its checkpoint)
        finetune(
            task, model=args.model, strategy="standard", search_space=None, output_dir=start, data_dir=args.data_dir,
            epochs=args.finetune_epochs, seed=seed, max_train_examples=args.max_train_examples,
            num_threads=args.threads,
        )
    return start


def split_seed(args: argparse.Namespace, task: str, seed: int, folder: Path) -> int:
    """The train/validation split of this task and seed: the --finetuned model's (so every method is scored on
    the same validation examples), else the seed."""
    return read_info(prepare_starting_model(args, task, seed, folder)).data.split_seed if args.finetuned else seed


def results_file(method: str) -> str:
    return method.replace("+", "_") + ".csv"


def collect(args: argparse.Namespace, task: str, seed: int, folder: Path) -> list[pd.DataFrame]:
    """All result tables of one task and seed, with `wall_time` as total compute time."""
    tables = []
    nas = folder / "standard_nas" / "results.csv"
    if nas.is_file():
        tables.append(pd.read_csv(nas))
    offset = training_seconds(starting_model(args, task, seed, folder))
    for method in PRUNING_METHODS:
        path = folder / results_file(method)
        if path.is_file():
            table = pd.read_csv(path)
            table["wall_time"] += offset
            tables.append(table)
    if args.search_results:
        tables.extend(read_search(Path(args.search_results.format(task=task, seed=seed))))
    for table in tables:
        table["task"], table["seed"] = task, seed
    return tables


def read_search(folder: Path) -> list[pd.DataFrame]:
    """The weight-sharing search in `folder` (results.csv, with pareto.csv's test errors)."""
    if not (folder / "results.csv").is_file():
        return []
    results = pd.read_csv(folder / "results.csv")
    pareto = folder / "pareto.csv"
    if pareto.is_file() and "trial_id" in results:
        test = pd.read_csv(pareto)[["trial_id", "test_error", "test_metric"]]
        results = results.drop(columns=["test_error", "test_metric"], errors="ignore").merge(test, "left", "trial_id")
    summary = folder / "summary.json"
    supernet = Path(json.loads(summary.read_text())["supernet"]) if summary.is_file() else None
    results["method"] = "weight_sharing"
    results["wall_time"] = results["st_tuner_time"] + (training_seconds(supernet) if supernet else 0.0)
    return [results]


def earlier_rows(path: Path, tables: list[pd.DataFrame], tasks: list[str], seeds: list[int]) -> pd.DataFrame:
    """The rows of `path` (a report's rows table, wall times already total) for `tasks` and `seeds` whose
    (task, seed, method) none of `tables` has: a re-run replaces a method's rows, it does not add to them."""
    if not path.is_file():
        raise SystemExit(f"--earlier-rows {path} does not exist; give a rows table a report wrote")
    earlier = pd.read_csv(path)
    fresh = {key for table in tables for key in table[["task", "seed", "method"]].itertuples(index=False, name=None)}
    replaced = pd.MultiIndex.from_frame(earlier[["task", "seed", "method"]]).isin(fresh)
    return earlier[~replaced & earlier["task"].isin(tasks) & earlier["seed"].isin(seeds)]


def summarise(rows: pd.DataFrame, docs: Path) -> pd.DataFrame:
    """Hypervolume and wall time per task and method; the plots of every task."""
    summary = []
    for task, task_rows in rows.groupby("task", sort=False):
        bounds = joint_bounds([task_rows], OBJECTIVES)
        test_rows = task_rows.dropna(subset=["test_error"])
        fronts, curves = {}, {}
        for method, method_rows in task_rows.groupby("method", sort=False):
            runs = _seed_runs(method_rows)
            volumes = {seed: hypervolume(run, OBJECTIVES, REFERENCE_POINT, bounds) for seed, run in runs.items()}
            test_volumes = [_test_hypervolume(run, bounds) for run in runs.values()]
            median_seed = sorted(volumes, key=volumes.get)[len(volumes) // 2]
            fronts[method] = pareto_front(runs[median_seed], OBJECTIVES)
            curves[method] = [
                hypervolume_over_time(run, "wall_time", OBJECTIVES, REFERENCE_POINT, bounds) for run in runs.values()
            ]
            summary.append({
                "task": task,
                "method": method,
                "seeds": len(runs),
                "hypervolume": np.mean(list(volumes.values())),
                "hypervolume_std": np.std(list(volumes.values())),
                "test_hypervolume": np.nanmean(test_volumes) if not test_rows.empty else np.nan,
                "models": np.mean(
                    [run["trial_id"].nunique() if "trial_id" in run else len(run) for run in runs.values()]
                ),
                "wall_time_s": np.mean([run["wall_time"].max() for run in runs.values()]),
            })
        target = _final_hypervolume(curves.get("standard_nas", []))
        for entry in summary:
            if entry["task"] == task:
                entry["time_to_nas_hv_s"] = _time_to_reach(curves[entry["method"]], target)
        plot_front(fronts, docs / f"baselines_{task}_front.png", OBJECTIVES)
        plot_hypervolume(curves, docs / f"baselines_{task}_hypervolume.png")
    return pd.DataFrame(summary)


def at_max_ratio(rows: pd.DataFrame, max_ratios: list[float]) -> pd.DataFrame:
    """Per task, method and ratio: the test metric of each seed's front member with the lowest validation error
    at params <= the ratio (the model a user would ship at that size), mean and std over the seeds that have one."""
    table = []
    for (task, method), method_rows in rows.groupby(["task", "method"], sort=False):
        fronts = [pareto_front(run, OBJECTIVES) for run in _seed_runs(method_rows).values()]
        for ratio in max_ratios:
            chosen = pd.DataFrame(
                [select_member(front, max_params=ratio) for front in fronts if (front["params"] <= ratio).any()],
                columns=["params", "test_metric"],
            )
            table.append({
                "task": task, "method": method, "max_ratio": ratio, "seeds": len(chosen),
                "test_metric": chosen["test_metric"].mean(),
                "test_metric_std": chosen["test_metric"].std(ddof=0),
                "params": chosen["params"].mean(),
            })
    return pd.DataFrame(table)


def _seed_runs(method_rows: pd.DataFrame) -> dict[int, pd.DataFrame]:
    """One method's rows split by seed. Columns no row of a run has (trial_id of the pruning baselines) go: with
    a trial_id, pareto code keeps only each trial's last report."""
    return {seed: run.dropna(axis=1, how="all") for seed, run in method_rows.groupby("seed")}


def _in_report_order(rows: pd.DataFrame, tasks: list[str]) -> pd.DataFrame:
    """Rows by task (as given), method (as in METHODS, weight sharing last) and seed; a run's rows keep their
    reporting order, which the hypervolume-over-time curves follow."""
    rank = {name: i for i, name in enumerate([*tasks, *METHODS, "weight_sharing"])}
    return rows.sort_values(
        ["task", "method", "seed"], key=lambda column: column.map(rank) if column.name != "seed" else column,
        kind="stable",
    ).reset_index(drop=True)


def _final_hypervolume(curves: list[pd.DataFrame]) -> float:
    """Mean over seeds of the hypervolume a method had reached at its end (NaN: no run)."""
    return float(np.mean([curve["hypervolume"].iloc[-1] for curve in curves])) if curves else np.nan


def _time_to_reach(curves: list[pd.DataFrame], target: float) -> float:
    """Mean over seeds of the compute time at which the hypervolume first reached
    `target`; NaN unless every seed reached it."""
    times = []
    for curve in curves:
        reached = curve.loc[curve["hypervolume"] >= target - 1e-12, "time"]
        if reached.empty:
            return np.nan
        times.append(reached.iloc[0])
    return float(np.mean(times))


def _test_hypervolume(run: pd.DataFrame, bounds) -> float:
    """Hypervolume on test of the front chosen on validation (the paper's protocol)."""
    front = pareto_front(run, OBJECTIVES).dropna(subset=["test_error"])
    if front.empty:
        return np.nan
    return hypervolume(front.assign(error=front["test_error"]), OBJECTIVES, REFERENCE_POINT, bounds)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads or os.cpu_count())
    work = Path(args.work_dir)
    tables = []
    for task in args.tasks:
        for seed in args.seeds:
            folder = work / task / f"seed{seed}"
            if not args.report_only:
                run_seed(args, task, seed, folder)
            tables.extend(collect(args, task, seed, folder))
    if args.earlier_rows:  # first, so that the rows table keeps its column order and diffs stay readable
        tables.insert(0, earlier_rows(Path(args.earlier_rows), tables, args.tasks, args.seeds))
    if not tables:
        raise SystemExit(f"no results under {work}: run without --report-only first")
    rows = _in_report_order(pd.concat(tables, ignore_index=True), args.tasks)
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    rows.to_csv(docs / "baselines_rows.csv", index=False)
    summary = summarise(rows, docs)
    summary.to_csv(docs / "baselines.csv", index=False)
    small = at_max_ratio(rows, args.max_ratios)
    small.to_csv(docs / "baselines_at_max_ratio.csv", index=False)
    settings = " ".join(f"--{k}={v}" for k, v in sorted(vars(args).items()))
    note = (
        f"\n\nHypervolume of (validation error, parameter ratio), bounds joint over all methods and seeds of a task, "
        f"reference point {REFERENCE_POINT} in normalised space; test_hypervolume: the validation front scored on "
        f"test. wall_time_s: total compute from the pre-trained model (fine-tuning / super-network training "
        f"included), mean over seeds. time_to_nas_hv_s: compute time at which the method's hypervolume (every "
        f"report so far) first reached standard NAS's final one (that averaged over its seeds; the time a mean "
        f"over seeds, empty unless every seed got there).\n\n"
        f"Models a user would ship at a size limit: per seed, the front member with the lowest validation error at "
        f"parameter ratio <= max_ratio, its test metric (the task's GLUE metric: STS-B Spearman, MRPC F1, RTE "
        f"accuracy; mean and std over the seeds that have one, `seeds` of "
        f"them) and ratio:\n\n{small.to_markdown(index=False, floatfmt='.4f')}\n\nSettings: {settings}\n"
    )
    write_keeping_notes(docs / "baselines.md", summary.to_markdown(index=False, floatfmt=".4f") + note)
    print(summary.to_string(index=False, float_format="%.4f"))


if __name__ == "__main__":
    main()

"""Weight-sharing NAS on MiniLM, judged fairly: `full` vs `standard` at equal epochs, over training seeds.

For every task and super-network training seed:

1. one starting model: plain fine-tuning (`standard`, --epochs), heads and FFN units
   reordered by gradient importance (`nas-pruning run`'s first stage);
2. from it, a `full` and a `standard` super-network, each trained --supernet-epochs
   more, so both have the same total epochs and the same start;
3. for every search seed, `nas_pruning.experiments.weight_sharing.run_search` (the path `nas-pruning
   search` takes) over the SMALL space: hypervolume with the trivial-predictor
   reference, members chosen on validation and scored on test once.

Each finished search appends one row to --rows (a CSV committed in docs/); a rerun
skips the rows it has, so the benchmark resumes after any interruption, and
`--report-only` rebuilds docs/weight_sharing.md from the rows alone.

    GLUE_DIR=../shared/data/glue python benchmarks/weight_sharing.py --tasks stsb mrpc sst2 --threads 2

Work (models, searches) goes to --work-dir (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rows as bench_rows  # noqa: E402
from notes import write_keeping_notes  # noqa: E402

from nas_pruning.evaluation import Yardsticks  # noqa: E402
from nas_pruning.pareto import hypervolume, make_reference_point, select_member  # noqa: E402
from nas_pruning.experiments.weight_sharing import SearchSettings, run_search  # noqa: E402
from nas_pruning.supernet import finetune, training_seconds  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEYS = ["task", "training_seed", "strategy", "search_seed"]
#: SST-2's 47k training examples would take most of a day per seed on 2 cores: a fixed subset instead.
MAX_TRAIN_EXAMPLES = {"sst2": 8000}


def supernets(args, task: str, seed: int) -> dict[str, Path]:
    """The shared starting model and, from it, one super-network per strategy (trained once, then found)."""
    work = args.work_dir / f"{task}-seed{seed}"
    common = dict(
        batch_size=32, learning_rate=args.learning_rate, warmup_ratio=args.warmup_ratio, seed=seed,
        max_train_examples=args.max_train_examples or MAX_TRAIN_EXAMPLES.get(task), max_length=args.max_length, num_threads=args.threads,
        validate_subnetworks=False, progress=False,
        # The protocol the committed rows were trained with (the library's defaults are now off and 4).
        group_by_length=True, mega_batches=50,
    )
    start = work / "start"
    if not (start / "supernet.json").exists():
        finetune(task, strategy="standard", search_space="small", output_dir=start, epochs=args.epochs,
                 importance_examples=args.importance_examples, **common)
    folders = {}
    for strategy in args.strategies:
        folder = work / strategy
        if not (folder / "supernet.json").exists():
            finetune(task, model=str(start), strategy=strategy, search_space="small", output_dir=folder,
                     epochs=args.supernet_epochs, **common)
        folders[strategy] = folder
    return folders


def search_row(args, task: str, seed: int, strategy: str, folder: Path, search_seed: int) -> dict:
    """One search of one super-network, as a row: hypervolumes, yardsticks, the half-encoder member."""
    settings = SearchSettings(
        optimizer=args.optimizer, num_evaluations=args.num_evaluations, seed=search_seed,
        max_validation_examples=args.max_validation_examples, num_threads=args.threads,
        batch_size=64,  # the protocol the committed rows were evaluated with (the library's default is now 16)
    )
    out = args.work_dir / f"{task}-seed{seed}" / f"search-{strategy}-{search_seed}"
    started = time.perf_counter()
    outcome = run_search(folder, out, settings, progress=False)
    marks, front = outcome.yardsticks, outcome.front
    fixed = hypervolume(front, reference_point=make_reference_point(reference="fixed"))
    row = {
        "task": task, "training_seed": seed, "strategy": strategy, "search_seed": search_seed,
        "optimizer": args.optimizer, "evaluations": len(outcome.results), "hypervolume": outcome.hypervolume,
        "hypervolume_fixed_reference": fixed, **{f"{k}": v for k, v in vars(marks).items()},
        "train_seconds": round(training_seconds(folder)), "search_seconds": round(time.perf_counter() - started),
    }
    useful = front[front["metric"] > marks.trivial_validation]
    for label, ratio in (("half", args.half_ratio), ("small", args.small_ratio)):
        allowed = useful[useful["params"] <= ratio]
        if allowed.empty:
            row[f"{label}_params"] = np.nan
            continue
        member = select_member(allowed, max_params=ratio)
        config = {c[len("config_"):]: int(member[c]) for c in member.index if c.startswith("config_")}
        row.update({
            f"{label}_params": member["params"], f"{label}_config": json.dumps(config),
            f"{label}_val_metric": member["metric"], f"{label}_test_metric": member["test_metric"],
        })
    return row


def report(rows: pd.DataFrame, args, path: Path) -> None:
    """docs/weight_sharing.md from the rows alone."""
    if rows.empty:
        return write_keeping_notes(path, "# Weight-sharing NAS benchmark\n\nNo rows yet.\n")
    # The reference of `kept` and `gap kept`: the plainly fine-tuned model of the same training seed
    # (the `standard` super-network's full network: the same start and the same epochs as `full`).
    unpruned = rows[rows.strategy == "standard"].groupby(["task", "training_seed"]).unpruned_test.first()
    per_seed = rows.groupby(["task", "strategy", "training_seed"]).mean(numeric_only=True).reset_index()
    per_seed = per_seed.reindex(columns=[*per_seed.columns, *(
        c for c in ("half_test_metric", "small_test_metric") if c not in per_seed)])
    marks = [
        Yardsticks(r.trivial_validation, r.trivial_test, np.nan, unpruned.get((r.task, r.training_seed), np.nan))
        for r in per_seed.itertuples()
    ]
    for label in ("half", "small"):
        per_seed[f"{label}_kept"] = [m.kept(x) for m, x in zip(marks, per_seed[f"{label}_test_metric"])]
        per_seed[f"{label}_gap_kept"] = [m.gap_kept(x) for m, x in zip(marks, per_seed[f"{label}_test_metric"])]
    shown = ["hypervolume", "hypervolume_fixed_reference", "trivial_test", "unpruned_test", "half_params",
             "half_test_metric", "half_kept", "half_gap_kept", "small_test_metric", "small_gap_kept",
             "train_seconds"]
    shown = [c for c in shown if c in per_seed]
    table = per_seed.groupby(["task", "strategy"])[shown].agg(["mean", "std"])
    seeds = per_seed.groupby(["task", "strategy"]).training_seed.nunique().rename("training_seeds")
    cells = pd.DataFrame({
        c: [f"{m:.4f} ± {s:.4f}" if not np.isnan(s) else f"{m:.4f}" for m, s in zip(table[(c, "mean")], table[(c, "std")])]
        for c in shown
    }, index=table.index).join(seeds).reset_index()
    verdicts = []
    for task, group in per_seed.groupby("task"):
        full, standard = (group[group.strategy == s].hypervolume for s in ("full", "standard"))
        if len(full) < 2 or len(standard) < 2:
            verdicts.append(f"- {task}: fewer than 2 training seeds per strategy, not judged yet.")
            continue
        gap, spread = full.mean() - standard.mean(), 2 * max(full.std(), standard.std())
        verdicts.append(
            f"- {task}: `full` - `standard` hypervolume = {gap:+.4f} over {len(full)}/{len(standard)} training "
            f"seeds; two std = {spread:.4f}: " + ("**full beats standard by more than two std**" if gap > spread
                                                  else "**not more than two std apart**")
        )
    text = "\n".join([
        "# Weight-sharing NAS benchmark (MiniLM, mean pooling, SMALL space)\n",
        f"Generated from `{os.path.relpath(args.rows, ROOT)}` ({len(rows)} rows) by "
        "`python benchmarks/weight_sharing.py --report-only`; the runs: "
        "`GLUE_DIR=../shared/data/glue python benchmarks/weight_sharing.py --tasks stsb mrpc sst2 --threads 2`, or one "
        "process per task side by side (`--tasks stsb --threads 1`, `--tasks mrpc --threads 1`: how these rows "
        "were made) "
        f"(defaults: {args.epochs} epochs plain fine-tuning at {args.learning_rate} with {args.warmup_ratio:.0%} "
        f"warm-up, reordered by importance on {args.importance_examples} examples, then {args.supernet_epochs} "
        f"epochs of each strategy from that model, training batches grouped by length; {args.optimizer}, "
        f"{args.num_evaluations} evaluations (batch 64) on "
        f"{args.max_validation_examples} validation examples per search; SST-2 trained on a fixed "
        f"{MAX_TRAIN_EXAMPLES['sst2']:,}-example subset of its train part).\n",
        "Mean ± sample std over super-network **training seeds** (search seeds averaged within each). "
        "`hypervolume`: (validation error, parameter ratio), reference at the trivial predictor's validation "
        "error (a constant predictor adds nothing); `hypervolume_fixed_reference`: the old (1, 1). "
        f"`half_*`: the validation-best member that beats the trivial predictor at parameter ratio <= "
        f"{args.half_ratio} (half the encoder), scored on test once; `small_*`: the same at <= {args.small_ratio}. "
        "`kept` = m / m_unpruned, `gap_kept` = (m - m_trivial) / (m_unpruned - m_trivial), the unpruned model "
        "being the plainly fine-tuned one of the same seed and epochs (`standard`'s full network).\n",
        cells.to_markdown(index=False),
        "\n## `full` vs `standard` at equal epochs\n",
        *verdicts,
        "",
    ])
    write_keeping_notes(path, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["stsb", "mrpc", "sst2"])
    parser.add_argument("--strategies", nargs="+", default=["full", "standard"])
    parser.add_argument("--training-seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--search-seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--optimizer", default="local_search")
    parser.add_argument("--num-evaluations", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3, help="plain fine-tuning epochs of the starting model")
    parser.add_argument("--supernet-epochs", type=int, default=2, help="epochs of every strategy from the start")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--importance-examples", type=int, default=512)
    parser.add_argument("--max-validation-examples", type=int, default=400)
    parser.add_argument("--max-train-examples", type=int, default=None, help="for a smoke run: train on fewer")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--half-ratio", type=float, default=0.77, help="parameter ratio of half the encoder")
    parser.add_argument("--small-ratio", type=float, default=0.65)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--work-dir", type=Path, default=ROOT / "benchmarks" / "runs" / "weight_sharing_fair")
    parser.add_argument("--rows", type=Path, default=ROOT / "docs" / "weight_sharing_rows.csv")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "weight_sharing.md")
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from --rows, run nothing")
    args = parser.parse_args()
    args.rows = args.rows.resolve()
    torch.set_num_threads(args.threads)
    if not args.report_only:
        finished = bench_rows.done(args.rows, KEYS)
        for task in args.tasks:
            for seed in args.training_seeds:
                todo = [(s, q) for s in args.strategies for q in args.search_seeds
                        if (task, seed, s, q) not in finished]
                if not todo:
                    continue
                folders = supernets(args, task, seed)
                for strategy, search_seed in todo:
                    row = search_row(args, task, seed, strategy, folders[strategy], search_seed)
                    bench_rows.append(args.rows, row)
                    print(f"{task} seed {seed} {strategy} search {search_seed}: hypervolume {row['hypervolume']:.4f}, "
                          f"half-encoder test {row.get('half_test_metric', float('nan')):.4f}", flush=True)
                    report(bench_rows.read(args.rows), args, args.report)
    report(bench_rows.read(args.rows), args, args.report)


if __name__ == "__main__":
    main()

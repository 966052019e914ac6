"""CoFi pruning with transfer learning under limited target data, on MiniLM.

Target tasks with 1,000 training examples (sampled per seed) paired with an
auxiliary task, pruned to 90% and 95% sparsity, comparing the couplings
none / shared / independent / delta (all transferring at both stages, weights and
structure), the stage ablation (delta at prune / finetune / both) and the
what-to-transfer ablation (delta with weights / structure / both). Test scores
are on the target's GLUE dev split; speedups are measured on this machine
(batch 32 x seq 128, the pruned model against the unpruned teacher, interleaved).

Targets (Dery et al., 2023): delta beats no transfer at 95% sparsity (about +5
points there), transfer at both stages beats either alone, and the 95%-sparse
model runs at least 5x faster than the unpruned MiniLM.

    python benchmarks/cofi_transfer.py                  # full scale (days on 2 CPU cores)
    python benchmarks/cofi_transfer.py --scale quick    # reduced: about 40 min on 2 idle cores
    python benchmarks/cofi_transfer.py --scale medium   # all variants, one seed: about 10 h
    python benchmarks/cofi_transfer.py --list           # print the planned runs only

Any setting of a scale can be overridden (e.g. ``--seeds 0,1 --prune-epochs 4``).
Every run checkpoints after each epoch and leaves ``result.json`` in its folder
under --work-dir; re-running the same command skips finished runs and resumes
the interrupted one. Writes docs/cofi_transfer_results.csv (one row per run),
docs/cofi_transfer_results.md (means over seeds and the targets) and
docs/cofi_transfer_results.png; text below the line notes.NOTES_MARK in an
existing docs/cofi_transfer_results.md is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nas_pruning.cofi import CoFiConfig, TrainingDiverged, run_cofi
from nas_pruning.cofi.data import load_transfer_data
from nas_pruning.cofi.teacher import load_or_train_teacher
from nas_pruning.evaluation import evaluate
from nas_pruning.models import load_tokenizer
from notes import write_keeping_notes

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

#: variant -> (coupling, stage, transfer)
VARIANTS = {
    "none": ("none", "both", "both"),
    "shared": ("shared", "both", "both"),
    "independent": ("independent", "both", "both"),
    "delta": ("delta", "both", "both"),
    "delta-prune": ("delta", "prune", "both"),
    "delta-finetune": ("delta", "finetune", "both"),
    "delta-weights": ("delta", "both", "weights"),
    "delta-structure": ("delta", "both", "structure"),
}
GROUPS = {
    "couplings": ["none", "shared", "independent", "delta"],
    "stages": ["none", "delta-prune", "delta-finetune", "delta"],
    "transfer": ["none", "delta-weights", "delta-structure", "delta"],
    "all": list(VARIANTS),
}

#: Settings per scale; command-line options override them one by one.
SCALES = {
    "full": dict(
        pairs="rte:qnli,mrpc:stsb", sparsities="0.9,0.95", seeds="0,1,2", variants="all", max_length=128,
        teacher_epochs=5, prune_epochs=20, finetune_epochs=10, max_aux_examples=None, max_eval_examples=None,
        gate_learning_rate=0.05, lambda_learning_rate=0.05,
    ),
    "medium": dict(
        pairs="rte:qnli,mrpc:stsb", sparsities="0.9,0.95", seeds="0", variants="all", max_length=128,
        teacher_epochs=3, prune_epochs=5, finetune_epochs=3, max_aux_examples=5000, max_eval_examples=500,
        gate_learning_rate=0.1, lambda_learning_rate=0.1,
    ),
    "quick": dict(
        pairs="rte:qnli,mrpc:stsb", sparsities="0.95", seeds="0", variants="couplings", max_length=64,
        teacher_epochs=2, prune_epochs=2, finetune_epochs=2, max_aux_examples=2000, max_eval_examples=256,
        gate_learning_rate=0.1, lambda_learning_rate=0.1,
    ),
}  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--pairs", help="comma-separated target:auxiliary task pairs")
    parser.add_argument("--sparsities", help="comma-separated target sparsities")
    parser.add_argument("--seeds", help="comma-separated seeds")
    parser.add_argument("--variants", help=f"a group ({', '.join(GROUPS)}) or comma-separated of {list(VARIANTS)}")
    parser.add_argument("--target-examples", type=int, default=1000)
    integers = (
        "max_length", "teacher_epochs", "prune_epochs", "finetune_epochs", "max_aux_examples", "max_eval_examples",
    )
    for name in integers:
        parser.add_argument(f"--{name.replace('_', '-')}", type=int)
    for name in ("gate_learning_rate", "lambda_learning_rate"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float)
    parser.add_argument("--data-dir", default=os.environ.get("GLUE_DIR", str(ROOT.parent / "shared" / "data" / "glue")))
    parser.add_argument("--model", default=None, help="model name or folder (default: bundled MiniLM)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--work-dir", type=Path, default=ROOT / "benchmarks" / "runs" / "cofi_transfer")
    parser.add_argument("--out", type=Path, default=DOCS / "cofi_transfer_results", help="output path without suffix")
    parser.add_argument("--list", action="store_true", help="print the planned runs and exit")
    args = parser.parse_args()
    for name, value in SCALES[args.scale].items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    return args


def planned_runs(args: argparse.Namespace) -> list[dict]:
    variants = GROUPS.get(args.variants) or [v.strip() for v in args.variants.split(",")]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {list(VARIANTS)} or groups {list(GROUPS)}")
    runs = []
    for pair in args.pairs.split(","):
        target, aux = pair.split(":")
        for sparsity in (float(s) for s in args.sparsities.split(",")):
            for seed in (int(s) for s in args.seeds.split(",")):
                for variant in variants:
                    runs.append(dict(target=target, aux=aux, target_sparsity=sparsity, seed=seed, variant=variant))
    return runs


def run_config(args: argparse.Namespace, run: dict) -> CoFiConfig:
    coupling, stage, transfer = VARIANTS[run["variant"]]
    return CoFiConfig(
        task=run["target"], aux_task=run["aux"], target_examples=args.target_examples,
        target_sparsity=run["target_sparsity"], coupling=coupling, stage=stage, transfer=transfer, model=args.model,
        data_dir=args.data_dir, seed=run["seed"], max_length=args.max_length, teacher_epochs=args.teacher_epochs,
        prune_epochs=args.prune_epochs, finetune_epochs=args.finetune_epochs, max_aux_examples=args.max_aux_examples,
        max_eval_examples=args.max_eval_examples, gate_learning_rate=args.gate_learning_rate,
        lambda_learning_rate=args.lambda_learning_rate, num_threads=args.threads,
        cache_dir=str(args.work_dir / "teachers"),
    )  # fmt: skip


def run_folder(args: argparse.Namespace, run: dict) -> Path:
    name = f"{run['target']}-{run['aux']}/sparsity{run['target_sparsity']}/{run['variant']}/seed{run['seed']}"
    return args.work_dir / name


def teacher_row(args: argparse.Namespace, run: dict) -> dict:
    """The unpruned teacher's test score: the reference every pruned model is compared with."""
    config = run_config(args, {**run, "variant": "none"})
    data = load_transfer_data(config, load_tokenizer(config.model))
    teacher = load_or_train_teacher(config, data, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    test = evaluate(teacher, data.eval_loader("test", config.batch_size), data.task)
    valid = evaluate(teacher, data.eval_loader("validation", config.batch_size), data.task)
    return {"val_error": valid["error"], "test_metric": test["metric"]}


def collect(args: argparse.Namespace, runs: list[dict]) -> pd.DataFrame:
    rows = []
    for run in runs:
        result = run_folder(args, run) / "result.json"
        if result.exists():
            saved = json.loads(result.read_text())
            rows.append({**run, **saved["result"], "wall_s": saved.get("wall_s")})
    return pd.DataFrame(rows)


def write_outputs(args: argparse.Namespace, table: pd.DataFrame, teachers: pd.DataFrame) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out.with_suffix(".csv"), index=False)
    if table.empty:
        return
    summary = (
        table.groupby(["target", "aux", "target_sparsity", "variant"], sort=False)
        .agg(
            test_metric=("test_metric", "mean"), test_std=("test_metric", "std"), val_error=("error", "mean"),
            params=("params", "mean"), real_sparsity=("sparsity", "mean"), speedup=("speedup", "mean"),
            seeds=("seed", "count"),
        )
        .reset_index()
    )  # fmt: skip
    header = (
        "# CoFi pruning with transfer learning (MiniLM, limited target data)\n\n"
        f"Scale `{args.scale}`: {args.target_examples} target examples, max length {args.max_length}, "
        f"teacher {args.teacher_epochs} / pruning {args.prune_epochs} / fine-tuning {args.finetune_epochs} epochs, "
        f"auxiliary examples {args.max_aux_examples or 'all'}, validation examples {args.max_eval_examples or 'all'}, "
        f"gate / lambda learning rate {args.gate_learning_rate} / {args.lambda_learning_rate}; "
        f"torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}.\n\n"
        "test_metric: target task metric on its GLUE dev split (RTE accuracy, MRPC F1), mean (and std) over seeds; "
        "val_error: 1 - metric on the held-out validation part; params: parameter ratio of the exported model "
        "(embeddings included); real_sparsity: measured on the exported model's encoder layers; speedup: "
        "unpruned / pruned forward time, batch 32 x seq 128, this machine.\n\n"
    )
    teacher_md = teachers.to_markdown(index=False, floatfmt=".4f") if not teachers.empty else "(none)"
    body = (
        "## Results\n\n" + summary.to_markdown(index=False, floatfmt=".4f") + "\n\n"
        "## Unpruned teachers (fine-tuned on the same target examples)\n\n" + teacher_md + "\n\n"
        "## Targets\n\n" + "\n".join(target_checks(summary)) + "\n"
    )
    write_keeping_notes(args.out.with_suffix(".md"), header + body)
    plot(summary, args.out.with_suffix(".png"))


def target_checks(summary: pd.DataFrame) -> list[str]:
    """The paper's claims, checked on the summary where the needed variants were run."""
    lines = []
    for (target, aux, sparsity), group in summary.groupby(["target", "aux", "target_sparsity"], sort=False):
        scores = dict(zip(group["variant"], group["test_metric"]))
        prefix = f"- {target} + {aux} at {sparsity:.0%}:"
        if {"delta", "none"} <= set(scores):
            gain = 100 * (scores["delta"] - scores["none"])
            lines.append(f"{prefix} delta - none = {gain:+.1f} points (paper: about +5 at 95%)")
        if {"delta", "delta-prune", "delta-finetune"} <= set(scores):
            verdict = "yes" if scores["delta"] > max(scores["delta-prune"], scores["delta-finetune"]) else "no"
            lines.append(f"{prefix} both stages beat either alone: {verdict}")
        if {"delta", "delta-weights", "delta-structure"} <= set(scores):
            verdict = "yes" if scores["delta"] > max(scores["delta-weights"], scores["delta-structure"]) else "no"
            lines.append(f"{prefix} weights + structure beat either alone: {verdict}")
        if sparsity >= 0.95:
            slowest = group["speedup"].min()
            lines.append(f"{prefix} smallest speedup {slowest:.1f}x (target: at least 5x)")
    return lines or ["(not enough variants run to check the targets)"]


def plot(summary: pd.DataFrame, path: Path) -> None:
    groups = list(summary.groupby(["target", "aux", "target_sparsity"], sort=False))
    figure = Figure(figsize=(max(6, 3.2 * len(groups)), 4))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(groups), squeeze=False)[0]
    for ax, ((target, aux, sparsity), group) in zip(axes, groups):
        ax.bar(group["variant"], group["test_metric"], yerr=group["test_std"].fillna(0), color="tab:blue", alpha=0.8)
        ax.set_title(f"{target} + {aux}, {sparsity:.0%} sparse", fontsize=9)
        ax.set_ylabel("test metric")
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
        low = group["test_metric"].min()
        ax.set_ylim(max(0.0, low - 0.1), None)
        ax.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="png")


def main() -> None:
    args = parse_args()
    runs = planned_runs(args)
    if args.list:
        for run in runs:
            done = (run_folder(args, run) / "result.json").exists()
            print(("done  " if done else "to do ") + str(run_folder(args, run).relative_to(args.work_dir)))
        print(f"{len(runs)} runs")
        return
    torch.set_num_threads(args.threads)
    teachers = {}
    for index, run in enumerate(runs, 1):
        folder = run_folder(args, run)
        key = (run["target"], run["aux"], run["seed"])
        if key not in teachers:
            teachers[key] = {"target": run["target"], "aux": run["aux"], "seed": run["seed"], **teacher_row(args, run)}
        if (folder / "result.json").exists():
            continue
        print(f"[{index}/{len(runs)}] {folder.relative_to(args.work_dir)}", flush=True)
        start = time.perf_counter()
        try:
            run_cofi(run_config(args, run), folder, checkpoint_dir=folder / "checkpoint")
        except TrainingDiverged as error:  # reported in the table as a missing row, not fatal
            print(f"  diverged: {error}", flush=True)
            continue
        saved = json.loads((folder / "result.json").read_text())
        saved["wall_s"] = time.perf_counter() - start
        (folder / "result.json").write_text(json.dumps(saved, indent=2))
        write_outputs(args, collect(args, runs), pd.DataFrame(teachers.values()))
    write_outputs(args, collect(args, runs), pd.DataFrame(teachers.values()))


if __name__ == "__main__":
    main()

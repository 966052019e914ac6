"""CoFi pruning with transfer learning under limited target data, on MiniLM, judged on this CPU.

The grid ``issue17b`` (the default): targets STS-B (auxiliary MRPC) and SST-2
(auxiliary CoLA) with 1,000 training examples sampled per seed; at 90% sparsity
the couplings none / shared / independent / delta (auxiliary task at both stages,
weights and structure), at 95% those plus the stage ablation (delta at prune /
finetune only) and the what-to-transfer ablation (delta with weights / structure
only); seeds 0, 1, 2: 72 runs, pruning 2 epochs and fine-tuning 4 at learning rate
1e-4. The grid ``issue17`` is the same runs on the first, shorter schedule (pruning 2
epochs at 3e-5, fine-tuning 1), which left every model at the trivial predictor.
docs/cofi_transfer.md gives the schedules, their cost on this machine, and why these
auxiliary tasks.

    python benchmarks/cofi_transfer.py                          # the whole grid, resumable
    python benchmarks/cofi_transfer.py --pairs stsb:mrpc --seeds 0 --sparsities 0.9 --variants none
    python benchmarks/cofi_transfer.py --list                   # planned runs, done or to do
    python benchmarks/cofi_transfer.py --report-only            # rebuild the report from the rows
    python benchmarks/cofi_transfer.py --grid issue17 --report-only   # the short schedule's report

Every finished run appends one row to docs/cofi_transfer_rows.csv (its grid and settings,
validation and test metric, the trivial predictor's and the teacher's metric, real
sparsity, parameter ratio, speedups measured interleaved at batch 32 x 128 and
1 x 128, wall time); a run whose row is there is skipped, and an interrupted run
resumes from its last epoch's checkpoint under --work-dir, ending exactly as it
would have. The grid's report (docs/cofi_transfer_results.md for the default grid,
docs/cofi_transfer_results_<grid>.md for another) is rebuilt from the grid's rows alone
after every row (text below notes.NOTES_MARK in it is kept).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

import rows as bench_rows

from nas_pruning.cofi import CoFiConfig, TrainingDiverged, run_cofi
from nas_pruning.cofi.data import load_transfer_data
from nas_pruning.cofi.pipeline import MODEL_FOLDER, prepare_teacher
from nas_pruning.cofi.report import KEY, build_report
from nas_pruning.cofi.speed import SPEED_SHAPES, speed_comparison
from nas_pruning.cofi.teacher import teacher_path
from nas_pruning.evaluation import evaluate
from nas_pruning.files import write_text_atomic
from nas_pruning.models import load_model, load_tokenizer
from nas_pruning.tasks import get_task
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
COUPLINGS = ["none", "shared", "independent", "delta"]


@dataclasses.dataclass(frozen=True)
class Grid:
    """The runs of a benchmark grid and the settings every one of them shares."""

    pairs: tuple[tuple[str, str], ...]
    variants: dict[float, list[str]]  # target sparsity -> variants run at it
    seeds: tuple[int, ...]
    settings: dict  # CoFiConfig settings shared by every run
    speed_shapes: tuple[tuple[int, int], ...] = SPEED_SHAPES  # (batch, length) of the final speed comparison
    speed_repeats: int = 20  # its timed passes of each model per shape


#: The runs of issue 17's grid and the settings both of its schedules share.
ISSUE17 = Grid(
    pairs=(("stsb", "mrpc"), ("sst2", "cola")),
    variants={0.9: COUPLINGS, 0.95: list(VARIANTS)},
    seeds=(0, 1, 2),
    settings=dict(
        target_examples=1000, max_length=64, max_aux_examples=4000, max_eval_examples=500, teacher_epochs=3,
        prune_epochs=2, finetune_epochs=1, learning_rate=3e-5, finetune_learning_rate=3e-5,
        gate_learning_rate=0.1, lambda_learning_rate=0.1, latency_repeats=1,
    ),
)  # fmt: skip
GRIDS = {
    "issue17": ISSUE17,
    # The short schedule left every model at the trivial predictor; fine-tuning the pruned model
    # longer and faster is what lifts it (docs/cofi_transfer.md, "Schedule").
    "issue17b": dataclasses.replace(
        ISSUE17, settings={**ISSUE17.settings, "finetune_epochs": 4, "learning_rate": 1e-4,
                           "finetune_learning_rate": 1e-4}
    ),
}
DEFAULT_GRID = "issue17b"
#: The row's copy of the settings that distinguish schedules.
ROW_SETTINGS = ("target_examples", "max_length", "max_aux_examples", "max_eval_examples", "teacher_epochs",
                "prune_epochs", "finetune_epochs", "learning_rate", "finetune_learning_rate")  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", choices=sorted(GRIDS), default=DEFAULT_GRID)
    parser.add_argument("--pairs", help="only these comma-separated target:auxiliary pairs of the grid")
    parser.add_argument("--sparsities", help="only these comma-separated sparsities of the grid")
    parser.add_argument("--seeds", help="only these comma-separated seeds of the grid")
    parser.add_argument("--variants", help=f"only these comma-separated variants of {list(VARIANTS)}")
    parser.add_argument("--data-dir", default=os.environ.get("GLUE_DIR", str(ROOT.parent / "shared" / "data" / "glue")))
    parser.add_argument("--model", default=None, help="model name or folder (default: bundled MiniLM)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--work-dir", type=Path, default=ROOT / "benchmarks" / "runs" / "cofi_transfer")
    parser.add_argument("--rows", type=Path, default=DOCS / "cofi_transfer_rows.csv", help="rows table (CSV)")
    parser.add_argument("--report", type=Path, default=None,
                        help="report (markdown); default docs/cofi_transfer_results.md for the default grid, "
                             "docs/cofi_transfer_results_<grid>.md for another")
    parser.add_argument("--list", action="store_true", help="print the planned runs and exit")
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from the rows and exit")
    args = parser.parse_args(argv)
    if args.report is None:
        name = "cofi_transfer_results" + ("" if args.grid == DEFAULT_GRID else f"_{args.grid}")
        args.report = DOCS / f"{name}.md"
    return args


def planned_runs(args: argparse.Namespace) -> list[dict]:
    """The grid's runs, restricted by --pairs / --sparsities / --seeds / --variants."""
    grid = GRIDS[args.grid]

    def chosen(option: str | None, values: list, parse) -> list:
        if option is None:
            return values
        wanted = [parse(text.strip()) for text in option.split(",") if text.strip()]
        outside = [value for value in wanted if value not in values]
        if outside:
            raise SystemExit(f"{outside} are not in grid {args.grid!r}, which has {values}")
        return wanted

    pairs = chosen(args.pairs, list(grid.pairs), lambda text: tuple(text.split(":")))
    sparsities = chosen(args.sparsities, list(grid.variants), float)
    seeds = chosen(args.seeds, list(grid.seeds), int)
    variants = chosen(args.variants, list(VARIANTS), str)
    return [
        dict(grid=args.grid, target=target, aux=aux, target_sparsity=sparsity, variant=variant, seed=seed)
        for target, aux in pairs
        for sparsity in sparsities
        for seed in seeds
        for variant in grid.variants[sparsity]
        if variant in variants
    ]


def run_config(args: argparse.Namespace, run: dict) -> CoFiConfig:
    coupling, stage, transfer = VARIANTS[run["variant"]]
    return CoFiConfig(
        task=run["target"], aux_task=run["aux"], target_sparsity=run["target_sparsity"], coupling=coupling,
        stage=stage, transfer=transfer, seed=run["seed"], model=args.model, data_dir=args.data_dir,
        num_threads=args.threads, cache_dir=str(args.work_dir / "teachers"), **GRIDS[args.grid].settings,
    )  # fmt: skip


def run_folder(args: argparse.Namespace, run: dict) -> Path:
    pair = f"{run['target']}-{run['aux']}"
    sparsity, seed = f"sparsity{run['target_sparsity']}", f"seed{run['seed']}"
    return args.work_dir / run["grid"] / pair / sparsity / run["variant"] / seed


def teacher_scores(args: argparse.Namespace, config: CoFiConfig) -> dict:
    """Train (or load) the run's teacher and score it and the trivial predictor; cached per teacher
    in the work dir, so the grid's runs of one (target, seed) score them once. ``teacher_wall_s``
    and ``teacher_cpu_s`` are the training's wall and process CPU time (NaN when the teacher was trained
    before its scores were cached)."""
    cache = args.work_dir / "teachers" / "scores.json"
    alone = dataclasses.replace(config, coupling="none", aux_task=None)
    path = teacher_path(alone)
    scores = json.loads(cache.read_text()) if cache.exists() else {}
    if path.name not in scores:
        trained_before = path.exists()
        start = time.perf_counter(), time.process_time()
        prepare_teacher(alone, progress=False)
        spent = time.perf_counter() - start[0], time.process_time() - start[1]
        entry = dict(zip(("teacher_wall_s", "teacher_cpu_s"), (float("nan"),) * 2 if trained_before else spent))
        data = load_transfer_data(alone, load_tokenizer(config.model))
        teacher = load_model(str(path), data.task.num_labels, data.task.is_regression)
        for split, prefix in (("validation", "val"), ("test", "test")):
            loader = data.eval_loader(split, config.batch_size)
            entry[f"teacher_{prefix}_metric"] = evaluate(teacher, loader, data.task)["metric"]
            labels = getattr(data.target, split)["labels"]
            entry[f"trivial_{prefix}_metric"] = data.task.trivial_metric(data.target.train["labels"], labels)
        scores[path.name] = entry
        write_text_atomic(cache, json.dumps(scores, indent=2))
    return scores[path.name]


def run_row(args: argparse.Namespace, run: dict) -> dict | None:
    """Run (or resume) one run and return its row; None if its training diverged."""
    config = run_config(args, run)
    reference = teacher_scores(args, config)
    folder = run_folder(args, run)
    elapsed_file = folder / "elapsed.json"
    earlier = json.loads(elapsed_file.read_text()) if elapsed_file.exists() else {"wall_s": 0.0, "cpu_s": 0.0}
    start = {"wall_s": time.perf_counter(), "cpu_s": time.process_time()}

    def track(_row: dict) -> None:
        # Wall and process CPU time of the epochs done so far, kept across interruptions; on a shared
        # machine the CPU time (all threads) says more about the run's cost than the wall time.
        now = {"wall_s": time.perf_counter(), "cpu_s": time.process_time()}
        write_text_atomic(elapsed_file, json.dumps({name: earlier[name] + now[name] - start[name] for name in now}))

    if not (folder / "result.json").exists():
        try:
            run_cofi(config, folder, report=track, checkpoint_dir=folder / "checkpoint", progress=False)
        except TrainingDiverged as error:
            print(f"  diverged: {error}", flush=True)
            return None
    result = json.loads((folder / "result.json").read_text())["result"]
    task = get_task(config.task)
    teacher = load_model(str(teacher_path(config)), task.num_labels, task.is_regression)
    pruned = load_model(str(folder / MODEL_FOLDER), task.num_labels, task.is_regression)
    grid = GRIDS[args.grid]
    speed = speed_comparison(teacher, pruned, grid.speed_shapes, grid.speed_repeats)
    coupling, stage, transfer = VARIANTS[run["variant"]]
    # Missing only if the run was killed between writing its result and its last report.
    elapsed = json.loads(elapsed_file.read_text()) if elapsed_file.exists() else {"wall_s": np.nan, "cpu_s": np.nan}
    return {
        **run, "coupling": coupling, "stage": stage, "transfer": transfer,
        "pooling": getattr(teacher.config, "classifier_pooling", "cls"),
        **{name: getattr(config, name) for name in ROW_SETTINGS},
        "val_metric": result["metric"], "test_metric": result["test_metric"],
        **{name: reference[name] for name in ("trivial_val_metric", "trivial_test_metric", "teacher_val_metric",
                                              "teacher_test_metric")},
        "real_sparsity": result["sparsity"], "params": result["params"], **speed,
        **elapsed, "teacher_wall_s": reference["teacher_wall_s"],
        "teacher_cpu_s": reference["teacher_cpu_s"],
        "threads": args.threads, "load_avg_1min": os.getloadavg()[0],
    }  # fmt: skip


def run_key(run: dict) -> tuple:
    return tuple(run[name] for name in KEY)


def write_report(args: argparse.Namespace) -> None:
    rows = bench_rows.read(args.rows)
    write_keeping_notes(args.report, build_report(rows[rows["grid"] == args.grid] if not rows.empty else rows))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    runs = planned_runs(args)
    done = bench_rows.done(args.rows, list(KEY))
    if args.list:
        for run in runs:
            status = "done  " if run_key(run) in done else "to do "
            print(status + str(run_folder(args, run).relative_to(args.work_dir)))
        print(f"{len(runs)} runs, {sum(run_key(run) in done for run in runs)} done")
        return
    if not args.report_only:
        torch.set_num_threads(args.threads)
        for index, run in enumerate(runs, 1):
            if run_key(run) in done:
                continue
            print(f"[{index}/{len(runs)}] {run_folder(args, run).relative_to(args.work_dir)}", flush=True)
            row = run_row(args, run)
            if row is not None:
                bench_rows.append(args.rows, row)
                write_report(args)
    write_report(args)


if __name__ == "__main__":
    main()

"""The ``cofi`` and ``cofi-search`` subcommands of ``nas-pruning``.

    nas-pruning cofi --task rte --aux-task qnli --target-examples 1000 --target-sparsity 0.95 --coupling delta
    nas-pruning cofi-search --task rte --optimizer moasha --n-trials 20 --prune-epochs 5 --finetune-epochs 3
    nas-pruning cofi-search --task rte --n-workers 16 --ray-address auto --cpus-per-trial 8 --gpus-per-trial 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nas_pruning.arguments import fraction, non_negative_float, non_negative_int, positive_float, positive_int
from nas_pruning.cli.arguments import add_output_dir_argument, add_ray_arguments, ray_options
from nas_pruning.cofi.config import SEARCHED_SETTINGS, CoFiConfig
from nas_pruning.cofi.divergence import TrainingDiverged
from nas_pruning.cofi.pipeline import MODEL_FOLDER, run_cofi
from nas_pruning.cofi.transfer import COUPLINGS, STAGES, TRANSFERS

_SHOWN = ("epoch", "stage", "error", "params", "sparsity", "speedup", "test_metric")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``cofi`` and ``cofi-search`` on an argparse subparsers object."""
    cofi = subparsers.add_parser(
        "cofi",
        help="prune a model with CoFi, optionally with an auxiliary task, and fine-tune it",
        description="One CoFi(-transfer) run: teacher, pruning to a target sparsity, extraction, fine-tuning. "
        "Writes OUTPUT_DIR/model (a plain transformers folder), history.csv and result.json; "
        "checkpoints in OUTPUT_DIR/checkpoint let an interrupted run resume.",
    )
    CoFiConfig.add_arguments(cofi)
    add_output_dir_argument(cofi, default=Path("cofi-output"), help="results folder")
    cofi.set_defaults(func=cmd_cofi)

    search = subparsers.add_parser(
        "cofi-search",
        help="Syne Tune search over CoFi transfer settings (sparsity, coupling, lambda_delta, ...)",
        description="A multi-objective Syne Tune experiment (error, parameter ratio) over target sparsity, "
        "coupling, lambda_delta, auxiliary task, stage and what is transferred; every other setting is "
        "fixed by the options below. Writes results.csv, pareto.csv, hypervolume.csv, summary.json and "
        "pareto_front.png into OUTPUT_DIR.",
    )
    CoFiConfig.add_arguments(search, exclude=SEARCHED_SETTINGS)
    search.add_argument("--aux-tasks", default=None, help="comma-separated auxiliary tasks to choose from")
    search.add_argument("--sparsity-range", type=fraction, nargs=2, default=(0.5, 0.97), metavar=("LOW", "HIGH"))
    search.add_argument(
        "--lambda-delta-range", type=non_negative_float, nargs=2, default=(1e-4, 1.0), metavar=("LOW", "HIGH")
    )
    search.add_argument("--couplings", default=",".join(COUPLINGS), help="comma-separated couplings to choose from")
    search.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages to choose from")
    search.add_argument("--transfers", default=",".join(TRANSFERS), help="comma-separated transfer choices")
    search.add_argument("--optimizer", default="moasha", help="name from nas_pruning.optimizers (default moasha)")
    search.add_argument("--n-trials", type=positive_int, default=20)
    search.add_argument("--n-workers", type=positive_int, default=1, help="trials run in parallel")
    search.add_argument(
        "--max-wallclock-time", type=positive_float, default=None, help="seconds after which no trial starts"
    )
    search.add_argument("--search-seed", type=non_negative_int, default=0, help="seed of the optimizer")
    add_output_dir_argument(search, default=Path("cofi-search"), help="results folder")
    add_ray_arguments(search)
    search.set_defaults(func=cmd_cofi_search)


def cmd_cofi(args: argparse.Namespace) -> None:
    config = CoFiConfig.from_namespace(args)

    def show(row: dict) -> None:
        print("  ".join(f"{key}={_format(row[key])}" for key in _SHOWN if key in row), flush=True)

    try:
        result = run_cofi(config, args.output_dir, report=show, checkpoint_dir=args.output_dir / "checkpoint")
    except TrainingDiverged as error:
        print(f"nas-pruning cofi: {error}", file=sys.stderr)
        raise SystemExit(1) from error
    print(
        f"pruned model: {args.output_dir / MODEL_FOLDER}  sparsity {result['sparsity']:.4f}  "
        f"params {result['params']:.4f}  speedup {result['speedup']:.2f}x  "
        f"test {config.task} {result['test_metric']:.4f}"
    )


def cmd_cofi_search(args: argparse.Namespace) -> None:
    # Imported here: the experiment pulls in Syne Tune, which the other commands do not need.
    from nas_pruning.experiments.cofi_transfer import cofi_transfer_config_space, fixed_settings, run_cofi_search

    space = cofi_transfer_config_space(
        args.task,
        aux_tasks=_names(args.aux_tasks) if args.aux_tasks else None,
        sparsity_range=tuple(args.sparsity_range),
        lambda_delta_range=tuple(args.lambda_delta_range),
        couplings=_names(args.couplings),
        stages=_names(args.stages),
        transfers=_names(args.transfers),
        **fixed_settings(vars(args)),
    )
    tables = run_cofi_search(
        space,
        args.output_dir,
        optimizer=args.optimizer,
        n_trials=args.n_trials,
        n_workers=args.n_workers,
        max_wallclock_time=args.max_wallclock_time,
        random_seed=args.search_seed,
        **ray_options(args),
    )
    front = tables["pareto"]
    print(f"{len(front)} Pareto-optimal trials of {tables['results']['trial_id'].nunique()}; see {args.output_dir}")
    wanted = ("trial_id", "error", "params", "speedup", *(f"config_{name}" for name in SEARCHED_SETTINGS))
    columns = [c for c in wanted if c in front.columns]
    print(front[columns].to_string(index=False))


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _format(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)

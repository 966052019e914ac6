"""`nas-pruning search`, `export` and `run`: search a super-network, export front members, the main job."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from nas_pruning.arguments import non_negative_float, non_negative_int, positive_float, positive_int, ratio
from nas_pruning.cli.arguments import (
    add_data_arguments,
    add_max_validation_examples_argument,
    add_model_arguments,
    add_output_dir_argument,
    add_search_space_argument,
    add_supernet_argument,
    add_task_argument,
)
from nas_pruning.cli.finetune import add_finetune_arguments, training_options
from nas_pruning.experiments.weight_sharing import SearchOutcome, SearchSettings, run_search
from nas_pruning.workflow import quick_settings, run_pipeline
from nas_pruning.export import INDEX_FILE, ExportSettings, NothingLearned, export_front, export_member
from nas_pruning.optimizers import OPTIMIZERS
from nas_pruning.pareto import REFERENCES


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `search`, `export` and `run`."""
    search = subparsers.add_parser("search", help="multi-objective search of sub-networks of a super-network")
    add_supernet_argument(search)
    add_output_dir_argument(search, required=True)
    add_search_space_argument(search, default=None, help="default: the super-network's")
    add_data_arguments(search)
    add_search_arguments(search)
    search.set_defaults(func=cmd_search)

    export = subparsers.add_parser("export", help="write a Pareto-front member as a standalone model")
    export.add_argument("--search-dir", required=True, help="folder written by `nas-pruning search`")
    add_output_dir_argument(export, required=True)
    choice = export.add_mutually_exclusive_group()
    choice.add_argument(
        "--index", type=non_negative_int, default=None, help="position in the front, by parameter ratio"
    )
    choice.add_argument("--max-params", type=ratio, default=None, help="best error with parameter ratio <= this")
    choice.add_argument(
        "--all", action="store_true", help=f"every front member, one folder each, and {INDEX_FILE}"
    )
    export.add_argument(
        "--overwrite", action="store_true",
        help="write into a non-empty --output-dir, replacing an earlier export there "
             "(never into a super-network or search folder)",
    )
    export.add_argument(
        "--format", default="torch",
        help="torch (safetensors) | onnx (ONNX Runtime, nas_pruning[onnx]) | both",
    )
    export.add_argument(
        "--quantize", default=None, help="int8: also an ONNX Runtime dynamically quantized model, with its test metric"
    )
    add_data_arguments(export)  # the data for the int8 test metric (default: the super-network's)
    _add_latency_arguments(export, "latency of each exported model, per runtime", several_batch_sizes=True)
    export.set_defaults(func=cmd_export)

    run = subparsers.add_parser("run", help="the main job: finetune -> search -> Pareto front -> export the knee")
    add_task_argument(run, default="stsb")
    add_model_arguments(run)
    add_data_arguments(run)
    add_finetune_arguments(run)
    add_search_arguments(run)
    run.add_argument(
        "--supernet-epochs", type=non_negative_int, default=2,
        help="fine-tune the full model first (--epochs, strategy standard), reorder it by importance, then train "
             "the super-network from it for this many epochs; 0: train the super-network from --model for --epochs",
    )
    # The recipe measured best (docs/weight_sharing.md): 3 epochs at 1e-4 with 10% warm-up, then the super-network.
    run.set_defaults(importance_examples=512, epochs=3, learning_rate=1e-4, warmup_ratio=0.1)
    add_output_dir_argument(run, help="default: nas_pruning_runs/<task>")
    run.add_argument("--quick", action="store_true", help="small settings that finish in minutes on 2 CPU cores")
    run.set_defaults(func=cmd_run)


def _add_latency_arguments(parser: argparse.ArgumentParser, description: str, several_batch_sizes: bool = False):
    group = parser.add_argument_group("latency", description)
    group.add_argument(
        "--latency-batch-size", type=positive_int, nargs="+" if several_batch_sizes else None,
        default=[1] if several_batch_sizes else 1,
        help="sequences per timed batch" + (" (a latency column per value)" if several_batch_sizes else ""),
    )
    group.add_argument("--latency-length", type=positive_int, default=128, help="tokens per timed sequence")
    group.add_argument("--latency-warmup", type=non_negative_int, default=2, help="untimed passes before timing")
    group.add_argument("--latency-repeats", type=positive_int, default=10, help="timed passes; latency is their median")
    return group


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `SearchSettings`, for `search` and `run`."""
    parser.add_argument("--optimizer", default="local_search", choices=list(OPTIMIZERS))
    parser.add_argument(
        "--num-evaluations", type=positive_int, default=None,
        help="sub-networks to evaluate (default 100; 20 with --quick)"
    )
    parser.add_argument("--max-time", type=positive_float, default=None, help="search time limit in seconds")
    parser.add_argument(
        "--workers", type=positive_int, default=1, help="concurrent evaluations (one model replica each)"
    )
    parser.add_argument("--search-seed", type=non_negative_int, default=0)
    add_max_validation_examples_argument(parser)
    parser.add_argument(
        "--objectives", default="error,params",
        help="objectives to minimise: error,params | error,latency | error,params,latency",
    )
    parser.add_argument(
        "--latency", action="store_true", help="also record each sub-network's latency when it is not an objective"
    )
    parser.add_argument(
        "--hv-reference", default="trivial", choices=REFERENCES,
        help="hypervolume reference for the error: the trivial predictor's validation error (a constant predictor "
             "adds nothing), or fixed at 1 (the old (1, 1))",
    )
    latency = _add_latency_arguments(parser, "latency of the extracted sub-network (an objective, or --latency)")
    latency.add_argument(
        "--runtime", default="torch", help="where latency is measured: torch | onnxruntime (nas_pruning[onnx])"
    )
    ray = parser.add_argument_group("Ray (pip install 'nas_pruning[ray]')")
    ray.add_argument(
        "--ray-address",
        default=None,
        help="evaluate on Ray actors of this cluster ('auto': the one this machine joined with `ray start`)",
    )
    ray.add_argument(
        "--ray-actors",
        type=positive_int,
        default=None,
        help="evaluate on this many Ray actors, one model replica each (a local Ray instance without --ray-address)",
    )
    ray.add_argument(
        "--actor-cpus", type=positive_float, default=1.0, help="CPUs per Ray actor (and its torch threads)"
    )
    ray.add_argument(
        "--actor-gpus", type=non_negative_float, default=0.0, help="GPUs per Ray actor (0: evaluate on CPU)"
    )


def _search_settings(args: argparse.Namespace) -> SearchSettings:
    return SearchSettings(
        search_space=args.search_space,
        optimizer=args.optimizer,
        num_evaluations=100 if args.num_evaluations is None else args.num_evaluations,
        max_wallclock_time=args.max_time,
        n_workers=args.workers,
        seed=args.search_seed,
        max_validation_examples=args.max_validation_examples,
        objectives=args.objectives,
        measure_latency=args.latency,
        runtime=args.runtime,
        latency_batch_size=args.latency_batch_size,
        latency_length=args.latency_length,
        latency_warmup=args.latency_warmup,
        latency_repeats=args.latency_repeats,
        hypervolume_reference=args.hv_reference,
        num_threads=args.threads,
        ray_actors=args.ray_actors,
        ray_address=args.ray_address,
        actor_cpus=args.actor_cpus,
        actor_gpus=args.actor_gpus,
    )


def _show_search(outcome: SearchOutcome, settings: SearchSettings) -> None:
    shown = ("params", "latency", "error", "metric", "test_metric", "test_gap_kept")
    columns = [c for c in shown if c in outcome.front.columns]
    print(outcome.front[columns].to_string(index=False, float_format="%.4f"))
    marks = outcome.yardsticks
    print(
        f"test metric of the trivial predictor {marks.trivial_test:.4f}, of the unpruned model "
        f"{marks.unpruned_test:.4f} (test_gap_kept = (m - trivial) / (unpruned - trivial))"
    )
    print(
        f"hypervolume {outcome.hypervolume:.4f} (reference: {settings.hypervolume_reference}) over "
        f"{len(outcome.results)} evaluations -> {outcome.output_dir}"
    )


def cmd_search(args: argparse.Namespace) -> None:
    settings = _search_settings(args)
    _show_search(run_search(args.supernet, args.output_dir, settings, data_dir=args.data_dir), settings)


def cmd_export(args: argparse.Namespace) -> None:
    settings = ExportSettings(
        format=args.format,
        quantize=args.quantize,
        latency_batch_sizes=args.latency_batch_size,
        latency_length=args.latency_length,
        latency_warmup=args.latency_warmup,
        latency_repeats=args.latency_repeats,
        data_dir=args.data_dir,
    )
    if args.threads:  # both runtimes are timed with this many threads
        torch.set_num_threads(args.threads)
    if args.all:
        index = export_front(args.search_dir, args.output_dir, settings, overwrite=args.overwrite)
        columns = ["folder", "params", "metric", "test_metric"] + [
            c for c in index.columns if c.startswith(("test_metric_", "latency_"))
        ]
        print(index[columns].to_string(index=False, float_format="%.4f"))
        print(f"exported {len(index)} front members to {args.output_dir} (table: {INDEX_FILE})")
        return
    folder = export_member(
        args.search_dir, args.output_dir, index=args.index, max_params=args.max_params, settings=settings,
        overwrite=args.overwrite,
    )
    print(f"exported to {folder}:\n{(folder / 'README.md').read_text()}")


def cmd_run(args: argparse.Namespace) -> None:
    if args.quick:
        vars(args).update(quick_settings(vars(args)))
    # Bad search or latency settings fail here, before any training.
    search = _search_settings(args)
    export = ExportSettings(
        latency_batch_sizes=[args.latency_batch_size], latency_length=args.latency_length,
        latency_warmup=args.latency_warmup, latency_repeats=args.latency_repeats,
    )

    def show(outcome: SearchOutcome, search_dir: Path) -> None:
        _show_search(outcome, search)
        print(f"front plot: {search_dir / 'front.png'}")

    try:
        folder = run_pipeline(
            args.task, args.output_dir, training_options(args), search, export,
            supernet_epochs=args.supernet_epochs, on_search=show,
        )
    except NothingLearned as nothing:
        print(f"no model exported: {nothing}")
        return
    print(f"exported the knee point to {folder}:\n{(folder / 'README.md').read_text()}")

"""The `nas-pruning` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import torch
from transformers.utils import logging as transformers_logging

from nas_pruning.arguments import (
    non_negative_float,
    non_negative_int,
    output_folder,
    positive_float,
    positive_int,
    ratio,
    warmup_ratio,
)
from nas_pruning.blackbox import HOLDOUT_FRACTION, SURROGATES, load_tabulated, tabulate
from nas_pruning.commands.baselines import add_commands as add_baseline_commands
from nas_pruning.commands.cofi import add_commands as add_cofi_commands
from nas_pruning.export import INDEX_FILE, ExportSettings, NothingLearned, export_front, export_member
from nas_pruning.models import count_parameters, get_adapter, load_model
from nas_pruning.models.loading import POOLING_CHOICES, POOLING_HELP
from nas_pruning.optimizer_benchmark import benchmark
from nas_pruning.optimizers import OPTIMIZERS
from nas_pruning.pareto import REFERENCES
from nas_pruning.runtimes import LatencySpec
from nas_pruning.experiments.weight_sharing import SearchInterrupted, SearchSettings, run_search
from nas_pruning.search_spaces import SEARCH_SPACES, get_search_space
from nas_pruning.supernet import STRATEGIES, finetune
from nas_pruning.tasks import TASKS


def _add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help="Hugging Face BERT/RoBERTa name or folder (default: the bundled all-MiniLM-L6-v2)",
    )
    parser.add_argument("--pooling", default="auto", choices=POOLING_CHOICES, help=POOLING_HELP)


def cmd_info(args: argparse.Namespace) -> None:
    model = load_model(args.model, pooling=args.pooling)
    dims = get_adapter(model).dims(model.config)
    total = count_parameters(model)
    print(f"model type       {model.config.model_type} ({type(model).__name__})")
    print(f"layers           {dims.num_layers}")
    print(f"heads per layer  {dims.num_heads} (head size {dims.head_size})")
    print(f"hidden size      {dims.hidden_size}")
    print(f"FFN units        {dims.intermediate_size}")
    print(f"pooling          {model.config.classifier_pooling}")
    print(f"parameters       {total:,} ({total / 1e6:.1f} M)")


def cmd_space(args: argparse.Namespace) -> None:
    model = load_model(args.model, pooling=args.pooling)
    space = get_search_space(args.search_space, model.config)
    print(f"search space {space.name!r}: {len(space.config_space)} hyperparameters")
    for name, domain in list(space.config_space.items())[: args.max_rows]:
        print(f"  {name:<16} {type(domain).__name__} {domain.domain_str}")
    if len(space.config_space) > args.max_rows:
        print(f"  ... and {len(space.config_space) - args.max_rows} more")
    for label, config in (("smallest", space.smallest()), ("largest", space.largest())):
        print(f"{label:<9} parameter ratio {space.parameter_ratio(config):.4f}")


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder of GLUE TSVs (RTE/, MRPC/, ...); default: env GLUE_DIR, else the Hugging Face hub",
    )
    parser.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: all cores)")


def _add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strategy", default="full", choices=sorted(STRATEGIES), help="super-network training strategy"
    )
    parser.add_argument("--search-space", default="small", choices=sorted(SEARCH_SPACES))
    parser.add_argument("--epochs", type=positive_int, default=5)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--learning-rate", type=positive_float, default=2e-5)
    parser.add_argument(
        "--warmup-ratio", type=warmup_ratio, default=0.0, help="fraction of steps warming the learning rate up"
    )
    parser.add_argument("--temperature", type=positive_float, default=1.0, help="distillation temperature (kd, full)")
    parser.add_argument(
        "--distill-task-weight", type=non_negative_float, default=0.0,
        help="weight of the label loss added to distilled sub-networks' loss (kd, full; 0: distil only)",
    )
    parser.add_argument(
        "--num-random", type=non_negative_int, default=2, help="random sub-networks per step (sandwich, kd, full)"
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="seeds training and the 70/30 train/validation split"
    )
    parser.add_argument(
        "--max-train-examples", type=positive_int, default=None, help="train on a random subset of this size"
    )
    parser.add_argument(
        "--max-length", type=positive_int, default=128, help="tokens per example (at most the model's maximum)"
    )
    parser.add_argument(
        "--importance-examples", type=non_negative_int, default=0,
        help="reorder heads and FFN units, most important first (gradient importance on this many training "
             "examples), so first-k sub-networks keep the most important: before training, or after it with "
             "--strategy standard; 0 keeps the stored order",
    )


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


def _add_search_arguments(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument(
        "--max-validation-examples", type=positive_int, default=None,
        help="score on a random validation subset of this size"
    )
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


def _add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", default="torch",
        help="torch (safetensors) | onnx (ONNX Runtime, nas_pruning[onnx]) | both",
    )
    parser.add_argument(
        "--quantize", default=None, help="int8: also an ONNX Runtime dynamically quantized model, with its test metric"
    )
    _add_data_arguments(parser)  # the data for the int8 test metric (default: the super-network's)
    _add_latency_arguments(parser, "latency of each exported model, per runtime", several_batch_sizes=True)


def _finetune(args: argparse.Namespace, output_dir) -> str:
    return finetune(
        args.task,
        model=args.model,
        pooling=args.pooling,
        strategy=args.strategy,
        search_space=args.search_space,
        output_dir=output_dir,
        data_dir=args.data_dir,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        max_train_examples=args.max_train_examples,
        max_length=args.max_length,
        importance_examples=args.importance_examples,
        num_threads=args.threads,
        temperature=args.temperature,
        warmup_ratio=args.warmup_ratio,
        distill_task_weight=args.distill_task_weight,
        num_random=args.num_random,
        validate_subnetworks=not getattr(args, "quick", False),
    )


def _search_settings(args: argparse.Namespace, search_space: str | None) -> SearchSettings:
    return SearchSettings(
        search_space=search_space,
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


def _search(settings: SearchSettings, supernet_dir, output_dir, data_dir):
    outcome = run_search(supernet_dir, output_dir, settings, data_dir=data_dir)
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
    return outcome


def cmd_finetune(args: argparse.Namespace) -> None:
    print(f"super-network saved to {_finetune(args, args.output_dir)}")


def cmd_search(args: argparse.Namespace) -> None:
    _search(_search_settings(args, args.search_space), args.supernet, args.output_dir, args.data_dir)


def _export_settings(args: argparse.Namespace) -> ExportSettings:
    return ExportSettings(
        format=args.format,
        quantize=args.quantize,
        latency_batch_sizes=args.latency_batch_size,
        latency_length=args.latency_length,
        latency_warmup=args.latency_warmup,
        latency_repeats=args.latency_repeats,
        data_dir=args.data_dir,
    )


def cmd_export(args: argparse.Namespace) -> None:
    settings = _export_settings(args)
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
    if args.quick:  # a few minutes on 2 CPU cores: a small super-network, a short search
        args.epochs, args.max_train_examples = QUICK["epochs"], args.max_train_examples or QUICK["max_train_examples"]
        args.supernet_epochs = min(args.supernet_epochs, QUICK["supernet_epochs"])
        args.num_evaluations = QUICK["num_evaluations"] if args.num_evaluations is None else args.num_evaluations
        args.max_validation_examples = args.max_validation_examples or QUICK["max_validation_examples"]
    # Bad search or latency settings fail here, before any training.
    search_settings = _search_settings(args, args.search_space)
    export_settings = ExportSettings(
        latency_batch_sizes=[args.latency_batch_size], latency_length=args.latency_length,
        latency_warmup=args.latency_warmup, latency_repeats=args.latency_repeats,
    )
    root = Path(args.output_dir or f"nas_pruning_runs/{args.task}")
    if args.supernet_epochs > 0 and args.strategy != "standard":
        # Plain fine-tuning first, reordered by importance; the super-network continues from it
        # (docs/weight_sharing.md: from the pre-trained model a short super-network training fails).
        finetuned = _finetune(argparse.Namespace(**{**vars(args), "strategy": "standard"}), root / "finetuned")
        args = argparse.Namespace(
            **{**vars(args), "model": str(finetuned), "epochs": args.supernet_epochs, "importance_examples": 0}
        )
    supernet_dir = _finetune(args, root / "supernet")
    _search(search_settings, supernet_dir, root / "search", args.data_dir)
    print(f"front plot: {root / 'search' / 'front.png'}")
    try:  # the job's own model folder: a rerun of the job replaces it
        folder = export_member(root / "search", root / "model", settings=export_settings, overwrite=True)
    except NothingLearned as nothing:
        print(f"no model exported: {nothing}")
        return
    print(f"exported the knee point to {folder}:\n{(folder / 'README.md').read_text()}")


def cmd_tabulate(args: argparse.Namespace) -> None:
    blackbox = tabulate(
        args.supernet, args.output_dir, args.num_configs, include_searches=args.include_search,
        data_dir=args.data_dir, max_validation_examples=args.max_validation_examples, subset_seed=args.subset_seed,
        latency=LatencySpec() if args.latency else None, design_seed=args.design_seed, surrogate=args.surrogate,
        num_threads=args.threads,
    )
    design = blackbox.metadata["design"]
    print(f"tabulated {design['tabulated']} sub-networks -> {args.output_dir}")
    for name, scores in blackbox.metadata["surrogate"]["heldout"].items():
        print(
            f"surrogate ({args.surrogate}) on the held-out {HOLDOUT_FRACTION:.0%} for {name}: "
            f"R^2 {scores['r2']:.3f}, Spearman {scores['spearman']:.3f}"
        )


def cmd_benchmark(args: argparse.Namespace) -> None:
    blackbox = load_tabulated(args.blackbox, args.surrogate)
    outcome = benchmark(
        blackbox, args.optimizers, seeds=args.seeds, num_evaluations=args.num_evaluations, n_workers=args.workers,
        output_dir=args.output_dir, reference=args.hv_reference,
    )
    record = outcome.record
    point = ", ".join(f"{value:.4f}" for value in record["hypervolume_reference_point"])
    print(f"final hypervolume (reference: {record['hypervolume_reference']}, normalised point ({point})):")
    print(outcome.summary.to_string(index=False, float_format="%.4f"))
    print("two-sided Mann-Whitney U p-values of the final hypervolumes:")
    print(outcome.pairwise.to_string(float_format="%.3g"))
    print(f"tables and hypervolume.png -> {args.output_dir}")


# `run --quick`: minutes on 2 CPU cores, and still a front that beats the trivial predictor on STS-B.
QUICK = {"epochs": 1, "max_train_examples": 1000, "supernet_epochs": 1, "num_evaluations": 20,
         "max_validation_examples": 200}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nas-pruning",
        description="Structural pruning of pre-trained language models as multi-objective NAS (Syne Tune plugin).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser("info", help="print a model's architecture and parameter count")
    _add_model_argument(info)
    info.set_defaults(func=cmd_info)

    space = commands.add_parser("space", help="print a search space and the parameter ratios of its extremes")
    _add_model_argument(space)
    space.add_argument("--search-space", default="small", choices=sorted(SEARCH_SPACES))
    space.add_argument("--max-rows", type=positive_int, default=20, help="hyperparameters to list")
    space.set_defaults(func=cmd_space)

    tune = commands.add_parser("finetune", help="fine-tune a model as a weight-sharing super-network")
    tune.add_argument("--task", required=True, help="GLUE task: " + ", ".join(TASKS))
    _add_model_argument(tune)
    _add_data_arguments(tune)
    _add_finetune_arguments(tune)
    tune.add_argument(
        "--output-dir", type=output_folder, default=None, help="default: supernets/<task>-<strategy>-<space>-seed<seed>"
    )
    tune.set_defaults(func=cmd_finetune)

    search = commands.add_parser("search", help="multi-objective search of sub-networks of a super-network")
    search.add_argument("--supernet", required=True, help="folder written by `nas-pruning finetune`")
    search.add_argument("--output-dir", type=output_folder, required=True)
    search.add_argument(
        "--search-space", default=None, choices=sorted(SEARCH_SPACES), help="default: the super-network's"
    )
    _add_data_arguments(search)
    _add_search_arguments(search)
    search.set_defaults(func=cmd_search)

    export = commands.add_parser("export", help="write a Pareto-front member as a standalone model")
    export.add_argument("--search-dir", required=True, help="folder written by `nas-pruning search`")
    export.add_argument("--output-dir", type=output_folder, required=True)
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
    _add_export_arguments(export)
    export.set_defaults(func=cmd_export)

    run = commands.add_parser("run", help="the main job: finetune -> search -> Pareto front -> export the knee")
    run.add_argument("--task", default="stsb", help="GLUE task: " + ", ".join(TASKS))
    _add_model_argument(run)
    _add_data_arguments(run)
    _add_finetune_arguments(run)
    _add_search_arguments(run)
    run.add_argument(
        "--supernet-epochs", type=non_negative_int, default=2,
        help="fine-tune the full model first (--epochs, strategy standard), reorder it by importance, then train "
             "the super-network from it for this many epochs; 0: train the super-network from --model for --epochs",
    )
    # The recipe measured best (docs/weight_sharing.md): 3 epochs at 1e-4 with 10% warm-up, then the super-network.
    run.set_defaults(importance_examples=512, epochs=3, learning_rate=1e-4, warmup_ratio=0.1)
    run.add_argument("--output-dir", type=output_folder, default=None, help="default: nas_pruning_runs/<task>")
    run.add_argument("--quick", action="store_true", help="small settings that finish in minutes on 2 CPU cores")
    run.set_defaults(func=cmd_run)

    tab = commands.add_parser(
        "tabulate", help="evaluate sub-networks of a super-network once and store them as a Syne Tune blackbox"
    )
    tab.add_argument("--supernet", required=True, help="folder written by `nas-pruning finetune`")
    tab.add_argument("--output-dir", type=output_folder, required=True, help="the blackbox folder to write")
    tab.add_argument(
        "--num-configs", type=non_negative_int, required=True,
        help="size of the space-filling (scrambled Sobol) design; the initial design and --include-search "
             "members are added",
    )
    tab.add_argument(
        "--include-search", nargs="*", default=[], metavar="SEARCH_DIR",
        help="folders written by `nas-pruning search` whose evaluated configs are tabulated too",
    )
    tab.add_argument(
        "--max-validation-examples", type=positive_int, default=None,
        help="score on a random validation subset of this size",
    )
    tab.add_argument(
        "--subset-seed", type=non_negative_int, default=0,
        help="seed of that subset (a search draws it with its --search-seed: use the same to reproduce its values)",
    )
    tab.add_argument(
        "--latency", action="store_true",
        help="also tabulate each sub-network's latency (torch, as `search --latency` measures it by default)",
    )
    tab.add_argument("--design-seed", type=non_negative_int, default=0, help="seed of the Sobol design")
    tab.add_argument(
        "--surrogate", default="random_forest", choices=list(SURROGATES), help="answers configs not in the table"
    )
    _add_data_arguments(tab)
    tab.set_defaults(func=cmd_tabulate)

    bench = commands.add_parser(
        "benchmark", help="compare optimizers on a tabulated blackbox in simulated time (Syne Tune's simulator)"
    )
    bench.add_argument("--blackbox", required=True, help="folder written by `nas-pruning tabulate`")
    bench.add_argument("--output-dir", type=output_folder, required=True)
    bench.add_argument(
        "--optimizers", nargs="+", default=["random", "morea", "nsga2", "ehvi", "local_search"],
        choices=list(OPTIMIZERS), metavar="OPTIMIZER", help="names of optimizers: " + ", ".join(OPTIMIZERS),
    )
    bench.add_argument("--seeds", type=positive_int, default=10, help="runs per optimizer (seeds 0, 1, ...)")
    bench.add_argument("--num-evaluations", type=positive_int, default=200, help="evaluations per run")
    bench.add_argument("--workers", type=positive_int, default=1, help="concurrent simulated evaluations")
    bench.add_argument(
        "--surrogate", default=None, choices=list(SURROGATES), help="default: the one the blackbox was scored with"
    )
    bench.add_argument(
        "--hv-reference", default="trivial", choices=REFERENCES,
        help="hypervolume reference for the error, the same for every run: the blackbox's trivial predictor's "
             "validation error, or fixed at 1",
    )
    bench.set_defaults(func=cmd_benchmark)

    add_cofi_commands(commands)
    add_baseline_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, ImportError) as error:
        print(f"nas-pruning {args.command}: error: {error}", file=sys.stderr)
        return 2
    except SearchInterrupted as stop:
        print(f"nas-pruning {args.command}: {stop}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # training resumes from its last epoch's checkpoint
        print(f"nas-pruning {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

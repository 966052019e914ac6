"""`nas-pruning tabulate` and `benchmark`: a super-network as a Syne Tune blackbox, and optimizers compared on it."""

from __future__ import annotations

import argparse

from nas_pruning.arguments import non_negative_int, positive_int
from nas_pruning.blackbox import HOLDOUT_FRACTION, SURROGATES, load_tabulated, tabulate
from nas_pruning.cli.arguments import (
    add_data_arguments,
    add_max_validation_examples_argument,
    add_output_dir_argument,
    add_supernet_argument,
)
from nas_pruning.optimizer_benchmark import benchmark
from nas_pruning.optimizers import OPTIMIZERS
from nas_pruning.pareto import REFERENCES
from nas_pruning.runtimes import LatencySpec


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `tabulate` and `benchmark`."""
    tab = subparsers.add_parser(
        "tabulate", help="evaluate sub-networks of a super-network once and store them as a Syne Tune blackbox"
    )
    add_supernet_argument(tab)
    add_output_dir_argument(tab, required=True, help="the blackbox folder to write")
    tab.add_argument(
        "--num-configs", type=non_negative_int, required=True,
        help="size of the space-filling (scrambled Sobol) design; the initial design and --include-search "
             "members are added",
    )
    tab.add_argument(
        "--include-search", nargs="*", default=[], metavar="SEARCH_DIR",
        help="folders written by `nas-pruning search` whose evaluated configs are tabulated too",
    )
    add_max_validation_examples_argument(tab)
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
    add_data_arguments(tab)
    tab.set_defaults(func=cmd_tabulate)

    bench = subparsers.add_parser(
        "benchmark", help="compare optimizers on a tabulated blackbox in simulated time (Syne Tune's simulator)"
    )
    bench.add_argument("--blackbox", required=True, help="folder written by `nas-pruning tabulate`")
    add_output_dir_argument(bench, required=True)
    bench.add_argument(
        "--optimizers", nargs="+", default=["random", "morea", "nsga2", "ehvi", "local_search"],
        choices=list(OPTIMIZERS), metavar="OPTIMIZER", help="names of optimizers: " + ", ".join(OPTIMIZERS),
    )
    bench.add_argument("--seeds", type=positive_int, default=10, help="runs per optimizer (seeds 0, 1, ...)")
    bench.add_argument("--num-evaluations", type=positive_int, default=200, help="evaluations per run")
    bench.add_argument("--workers", type=positive_int, default=1, help="concurrent simulated evaluations")
    bench.add_argument(
        "--processes", type=positive_int, default=1,
        help="runs (optimizer x seed) simulated at once, one worker process each; the results do not depend on it",
    )
    bench.add_argument(
        "--surrogate", default=None, choices=list(SURROGATES), help="default: the one the blackbox was scored with"
    )
    bench.add_argument(
        "--hv-reference", default="trivial", choices=REFERENCES,
        help="hypervolume reference for the error, the same for every run: the blackbox's trivial predictor's "
             "validation error, or fixed at 1",
    )
    bench.set_defaults(func=cmd_benchmark)


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
        output_dir=args.output_dir, reference=args.hv_reference, processes=args.processes,
    )
    record = outcome.record
    point = ", ".join(f"{value:.4f}" for value in record["hypervolume_reference_point"])
    print(f"final hypervolume (reference: {record['hypervolume_reference']}, normalised point ({point})):")
    print(outcome.summary.to_string(index=False, float_format="%.4f"))
    print("two-sided Mann-Whitney U p-values of the final hypervolumes:")
    print(outcome.pairwise.to_string(float_format="%.3g"))
    print(f"tables and hypervolume.png -> {args.output_dir}")

"""`nas-pruning finetune`: train a weight-sharing super-network (its options serve `run` too)."""

from __future__ import annotations

import argparse
from typing import Any

from nas_pruning.arguments import non_negative_float, non_negative_int, positive_float, positive_int, warmup_ratio
from nas_pruning.cli.arguments import (
    add_data_arguments,
    add_model_arguments,
    add_output_dir_argument,
    add_search_space_argument,
    add_task_argument,
)
from nas_pruning.supernet import STRATEGIES, finetune
from nas_pruning.tasks import MEGA_BATCHES


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `finetune`."""
    tune = subparsers.add_parser("finetune", help="fine-tune a model as a weight-sharing super-network")
    add_task_argument(tune)
    add_model_arguments(tune)
    add_data_arguments(tune)
    add_finetune_arguments(tune)
    add_output_dir_argument(tune, help="default: supernets/<task>-<strategy>-<space>-seed<seed>")
    tune.set_defaults(func=cmd_finetune)


def add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    """The super-network training options of `finetune` and `run`."""
    parser.add_argument(
        "--strategy", default="full", choices=sorted(STRATEGIES), help="super-network training strategy"
    )
    add_search_space_argument(parser)
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
        "--group-by-length", action=argparse.BooleanOptionalAction, default=False,
        help="batch training examples of similar length within random mega-batches: 1.78x the steps per second; "
             "off by default until measured on the whole pipeline (docs/throughput_grouping.md)",
    )
    parser.add_argument(
        "--mega-batches", type=positive_int, default=MEGA_BATCHES,
        help="batches per random mega-batch sorted by length (more: less padding, fewer: more mixed batches)",
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


def training_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `nas_pruning.supernet.finetune` (less task and output_dir) from the options."""
    return dict(
        model=args.model,
        pooling=args.pooling,
        strategy=args.strategy,
        search_space=args.search_space,
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
        group_by_length=args.group_by_length,
        mega_batches=args.mega_batches,
        validate_subnetworks=not getattr(args, "quick", False),
    )


def cmd_finetune(args: argparse.Namespace) -> None:
    print(f"super-network saved to {finetune(args.task, output_dir=args.output_dir, **training_options(args))}")

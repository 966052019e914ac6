"""`nas-pruning baseline {standard-nas,head-pruning,layer-drop,retraining-free}`.

Every command writes the common results table to `<output-dir>/results.csv`
(a rerun with the same folder resumes) and prints it. Head pruning, layer dropping
and retraining-free pruning start from a model fine-tuned on the task (a folder of
`nas-pruning finetune --strategy standard`, or any Hugging Face classifier folder);
standard NAS starts from the pre-trained model. The pruning methods' commands are built
from `nas_pruning.baselines.registry.BASELINES`; `nas_pruning.experiments.pruning_baselines`
resolves a run's settings and runs it.
"""

from __future__ import annotations

import argparse

import pandas as pd

from nas_pruning.arguments import non_negative_int, positive_float, positive_int
from nas_pruning.baselines.registry import BASELINES
from nas_pruning.cli.arguments import (
    add_data_dir_argument,
    add_max_validation_examples_argument,
    add_model_arguments,
    add_output_dir_argument,
    add_ray_arguments,
    add_task_argument,
    add_threads_argument,
    ray_options,
)
from nas_pruning.experiments.pruning_baselines import (
    BaselineRun,
    BaselineSettings,
    resolve_run,
    run_pruning_baseline,
)
from nas_pruning.experiments.standard_nas import standard_nas
from nas_pruning.optimizers import OPTIMIZERS

SUMMARY_COLUMNS = ["method", "params", "error", "test_error", "wall_time"]


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `baseline`: standard NAS, then every method of `nas_pruning.baselines.registry.BASELINES`."""
    baseline = subparsers.add_parser("baseline", help="run a baseline the weight-sharing search is compared with")
    methods = baseline.add_subparsers(dest="baseline", required=True, metavar="METHOD")

    nas = methods.add_parser("standard-nas", help="fine-tune every SMALL-space candidate on its own (Syne Tune)")
    _add_common_arguments(nas, model_help="pre-trained model name or folder (default: bundled all-MiniLM-L6-v2)")
    nas.add_argument("--optimizer", default="moasha", choices=list(OPTIMIZERS))
    nas.add_argument("--epochs", type=positive_int, default=5, help="fine-tuning epochs per candidate")
    nas.add_argument("--learning-rate", type=positive_float, default=2e-5)
    nas.add_argument("--max-trials", type=positive_int, default=None, help="stop once this many candidates finished")
    nas.add_argument("--max-time", type=positive_float, default=None, help="time limit in seconds")
    nas.add_argument("--workers", type=positive_int, default=1, help="candidates trained in parallel")
    nas.add_argument(
        "--split-seed", type=non_negative_int, default=None,
        help="seeds the 70/30 train/validation split (default: --seed); give the split seed of the fine-tuned "
             "model the other baselines start from, so that all are scored on the same validation examples",
    )
    add_ray_arguments(nas)
    nas.set_defaults(func=_run_standard_nas)

    for name, method in BASELINES.items():
        parser = methods.add_parser(name, help=method.help)
        _add_common_arguments(parser, model_help=_FINETUNED_HELP, model_required=True)
        options = [parser.add_argument(*option.flags, **option.settings).dest for option in method.all_options()]
        parser.set_defaults(func=_run_pruning_baseline, method_options=options)


_FINETUNED_HELP = "folder of a model fine-tuned on the task (`nas-pruning finetune --strategy standard`)"


def _add_common_arguments(parser: argparse.ArgumentParser, model_help: str, model_required: bool = False) -> None:
    """The options of `BaselineSettings`."""
    add_task_argument(parser)
    add_model_arguments(parser, help=model_help, required=model_required)
    add_data_dir_argument(
        parser, help="folder of GLUE TSVs (RTE/, MRPC/, ...); default: env GLUE_DIR, else the hub"
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=None,
        help="seeds the method (importance samples, re-fine-tuning); default: the fine-tuned model's split seed, "
             "else 0. The 70/30 train/validation split is always the model's, so its validation data stays unseen",
    )
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument(
        "--max-length", type=positive_int, default=None,
        help="tokens per example (default: the fine-tuned model's, else 128 or the model's maximum if shorter)"
    )
    parser.add_argument(
        "--max-train-examples", type=positive_int, default=None, help="use a random subset of the train part"
    )
    add_max_validation_examples_argument(parser)
    add_threads_argument(parser)
    add_output_dir_argument(parser, help="default: baselines/<task>-<method>-seed<seed>")
    parser.add_argument(
        "--save-models", action="store_true", help="also save every pruned model under output-dir/models"
    )


def _settings(args: argparse.Namespace) -> BaselineSettings:
    return BaselineSettings(
        task=args.task, model=args.model, pooling=args.pooling, data_dir=args.data_dir, seed=args.seed,
        batch_size=args.batch_size, max_length=args.max_length, max_train_examples=args.max_train_examples,
        max_validation_examples=args.max_validation_examples, threads=args.threads, output_dir=args.output_dir,
        save_models=args.save_models,
    )


def _show(results: pd.DataFrame, run: BaselineRun) -> None:
    print(results[SUMMARY_COLUMNS].to_string(index=False, float_format="%.4f"))
    print(f"results: {run.results_path}")


def _run_pruning_baseline(args: argparse.Namespace) -> None:
    run = resolve_run(_settings(args), args.baseline)
    options = {name: getattr(args, name) for name in args.method_options}
    _show(run_pruning_baseline(args.baseline, run, options), run)


def _run_standard_nas(args: argparse.Namespace) -> None:
    run = resolve_run(_settings(args), args.baseline, finetuned=False)
    if args.save_models:
        raise ValueError("standard-nas does not keep its candidates; --save-models applies to the other baselines")
    results = standard_nas(
        args.task, model=args.model, pooling=args.pooling, optimizer=args.optimizer, epochs=args.epochs,
        max_trials=args.max_trials,
        max_wallclock_time=args.max_time, n_workers=args.workers, seed=run.seed, split_seed=args.split_seed,
        data_dir=run.data_dir, batch_size=args.batch_size, learning_rate=args.learning_rate,
        max_train_examples=args.max_train_examples,
        max_validation_examples=args.max_validation_examples, max_length=run.max_length, num_threads=args.threads,
        output_dir=run.output_dir, **ray_options(args),
    )
    _show(results, run)

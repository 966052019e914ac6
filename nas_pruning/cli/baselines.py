"""`nas-pruning baseline {standard-nas,head-pruning,layer-drop,retraining-free}`.

Every command writes the common results table to `<output-dir>/results.csv`
(a rerun with the same folder resumes) and prints it. Head pruning, layer dropping
and retraining-free pruning start from a model fine-tuned on the task (a folder of
`nas-pruning finetune --strategy standard`, or any Hugging Face classifier folder);
standard NAS starts from the pre-trained model.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from transformers import PretrainedConfig

from nas_pruning.arguments import non_negative_int, positive_float, positive_int, ratio
from nas_pruning.baselines.data import BaselineData, load_baseline_data
from nas_pruning.baselines.head_pruning import head_pruning
from nas_pruning.baselines.layer_drop import layer_drop
from nas_pruning.baselines.retraining_free import COSTS, DEFAULT_BUDGETS, retraining_free
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
from nas_pruning.experiments.standard_nas import standard_nas
from nas_pruning.models import load_model, load_tokenizer
from nas_pruning.models.loading import load_config, max_sequence_length
from nas_pruning.optimizers import OPTIMIZERS
from nas_pruning.supernet import INFO_FILE, DataSplit, TrainingConfig, load_supernet, read_info
from nas_pruning.supernet.storage import DEFAULT_MAX_LENGTH
from nas_pruning.tasks import get_task

SUMMARY_COLUMNS = ["method", "params", "error", "test_error", "wall_time"]


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `baseline` and its four methods on the `nas-pruning` subparsers."""
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

    heads = methods.add_parser("head-pruning", help="iterative gradient-importance head pruning (Michel et al.)")
    _add_common_arguments(heads, model_help=_FINETUNED_HELP, model_required=True)
    heads.add_argument("--heads-per-step", type=positive_int, default=None, help="default: 10%% of all heads")
    heads.add_argument("--num-examples", type=positive_int, default=512, help="training examples for the importance")
    heads.add_argument("--no-normalize", action="store_true", help="skip the per-layer L2 normalisation")
    _add_finetune_arguments(heads)
    heads.set_defaults(func=_run_head_pruning)

    layers = methods.add_parser("layer-drop", help="drop the top k layers, k = 0..L-1 (Sajjad et al.)")
    _add_common_arguments(layers, model_help=_FINETUNED_HELP, model_required=True)
    _add_finetune_arguments(layers)
    layers.set_defaults(func=_run_layer_drop)

    free = methods.add_parser("retraining-free", help="Fisher mask search, rearrangement and tuning (Kwon et al.)")
    _add_common_arguments(free, model_help=_FINETUNED_HELP, model_required=True)
    free.add_argument(
        "--budgets", type=ratio, nargs="+", default=list(DEFAULT_BUDGETS),
        help="fractions of the heads' and FFN units' cost to keep",
    )
    free.add_argument("--cost", default="params", choices=COSTS, help="what the budget counts")
    free.add_argument("--seq-len", type=positive_int, default=128, help="sequence length of the FLOPs cost")
    free.add_argument("--num-examples", type=positive_int, default=2048, help="sample size for Fisher and mask tuning")
    free.add_argument("--no-rearrange", action="store_true", help="skip mask rearrangement")
    free.add_argument("--no-tune", action="store_true", help="skip mask tuning")
    free.set_defaults(func=_run_retraining_free)


_FINETUNED_HELP = "folder of a model fine-tuned on the task (`nas-pruning finetune --strategy standard`)"


def _add_common_arguments(parser: argparse.ArgumentParser, model_help: str, model_required: bool = False) -> None:
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


def _add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--finetune-epochs", type=non_negative_int, default=0, help="re-fine-tune every pruned model (0: no)"
    )
    parser.add_argument("--learning-rate", type=positive_float, default=2e-5, help="of the re-fine-tuning")


class _Run:
    """What one baseline command works with, resolved from its arguments."""

    def __init__(self, args: argparse.Namespace) -> None:
        torch.set_num_threads(args.threads or os.cpu_count())
        self.args = args
        split = _split_of(args.model)
        self.split_seed = split.split_seed if split else (args.seed if args.seed is not None else 0)
        self.seed = args.seed if args.seed is not None else self.split_seed
        self.data_dir = args.data_dir or (split.data_dir if split else None)
        config = load_config(args.model)  # a missing model folder is one clear line, before any work
        longest = max_sequence_length(config)
        self.max_length = args.max_length or min(split.max_length if split else DEFAULT_MAX_LENGTH, longest)
        self.output_dir = Path(args.output_dir or f"baselines/{args.task}-{args.baseline}-seed{self.seed}")
        self.results_path = self.output_dir / "results.csv"
        self.models_dir = self.output_dir / "models" if args.save_models else None
        if self.max_length > longest:
            raise ValueError(
                f"--max-length must be at most {longest} for {args.model or 'the default model'}, got {self.max_length}"
            )
        if args.baseline != "standard-nas":  # the others start from a model fine-tuned on the task
            self.check_finetuned_model(config)

    def data(self) -> BaselineData:
        return load_baseline_data(
            self.args.task, load_tokenizer(self.args.model), self.data_dir, seed=self.seed,
            split_seed=self.split_seed, batch_size=self.args.batch_size,
            max_train_examples=self.args.max_train_examples,
            max_validation_examples=self.args.max_validation_examples, max_length=self.max_length,
        )

    def finetuned_model(self) -> nn.Module:
        path = self.args.model
        if Path(path, INFO_FILE).is_file():
            return load_supernet(path)[0]
        task = get_task(self.args.task)
        return load_model(
            path, num_labels=task.num_labels, is_regression=task.is_regression, pooling=self.args.pooling
        ).eval()

    def check_finetuned_model(self, config: PretrainedConfig) -> None:
        """Refuse, before any work, a model that is not fine-tuned on the task: one recorded for
        another task (supernet.json, or config.json's `finetuning_task`), one without a
        classification head, or one with another number of outputs."""
        path, task = self.args.model, get_task(self.args.task)
        info = Path(path, INFO_FILE)
        recorded = getattr(config, "finetuning_task", None)
        if info.is_file():
            recorded = read_info(path).task
        advice = f"pass a model fine-tuned on {task.name!r} (e.g. by `nas-pruning finetune --strategy standard`)"
        if recorded is not None and _task_name(recorded) != task.name:
            raise ValueError(f"{path} was fine-tuned on {recorded!r}, not on {task.name!r}: {advice}")
        heads = [name for name in config.architectures or [] if name.endswith("ForSequenceClassification")]
        if recorded is None and not heads:
            raise ValueError(
                f"{path} has no trained classification head (architectures {config.architectures}): {advice}"
            )
        if config.num_labels != task.num_labels:
            kind = "regression" if task.is_regression else f"{task.num_labels}-class classification"
            raise ValueError(
                f"{path} has {config.num_labels} outputs but task {task.name!r} needs {task.num_labels} ({kind}): "
                f"{advice}"
            )

    def finetune_config(self) -> TrainingConfig | None:
        if self.args.finetune_epochs <= 0:
            return None
        return TrainingConfig(
            epochs=self.args.finetune_epochs, learning_rate=self.args.learning_rate,
            batch_size=self.args.batch_size, seed=self.seed, num_threads=self.args.threads,
        )

    def done(self, results: pd.DataFrame) -> None:
        print(results[SUMMARY_COLUMNS].to_string(index=False, float_format="%.4f"))
        print(f"results: {self.results_path}")


def _task_name(name: str) -> str:
    """The registry name of a recorded task (older records may use another spelling)."""
    try:
        return get_task(name).name
    except ValueError:
        return name


def _split_of(model: str | None) -> DataSplit | None:
    """The data split a fine-tuned model folder recorded (supernet.json), if any."""
    if model is None or not Path(model, INFO_FILE).is_file():
        return None
    return read_info(model).data


def _run_head_pruning(args: argparse.Namespace) -> None:
    run = _Run(args)
    results = head_pruning(
        run.finetuned_model(), run.data(), heads_per_step=args.heads_per_step, num_examples=args.num_examples,
        normalize=not args.no_normalize, finetune=run.finetune_config(),
        results_path=run.results_path, models_dir=run.models_dir,
    )
    run.done(results)


def _run_layer_drop(args: argparse.Namespace) -> None:
    run = _Run(args)
    results = layer_drop(
        run.finetuned_model(), run.data(), finetune=run.finetune_config(),
        results_path=run.results_path, models_dir=run.models_dir,
    )
    run.done(results)


def _run_retraining_free(args: argparse.Namespace) -> None:
    run = _Run(args)
    results = retraining_free(
        run.finetuned_model(), run.data(), budgets=args.budgets, cost=args.cost, seq_len=args.seq_len,
        num_examples=args.num_examples, rearrange=not args.no_rearrange, tune=not args.no_tune,
        results_path=run.results_path, models_dir=run.models_dir,
    )
    run.done(results)


def _run_standard_nas(args: argparse.Namespace) -> None:
    run = _Run(args)
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
    run.done(results)

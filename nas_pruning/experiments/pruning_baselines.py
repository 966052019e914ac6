"""A baseline run in a folder: what `nas-pruning baseline <method>` does below the command line.

`resolve_run` turns the user's `BaselineSettings` into a `BaselineRun`: the seeds, data folder and
sequence length the fine-tuned model recorded (supernet.json) unless the user gave others, the output
folder, and the checks made before any work (the model loads, the length fits it, the model is fine-tuned
on the task). `run_pruning_baseline` then calls a method of
`nas_pruning.baselines.registry.BASELINES`, which writes `<output_dir>/results.csv` (a rerun resumes).
Standard NAS uses `resolve_run` too (from the pre-trained model), then
`nas_pruning.experiments.standard_nas.standard_nas`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from transformers import PretrainedConfig

from nas_pruning.baselines.data import BaselineData, load_baseline_data
from nas_pruning.baselines.registry import get_baseline
from nas_pruning.models import load_model, load_tokenizer
from nas_pruning.models.loading import load_config, max_sequence_length
from nas_pruning.supernet import INFO_FILE, DataSplit, load_supernet, read_info
from nas_pruning.tasks import DEFAULT_MAX_LENGTH, get_task
from nas_pruning.training import TrainingConfig


@dataclass(frozen=True)
class BaselineSettings:
    """What the user asks of a baseline run (None: not given, resolved by `resolve_run`).

    task: GLUE task name.
    model: the fine-tuned model's folder (`nas-pruning finetune --strategy standard`, or any Hugging Face
        classifier folder); for standard NAS, the pre-trained model (None: the bundled MiniLM).
    pooling: what a classifier built from a plain model reads (see `nas_pruning.models.load_model`).
    data_dir: folder of GLUE TSVs; default: the fine-tuned model's, else env GLUE_DIR or the hub.
    seed: seeds the method; default: the fine-tuned model's split seed, else 0.
    batch_size: examples per batch.
    max_length: tokens per example; default: the fine-tuned model's, else 128 (or the model's maximum).
    max_train_examples / max_validation_examples: random subsets of the train / validation part.
    threads: torch threads (None: all cores).
    output_dir: the run's folder; default `baselines/<task>-<method>-seed<seed>`.
    save_models: also save every pruned model under `<output_dir>/models`.
    """

    task: str
    model: str | None = None
    pooling: str = "auto"
    data_dir: str | os.PathLike | None = None
    seed: int | None = None
    batch_size: int = 32
    max_length: int | None = None
    max_train_examples: int | None = None
    max_validation_examples: int | None = None
    threads: int | None = None
    output_dir: str | os.PathLike | None = None
    save_models: bool = False


@dataclass(frozen=True)
class BaselineRun:
    """A baseline run with its settings resolved (see `resolve_run`).

    settings: what the user gave.
    seed: seeds the method (importance samples, re-fine-tuning).
    split_seed: seeds the 70/30 train/validation split: the fine-tuned model's, so its validation data
        stays unseen whatever `seed` is.
    data_dir: where the task's data is read from (None: env GLUE_DIR or the hub).
    max_length: tokens per example.
    output_dir: the run's folder.
    """

    settings: BaselineSettings
    seed: int
    split_seed: int
    data_dir: str | os.PathLike | None
    max_length: int
    output_dir: Path

    @property
    def results_path(self) -> Path:
        """The common results table, `<output_dir>/results.csv`."""
        return self.output_dir / "results.csv"

    @property
    def models_dir(self) -> Path | None:
        """Where pruned models are saved (`<output_dir>/models`), None unless `save_models`."""
        return self.output_dir / "models" if self.settings.save_models else None

    def data(self) -> BaselineData:
        """The task's batches, split with `split_seed`, shuffled with `seed`."""
        settings = self.settings
        return load_baseline_data(
            settings.task, load_tokenizer(settings.model), self.data_dir, seed=self.seed,
            split_seed=self.split_seed, batch_size=settings.batch_size,
            max_train_examples=settings.max_train_examples,
            max_validation_examples=settings.max_validation_examples, max_length=self.max_length,
        )

    def finetuned_model(self) -> nn.Module:
        """The fine-tuned classifier, in eval mode."""
        path = self.settings.model
        if Path(path, INFO_FILE).is_file():
            return load_supernet(path)[0]
        task = get_task(self.settings.task)
        return load_model(
            path, num_labels=task.num_labels, is_regression=task.is_regression, pooling=self.settings.pooling
        ).eval()

    def finetune_config(self, finetune_epochs: int, learning_rate: float) -> TrainingConfig | None:
        """How each pruned model is re-fine-tuned; None for 0 epochs."""
        if finetune_epochs <= 0:
            return None
        return TrainingConfig(
            epochs=finetune_epochs, learning_rate=learning_rate, batch_size=self.settings.batch_size,
            seed=self.seed, num_threads=self.settings.threads,
        )


def resolve_run(settings: BaselineSettings, method: str, finetuned: bool = True) -> BaselineRun:
    """Resolve `settings` for the baseline `method` (a command name, part of the default folder) and set
    torch's threads for the run.

    finetuned: the method starts from a model fine-tuned on the task; one that is not (recorded for
    another task, without a classification head, or with another number of outputs) is refused here.
    Raises ValueError (or the model loader's error) before any work.
    """
    torch.set_num_threads(settings.threads or os.cpu_count())
    split = _recorded_split(settings.model)
    split_seed = split.split_seed if split else (settings.seed if settings.seed is not None else 0)
    seed = settings.seed if settings.seed is not None else split_seed
    config = load_config(settings.model)  # a missing model folder is one clear line, before any work
    longest = max_sequence_length(config)
    max_length = settings.max_length or min(split.max_length if split else DEFAULT_MAX_LENGTH, longest)
    output_dir = Path(settings.output_dir or f"baselines/{settings.task}-{method}-seed{seed}")
    if max_length > longest:
        raise ValueError(
            f"--max-length must be at most {longest} for {settings.model or 'the default model'}, got {max_length}"
        )
    if finetuned:
        check_finetuned_model(settings.model, config, settings.task)
    data_dir = settings.data_dir or (split.data_dir if split else None)
    return BaselineRun(settings, seed, split_seed, data_dir, max_length, output_dir)


def run_pruning_baseline(name: str, run: BaselineRun, options: Mapping[str, Any]) -> pd.DataFrame:
    """Run the registered method `name` (`nas_pruning.baselines.registry.BASELINES`) and return its
    results table (also written to `run.results_path`).

    options: the method's own settings by keyword (its `PruningBaseline.options`); a method that
        re-fine-tunes takes `finetune_epochs` and `learning_rate` here as well.
    """
    method = get_baseline(name)
    options = dict(options)
    if method.refinetune:
        options["finetune"] = run.finetune_config(options.pop("finetune_epochs"), options.pop("learning_rate"))
    return method.prune(
        run.finetuned_model(), run.data(), results_path=run.results_path, models_dir=run.models_dir, **options
    )


def check_finetuned_model(path: str, config: PretrainedConfig, task_name: str) -> None:
    """Refuse, before any work, a model that is not fine-tuned on the task: one recorded for
    another task (supernet.json, or config.json's `finetuning_task`), one without a
    classification head, or one with another number of outputs.

    path: the model's folder; config: its configuration; task_name: the task of the run.
    """
    task = get_task(task_name)
    recorded = getattr(config, "finetuning_task", None)
    if Path(path, INFO_FILE).is_file():
        recorded = read_info(path).task
    advice = f"pass a model fine-tuned on {task.name!r} (e.g. by `nas-pruning finetune --strategy standard`)"
    if recorded is not None and _task_name(recorded) != task.name:
        raise ValueError(f"{path} was fine-tuned on {recorded!r}, not on {task.name!r}: {advice}")
    heads = [name for name in config.architectures or [] if name.endswith("ForSequenceClassification")]
    if recorded is None and not heads:
        raise ValueError(f"{path} has no trained classification head (architectures {config.architectures}): {advice}")
    if config.num_labels != task.num_labels:
        kind = "regression" if task.is_regression else f"{task.num_labels}-class classification"
        raise ValueError(
            f"{path} has {config.num_labels} outputs but task {task.name!r} needs {task.num_labels} ({kind}): "
            f"{advice}"
        )


def _task_name(name: str) -> str:
    """The registry name of a recorded task (older records may use another spelling)."""
    try:
        return get_task(name).name
    except ValueError:
        return name


def _recorded_split(model: str | None) -> DataSplit | None:
    """The data split a fine-tuned model folder recorded (supernet.json), if any."""
    if model is None or not Path(model, INFO_FILE).is_file():
        return None
    return read_info(model).data

"""`finetune`: the whole job behind `nas-pruning finetune`, from a task name to a saved super-network."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset

from nas_pruning.files import absolute_path
from nas_pruning.models import DEFAULT_MODEL_NAME, load_model, load_tokenizer
from nas_pruning.models.importance import importance_scores, reorder_by_importance
from nas_pruning.models.loading import load_config, max_sequence_length
from nas_pruning.search_spaces import get_search_space
from nas_pruning.supernet.storage import DataSplit, SupernetRecord, save_supernet
from nas_pruning.tasks import DEFAULT_MAX_LENGTH, VAL_FRACTION, encode, load_task, make_loader
from nas_pruning.training.config import TrainingConfig
from nas_pruning.training.distributed import data_parallel_from_environment
from nas_pruning.training.strategies import Strategy, as_strategy
from nas_pruning.training.trainer import has_checkpoint, train_supernet


def finetune(
    task: str,
    model: str | None = None,
    strategy: str | Strategy = "full",
    pooling: str = "auto",
    search_space: str | None = "small",
    output_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    epochs: int = 5,
    batch_size: int = 32,
    learning_rate: float = 2e-5,
    seed: int = 0,
    max_train_examples: int | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
    importance_examples: int = 0,
    num_threads: int | None = None,
    progress: bool = True,
    **options: Any,
) -> Path:
    """Fine-tune `model` on `task` as a super-network and save it; returns the folder.

    task: GLUE task name (see nas_pruning.tasks.TASKS).
    model: hub name or folder of a BERT/RoBERTa checkpoint; None: all-MiniLM-L6-v2.
    pooling: "auto" | "cls" | "mean", what the classifier reads (see
        nas_pruning.models.loading.resolve_pooling; auto is mean for MiniLM).
    strategy: super-network training strategy (see STRATEGIES); "standard" with
        search_space=None is plain fine-tuning.
    search_space: name of the search space sub-networks are drawn from (and the
        smallest / midpoint validated on), or None.
    output_dir: the folder to write (checkpoints in output_dir/checkpoint, which a
        rerun resumes from); default ./supernets/<task>-<strategy>-<space>-seed<seed>.
    data_dir: folder of GLUE TSVs; None: env GLUE_DIR, else the hub.
    seed: seeds training and the 70/30 train/validation split of the GLUE train set
        (recorded in supernet.json: search on the same validation split).
    max_train_examples: train on this many random examples of the train part.
    max_length: tokens per example (longer texts are truncated).
    importance_examples: score every head and FFN unit on this many training
        examples (gradient importance, `nas_pruning.models.importance`) and reorder
        them within each layer, most important first, so that the search spaces'
        first-k sub-networks keep the most important ones. Strategies that sample
        sub-networks reorder the starting model before the first step (best when it
        is already fine-tuned, e.g. model=<a `standard` folder>); `standard` reorders
        the fine-tuned model after training. The full network computes the same
        either way. 0: keep the stored order.
    options: further TrainingConfig fields (temperature, warmup_ratio, num_random,
        max_steps, ...).

    Started by `torchrun --nproc_per_node N` or `accelerate launch --num_processes N`,
    the N processes train data-parallel (see `nas_pruning.training.distributed`):
    `batch_size` stays the global batch (each process takes batch_size / N of it),
    so the run matches a single-process one; rank 0 writes the folder.
    """
    fields = {f.name for f in dataclasses.fields(TrainingConfig)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(f"finetune got unknown option(s) {unknown}; TrainingConfig accepts {sorted(fields)}")
    config = TrainingConfig(
        epochs=epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        seed=seed,
        num_threads=num_threads,
        **options,
    )
    strategy = as_strategy(strategy, num_random=config.num_random)
    if not (isinstance(importance_examples, int) and importance_examples >= 0):
        raise ValueError(f"importance_examples must be an integer >= 0, got {importance_examples!r}")
    if output_dir is None:
        output_dir = Path("supernets") / f"{task}-{strategy.name}-{search_space}-seed{seed}"

    tokenizer = load_tokenizer(model)
    longest = max_sequence_length(load_config(model))
    if not 1 <= max_length <= longest:
        raise ValueError(f"max_length must lie in [1, {longest}] (the model's position embeddings), got {max_length}")
    data = load_task(
        task, data_dir, seed=seed, val_fraction=VAL_FRACTION, max_train_examples=max_train_examples,
        splits=("train", "validation"),
    )
    data = encode(data, tokenizer, max_length=max_length)
    with data_parallel_from_environment() as data_parallel:
        torch.manual_seed(seed)  # initialises a new classification head reproducibly
        net = load_model(
            model, num_labels=data.task.num_labels, is_regression=data.task.is_regression, pooling=pooling
        )
        net.config.finetuning_task = data.task.name  # saved in config.json: baselines check it
        if data_parallel is None:
            net.to("cuda" if torch.cuda.is_available() else "cpu")
            train_loader = make_loader(
                data.train, tokenizer, batch_size=batch_size, shuffle=True, seed=seed,
                by_length=config.group_by_length, mega_batches=config.mega_batches,
            )
        else:
            net.to(data_parallel.device)
            train_loader = data_parallel.loader(
                data.train, tokenizer, batch_size, seed=seed,
                by_length=config.group_by_length, mega_batches=config.mega_batches,
            )
        space = get_search_space(search_space, net.config) if search_space is not None else None
        # Sampled sub-networks must train in the new order; `standard` is scored once fine-tuned.
        # A checkpoint of a sampling strategy already holds the reordered weights.
        reorder_first = strategy.needs_search_space
        if importance_examples > 0 and reorder_first and not has_checkpoint(output_dir):
            _reorder_by_importance(net, data.train, tokenizer, importance_examples, batch_size, seed)

        history = train_supernet(
            net,
            train_loader,
            data.task,
            strategy=strategy,
            search_space=space,
            config=config,
            val_loader=make_loader(data.validation, tokenizer, batch_size=batch_size, by_length=True),
            output_dir=output_dir,
            progress=progress,
            data_parallel=data_parallel,
        )
        if importance_examples > 0 and not reorder_first:
            _reorder_by_importance(net, data.train, tokenizer, importance_examples, batch_size, seed)
        info = SupernetRecord(
            task=data.task.name,
            base_model=absolute_path(model) or DEFAULT_MODEL_NAME,
            strategy=strategy.describe(),
            search_space=search_space,
            pooling=net.config.classifier_pooling,
            training=config,
            data=DataSplit(absolute_path(data_dir), seed, VAL_FRACTION, max_train_examples, max_length),
            importance_examples=importance_examples,
            history=history,
            data_parallel_ranks=None if data_parallel is None else data_parallel.world_size,
        )
        if data_parallel is None:
            return save_supernet(output_dir, net.cpu(), info, tokenizer)
        if data_parallel.is_main:
            save_supernet(output_dir, net.cpu(), info, tokenizer)
        data_parallel.barrier()  # the other ranks return once rank 0 has written the folder
    return Path(output_dir)


def _reorder_by_importance(
    net: torch.nn.Module, train: Dataset, tokenizer, num_examples: int, batch_size: int, seed: int
) -> None:
    """Reorder `net`'s heads and units by their importance on `num_examples` random training examples.

    Every data-parallel rank draws the same examples, so all ranks reorder alike.
    """
    sample = train.shuffle(seed=seed).select(range(min(num_examples, len(train))))
    heads, units = importance_scores(net, make_loader(sample, tokenizer, batch_size=batch_size))
    reorder_by_importance(net, heads, units)

"""The data of a transfer run: a few target examples, many auxiliary ones.

Target: the GLUE train split, 70/30 into train / validation (seeded), of which
`target_examples` training examples are drawn with the seed; the GLUE dev split
is the test set. Auxiliary: its GLUE train split, or its dev split where only
that exists locally (QNLI in shared/data/glue); it is only ever trained on.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator

import datasets
import numpy as np
from torch.utils.data import DataLoader

from nas_pruning.cofi.config import CoFiConfig
from nas_pruning.tasks import Task, TaskData, encode, get_task, load_task, load_task_split, make_loader


@dataclass(frozen=True)
class TransferData:
    """Tokenised datasets of a run. target: train / validation / test of the target
    task; auxiliary: the auxiliary task's training data (None without one)."""

    target: TaskData
    auxiliary: TaskData | None
    tokenizer: object

    @property
    def task(self) -> Task:
        return self.target.task

    def train_loader(self, epoch: int, seed: int, batch_size: int) -> DataLoader:
        """The target's training batches of one epoch (reshuffled per epoch, reproducibly)."""
        return make_loader(self.target.train, self.tokenizer, batch_size, shuffle=True, seed=seed * 1000 + epoch)

    def eval_loader(self, split: str, batch_size: int) -> DataLoader:
        return make_loader(getattr(self.target, split), self.tokenizer, batch_size)

    def auxiliary_batches(self, epoch: int, seed: int, batch_size: int) -> Iterator[dict]:
        """Endless auxiliary batches, reshuffled at every pass, starting fresh each epoch."""
        for cycle in itertools.count():
            loader_seed = (seed * 1000 + epoch) * 1000 + cycle
            yield from make_loader(self.auxiliary.train, self.tokenizer, batch_size, shuffle=True, seed=loader_seed)


def to_device(batch: dict, device) -> dict:
    return {key: value.to(device) for key, value in batch.items()}


def without_labels(batch: dict) -> dict:
    return {key: value for key, value in batch.items() if key != "labels"}


def load_transfer_data(config: CoFiConfig, tokenizer) -> TransferData:
    """Load and tokenise the target (and, if the run uses one, the auxiliary) task."""
    try:
        target = load_task(config.task, config.data_dir, seed=config.seed, max_train_examples=config.target_examples)
    except ValueError as error:
        if "max_train_examples" not in str(error):
            raise
        message = f"--target-examples {config.target_examples} is too many for {config.task!r}: {error}"
        raise ValueError(message) from error
    if config.max_eval_examples is not None and len(target.validation) > config.max_eval_examples:
        validation = _sample(target.validation, config.max_eval_examples, config.seed)
        target = TaskData(target.task, target.train, validation, target.test)
    auxiliary = None
    if config.uses_auxiliary("prune") or config.uses_auxiliary("finetune"):
        aux_train = _auxiliary_split(config.aux_task, config.data_dir)
        if config.max_aux_examples is not None and len(aux_train) > config.max_aux_examples:
            aux_train = _sample(aux_train, config.max_aux_examples, config.seed)
        auxiliary = encode(TaskData(get_task(config.aux_task), train=aux_train), tokenizer, config.max_length)
    return TransferData(encode(target, tokenizer, config.max_length), auxiliary, tokenizer)


def _sample(dataset: datasets.Dataset, count: int, seed: int) -> datasets.Dataset:
    """`count` rows drawn at random (seeded), in their original order."""
    rows = np.random.default_rng(seed).choice(len(dataset), count, replace=False)
    return dataset.select(np.sort(rows))


def _auxiliary_split(name: str, data_dir: str | None) -> datasets.Dataset:
    try:
        return load_task_split(name, "train", data_dir)
    except FileNotFoundError:
        return load_task_split(name, "dev", data_dir)

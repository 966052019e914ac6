"""`BaselineData`: the task and batches a baseline prunes, fine-tunes and is scored on."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Iterable, Sized

from torch import nn

from nas_pruning.evaluation import evaluate
from nas_pruning.tasks import DEFAULT_MAX_LENGTH, Task, encode, load_task, make_loader
from nas_pruning.training import TrainingConfig, train_supernet


@dataclass(frozen=True)
class BaselineData:
    """What a baseline works on; all loaders yield dicts of model inputs with `labels`.

    task: gives the loss and the metric.
    train: training batches with a length (importance / Fisher samples, re-fine-tuning).
    validation: batches behind the `error` column (model selection).
    test: batches behind `test_error` / `test_metric`; None leaves those columns NaN.
    """

    task: Task
    train: Iterable[dict]
    validation: Iterable[dict]
    test: Iterable[dict] | None = None

    def sample(self, num_examples: int) -> list[dict]:
        """The first `num_examples` training examples, as batches (the last one cut short)."""
        if num_examples < 1:
            raise ValueError(f"num_examples must be >= 1, got {num_examples}")
        batches, seen = [], 0
        for batch in self.train:
            size = min(len(batch["labels"]), num_examples - seen)
            batches.append({key: value[:size] for key, value in batch.items()})
            seen += size
            if seen == num_examples:
                break
        return batches

    def score(self, model: nn.Module) -> dict[str, float]:
        """`error` and `metric` on validation, `test_error` and `test_metric` on test."""
        validation = evaluate(model, self.validation, self.task)
        no_test = {"error": math.nan, "metric": math.nan}
        test = evaluate(model, self.test, self.task) if self.test is not None else no_test
        return {
            "error": validation["error"],
            "metric": validation["metric"],
            "test_error": test["error"],
            "test_metric": test["metric"],
        }

    def finetune(self, model: nn.Module, config: TrainingConfig) -> None:
        """Fine-tune `model` in place on the training batches (plain fine-tuning)."""
        if not isinstance(self.train, Sized):
            raise ValueError("fine-tuning needs training batches with a length, e.g. nas_pruning.tasks.make_loader")
        train_supernet(model, self.train, self.task, strategy="standard", config=config, progress=False)


def load_baseline_data(
    task: str,
    tokenizer,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    split_seed: int | None = None,
    batch_size: int = 32,
    max_train_examples: int | None = None,
    max_validation_examples: int | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
) -> BaselineData:
    """A GLUE task split as in the paper (train 70/30 into train/validation, dev = test).

    seed: seeds the order of the training batches, and so the importance / Fisher
        samples and re-fine-tuning (the randomness of a pruning method).
    split_seed: seeds the split, `max_train_examples` and the validation subsample
        (default: `seed`); use the split seed the model was fine-tuned with, so that
        validation data stays unseen whatever `seed` is.
    max_train_examples: keep this many random examples of the train part.
    max_validation_examples: score on this many random validation examples (faster,
        noisier); the test split is always used whole.
    max_length: tokens per example (longer texts are truncated).
    """
    split_seed = seed if split_seed is None else split_seed
    data = load_task(task, data_dir, seed=split_seed, max_train_examples=max_train_examples)
    if max_validation_examples is not None and max_validation_examples < len(data.validation):
        validation = data.validation.shuffle(seed=split_seed).select(range(max_validation_examples))
        data = dataclasses.replace(data, validation=validation)
    data = encode(data, tokenizer, max_length)
    return BaselineData(
        task=data.task,
        train=make_loader(data.train, tokenizer, batch_size=batch_size, shuffle=True, seed=seed),
        validation=make_loader(data.validation, tokenizer, batch_size=batch_size),
        test=make_loader(data.test, tokenizer, batch_size=batch_size),
    )

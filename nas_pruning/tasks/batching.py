"""Tokenisation and batching of a task's datasets: :func:`encode`, then :func:`make_loader`
(optionally with length-grouped batches, :class:`LengthGroupedBatchSampler`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import datasets
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler, SequentialSampler
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from nas_pruning.tasks.loading import quiet_progress
from nas_pruning.tasks.registry import TaskData

#: Tokens per example unless told otherwise (longer texts are truncated).
DEFAULT_MAX_LENGTH = 128


def encode(data: TaskData, tokenizer: PreTrainedTokenizerBase, max_length: int = DEFAULT_MAX_LENGTH) -> TaskData:
    """Tokenise every loaded split of ``data``.

    Texts are truncated to ``max_length`` tokens but not padded (the loader
    pads each batch). The datasets keep the tokenizer's outputs
    (``input_ids``, ``attention_mask`` and ``token_type_ids`` if it makes
    them) and ``labels`` (int64 class ids, float32 for regression); the text
    columns are removed.
    """
    text_columns = list(data.task.text_columns)

    def tokenize(batch: dict) -> dict:
        return tokenizer(
            *(batch[column] for column in text_columns), truncation=True, max_length=max_length
        )

    encoded = {}
    with quiet_progress():
        for split, dataset in data.splits().items():
            dataset = dataset.map(tokenize, batched=True, remove_columns=text_columns)
            encoded[split] = dataset.rename_column("label", "labels")
    return dataclasses.replace(data, **encoded)


#: Batches per mega-batch of :class:`LengthGroupedBatchSampler`. Hugging Face uses 50; in short
#: super-network runs on 1,000 STS-B examples that made the midpoint sub-network learn much less
#: than plain batches, 4 far less so while still padding 1.8x fewer tokens (docs/throughput_grouping.md).
MEGA_BATCHES = 4


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Batches of examples of similar length, so that padding per batch stays small.

    In order (``shuffle=False``): the examples sorted by length, longest first, cut
    into batches. Shuffled: every pass shuffles the examples, cuts them into
    mega-batches of ``mega_batches`` batches, sorts each mega-batch by length and cuts
    it into batches, then shuffles the batches (as common trainers do; Hugging Face's
    ``LengthGroupedSampler`` uses 50 batches per mega-batch, we use :data:`MEGA_BATCHES`),
    so that every batch still comes from a random part of the data.

    :param lengths: length (tokens) of each example
    :param batch_size: examples per batch
    :param shuffle: group at random (training) instead of sorting the whole data
    :param generator: draws the random orders (the loader's, so that checkpoints restore it)
    :param mega_batches: batches per mega-batch: more saves more padding, fewer mixes
        lengths more within an epoch (see :data:`MEGA_BATCHES`)
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        mega_batches: int = MEGA_BATCHES,
    ) -> None:
        if batch_size < 1 or mega_batches < 1:
            raise ValueError(f"batch_size and mega_batches must be >= 1, got {batch_size} and {mega_batches}")
        self.lengths = np.asarray(lengths)
        self.batch_size, self.shuffle, self.generator, self.mega_batches = batch_size, shuffle, generator, mega_batches

    def _cut(self, indices: np.ndarray) -> list[list[int]]:
        # A stable sort keeps ties in their (random or original) order.
        ordered = indices[np.argsort(-self.lengths[indices], kind="stable")].tolist()
        return [ordered[i : i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        if not self.shuffle:
            yield from self._cut(np.arange(len(self.lengths)))
            return
        order = torch.randperm(len(self.lengths), generator=self.generator).numpy()
        size = self.batch_size * self.mega_batches
        batches = [batch for start in range(0, len(order), size) for batch in self._cut(order[start : start + size])]
        for i in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[i]

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)


def batch_sampler(
    dataset: datasets.Dataset,
    batch_size: int,
    shuffle: bool,
    by_length: bool,
    generator: torch.Generator,
    mega_batches: int = MEGA_BATCHES,
) -> Sampler[list[int]]:
    """The batches (lists of example indices) :func:`make_loader` draws; see its parameters."""
    if not by_length:
        sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        return BatchSampler(sampler, batch_size, drop_last=False)
    if "input_ids" not in dataset.column_names:
        raise ValueError(
            "batching by length needs an encoded dataset with `input_ids` (see encode), "
            f"got columns {dataset.column_names}"
        )
    lengths = [len(ids) for ids in dataset["input_ids"]]
    return LengthGroupedBatchSampler(
        lengths, batch_size, shuffle=shuffle, generator=generator, mega_batches=mega_batches
    )


def make_loader(
    dataset: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int = 0,
    by_length: bool = False,
    mega_batches: int = MEGA_BATCHES,
) -> DataLoader:
    """Batches of an encoded dataset (see :func:`encode`), padded per batch.

    :param dataset: a split of an encoded :class:`TaskData`
    :param tokenizer: the tokenizer used to encode it (gives the padding)
    :param batch_size: examples per batch
    :param shuffle: reshuffle at every pass over the data
    :param seed: seed of the shuffling: the same seed gives the same batches
    :param by_length: batch examples of similar length (less padding, less compute; see
        :class:`LengthGroupedBatchSampler`): sorted by length without ``shuffle``,
        grouped by length within random mega-batches with it
    :param mega_batches: batches per random mega-batch when grouping shuffled batches by length
    """
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler(dataset, batch_size, shuffle, by_length, generator, mega_batches),
        collate_fn=DataCollatorWithPadding(tokenizer),
        generator=generator,
    )

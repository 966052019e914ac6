"""Data-parallel super-network training with torch.distributed.

Launched with N processes (ranks) by `torchrun --nproc_per_node N` or
`accelerate launch --num_processes N`, which set RANK / WORLD_SIZE / LOCAL_RANK and
the rendezvous address in the environment, every rank runs the same training loop:

- all ranks draw the same shuffled global batches, exactly those a single process
  would draw (`nas_pruning.tasks.make_loader` with the same seed), and each rank
  trains on its own part of every global batch (`ShardedBatchSampler`);
- every rank draws the same sub-networks at every step (the strategy's random
  state is seeded alike on all ranks and advances alike);
- after the step's passes, the gradients are averaged over the ranks, weighted by
  their examples (one all-reduce of all gradients, flattened), so that every rank
  takes the same optimizer step;
- only rank 0 writes checkpoints and outputs.

The weighted average of the ranks' mean-loss gradients is the gradient of the mean
loss over the whole global batch, so the run equals a single-process run with the
same batch size, epoch after epoch, up to floating-point summation order and up
to dropout (whose masks each rank draws for its own examples). The one exception:
a last global batch with fewer examples than ranks is skipped.
Backend: NCCL when the ranks have GPUs, gloo on CPU.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np

import datasets
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Sampler
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from nas_pruning.tasks import MEGA_BATCHES, batch_sampler


@dataclass(frozen=True)
class DataParallel:
    """This process's place among the ranks of a data-parallel run (the process group is up).

    rank: this process's rank, 0 to world_size - 1; rank 0 writes outputs.
    world_size: number of processes.
    device: where this rank trains (its GPU, or the CPU).
    """

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def loader(
        self,
        dataset: datasets.Dataset,
        tokenizer: PreTrainedTokenizerBase,
        global_batch_size: int,
        seed: int = 0,
        by_length: bool = False,
        mega_batches: int = MEGA_BATCHES,
    ) -> DataLoader:
        """This rank's part of the shuffled global batches of `dataset`.

        Batch k of all ranks together holds the examples of batch k of
        `nas_pruning.tasks.make_loader(dataset, tokenizer, global_batch_size, shuffle=True, seed=seed,
        by_length=by_length, mega_batches=mega_batches)`, in every epoch. The loader's `generator` drives the shuffling, so that
        training checkpoints capture and restore it as they do for a single process.
        """
        if global_batch_size < self.world_size:
            raise ValueError(
                f"a global batch of {global_batch_size} examples cannot be shared by {self.world_size} processes: "
                f"use a batch size of at least {self.world_size}"
            )
        generator = torch.Generator().manual_seed(seed)
        batches = batch_sampler(
            dataset, global_batch_size, shuffle=True, by_length=by_length, generator=generator, mega_batches=mega_batches
        )
        return DataLoader(
            dataset,
            batch_sampler=ShardedBatchSampler(batches, len(dataset), global_batch_size, self.rank, self.world_size),
            collate_fn=DataCollatorWithPadding(tokenizer),
            generator=generator,
        )

    def broadcast_parameters(self, model: nn.Module) -> None:
        """Give every rank rank 0's weights (e.g. a classification head initialised differently)."""
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)

    def average_gradients(self, model: nn.Module, loss: float, examples: int) -> float:
        """Average the gradients of `model` over the ranks in place; returns the loss averaged too.

        loss: this rank's loss of the step (a mean over its examples).
        examples: this rank's examples in the step; ranks weigh in by it, so that
            the result is the gradient of the mean loss over the global batch.

        One all-reduce of all gradients, the loss and the example count, flattened
        into a single buffer. Parameters without a gradient (outside every
        sub-network of the step) have none on every rank, since the ranks run the
        same passes, and keep none.
        """
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        tail = torch.tensor([loss, 1.0], device=self.device)
        flat = torch.cat([g.reshape(-1) for g in grads] + [tail]) * examples
        dist.all_reduce(flat)
        flat /= flat[-1].item()  # all examples of the global batch
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
            offset += grad.numel()
        return float(flat[-2])

    def check_same_on_all_ranks(self, value: object, what: str) -> None:
        """Refuse to go on when the ranks see `value` differently (e.g. a checkpoint only rank 0 has)."""
        values: list[object] = [None] * self.world_size
        dist.all_gather_object(values, value)
        if any(v != values[0] for v in values):
            raise RuntimeError(
                f"the {self.world_size} processes disagree on {what} ({values}, by rank); "
                f"give them an output folder on a file system they all share"
            )

    def barrier(self) -> None:
        dist.barrier()


class ShardedBatchSampler(Sampler[list[int]]):
    """One rank's part of every shuffled global batch of a dataset.

    All ranks build the same global batches (those a single process would draw, from
    a generator seeded alike) and each takes its own slice of every batch; slices
    differ in size by one example at most. The one global batch with fewer examples
    than ranks, if any, is skipped, since some rank would get none.

    batches: the global batches (`nas_pruning.tasks.batch_sampler`); give the
        DataLoader the generator they draw from, as it draws its workers' base seed
        from it before the order, as for a single process.
    num_examples: examples in the dataset.
    batch_size: examples per global batch (at least world_size).
    rank, world_size: this rank and the number of ranks.
    """

    def __init__(
        self, batches: Sampler[list[int]], num_examples: int, batch_size: int, rank: int, world_size: int
    ) -> None:
        self.rank, self.world_size = rank, world_size
        self.batches = batches
        last = num_examples % batch_size
        self._skips_last = 0 < last < world_size

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            if len(batch) >= self.world_size:
                yield np.array_split(np.asarray(batch), self.world_size)[self.rank].tolist()

    def __len__(self) -> int:
        return len(self.batches) - self._skips_last


def launched_ranks() -> int:
    """How many processes the launcher (torchrun, accelerate) started; 1 outside a launcher."""
    return int(os.environ.get("WORLD_SIZE", "1"))


@contextmanager
def data_parallel_from_environment() -> Iterator[DataParallel | None]:
    """The `DataParallel` of this process when a launcher started several; None for a single process.

    Sets up the process group from the launcher's environment (RANK, WORLD_SIZE,
    LOCAL_RANK, MASTER_ADDR, MASTER_PORT), NCCL on GPUs and gloo on CPU, and takes it
    down at the end; a process group set up by the caller is used and left as it is.
    """
    if launched_ranks() == 1:
        yield None
        return
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        yield DataParallel(dist.get_rank(), dist.get_world_size(), device)
    finally:
        if owns_group:
            dist.destroy_process_group()

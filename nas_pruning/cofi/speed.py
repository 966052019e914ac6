"""Measured inference speed of a pruned model relative to its unpruned original."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn


def latency_batch(model: nn.Module, batch_size: int = 32, seq_len: int = 128, seed: int = 0) -> dict[str, torch.Tensor]:
    """A fixed batch of random token ids (no padding) for timing `model`."""
    generator = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    input_ids = torch.randint(min(1000, vocab - 1), vocab, (batch_size, seq_len), generator=generator)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}


@torch.inference_mode()
def measure_speedup(
    baseline: nn.Module, model: nn.Module, batch: dict[str, torch.Tensor], repeats: int = 3
) -> dict[str, float]:
    """Median forward time of `baseline` and `model` on `batch` and their ratio.

    The two are timed alternately after one warm-up pass each, so that load from
    other processes slows both alike. Returns ``baseline_latency``, ``latency``
    (seconds per batch) and ``speedup`` = baseline_latency / latency.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    device = next(model.parameters()).device
    batch = {key: value.to(device) for key, value in batch.items()}
    modes = (baseline.training, model.training)
    baseline.eval()
    model.eval()
    try:
        times: dict[str, list[float]] = {"baseline": [], "model": []}
        for _ in range(repeats + 1):  # the first pass of each is a warm-up
            for name, network in (("baseline", baseline), ("model", model)):
                start = time.perf_counter()
                network(**batch)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                times[name].append(time.perf_counter() - start)
    finally:
        baseline.train(modes[0])
        model.train(modes[1])
    base, pruned = statistics.median(times["baseline"][1:]), statistics.median(times["model"][1:])
    return {"baseline_latency": base, "latency": pruned, "speedup": base / pruned}

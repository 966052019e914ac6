"""Measured inference speed of a pruned model relative to its unpruned original.

Both models are timed alternately (unpruned, pruned, unpruned, ...) after warm-up
passes of each, so that load from other processes on a shared machine slows both
alike; each pair of adjacent passes gives one speedup, and the median over pairs
is reported with its interquartile range.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

#: (batch size, sequence length) of the fair speed comparison: throughput and single-request latency.
SPEED_SHAPES = ((32, 128), (1, 128))


def latency_batch(model: nn.Module, batch_size: int = 32, seq_len: int = 128, seed: int = 0) -> dict[str, torch.Tensor]:
    """A fixed batch of random token ids (no padding) for timing `model`."""
    generator = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    input_ids = torch.randint(min(1000, vocab - 1), vocab, (batch_size, seq_len), generator=generator)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}


@torch.inference_mode()
def interleaved_times(
    baseline: nn.Module, model: nn.Module, batch: dict[str, torch.Tensor], repeats: int, warmup: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Seconds per forward pass of `baseline` and of `model` on `batch`, `repeats` each,
    timed alternately after `warmup` untimed passes of each (both left in their modes)."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    device = next(model.parameters()).device
    batch = {key: value.to(device) for key, value in batch.items()}
    modes = (baseline.training, model.training)
    baseline.eval()
    model.eval()
    times: dict[str, list[float]] = {"baseline": [], "model": []}
    try:
        for _ in range(warmup + repeats):
            for name, network in (("baseline", baseline), ("model", model)):
                start = time.perf_counter()
                network(**batch)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                times[name].append(time.perf_counter() - start)
    finally:
        baseline.train(modes[0])
        model.train(modes[1])
    return np.array(times["baseline"][warmup:]), np.array(times["model"][warmup:])


def measure_speedup(
    baseline: nn.Module, model: nn.Module, batch: dict[str, torch.Tensor], repeats: int = 3
) -> dict[str, float]:
    """A quick comparison (one warm-up pass each) for per-epoch rows: ``baseline_latency``,
    ``latency`` (median seconds per batch) and ``speedup`` = baseline_latency / latency."""
    base, pruned = interleaved_times(baseline, model, batch, repeats)
    base_median, pruned_median = float(np.median(base)), float(np.median(pruned))
    return {"baseline_latency": base_median, "latency": pruned_median, "speedup": base_median / pruned_median}


def speed_comparison(
    baseline: nn.Module,
    model: nn.Module,
    shapes: tuple[tuple[int, int], ...] = SPEED_SHAPES,
    repeats: int = 20,
    warmup: int = 3,
) -> dict[str, float]:
    """The fair comparison of a final model with its unpruned original.

    shapes: (batch size, sequence length) pairs to time, each on a fixed random batch.
    repeats: timed passes of each model per shape (alternating).
    warmup: untimed passes of each model per shape first.
    Returns, for each shape ``BxL``: ``speedup_BxL`` (median over adjacent pairs of
    unpruned time / pruned time) and ``speedup_BxL_iqr``, ``latency_BxL`` and
    ``baseline_latency_BxL`` (median seconds per batch) with their ``_iqr``.
    """
    columns = {}
    for batch_size, seq_len in shapes:
        batch = latency_batch(baseline, batch_size, seq_len)
        base, pruned = interleaved_times(baseline, model, batch, repeats, warmup)
        shape = f"{batch_size}x{seq_len}"
        for name, values in ((f"speedup_{shape}", base / pruned), (f"latency_{shape}", pruned),
                             (f"baseline_latency_{shape}", base)):  # fmt: skip
            low, median, high = np.percentile(values, [25, 50, 75])
            columns[name] = float(median)
            columns[f"{name}_iqr"] = float(high - low)
    return columns

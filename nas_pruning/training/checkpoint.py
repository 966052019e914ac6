"""Checkpoints of training runs (super-network training and CoFi), so that a crashed run resumes where it left off.

A run checkpoints at epoch ends what the rest of it depends on: the training state of its
steps (:meth:`~nas_pruning.training.loop.TrainingSteps.state_dict`: weights, gate scores,
multipliers, optimizers, learning-rate schedules), the random states (:func:`capture_rng`:
torch, CUDA, numpy, Python and the training loader's shuffling generator) and its position and
history. Resuming from it continues the run bit for bit: it ends with the weights an
uninterrupted run would have. A run that crashes mid-epoch redoes that epoch.

The file (`state.pt`) holds only tensors and plain Python values and loads with
`torch.load(weights_only=True)`. It is written atomically with its SHA-256 beside it
(`nas_pruning.files`); a damaged one is refused, naming the folder to delete, and so is one
written with other settings (rather than silently mixed in).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from nas_pruning.files import CheckpointError, load_checkpoint, remove_checkpoint, save_checkpoint

# Version of the payload layout; a checkpoint of another layout is refused with a clear line.
FORMAT = 2


@dataclass
class TrainingState:
    """Where a run stands: epochs and optimizer steps done, training seconds, history."""

    epoch: int = 0
    step: int = 0
    train_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


def _loader_generator(loader: Iterable | None) -> torch.Generator | None:
    # DataLoader draws its shuffling order (and worker seeds) from `loader.generator`
    # when it has one, as `nas_pruning.tasks.make_loader` builds it; else from
    # torch's global generator, which is captured anyway.
    generator = getattr(loader, "generator", None)
    return generator if isinstance(generator, torch.Generator) else None


def capture_rng(sampler: np.random.RandomState | None = None, loader: Iterable | None = None) -> dict[str, Any]:
    """All random states a training run draws from, as plain values and tensors.

    sampler: the numpy random state the run samples with (super-network sampling);
        None: numpy's global one (CoFi).
    loader: the training loader, whose shuffling generator is captured if it has one
        (None: a run that builds its loaders from seeds).
    """
    name, keys, pos, has_gauss, cached = sampler.get_state() if sampler is not None else np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [name, keys.tolist(), pos, has_gauss, cached],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    generator = _loader_generator(loader)
    if generator is not None:
        state["loader"] = generator.get_state()
    return state


def restore_rng(
    state: dict[str, Any], sampler: np.random.RandomState | None = None, loader: Iterable | None = None
) -> None:
    """Restore the random states captured by :func:`capture_rng` (same `sampler` and `loader` arguments)."""
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    numpy_state = (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
    if sampler is not None:
        sampler.set_state(numpy_state)
    else:
        np.random.set_state(numpy_state)
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator = _loader_generator(loader)
    if generator is not None and "loader" in state:
        generator.set_state(state["loader"])


class Checkpoint:
    """The checkpoint of one run in `directory/state.pt`.

    directory: where to keep it (e.g. `output_dir/checkpoint` of a super-network run);
        None keeps no checkpoint (saving does nothing, loading finds none).
    setup: what the run was started with (settings that change its results); a
        checkpoint is resumed only with the same setup.
    """

    FILE = "state.pt"

    def __init__(self, directory: str | os.PathLike | None, setup: dict[str, Any]) -> None:
        self.directory = None if directory is None else Path(directory)
        self.setup = setup

    @property
    def path(self) -> Path | None:
        return None if self.directory is None else self.directory / self.FILE

    def exists(self) -> bool:
        """Whether there is a checkpoint to resume from."""
        return self.path is not None and self.path.is_file()

    def save(self, payload: dict[str, Any]) -> None:
        """Write `payload` (tensors and plain values; numpy scalars become Python numbers) with the setup."""
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        save_checkpoint(_plain({**payload, "format": FORMAT, "setup": self.setup}), self.path)

    def load(self) -> dict[str, Any] | None:
        """The saved payload, or None if there is no checkpoint; refuses one of another setup."""
        if not self.exists():
            return None
        restart = f"delete {self.directory} to start the run over"
        payload = load_checkpoint(self.path, restart)
        if payload.get("format") != FORMAT:
            raise CheckpointError(
                f"the checkpoint in {self.directory} was written by another version of nas_pruning "
                f"(layout {payload.get('format', 1)}, this one reads {FORMAT}); {restart}"
            )
        before, now = payload["setup"], self.setup
        changed = sorted(key for key in set(before) | set(now) if before.get(key) != now.get(key))
        if changed:
            details = "; ".join(f"{k}: checkpoint {before.get(k)!r}, now {now.get(k)!r}" for k in changed)
            raise CheckpointError(
                f"the checkpoint in {self.directory} was written with other settings ({details}); resume with "
                f"the same settings, or use another folder (or delete the checkpoint) to start over"
            )
        return payload

    def clear(self) -> None:
        """Remove the checkpoint (once the run has written its results)."""
        if self.path is not None:
            remove_checkpoint(self.path)


def _plain(value: Any) -> Any:
    """`value` with numpy scalars turned into Python numbers, so that a weights_only load accepts it."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    return value.item() if isinstance(value, np.generic) else value

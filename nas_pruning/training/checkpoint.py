"""Checkpoints of a training run, so that a crashed run resumes where it left off.

A checkpoint holds everything the rest of the run depends on: model, optimizer and
learning-rate schedule, the random states (torch, CUDA, numpy sub-network
sampling, Python, and the training loader's shuffling generator), the position
(epoch, step) and the history. Resuming from it continues the run bit for bit: it
ends with the weights an uninterrupted run would have. Checkpoints are written at
epoch ends; a run that crashes mid-epoch redoes that epoch.

The file loads with `torch.load(weights_only=True)`: it holds only tensors and
plain Python values. It is written atomically with its SHA-256 beside it
(`nas_pruning.files`); a damaged one is refused, naming the folder to delete.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from nas_pruning.files import CheckpointError, load_checkpoint, save_checkpoint


@dataclass
class TrainingState:
    """Where a run stands: epochs and optimizer steps done, training seconds, history."""

    epoch: int = 0
    step: int = 0
    train_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


def _loader_generator(loader: Iterable) -> torch.Generator | None:
    # DataLoader draws its shuffling order (and worker seeds) from `loader.generator`
    # when it has one, as `nas_pruning.tasks.make_loader` builds it; else from
    # torch's global generator, which is checkpointed anyway.
    generator = getattr(loader, "generator", None)
    return generator if isinstance(generator, torch.Generator) else None


def capture_rng(sampler: np.random.RandomState, loader: Iterable) -> dict[str, Any]:
    """All random states a training run draws from."""
    name, keys, pos, has_gauss, cached = sampler.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_sampler": [name, keys.tolist(), pos, has_gauss, cached],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    generator = _loader_generator(loader)
    if generator is not None:
        state["loader"] = generator.get_state()
    return state


def restore_rng(state: dict[str, Any], sampler: np.random.RandomState, loader: Iterable) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy_sampler"]
    sampler.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator = _loader_generator(loader)
    if generator is not None and "loader" in state:
        generator.set_state(state["loader"])


class Checkpoint:
    """The checkpoint of one run in `directory/state.pt`.

    directory: where to keep it (`output_dir/checkpoint` of a run).
    setup: what the run was started with (config, strategy, search space, task,
        steps per epoch); a checkpoint is resumed only with the same setup.
    """

    FILE = "state.pt"

    def __init__(self, directory: str | os.PathLike, setup: dict[str, Any]) -> None:
        self.directory = Path(directory)
        self.setup = setup

    @property
    def path(self) -> Path:
        return self.directory / self.FILE

    def save(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        sampler: np.random.RandomState,
        loader: Iterable,
        state: TrainingState,
    ) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = {
            "setup": self.setup,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": capture_rng(sampler, loader),
            "state": asdict(state),
        }
        save_checkpoint(payload, self.path)

    def load(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        sampler: np.random.RandomState,
        loader: Iterable,
    ) -> TrainingState:
        """Restore everything in place and return the run's state."""
        restart = f"delete {self.directory} to train from the start"
        payload = load_checkpoint(self.path, restart)
        before, now = payload["setup"], self.setup
        changed = sorted(key for key in set(before) | set(now) if before.get(key) != now.get(key))
        if changed:
            details = "; ".join(f"{k}: checkpoint {before.get(k)!r}, now {now.get(k)!r}" for k in changed)
            raise CheckpointError(
                f"the checkpoint in {self.directory} belongs to a run with a different setup ({details}); "
                f"resume with the same settings, or use another output_dir (or delete the checkpoint) to start over"
            )
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        restore_rng(payload["rng"], sampler, loader)
        return TrainingState(**payload["state"])

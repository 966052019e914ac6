"""Resumable state of a run: after every epoch, what is needed to continue from the next.

The folder holds ``state.pt`` (stage, epochs done, training state, the random
number generators' states, history and the run's settings) and, once pruning is
over, ``pruned/``: the extracted model the fine-tuning stage trains. A resumed
run ends bit for bit where an uninterrupted one would: the data order is seeded
by epoch, and everything else that decides the result (weights, gate scores,
multipliers, optimizer states, step counter and the torch / numpy / python RNG
states, which hard-concrete sampling and dropout draw from) is in ``state.pt``.
It holds plain types and tensors only, is written atomically with its SHA-256
beside it and loaded with ``weights_only=True`` (`nas_pruning.files`): a damaged
one is refused, naming the folder to delete. A checkpoint written with other
settings is refused rather than silently mixed in.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel

from nas_pruning.cofi.config import CoFiConfig
from nas_pruning.files import CheckpointError, load_checkpoint, remove_checkpoint, save_checkpoint
from nas_pruning.models import load_model
from nas_pruning.tasks import Task

STATE_FILE = "state.pt"
PRUNED_FOLDER = "pruned"
# Settings that do not change results; a run may resume with other values.
RUNTIME_SETTINGS = ("num_threads", "device")


class RunCheckpoint:
    """Checkpoints of one run in `folder` (None: no checkpoints are kept)."""

    def __init__(self, folder: str | os.PathLike | None, config: CoFiConfig) -> None:
        self.folder = None if folder is None else Path(folder)
        self.settings = {k: v for k, v in config.to_dict().items() if k not in RUNTIME_SETTINGS}

    def load(self) -> dict | None:
        """The saved state, or None if there is none."""
        if self.folder is None or not (self.folder / STATE_FILE).exists():
            return None
        state = load_checkpoint(self.folder / STATE_FILE, f"delete {self.folder} to start the run over")
        if state["settings"] != self.settings:
            changed = sorted(k for k in self.settings if state["settings"].get(k) != self.settings[k])
            raise CheckpointError(
                f"the checkpoint in {self.folder} was written with other settings ({', '.join(changed)} differ); "
                "remove it or write to another folder"
            )
        return state

    def save(self, state: dict) -> None:
        if self.folder is None:
            return
        save_checkpoint(_plain({**state, "settings": self.settings}), self.folder / STATE_FILE)

    def save_pruned(self, model: PreTrainedModel) -> None:
        if self.folder is not None:
            model.save_pretrained(self.folder / PRUNED_FOLDER)

    def load_pruned(self, task: Task) -> PreTrainedModel:
        return load_model(str(self.folder / PRUNED_FOLDER), task.num_labels, task.is_regression)

    def clear(self) -> None:
        """Remove the checkpoint once the run has written its results."""
        if self.folder is not None:
            remove_checkpoint(self.folder / STATE_FILE)
            shutil.rmtree(self.folder / PRUNED_FOLDER, ignore_errors=True)


def rng_state() -> dict:
    """The states of every random number generator a run draws from, as plain types and tensors."""
    name, keys, position, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "position": position,
                  "has_gauss": has_gauss, "gauss": gauss},
        "python": random.getstate(),
    }  # fmt: skip
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the generators to a state from :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    saved = state["numpy"]
    keys = saved["keys"].numpy().astype(np.uint32)
    np.random.set_state((saved["name"], keys, saved["position"], saved["has_gauss"], saved["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain(value):
    """`value` with numpy scalars turned into Python numbers, so that a weights_only load accepts it."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    return value.item() if isinstance(value, np.generic) else value

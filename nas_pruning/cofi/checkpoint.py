"""Resumable state of a run: after every epoch, what is needed to continue from the next.

The folder holds ``state.pt`` (stage, epochs done, training state, history and
the run's settings) and, once pruning is over, ``pruned/``: the extracted model
the fine-tuning stage trains. A checkpoint written with other settings is
refused rather than silently mixed in. ``state.pt`` is written atomically with its
SHA-256 beside it and loaded with ``weights_only=True`` (`nas_pruning.files`): a
damaged one is refused, naming the folder to delete.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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
        save_checkpoint({**state, "settings": self.settings}, self.folder / STATE_FILE)

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

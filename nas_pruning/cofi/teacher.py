"""The teacher: the unpruned model fine-tuned on the (limited) target data, cached on disk.

Every run with the same model, task, examples, seed, sequence length and teacher
training settings needs the same teacher, so sweeps train it once: it is saved
under ``cache_dir/teacher-<task>-<hash of those settings>`` and loaded from there
afterwards. A teacher is written to a temporary folder and renamed into place,
so a concurrent run never sees half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import PreTrainedModel

from nas_pruning.cofi.config import CoFiConfig
from nas_pruning.cofi.data import TransferData
from nas_pruning.cofi.finetuning import FineTuner
from nas_pruning.cofi.transfer import MultiTaskModel
from nas_pruning.models import load_model

DEFAULT_CACHE = Path("~/.cache/nas_pruning/cofi").expanduser()


def teacher_path(config: CoFiConfig) -> Path:
    """Where the teacher of `config` is cached."""
    key = {
        name: getattr(config, name)
        for name in ("model", "pooling", "task", "target_examples", "seed", "max_length", "batch_size", "data_dir",
                     "teacher_epochs", "teacher_learning_rate")
    }  # fmt: skip
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return Path(config.cache_dir or DEFAULT_CACHE).expanduser() / f"teacher-{config.task}-{digest}"


def load_or_train_teacher(config: CoFiConfig, data: TransferData, device, progress: bool = True) -> PreTrainedModel:
    """The cached teacher of `config`, training (and caching) it first if needed."""
    task = data.task
    path = teacher_path(config)
    if (path / "config.json").exists():
        return load_model(str(path), task.num_labels, task.is_regression).to(device).eval()
    torch.manual_seed(config.seed)
    model = load_model(config.model, task.num_labels, task.is_regression, pooling=config.pooling).to(device)
    trainer = FineTuner(MultiTaskModel(model), config.teacher_learning_rate)
    for epoch in range(config.teacher_epochs):
        trainer.train_epoch(
            data.train_loader(epoch, config.seed, config.batch_size),
            description=f"teacher epoch {epoch + 1}/{config.teacher_epochs}",
            progress=progress,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}-"))
    model.save_pretrained(staging)
    try:
        os.rename(staging, path)
    except OSError:  # another run cached the same teacher meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    return model.eval()

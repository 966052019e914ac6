"""The folder of a trained super-network: a plain Hugging Face model plus `supernet.json`.

```
folder/
  config.json, model.safetensors   the super-network (`save_pretrained`)
  tokenizer files                  when a tokenizer was given
  supernet.json                    how it was trained: strategy, search space, task,
                                   training config, data split, validation history
```
The model loads with plain transformers as well; `load_supernet` adds the record.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from nas_pruning.models.loading import from_pretrained

from nas_pruning.files import stored_path, write_text_atomic

INFO_FILE = "supernet.json"


def save_supernet(path: str | os.PathLike, model: nn.Module, info: dict[str, Any], tokenizer=None) -> Path:
    """Write `model` (and `tokenizer`) with `save_pretrained` and `info` as supernet.json; returns the folder."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    write_text_atomic(folder / INFO_FILE, json.dumps(info, indent=2) + "\n")
    return folder


def read_info(path: str | os.PathLike) -> dict[str, Any]:
    """The supernet.json record of the super-network (or fine-tuned model) in folder `path`."""
    info_file = Path(path) / INFO_FILE
    if not info_file.is_file():
        raise FileNotFoundError(
            f"{path} is not a super-network folder: it has no {INFO_FILE} "
            f"(`nas-pruning finetune` / nas_pruning.supernet.finetune write them)"
        )
    return json.loads(info_file.read_text())


def load_supernet(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """The super-network saved in folder `path` (in eval mode) and its supernet.json record."""
    info = read_info(path)
    model = from_pretrained(path)
    return model.eval(), info


def training_seconds(path: str | os.PathLike) -> float:
    """Training time recorded in a super-network / fine-tuned folder (0 if none), plus
    that of the folder it started from (`base_model`), if that is one too."""
    info_file = Path(path) / INFO_FILE
    if not info_file.is_file():
        return 0.0
    info = json.loads(info_file.read_text())
    own = float((info.get("history") or [{}])[-1].get("train_seconds", 0.0))
    base = info.get("base_model")
    return own + (training_seconds(stored_path(base, info_file)) if base else 0.0)

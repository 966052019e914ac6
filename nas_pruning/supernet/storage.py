"""The folder of a trained super-network: a plain Hugging Face model plus `supernet.json`.

```
folder/
  config.json, model.safetensors   the super-network (`save_pretrained`)
  tokenizer files                  when a tokenizer was given
  supernet.json                    how it was trained: strategy, search space, task,
                                   training config, data split, validation history
```
The model loads with plain transformers as well; `load_supernet` adds the record, a
`SupernetRecord` (versioned JSON: the defaults of what older records leave out are its fields').
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from torch import nn

from nas_pruning.files import stored_path, write_text_atomic
from nas_pruning.models.loading import from_pretrained
from nas_pruning.tasks import DEFAULT_MAX_LENGTH, VAL_FRACTION
from nas_pruning.training.config import TrainingConfig

INFO_FILE = "supernet.json"
#: Version of the supernet.json this package writes (its "version" field); a record without one was
#: written before records were versioned and loads the same way.
RECORD_VERSION = 1
#: The mega-batch size of length-grouped training before records stored it.
LEGACY_MEGA_BATCHES = 50
#: The space a search of a super-network picks when neither the search nor the record names one.
DEFAULT_SEARCH_SPACE = "small"

def versioned_json(record: Any, version: int) -> str:
    """A dataclass record as indented JSON, its first field `version`."""
    return json.dumps({"version": version, **asdict(record)}, indent=2) + "\n"


def record_fields(kind: type, data: Mapping[str, Any], version: int, source: str | os.PathLike) -> dict[str, Any]:
    """The fields of dataclass `kind` in the JSON object `data` read from `source`.

    Refuses a record of a later version than `version` (this package's); keys no field of `kind`
    holds (written by an older version) are left out, missing fields take `kind`'s defaults.
    """
    written = data.get("version", 0)
    if not isinstance(written, int) or written > version:
        raise ValueError(
            f"{source} is a record of version {written!r}, newer than this nas_pruning reads "
            f"(up to {version}): upgrade nas_pruning"
        )
    names = {f.name for f in fields(kind)}
    return {name: value for name, value in data.items() if name in names}


@dataclass(frozen=True)
class DataSplit:
    """How a super-network's task data was drawn; a search scores on the same validation split.

    data_dir: folder of GLUE TSVs (absolute); None: env GLUE_DIR, else the hub.
    split_seed: seed of the train/validation split of the GLUE train set.
    val_fraction: share of the train set held out as validation.
    max_train_examples: trained on this many random examples of the train part; None: all.
    max_length: tokens per example (longer texts are truncated).
    """

    data_dir: str | None = None
    split_seed: int = 0
    val_fraction: float = VAL_FRACTION
    max_train_examples: int | None = None
    max_length: int = DEFAULT_MAX_LENGTH


@dataclass(frozen=True)
class SupernetRecord:
    """supernet.json: how a super-network (or fine-tuned model) was trained.

    task: registry name of its task. base_model: hub name or folder it started from.
    strategy: the strategy's name and options (`Strategy.describe()`).
    search_space: the space its sub-networks were drawn from; None: plain fine-tuning.
    pooling: what its classifier reads ("cls" | "mean").
    training: its training hyperparameters. data: its data split.
    importance_examples: examples its heads and units were reordered by (0: not reordered).
    history: one entry per epoch (step, train_loss, train_seconds, validation scores, ...).
    data_parallel_ranks: processes it was trained on data-parallel; None: one.
    """

    task: str | None = None
    base_model: str | None = None
    strategy: dict[str, Any] = field(default_factory=dict)
    search_space: str | None = None
    pooling: str | None = None
    training: TrainingConfig | None = None
    data: DataSplit = DataSplit()
    importance_examples: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    data_parallel_ranks: int | None = None

    @property
    def searched_space(self) -> str:
        """The space a search picks when it is not told one: the one trained with, else DEFAULT_SEARCH_SPACE."""
        return self.search_space or DEFAULT_SEARCH_SPACE

    def to_json(self) -> str:
        return versioned_json(self, RECORD_VERSION)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str | os.PathLike) -> "SupernetRecord":
        """The record in the JSON object `data` read from the file `source` (a relative data_dir,
        as older versions wrote it, is resolved against it)."""
        values = record_fields(cls, data, RECORD_VERSION, source)
        split = dict(values.get("data") or {})
        if split.get("data_dir") is not None:
            split["data_dir"] = stored_path(split["data_dir"], source)
        values["data"] = DataSplit(**record_fields(DataSplit, split, RECORD_VERSION, source))
        if values.get("training") is not None:
            training = record_fields(TrainingConfig, values["training"], RECORD_VERSION, source)
            # Records from before these settings trained on plain shuffled batches, and those from
            # before `mega_batches` grouped 50 batches per mega-batch.
            training.setdefault("group_by_length", False)
            training.setdefault("mega_batches", LEGACY_MEGA_BATCHES)
            values["training"] = TrainingConfig(**training)
        return cls(**values)


def save_supernet(path: str | os.PathLike, model: nn.Module, record: SupernetRecord, tokenizer=None) -> Path:
    """Write `model` (and `tokenizer`) with `save_pretrained` and `record` as supernet.json; returns the folder."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    write_text_atomic(folder / INFO_FILE, record.to_json())
    return folder


def read_info(path: str | os.PathLike) -> SupernetRecord:
    """The supernet.json record of the super-network (or fine-tuned model) in folder `path`."""
    info_file = Path(path) / INFO_FILE
    if not info_file.is_file():
        raise FileNotFoundError(
            f"{path} is not a super-network folder: it has no {INFO_FILE} "
            f"(`nas-pruning finetune` / nas_pruning.supernet.finetune write them)"
        )
    return SupernetRecord.from_json(json.loads(info_file.read_text()), info_file)


def load_supernet(path: str | os.PathLike) -> tuple[nn.Module, SupernetRecord]:
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
    info = read_info(path)
    own = float((info.history or [{}])[-1].get("train_seconds", 0.0))
    base = info.base_model
    return own + (training_seconds(stored_path(base, info_file)) if base else 0.0)

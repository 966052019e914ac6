"""The main job (`nas-pruning run`): fine-tune, train the super-network, search it, export the knee point.

It sits above `nas_pruning.export`, which reads the search folders `nas_pruning.experiments` writes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nas_pruning.experiments.weight_sharing import SearchOutcome, SearchSettings, run_search
from nas_pruning.export import ExportSettings, export_member
from nas_pruning.supernet import finetune

# `run --quick`: minutes on 2 CPU cores, and still a front that beats the trivial predictor on STS-B.
QUICK = {"epochs": 1, "max_train_examples": 1000, "supernet_epochs": 1, "num_evaluations": 20,
         "max_validation_examples": 200}


def quick_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The `run --quick` preset applied to the job's settings: a small super-network and a short search.

    settings: the job's `epochs`, `max_train_examples`, `supernet_epochs`, `num_evaluations` and
        `max_validation_examples` as the user gave them (None: not given).
    Returns those five settings: `epochs` is QUICK's, `supernet_epochs` at most QUICK's, and the others
    QUICK's where the user gave none (numbers the user gave are kept).
    """
    return {
        "epochs": QUICK["epochs"],
        "max_train_examples": settings["max_train_examples"] or QUICK["max_train_examples"],
        "supernet_epochs": min(settings["supernet_epochs"], QUICK["supernet_epochs"]),
        "num_evaluations": QUICK["num_evaluations"] if settings["num_evaluations"] is None
        else settings["num_evaluations"],
        "max_validation_examples": settings["max_validation_examples"] or QUICK["max_validation_examples"],
    }


def run_pipeline(
    task: str,
    output_dir: str | os.PathLike | None,
    training: Mapping[str, Any],
    search: SearchSettings,
    export: ExportSettings,
    supernet_epochs: int,
    on_search: Callable[[SearchOutcome, Path], None] | None = None,
) -> Path:
    """Run the main job into `output_dir` and return the exported model's folder (`output_dir/model`).

    task: GLUE task name (see nas_pruning.tasks.TASKS).
    output_dir: the job's folder (None: nas_pruning_runs/<task>); it gets finetuned/ (when `supernet_epochs`
        > 0), supernet/, search/ and model/ (replaced by a rerun).
    training: keyword arguments of `nas_pruning.supernet.finetune` other than task and output_dir.
    search: how the super-network is searched.
    export: how the knee point of the front is exported.
    supernet_epochs: > 0 (and a strategy other than "standard"): fine-tune the full model first with
        `training` (strategy standard, reordered by importance), then train the super-network from it for
        this many epochs; 0: train the super-network from `training["model"]` directly.
    on_search: called with the search's outcome and folder once the search is done, before the export.

    Raises `nas_pruning.export.NothingLearned` when no front member beats the trivial predictor.
    """
    root = Path(output_dir or f"nas_pruning_runs/{task}")
    if supernet_epochs > 0 and training.get("strategy", "full") != "standard":
        # Plain fine-tuning first, reordered by importance; the super-network continues from it
        # (docs/weight_sharing.md: from the pre-trained model a short super-network training fails).
        finetuned = finetune(task, **{**training, "strategy": "standard"}, output_dir=root / "finetuned")
        training = {**training, "model": str(finetuned), "epochs": supernet_epochs, "importance_examples": 0}
    supernet_dir = finetune(task, **training, output_dir=root / "supernet")
    outcome = run_search(supernet_dir, root / "search", search, data_dir=training.get("data_dir"))
    if on_search is not None:
        on_search(outcome, root / "search")
    # The job's own model folder: a rerun of the job replaces it.
    return export_member(root / "search", root / "model", settings=export, overwrite=True)

"""Standard NAS, the slow and honest reference of weight-sharing NAS.

Every candidate of the SMALL search space (first `num_layers` layers, first
`num_heads` heads and `num_units` units in each) is extracted from the
*pre-trained* model (not the fine-tuned one), gets a fresh classification head and
is fine-tuned on its own. Each candidate is one Syne Tune trial run by the
LocalBackend (or as a Ray task: `nas_pruning.backends.trial_engine`) with this file
as entry point (the experiment: `nas_pruning.experiments.standard_nas`):

    python -m nas_pruning.baselines.standard_nas --num_layers 3 --num_heads 6 \
        --num_units 768 --task rte --epochs 5

which reports `epoch`, `error` (validation), `params` (parameter ratio of the
extracted candidate), `metric`, `test_error` and `test_metric` after every epoch,
so that multi-fidelity schedulers (MOASHA: grace period 1, reduction factor 3) can
stop poor candidates early.

A trial checkpoints after every epoch in Syne Tune's checkpoint folder and resumes
from it when restarted there (schedulers that pause and resume trials); checkpoints
of finished trials are deleted.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

import torch
from syne_tune import Reporter
from syne_tune.constants import ST_CHECKPOINT_DIR

from nas_pruning.baselines.data import load_baseline_data
from nas_pruning.models import extract_subnetwork, load_model, load_tokenizer, parameter_ratio
from nas_pruning.search_spaces import get_search_space
from nas_pruning.training import TrainingConfig, train_supernet

METHOD = "standard_nas"
SEARCH_SPACE = "small"

# The trial's settings besides the candidate: name -> (type, default). `task` is
# required; model None is the bundled all-MiniLM-L6-v2.
TRIAL_SETTINGS: dict[str, tuple[type, Any]] = {
    "task": (str, None),
    "model": (str, None),
    "pooling": (str, "auto"),
    "epochs": (int, 5),
    "seed": (int, 0),
    "split_seed": (int, None),
    "data_dir": (str, None),
    "batch_size": (int, 32),
    "learning_rate": (float, 2e-5),
    "max_train_examples": (int, None),
    "max_validation_examples": (int, None),
    "max_length": (int, 128),
    "num_threads": (int, None),
}


def train_candidate(config: dict[str, Any], checkpoint_dir: str | os.PathLike | None = None) -> None:
    """Fine-tune one candidate and report after every epoch (the body of a trial).

    config: num_layers, num_heads, num_units (the SMALL-space candidate) and the
        settings of TRIAL_SETTINGS (task, model, epochs, ...).
    checkpoint_dir: where to checkpoint after every epoch and resume from.
    """
    torch.set_num_threads(config.get("num_threads") or os.cpu_count())
    tokenizer = load_tokenizer(config["model"])
    data = load_baseline_data(
        config["task"], tokenizer, config.get("data_dir"), seed=config["seed"], split_seed=config.get("split_seed"),
        batch_size=config["batch_size"],
        max_train_examples=config.get("max_train_examples"),
        max_validation_examples=config.get("max_validation_examples"), max_length=config["max_length"],
    )
    torch.manual_seed(config["seed"])  # the new classification head
    pretrained = load_model(
        config["model"], num_labels=data.task.num_labels, is_regression=data.task.is_regression,
        pooling=config.get("pooling", "auto"),
    )
    space = get_search_space(SEARCH_SPACE, pretrained.config)
    sub = space.to_subnetwork({name: config[name] for name in space.config_space})
    params = parameter_ratio(pretrained, sub)
    model = extract_subnetwork(pretrained, sub)
    del pretrained
    # The GPU Ray (or LocalBackend) gave this trial, if any; training and scoring follow the model.
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    report = Reporter()

    def on_epoch_end(epoch: int, metrics: dict[str, Any]) -> None:
        report(epoch=epoch, params=params, **data.score(model))

    training = TrainingConfig(
        epochs=config["epochs"], learning_rate=config["learning_rate"], batch_size=config["batch_size"],
        seed=config["seed"], num_threads=config.get("num_threads"),
    )
    train_supernet(
        model, data.train, data.task, strategy="standard", config=training,
        output_dir=checkpoint_dir, on_epoch_end=on_epoch_end, progress=False,
    )


def _parse_args(argv: Sequence[str] | None) -> tuple[dict[str, Any], str | None]:
    parser = argparse.ArgumentParser(description="Fine-tune one SMALL-space candidate (a standard-NAS trial)")
    for name in ("num_layers", "num_heads", "num_units"):
        parser.add_argument(f"--{name}", type=int, required=True)
    for name, (kind, default) in TRIAL_SETTINGS.items():
        parser.add_argument(f"--{name}", type=kind, default=default, required=name == "task")
    parser.add_argument(f"--{ST_CHECKPOINT_DIR}", default=None)
    args = vars(parser.parse_args(argv))
    return args, args.pop(ST_CHECKPOINT_DIR)


if __name__ == "__main__":
    trial_config, trial_checkpoint_dir = _parse_args(sys.argv[1:])
    train_candidate(trial_config, trial_checkpoint_dir)

"""One CoFi(-transfer) run: teacher -> pruning -> deterministic gates -> extraction -> fine-tuning.

:func:`run_cofi` reports after every epoch (pruning and fine-tuning epochs form
one axis, 1 .. prune_epochs + finetune_epochs) a row with the validation
``error`` (1 - metric) and ``metric``, ``params`` (parameters of the pruned model
over those of the unpruned one, embeddings included), the real ``sparsity`` (as
CoFi counts it) and the measured ``speedup`` / ``latency`` of the model the run
would export at that point: during pruning, the current target mask made
deterministic at the target sparsity and extracted. The last row also holds the
test scores; before it is reported, the pruned model is saved in
``output_dir/model`` (a plain-transformers folder with its tokenizer), with
``history.csv`` and ``result.json``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch import nn

from nas_pruning.cofi.config import CoFiConfig
from nas_pruning.cofi.data import TransferData, load_transfer_data
from nas_pruning.cofi.finetuning import FineTuner
from nas_pruning.cofi.gated_model import extract_gated
from nas_pruning.cofi.pruner import CoFiPruner
from nas_pruning.cofi.sparsity import measured_sparsity
from nas_pruning.cofi.speed import latency_batch, measure_speedup
from nas_pruning.cofi.teacher import load_or_train_teacher, teacher_path
from nas_pruning.cofi.transfer import MultiTaskModel
from nas_pruning.evaluation import evaluate
from nas_pruning.models import count_parameters, get_adapter, load_model, load_tokenizer
from nas_pruning.models.loading import load_config, max_sequence_length
from nas_pruning.tasks import get_task
from nas_pruning.training.checkpoint import Checkpoint, capture_rng, restore_rng

MODEL_FOLDER = "model"
# Beside the checkpoint, once pruning is over: the extracted model the fine-tuning stage trains.
PRUNED_FOLDER = "pruned"
# Settings that do not change results; a run may resume with other values.
RUNTIME_SETTINGS = ("num_threads", "device")
Report = Callable[[dict], None]


def run_cofi(
    config: CoFiConfig,
    output_dir: str | os.PathLike,
    report: Report | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict:
    """Run `config` and write its results to `output_dir`.

    report: called with each epoch's row (see the module docstring), e.g. a
        Syne Tune ``Reporter``'s keyword call.
    checkpoint_dir: where to checkpoint after every epoch and resume from; None
        keeps no checkpoints.
    Returns the last row. Raises
    :class:`~nas_pruning.cofi.divergence.TrainingDiverged` (and writes no model)
    if a loss becomes NaN.
    """
    torch.set_num_threads(config.num_threads or os.cpu_count())
    longest = max_sequence_length(load_config(config.model))  # also: a missing model is one clear line
    if config.max_length > longest:
        raise ValueError(
            f"max_length must be at most {longest} (the model's position embeddings), got {config.max_length}"
        )
    return CoFiRun(config, Path(output_dir), report, run_checkpoint(checkpoint_dir, config), progress).run()


def run_checkpoint(folder: str | os.PathLike | None, config: CoFiConfig) -> Checkpoint:
    """The checkpoint of a run of `config` in `folder` (None: none is kept). It holds the
    stage, the epochs done, the training state of the stage, the random states and the
    history; the data order is seeded by epoch, so a resumed run ends bit for bit where an
    uninterrupted one would. Settings that do not change results may differ on resuming."""
    settings = {key: value for key, value in config.to_dict().items() if key not in RUNTIME_SETTINGS}
    return Checkpoint(folder, settings)


def prepare_teacher(config: CoFiConfig, progress: bool = True) -> Path:
    """Fine-tune and cache the teacher of `config` unless it is cached; its folder.
    Lets a search train the teacher once before its trials start."""
    torch.set_num_threads(config.num_threads or os.cpu_count())
    data = load_transfer_data(dataclasses.replace(config, coupling="none"), load_tokenizer(config.model))
    load_or_train_teacher(config, data, _device(config), progress)
    return teacher_path(config)


def _device(config: CoFiConfig) -> torch.device:
    return torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))


class CoFiRun:
    """The stages of one run and the bookkeeping of its epoch rows."""

    def __init__(
        self, config: CoFiConfig, output_dir: Path, report: Report | None, checkpoint: Checkpoint, progress: bool
    ) -> None:
        self.config = config
        self.output_dir = output_dir
        self.report = report
        self.checkpoint = checkpoint
        self.progress = progress
        self.history: list[dict] = []

    def run(self) -> dict:
        config = self.config
        self.device = _device(config)
        self.data: TransferData = load_transfer_data(config, load_tokenizer(config.model))
        self.teacher = load_or_train_teacher(config, self.data, self.device, self.progress)
        self.full_parameters = count_parameters(self.teacher)
        self.dims = get_adapter(self.teacher).dims(self.teacher.config)
        self.timing_batch = latency_batch(self.teacher, config.latency_batch_size, config.latency_seq_len)
        self.val_batches = self.data.eval_loader("validation", config.batch_size)
        self.aux_task = get_task(config.aux_task) if config.aux_task else None

        state = self.checkpoint.load()
        if state is not None:
            self.history = state["history"]
        if state is None or state["stage"] == "prune":
            pruned = self._prune(state)
            state = None
        else:
            task = self.data.task
            pruned = load_model(str(self.checkpoint.directory / PRUNED_FOLDER), task.num_labels, task.is_regression)
            pruned = pruned.to(self.device)
        return self._finetune(pruned, state)

    def _save_state(self, stage: str, epoch: int, training: dict) -> None:
        """Checkpoint the end of `epoch` of `stage`; the RNG states make the continuation exact."""
        state = {"stage": stage, "epoch": epoch, "training": training, "rng": capture_rng(), "history": self.history}
        self.checkpoint.save(state)

    # -- stages -----------------------------------------------------------------
    def _prune(self, state: dict | None) -> nn.Module:
        config = self.config
        torch.manual_seed(config.seed)
        student = copy.deepcopy(self.teacher).train()
        model = MultiTaskModel(student, self.aux_task if config.uses_auxiliary("prune") else None)
        steps_per_epoch = len(self.data.train_loader(0, config.seed, config.batch_size))
        pruner = CoFiPruner(model, self.teacher, config, steps_per_epoch)
        start = 0
        if state is not None:
            pruner.load_state_dict(state["training"])
            restore_rng(state["rng"])
            start = state["epoch"]
        pruned = None
        for epoch in range(start, config.prune_epochs):
            aux = self._aux_batches(epoch) if model.auxiliary is not None else None
            losses = pruner.train_epoch(
                self.data.train_loader(epoch, config.seed, config.batch_size), aux, epoch, self.progress
            )
            gates = pruner.deterministic_gates()
            pruned = extract_gated(model.target, gates)
            last = epoch + 1 == config.prune_epochs and not config.finetune_epochs
            row = self._score("prune", epoch + 1, pruned, losses, last=last)
            self._save_state("prune", epoch + 1, pruner.state_dict())
            self._report(row)
        if pruned is None:  # resumed after the last pruning epoch's checkpoint
            pruned = extract_gated(model.target, pruner.deterministic_gates())
        if self.checkpoint.directory is not None:
            pruned.save_pretrained(self.checkpoint.directory / PRUNED_FOLDER)
        return pruned

    def _finetune(self, pruned: nn.Module, state: dict | None) -> dict:
        config = self.config
        model = MultiTaskModel(pruned.train(), self.aux_task if config.uses_auxiliary("finetune") else None)
        tuner = FineTuner(
            model,
            config.finetune_learning_rate,
            teacher=self.teacher,
            temperature=config.distill_temperature,
            task_loss_weight=config.task_loss_weight,
            logit_distill_weight=config.logit_distill_weight,
            aux_weight=config.aux_weight,
        )
        start = 0
        if state is None:
            # The stage's starting point (a new auxiliary head draws from the RNG): resuming starts here exactly.
            self._save_state("finetune", 0, tuner.state_dict())
        else:
            tuner.load_state_dict(state["training"])
            restore_rng(state["rng"])
            start = state["epoch"]
        for epoch in range(start, config.finetune_epochs):
            aux = self._aux_batches(config.prune_epochs + epoch) if model.auxiliary is not None else None
            loss = tuner.train_epoch(
                self.data.train_loader(config.prune_epochs + epoch, config.seed, config.batch_size),
                aux,
                description=f"fine-tune epoch {epoch + 1}/{config.finetune_epochs}",
                progress=self.progress,
            )
            last = epoch + 1 == config.finetune_epochs
            row = self._score("finetune", config.prune_epochs + epoch + 1, model.target, {"loss": loss}, last=last)
            if not last:
                self._save_state("finetune", epoch + 1, tuner.state_dict())
            self._report(row)
        self.checkpoint.clear()
        if self.checkpoint.directory is not None:
            shutil.rmtree(self.checkpoint.directory / PRUNED_FOLDER, ignore_errors=True)
        return self.history[-1]

    def _aux_batches(self, epoch: int):
        return self.data.auxiliary_batches(epoch, self.config.seed, self.config.batch_size)

    # -- rows -------------------------------------------------------------------
    def _score(self, stage: str, epoch: int, model: nn.Module, losses: dict, last: bool) -> dict:
        """Score `model` (the one the run would export now) and append the epoch's row;
        after the last epoch, also score the test set and save everything."""
        task = self.data.task
        scores = evaluate(model, self.val_batches, task)
        row = {
            "epoch": epoch,
            "stage": stage,
            "error": scores["error"],
            "metric": scores["metric"],
            "params": count_parameters(model) / self.full_parameters,
            "sparsity": measured_sparsity(model, self.dims),
            **measure_speedup(self.teacher, model, self.timing_batch, self.config.latency_repeats),
            **losses,
        }
        if last:
            test = evaluate(model, self.data.eval_loader("test", self.config.batch_size), task)
            row.update(test_metric=test["metric"], test_error=test["error"])
        self.history.append(row)
        if last:
            self._save(model)
        return row

    def _report(self, row: dict) -> None:
        # After the checkpoint: a scheduler may stop the trial as soon as it sees the row.
        if self.report is not None:
            self.report(row)

    def _save(self, model: nn.Module) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(self.output_dir / MODEL_FOLDER)
        self.data.tokenizer.save_pretrained(self.output_dir / MODEL_FOLDER)
        pd.DataFrame(self.history).to_csv(self.output_dir / "history.csv", index=False)
        result = {
            "config": self.config.to_dict(),
            "result": self.history[-1],
            "model_dir": str((self.output_dir / MODEL_FOLDER).resolve()),
        }
        (self.output_dir / "result.json").write_text(json.dumps(result, indent=2))


"""Super-network training (and plain fine-tuning, strategy `standard`) on the loop of
:mod:`nas_pruning.training.loop`.

Every step (:class:`SuperNetworkSteps`): the strategy lists its passes (full network,
sub-networks, distilled or not), each pass runs forward and backward through the shared
weights, the gradients add up, and AdamW takes one step. Each epoch ends with validation, a
checkpoint and the `on_epoch_end` callback, in that order, so that a callback that stops the
process (a Syne Tune pause, a crash) loses no finished epoch.
"""

from __future__ import annotations

import os
import random
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterable, Sized

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from nas_pruning.evaluation import evaluate
from nas_pruning.models import select_subnetwork
from nas_pruning.search_spaces import SearchSpace, get_search_space
from nas_pruning.tasks import Task
from nas_pruning.training.checkpoint import Checkpoint, TrainingState, capture_rng, restore_rng
from nas_pruning.training.config import TrainingConfig
from nas_pruning.training.distillation import DistillationLoss, task_loss
from nas_pruning.training.distributed import DataParallel
from nas_pruning.training.loop import TrainingSteps, train_epoch
from nas_pruning.training.strategies import Pass, Strategy, as_strategy

CHECKPOINT_DIR = "checkpoint"


def has_checkpoint(output_dir: str | os.PathLike | None) -> bool:
    """Whether `train_supernet(..., output_dir=output_dir)` would resume from a checkpoint."""
    return output_dir is not None and (Path(output_dir) / CHECKPOINT_DIR / Checkpoint.FILE).is_file()


def train_supernet(
    model: nn.Module,
    train_loader: Iterable[dict[str, torch.Tensor]],
    task: Task,
    strategy: str | Strategy = "full",
    search_space: SearchSpace | str | None = None,
    config: TrainingConfig | None = None,
    val_loader: Iterable[dict[str, torch.Tensor]] | None = None,
    output_dir: str | os.PathLike | None = None,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
    progress: bool = True,
    data_parallel: DataParallel | None = None,
) -> list[dict[str, Any]]:
    """Train `model` in place as a super-network (or fine-tune it, strategy "standard").

    model: a Hugging Face sequence classifier; with strategy "standard" any
        architecture works (pruned models included), the others sample
        sub-networks of `search_space` through `select_subnetwork`.
    train_loader: batches with `labels` and a length (e.g. `nas_pruning.tasks.make_loader`).
    task: gives the loss (classification or regression) and the validation metric.
    strategy: a name from STRATEGIES or a Strategy object.
    search_space: a SearchSpace of `model` or its name ("small", "medium", "large",
        "layer"); needed by every strategy but "standard".
    config: hyperparameters; TrainingConfig() if None.
    val_loader: batches to validate on after each epoch (skipped if None).
    output_dir: where to checkpoint after each epoch (`output_dir/checkpoint/`);
        a run finds its checkpoint there and resumes from it. None: no checkpoints.
    on_epoch_end: called as on_epoch_end(epoch, metrics) after each epoch's
        validation and checkpoint; epoch counts from 1.
    progress: show a tqdm progress bar.
    data_parallel: this process's rank in a data-parallel run (see
        `nas_pruning.training.distributed`): `train_loader` is then this rank's shard
        (`DataParallel.loader`), gradients and the reported loss are averaged over
        the ranks every step, and only rank 0 writes checkpoints and shows progress.
        Every rank validates and calls `on_epoch_end` alike. None: one process.

    Returns the history: one dict per epoch with `epoch`, `step`, `train_loss`
    (mean over the epoch's steps of the summed loss of all passes), `lr`,
    `train_seconds` (cumulative, validation excluded) and, with a val_loader,
    `val_metric` and `val_error` of the full network plus `val_smallest_error` and
    `val_midpoint_error` when validating sub-networks. The model is left in eval mode.
    """
    config = config or TrainingConfig()
    torch.set_num_threads(config.num_threads or os.cpu_count())
    strategy = as_strategy(strategy, num_random=config.num_random)
    space = get_search_space(search_space, model.config) if isinstance(search_space, str) else search_space
    if strategy.needs_search_space and space is None:
        raise ValueError(
            f"strategy {strategy.name!r} samples sub-networks: pass a search_space (a SearchSpace or its name)"
        )
    steps_per_epoch = _num_batches(train_loader)
    total_steps = config.total_steps(steps_per_epoch)
    sampler = np.random.RandomState(config.seed)
    steps = SuperNetworkSteps(model, task, strategy, space, config, sampler, total_steps, data_parallel)
    setup = {
        **{k: v for k, v in asdict(config).items() if k != "num_threads"},  # threads do not change results
        "strategy": strategy.describe(),
        "search_space": None if space is None else space.name,
        "task": task.name,
        "steps_per_epoch": steps_per_epoch,
    }
    if data_parallel is not None:
        setup["data_parallel_ranks"] = data_parallel.world_size
    checkpoint = Checkpoint(None if output_dir is None else Path(output_dir) / CHECKPOINT_DIR, setup)
    resume = checkpoint.exists()
    if data_parallel is not None:
        data_parallel.check_same_on_all_ranks(resume, f"whether a checkpoint exists in {output_dir}")
    if resume:
        saved = checkpoint.load()
        steps.load_state_dict(saved["training"])
        restore_rng(saved["rng"], sampler, train_loader)
        state = TrainingState(**saved["state"])
    else:
        state = TrainingState()
        torch.manual_seed(config.seed)
        random.seed(config.seed)
    if data_parallel is not None:
        data_parallel.broadcast_parameters(model)
    is_main = data_parallel is None or data_parallel.is_main

    bar = tqdm(
        total=total_steps, initial=state.step, desc=f"train ({strategy.name})", disable=not (progress and is_main)
    )
    for epoch in range(state.epoch + 1, config.epochs + 1):
        if state.step >= total_steps:
            break
        start = time.perf_counter()
        losses = [result["loss"] for result in train_epoch(steps, train_loader, state.step, total_steps, bar)]
        state.step += len(losses)
        state.train_seconds += time.perf_counter() - start
        metrics = {
            "epoch": epoch,
            "step": state.step,
            "train_loss": float(np.mean([float(loss) for loss in losses])),  # read once, at the epoch's end
            "lr": steps.schedulers[0].get_last_lr()[0],
            "train_seconds": state.train_seconds,
        }
        if val_loader is not None:
            metrics.update(_validate(model, val_loader, task, space if config.validate_subnetworks else None))
        state.epoch = epoch
        state.history.append(metrics)
        if is_main:
            checkpoint.save({"training": steps.state_dict(), "rng": capture_rng(sampler, train_loader),
                             "state": asdict(state)})  # fmt: skip
        if on_epoch_end is not None:
            on_epoch_end(epoch, metrics)
    bar.close()
    model.eval()
    return state.history


class SuperNetworkSteps(TrainingSteps):
    """One step of super-network training: the passes the strategy asks for (gradients add up).

    AdamW with weight decay on the weight matrices only, a linear warm-up and decay of the
    learning rate over `total_steps`, the global gradient norm clipped to
    `config.max_grad_norm` over all weights. With `data_parallel`, gradients and the loss
    are averaged over the ranks after the backward passes.
    """

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        strategy: Strategy,
        space: SearchSpace | None,
        config: TrainingConfig,
        sampler: np.random.RandomState,
        total_steps: int,
        data_parallel: DataParallel | None,
    ) -> None:
        self.model = self.trained = model
        self.task, self.strategy, self.space, self.sampler = task, strategy, space, sampler
        self.total_steps, self.data_parallel = total_steps, data_parallel
        self.max_grad_norm = config.max_grad_norm
        optimizer = _adamw(model, config)
        self.optimizers = [optimizer]
        self.schedulers = [
            get_linear_schedule_with_warmup(optimizer, round(config.warmup_ratio * total_steps), total_steps)
        ]
        self.distill = DistillationLoss(config.temperature, config.distill_task_weight, task.is_regression)
        self.device = next(model.parameters()).device

    def forward_backward(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, Any]:
        passes = self.strategy.passes(self.space, self.sampler, step / max(1, self.total_steps - 1))
        on_device = {k: v.to(self.device) for k, v in batch.items()}  # _run_passes takes the labels out
        loss = _run_passes(self.model, on_device, passes, self.task, self.distill)
        if self.data_parallel is not None:
            loss = self.data_parallel.average_gradients(self.model, float(loss), examples=len(batch["labels"]))
        return {"loss": loss}


def _run_passes(
    model: nn.Module, batch: dict[str, torch.Tensor], passes: list[Pass], task: Task, distill: DistillationLoss
) -> torch.Tensor:
    """Forward and backward every pass (gradients add up); the summed loss, a detached scalar tensor.

    The full network runs once per step: its logits are the teacher of every
    distilled pass after it. The loss stays on the device (no host sync per pass).
    """
    labels = batch.pop("labels")
    teacher, total = None, torch.zeros((), dtype=torch.float64, device=labels.device)
    for p in passes:
        with select_subnetwork(model, p.sub) if p.sub is not None else nullcontext():
            logits = model(**batch).logits
        if p.distill:
            if teacher is None:
                raise ValueError("a strategy distilled a sub-network before running the full network in the same step")
            loss = distill(logits, teacher, labels)
        else:
            loss = task_loss(logits, labels, task.is_regression)
        loss.backward()  # per pass: frees its activations before the next pass
        total += loss.detach()
        if p.sub is None:
            teacher = logits.detach()
    return total


def _validate(model: nn.Module, loader: Iterable, task: Task, space: SearchSpace | None) -> dict[str, float]:
    full = evaluate(model, loader, task)
    metrics = {"val_metric": full["metric"], "val_error": full["error"]}
    if space is not None:
        for name, config in (("smallest", space.smallest()), ("midpoint", space.midpoint())):
            metrics[f"val_{name}_error"] = evaluate(model, loader, task, space.to_subnetwork(config))["error"]
    return metrics


def _adamw(model: nn.Module, config: TrainingConfig) -> torch.optim.AdamW:
    # Biases and LayerNorm parameters (the 1-D ones) are not decayed, as in BERT's recipe.
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.learning_rate)


def _num_batches(loader: Iterable) -> int:
    if not isinstance(loader, Sized):
        raise ValueError(
            f"train_loader must have a length (the learning-rate schedule needs the number of steps), "
            f"got a {type(loader).__name__}; use a DataLoader, e.g. nas_pruning.tasks.make_loader"
        )
    if len(loader) == 0:
        raise ValueError("train_loader yields no batches")
    return len(loader)

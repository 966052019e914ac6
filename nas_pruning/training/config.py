"""`TrainingConfig`: the hyperparameters of one super-network training run."""

from __future__ import annotations

from dataclasses import dataclass

from nas_pruning.tasks import MEGA_BATCHES


@dataclass(frozen=True)
class TrainingConfig:
    """Hyperparameters of `train_supernet` (and of `finetune`).

    epochs: passes over the training data.
    learning_rate: peak learning rate of AdamW.
    batch_size: examples per batch of the loaders `finetune` builds (recorded in
        `supernet.json`); `train_supernet` uses the batches of the loader it gets.
    weight_decay: AdamW weight decay of the weight matrices (not of biases and
        LayerNorm parameters).
    warmup_ratio: fraction of the steps over which the learning rate rises linearly
        from 0; then it decays linearly to 0 at the last step.
    max_grad_norm: clip the global gradient norm to this; None disables clipping.
    temperature: distillation temperature (strategies `kd` and `full`).
    distill_task_weight: weight of the task loss added to the distillation loss of
        distilled sub-networks (0: they learn from the full network only).
    num_random: random sub-networks per step of `sandwich`, `kd` and `full` when
        the strategy is given by name.
    seed: seeds torch, numpy and Python at the start (sub-network sampling,
        dropout, a newly initialised classifier).
    num_threads: torch CPU threads; None uses all cores (os.cpu_count()).
    max_steps: stop after this many optimizer steps in total (the learning-rate
        schedule ends there); None trains all epochs.
    validate_subnetworks: besides the full network, validate the smallest and the
        midpoint sub-network of the search space after each epoch.
    group_by_length: the loaders `finetune` builds batch training examples of similar
        length (random mega-batches sorted by length, see
        `nas_pruning.tasks.LengthGroupedBatchSampler`): less padding, 1.78x the `full`
        strategy's steps per second on STS-B; over 6 training seeds of short `full` runs the
        networks stayed within the seed-to-seed spread of plain batches, but the whole
        `run --quick` pipeline with it scored lower in its one measured seed
        (docs/throughput_grouping.md), so it is off by default. False: plain shuffled batches.
    mega_batches: with `group_by_length`, batches per random mega-batch that is sorted by
        length and cut into batches: more batches save more padding, fewer keep each batch's
        examples more mixed (50, Hugging Face's choice, cost the midpoint 0.13 there).
    """

    epochs: int = 5
    learning_rate: float = 2e-5
    batch_size: int = 32
    weight_decay: float = 0.01
    warmup_ratio: float = 0.0
    max_grad_norm: float | None = 1.0
    temperature: float = 1.0
    distill_task_weight: float = 0.0
    num_random: int = 2
    seed: int = 0
    num_threads: int | None = None
    max_steps: int | None = None
    validate_subnetworks: bool = True
    group_by_length: bool = False
    mega_batches: int = MEGA_BATCHES

    def __post_init__(self) -> None:
        checks = {
            "epochs": (self.epochs, self.epochs >= 1, ">= 1"),
            "learning_rate": (self.learning_rate, self.learning_rate > 0, "> 0"),
            "batch_size": (self.batch_size, self.batch_size >= 1, ">= 1"),
            "weight_decay": (self.weight_decay, self.weight_decay >= 0, ">= 0"),
            "warmup_ratio": (self.warmup_ratio, 0 <= self.warmup_ratio < 1, "in [0, 1)"),
            "max_grad_norm": (self.max_grad_norm, self.max_grad_norm is None or self.max_grad_norm > 0, "> 0 or None"),
            "temperature": (self.temperature, self.temperature > 0, "> 0"),
            "distill_task_weight": (self.distill_task_weight, self.distill_task_weight >= 0, ">= 0"),
            "num_random": (self.num_random, self.num_random >= 0, ">= 0"),
            "num_threads": (self.num_threads, self.num_threads is None or self.num_threads >= 1, ">= 1 or None"),
            "mega_batches": (self.mega_batches, self.mega_batches >= 1, ">= 1"),
            "max_steps": (self.max_steps, self.max_steps is None or self.max_steps >= 1, ">= 1 or None"),
        }
        for name, (value, ok, accepted) in checks.items():
            if not ok:
                raise ValueError(f"TrainingConfig.{name} must be {accepted}, got {value!r}")

    def total_steps(self, steps_per_epoch: int) -> int:
        """Optimizer steps of the whole run with `steps_per_epoch` batches per epoch."""
        steps = self.epochs * steps_per_epoch
        return steps if self.max_steps is None else min(steps, self.max_steps)

"""The CoFi pruning stage: learn gates and weights jointly under a sparsity constraint.

Each step samples the target task's gates, distils the teacher into the gated
model (logits and matched hidden states) next to the task loss, adds one
Lagrangian per distinct mask and, for delta coupling, the delta penalty. With an
auxiliary task, one auxiliary batch per step runs under the auxiliary mask and
its loss updates only what ``transfer`` allows (see
:mod:`nas_pruning.cofi.transfer`). Weights, gate scores and Lagrange multipliers
have separate optimizers and learning rates; the multipliers ascend.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from nas_pruning.cofi.config import CoFiConfig
from nas_pruning.cofi.data import to_device, without_labels
from nas_pruning.cofi.deterministic import deterministic_gates
from nas_pruning.cofi.divergence import check_finite
from nas_pruning.cofi.gated_model import apply_gates
from nas_pruning.cofi.lagrangian import Lagrangian, TargetSchedule
from nas_pruning.cofi.masks import GateValues, sample_gates
from nas_pruning.cofi.sparsity import expected_sparsity
from nas_pruning.cofi.transfer import AUXILIARY, TARGET, CoupledMasks, MultiTaskModel
from nas_pruning.models import get_adapter
from nas_pruning.training.distillation import LayerDistillation, logit_distillation_loss

MAX_GRAD_NORM = 1.0


class CoFiPruner:
    """Pruning state and steps for `model` (a target classifier, plus an auxiliary one
    when the pruning stage transfers) distilled from `teacher`.

    config: the run's settings (sparsity, coupling, learning rates, loss weights).
    steps_per_epoch: target batches per epoch, to place the sparsity warm-up.
    """

    def __init__(self, model: MultiTaskModel, teacher: nn.Module, config: CoFiConfig, steps_per_epoch: int) -> None:
        self.model = model
        self.teacher = teacher.eval()
        self.config = config
        self.dims = get_adapter(model.target).dims(model.target.config)
        coupling = config.prune_coupling
        if (coupling == "none") != (model.auxiliary is None):
            raise ValueError(f"coupling {coupling!r} needs {'no' if coupling == 'none' else 'an'} auxiliary classifier")
        self.masks = CoupledMasks(self.dims, coupling, config.gate_kinds, config.gate_init, config.delta_penalty)
        self.lagrangians = nn.ModuleDict({role: Lagrangian() for role in self.masks.constrained_roles})
        self.layer_distillation = LayerDistillation(self.dims.hidden_size, self.dims.num_layers)
        # What a checkpoint holds (the teacher is not trained and not saved).
        self.trained = nn.ModuleDict(
            {"model": model, "masks": self.masks, "lagrangians": self.lagrangians, "layers": self.layer_distillation}
        ).to(next(model.parameters()).device)
        total_steps = config.prune_epochs * steps_per_epoch
        self.schedule = TargetSchedule(config.target_sparsity, round(config.sparsity_warmup * total_steps))
        self.steps = 0
        weights = list(model.parameters()) + list(self.layer_distillation.parameters())
        self.optimizers = {
            "weights": torch.optim.AdamW(weights, lr=config.learning_rate, weight_decay=0.0),
            "gates": torch.optim.AdamW(self.masks.parameters(), lr=config.gate_learning_rate, weight_decay=0.0),
            "lambdas": torch.optim.AdamW(
                self.lagrangians.parameters(), lr=config.lambda_learning_rate, weight_decay=0.0, maximize=True
            ),
        }
        self._aux_inputs = self._auxiliary_inputs() if model.auxiliary is not None else []

    def _auxiliary_inputs(self) -> list[nn.Parameter]:
        """Parameters the auxiliary loss may update: its head, plus the encoder weights
        and/or the gate scores, as ``transfer`` says."""
        inputs = self.model.head_parameters(AUXILIARY)
        if self.config.transfer in ("weights", "both"):
            inputs += list(self.model.encoder_parameters())
        if self.config.transfer in ("structure", "both"):
            inputs += list(self.masks.parameters())
        return inputs

    def train_epoch(
        self, batches, aux_batches: Iterator[dict] | None = None, epoch: int = 0, progress: bool = True
    ) -> dict:
        """One pass over the target `batches`. Returns mean losses and the expected
        sparsity of the target mask at the end."""
        self.model.train()
        sums = {"loss": 0.0, "lagrangian": 0.0}
        count = 0
        for batch in tqdm(batches, desc=f"prune epoch {epoch + 1}", disable=not progress, leave=False):
            losses = self._step(batch, None if aux_batches is None else next(aux_batches), f"pruning epoch {epoch + 1}")
            for key in sums:
                sums[key] += losses[key]
            count += 1
        means = {key: value / max(count, 1) for key, value in sums.items()}
        means["expected_sparsity"] = expected_sparsity(self.dims, self.masks.scores(TARGET)).item()
        means["target_now"] = self.schedule(self.steps)
        return means

    def _step(self, batch: dict, aux_batch: dict | None, where: str) -> dict:
        config = self.config
        target = self.model.target
        device = next(target.parameters()).device
        batch = to_device(batch, device)
        with torch.no_grad():
            teacher_out = self.teacher(**without_labels(batch), output_hidden_states=True)
        gates = sample_gates(self.masks.scores(TARGET))
        with apply_gates(target, gates):
            out = target(**batch, output_hidden_states=True)
        active = gates.attention_active(self.dims) | gates.ffn_active(self.dims)
        loss = config.task_loss_weight * out.loss
        loss = loss + config.logit_distill_weight * logit_distillation_loss(
            out.logits, teacher_out.logits, config.distill_temperature, target.config.problem_type == "regression"
        )
        loss = loss + config.layer_distill_weight * self.layer_distillation(
            out.hidden_states[1:], teacher_out.hidden_states[1:], batch["attention_mask"], active
        )
        sparsity_target = self.schedule(self.steps)
        lagrangian = sum(
            lagrangian(expected_sparsity(self.dims, self.masks.scores(role)), sparsity_target)
            for role, lagrangian in self.lagrangians.items()
        )
        total = loss + lagrangian + config.lambda_delta * self.masks.penalty().to(device)
        check_finite(total, f"{where}, step {self.steps}")
        total.backward()
        if aux_batch is not None:
            auxiliary = self.model.auxiliary
            with apply_gates(auxiliary, sample_gates(self.masks.scores(AUXILIARY))):
                aux_loss = config.aux_weight * auxiliary(**to_device(aux_batch, device)).loss
            check_finite(aux_loss, f"{where}, step {self.steps} (auxiliary task)")
            aux_loss.backward(inputs=self._aux_inputs)
        nn.utils.clip_grad_norm_(self.optimizers["weights"].param_groups[0]["params"], MAX_GRAD_NORM)
        for optimizer in self.optimizers.values():
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        self.steps += 1
        return {"loss": loss.item(), "lagrangian": float(lagrangian.detach())}

    def deterministic_gates(self) -> GateValues:
        """The target mask's final gates, at the target sparsity."""
        return deterministic_gates(self.masks.scores(TARGET), self.dims, self.config.target_sparsity)

    def training_state(self) -> dict:
        """Everything needed to resume: model, gates, multipliers, optimizers, step."""
        return {
            "modules": self.trained.state_dict(),
            "optimizers": {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()},
            "steps": self.steps,
        }

    def load_training_state(self, state: dict) -> None:
        self.trained.load_state_dict(state["modules"])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.steps = state["steps"]

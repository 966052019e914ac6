"""The CoFi pruning stage: learn gates and weights jointly under a sparsity constraint.

Each step samples the target task's gates, distils the teacher into the gated
model (logits and matched hidden states) next to the task loss, adds one
Lagrangian per distinct mask and, for delta coupling, the delta penalty. With an
auxiliary task, one auxiliary batch per step runs under the auxiliary mask and
its loss updates only what ``transfer`` allows (see
:mod:`nas_pruning.cofi.transfer`). Weights, gate scores and Lagrange multipliers
have separate optimizers and learning rates; the multipliers ascend. The steps run on
the package's training loop (:func:`nas_pruning.training.loop.train_epoch`) with CoFi's
settings: no weight decay, the gradient norm of the weights (not of gate scores or
multipliers) clipped to 1, constant learning rates.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

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
from nas_pruning.training.loop import TrainingSteps, train_epoch

MAX_GRAD_NORM = 1.0


class CoFiPruner(TrainingSteps):
    """Pruning state and steps for `model` (a target classifier, plus an auxiliary one
    when the pruning stage transfers) distilled from `teacher`.

    config: the run's settings (sparsity, coupling, learning rates, loss weights).
    steps_per_epoch: target batches per epoch, to place the sparsity warm-up.
    """

    max_grad_norm = MAX_GRAD_NORM

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
        self.optimizers = [  # weights, gate scores, multipliers
            torch.optim.AdamW(weights, lr=config.learning_rate, weight_decay=0.0),
            torch.optim.AdamW(self.masks.parameters(), lr=config.gate_learning_rate, weight_decay=0.0),
            torch.optim.AdamW(
                self.lagrangians.parameters(), lr=config.lambda_learning_rate, weight_decay=0.0, maximize=True
            ),
        ]
        self._aux_inputs = self._auxiliary_inputs() if model.auxiliary is not None else []
        self.aux_batches: Iterator[dict] | None = None
        self.where = "pruning"

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
        self, batches: Iterable[dict], aux_batches: Iterator[dict] | None = None, epoch: int = 0, progress: bool = True
    ) -> dict:
        """One pass over the target `batches`. Returns mean losses and the expected
        sparsity of the target mask at the end."""
        self.aux_batches, self.where = aux_batches, f"pruning epoch {epoch + 1}"
        # The bar wraps the batches, which decides their order (see FineTuner.train_epoch).
        batches = tqdm(batches, desc=f"prune epoch {epoch + 1}", disable=not progress, leave=False)
        results = train_epoch(self, batches, self.steps)
        self.steps += len(results)
        means = {key: sum(result[key] for result in results) / max(len(results), 1) for key in ("loss", "lagrangian")}
        means["expected_sparsity"] = expected_sparsity(self.dims, self.masks.scores(TARGET)).item()
        means["target_now"] = self.schedule(self.steps)
        return means

    def clip_parameters(self) -> list[nn.Parameter]:
        return self.optimizers[0].param_groups[0]["params"]  # the weights

    def forward_backward(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, Any]:
        aux_batch = None if self.aux_batches is None else next(self.aux_batches)
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
        sparsity_target = self.schedule(step)
        lagrangian = sum(
            lagrangian(expected_sparsity(self.dims, self.masks.scores(role)), sparsity_target)
            for role, lagrangian in self.lagrangians.items()
        )
        total = loss + lagrangian + config.lambda_delta * self.masks.penalty().to(device)
        check_finite(total, f"{self.where}, step {step}")
        total.backward()
        if aux_batch is not None:
            auxiliary = self.model.auxiliary
            with apply_gates(auxiliary, sample_gates(self.masks.scores(AUXILIARY))):
                aux_loss = config.aux_weight * auxiliary(**to_device(aux_batch, device)).loss
            check_finite(aux_loss, f"{self.where}, step {step} (auxiliary task)")
            aux_loss.backward(inputs=self._aux_inputs)
        return {"loss": loss.item(), "lagrangian": float(lagrangian.detach())}

    def deterministic_gates(self) -> GateValues:
        """The target mask's final gates, at the target sparsity."""
        return deterministic_gates(self.masks.scores(TARGET), self.dims, self.config.target_sparsity)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: model, gates, multipliers, layer map, optimizers, step."""
        return {**super().state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.steps = state["steps"]

"""Transfer from an auxiliary task while pruning (Dery et al., 2023).

Two roles: the ``target`` task (few labelled examples; its mask decides the
exported model) and the ``auxiliary`` task (many examples). Both share one
encoder (embeddings, layers, pooler) and have one classification head each, so
different label sets (classes or a regression score) are fine.

How the tasks' masks are coupled (:class:`CoupledMasks`):

- ``none``: no auxiliary task; the target alone,
- ``shared``: one mask used by both tasks,
- ``independent``: one mask per task, shared weights only,
- ``delta``: log_alpha_task = log_alpha_base + d_task, with a penalty
  lambda_delta * sum(d^2) (``l2``) or sum(|d|) (``l1``) over both tasks' d that
  pulls the tasks towards one structure. A sum, not a mean, so that the pull on
  each gate (2 lambda_delta d) does not depend on the model's size.

What the auxiliary task may change (``transfer``): its loss updates its own head
and, with ``weights``, the shared encoder weights; with ``structure``, the gate
scores its mask is made of; ``both`` does both.

When (``stage``): the auxiliary task joins the pruning stage (``prune``), the
final fine-tuning of the pruned model (``finetune``; only weights exist there),
or ``both``.
"""

from __future__ import annotations

import copy
from typing import Iterator

import torch
from torch import nn
from transformers import PreTrainedModel

from nas_pruning.cofi.hard_concrete import prob_nonzero
from nas_pruning.cofi.masks import KINDS, MaskScores, Scores
from nas_pruning.models import ModelDims
from nas_pruning.tasks import Task

COUPLINGS = ("none", "shared", "independent", "delta")
STAGES = ("prune", "finetune", "both")
TRANSFERS = ("weights", "structure", "both")
DELTA_PENALTIES = ("l2", "l1")
TARGET, AUXILIARY = "target", "auxiliary"


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    """`value` if it is one of `choices`, else ValueError naming the accepted ones."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; accepted: {', '.join(choices)}")
    return value


class CoupledMasks(nn.Module):
    """Gate scores of each role under a coupling.

    dims: sizes of the model being pruned.
    coupling: one of :data:`COUPLINGS`.
    kinds: gate kinds to learn (see :mod:`nas_pruning.cofi.masks`).
    init: initial log_alpha.
    delta_penalty: ``l2`` or ``l1``, the penalty on the deltas (``delta`` only).
    """

    def __init__(
        self, dims: ModelDims, coupling: str, kinds=KINDS, init: float = 1.0, delta_penalty: str = "l2"
    ) -> None:
        super().__init__()
        self.coupling = check_choice("coupling", coupling, COUPLINGS)
        self.penalty_kind = check_choice("delta penalty", delta_penalty, DELTA_PENALTIES)
        if coupling in ("none", "shared"):
            self.shared = MaskScores(dims, kinds, init)
        elif coupling == "independent":
            self.per_role = nn.ModuleDict({role: MaskScores(dims, kinds, init) for role in (TARGET, AUXILIARY)})
        else:
            self.shared = MaskScores(dims, kinds, init)
            zeros = {role: MaskScores(dims, kinds, init=0.0, noise=0.0) for role in (TARGET, AUXILIARY)}
            self.delta = nn.ModuleDict(zeros)

    @property
    def roles(self) -> tuple[str, ...]:
        return (TARGET,) if self.coupling == "none" else (TARGET, AUXILIARY)

    @property
    def constrained_roles(self) -> tuple[str, ...]:
        """Roles whose masks are distinct, each needing its own sparsity constraint."""
        return (TARGET,) if self.coupling in ("none", "shared") else (TARGET, AUXILIARY)

    def scores(self, role: str) -> Scores:
        if role not in self.roles:
            raise ValueError(f"coupling {self.coupling!r} has no mask for role {role!r}; roles: {self.roles}")
        if self.coupling == "independent":
            return self.per_role[role].scores()
        base = self.shared.scores()
        if self.coupling != "delta":
            return base
        delta = self.delta[role].scores()
        return {kind: base[kind] + delta[kind] for kind in base}

    def penalty(self) -> torch.Tensor:
        """The delta penalty (before its weight lambda_delta); 0 for other couplings."""
        if self.coupling != "delta":
            return torch.zeros(())
        deltas = torch.cat([d.flatten() for role in self.delta.values() for d in role.log_alpha.values()])
        return deltas.pow(2).sum() if self.penalty_kind == "l2" else deltas.abs().sum()


def mask_difference(first: Scores, second: Scores) -> float:
    """Mean |P_first(z > 0) - P_second(z > 0)| over all gates: 0 for identical masks."""
    with torch.no_grad():
        gaps = torch.cat([(prob_nonzero(first[k]) - prob_nonzero(second[k])).abs().flatten() for k in first])
    return float(gaps.mean())


def with_new_head(model: PreTrainedModel, task: Task) -> PreTrainedModel:
    """A sequence classifier for `task` that shares `model`'s encoder (same module
    objects) and has a freshly initialised head of its own."""
    config = copy.deepcopy(model.config)
    config.num_labels = task.num_labels
    config.id2label = {i: f"LABEL_{i}" for i in range(task.num_labels)}
    config.label2id = {label: i for i, label in config.id2label.items()}
    config.problem_type = "regression" if task.is_regression else "single_label_classification"
    head = type(model)(config)
    setattr(head, model.base_model_prefix, model.base_model)
    first = next(model.parameters())
    return head.to(device=first.device, dtype=first.dtype).train(model.training)


class MultiTaskModel(nn.Module):
    """The target task's classifier and, if `auxiliary` is given, a classifier for the
    auxiliary task on the same encoder."""

    def __init__(self, target: PreTrainedModel, auxiliary: Task | None = None) -> None:
        super().__init__()
        self.models = nn.ModuleDict({TARGET: target})
        if auxiliary is not None:
            self.models[AUXILIARY] = with_new_head(target, auxiliary)

    @property
    def target(self) -> PreTrainedModel:
        return self.models[TARGET]

    @property
    def auxiliary(self) -> PreTrainedModel | None:
        return self.models[AUXILIARY] if AUXILIARY in self.models else None

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        """The shared encoder's parameters (embeddings, layers, pooler)."""
        return self.target.base_model.parameters()

    def head_parameters(self, role: str) -> list[nn.Parameter]:
        """Parameters of `role`'s classifier only."""
        shared = {id(p) for p in self.encoder_parameters()}
        return [p for p in self.models[role].parameters() if id(p) not in shared]

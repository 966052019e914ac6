"""CoFi structured pruning (Xia et al., 2022) with transfer learning under limited task data
(Dery et al., 2023).

Hard-concrete gates over heads, whole attention blocks, FFN units, whole FFN blocks
and hidden dimensions are learned with the weights, under a Lagrangian that drives
the expected sparsity to a target and with distillation from the fine-tuned model;
optionally jointly with an auxiliary task. Deterministic gates at the end give a
physically pruned standalone model, which is then fine-tuned.

    from nas_pruning.cofi import CoFiConfig, run_cofi
    config = CoFiConfig(task="rte", aux_task="qnli", target_examples=1000, target_sparsity=0.95, coupling="delta")
    result = run_cofi(config, "out/rte-delta")   # out/rte-delta/model: a plain transformers folder
"""

from nas_pruning.cofi.config import DEFAULT_AUXILIARY, CoFiConfig
from nas_pruning.cofi.deterministic import deterministic_gates
from nas_pruning.cofi.divergence import TrainingDiverged
from nas_pruning.cofi.gated_model import apply_gates, extract_gated, fold_gates
from nas_pruning.cofi.lagrangian import Lagrangian, TargetSchedule
from nas_pruning.cofi.masks import KINDS, GateValues, MaskScores, sample_gates
from nas_pruning.cofi.pipeline import prepare_teacher, run_cofi
from nas_pruning.cofi.sparsity import expected_sparsity, measured_sparsity, prunable_parameters
from nas_pruning.cofi.transfer import COUPLINGS, STAGES, TRANSFERS, CoupledMasks, MultiTaskModel

__all__ = [
    "COUPLINGS",
    "DEFAULT_AUXILIARY",
    "KINDS",
    "STAGES",
    "TRANSFERS",
    "CoFiConfig",
    "CoupledMasks",
    "GateValues",
    "Lagrangian",
    "MaskScores",
    "MultiTaskModel",
    "TargetSchedule",
    "TrainingDiverged",
    "apply_gates",
    "deterministic_gates",
    "expected_sparsity",
    "extract_gated",
    "fold_gates",
    "measured_sparsity",
    "prepare_teacher",
    "prunable_parameters",
    "run_cofi",
    "sample_gates",
]

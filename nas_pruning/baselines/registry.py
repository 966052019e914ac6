"""The registry of baselines that prune a model fine-tuned on the task: name -> `PruningBaseline`.

A method is one module with one function, `prune(model, data, *, results_path, models_dir, **options)`
returning the common results table (`results.ResultsTable`), plus one entry of `BASELINES`.
`nas-pruning baseline <name>` is built from the entry: the shared options (task, model, data, seed,
output folder, ...), then the method's `options`, whose dests are `prune`'s keyword parameters;
`nas_pruning.experiments.pruning_baselines.run_pruning_baseline` resolves the run and calls `prune`.
Standard NAS is not listed: it is a Syne Tune experiment from the pre-trained model
(`nas_pruning.experiments.standard_nas`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from nas_pruning.arguments import non_negative_int, positive_float, positive_int, ratio
from nas_pruning.baselines.head_pruning import head_pruning
from nas_pruning.baselines.layer_drop import layer_drop
from nas_pruning.baselines.retraining_free import COSTS, DEFAULT_BUDGETS, retraining_free


@dataclass(frozen=True)
class Option:
    """One command-line option of a method: `parser.add_argument(*flags, **settings)`."""

    flags: tuple[str, ...]
    settings: dict[str, Any] = field(default_factory=dict)


def option(*flags: str, **settings: Any) -> Option:
    """An `Option` written as an `add_argument` call; its dest must be a keyword parameter of the method."""
    return Option(flags, settings)


# Re-fine-tuning every pruned model: `finetune_epochs` and `learning_rate` become the method's `finetune`
# argument (a TrainingConfig, or None for 0 epochs).
REFINETUNE_OPTIONS = (
    option("--finetune-epochs", type=non_negative_int, default=0, help="re-fine-tune every pruned model (0: no)"),
    option("--learning-rate", type=positive_float, default=2e-5, help="of the re-fine-tuning"),
)


@dataclass(frozen=True)
class PruningBaseline:
    """A baseline that prunes a model fine-tuned on the task, as `BASELINES` lists it.

    prune: the method: `prune(model, data, *, results_path, models_dir, **options)` -> the results table
        (`model`: the fine-tuned classifier, left unchanged; `data`: a `data.BaselineData`).
    help: the one line `nas-pruning baseline --help` shows for it.
    options: its own command-line options; each one's dest is a keyword parameter of `prune`.
    refinetune: `prune` takes `finetune` (a TrainingConfig or None) and gets `REFINETUNE_OPTIONS`.
    """

    prune: Callable[..., pd.DataFrame]
    help: str
    options: tuple[Option, ...] = ()
    refinetune: bool = False

    def all_options(self) -> tuple[Option, ...]:
        """The method's command-line options in the order the command lists them."""
        return self.options + (REFINETUNE_OPTIONS if self.refinetune else ())


HEAD_PRUNING_OPTIONS = (
    option("--heads-per-step", type=positive_int, default=None, help="default: 10%% of all heads"),
    option("--num-examples", type=positive_int, default=512, help="training examples for the importance"),
    option("--no-normalize", dest="normalize", action="store_false", help="skip the per-layer L2 normalisation"),
)

RETRAINING_FREE_OPTIONS = (
    option(
        "--budgets", type=ratio, nargs="+", default=list(DEFAULT_BUDGETS),
        help="fractions of the heads' and FFN units' cost to keep",
    ),
    option("--cost", default="params", choices=COSTS, help="what the budget counts"),
    option("--seq-len", type=positive_int, default=128, help="sequence length of the FLOPs cost"),
    option("--num-examples", type=positive_int, default=2048, help="sample size for Fisher and mask tuning"),
    option("--no-rearrange", dest="rearrange", action="store_false", help="skip mask rearrangement"),
    option("--no-tune", dest="tune", action="store_false", help="skip mask tuning"),
)

#: Command name -> method; `nas-pruning baseline` offers them in this order, after standard-nas.
BASELINES: dict[str, PruningBaseline] = {
    "head-pruning": PruningBaseline(
        head_pruning, "iterative gradient-importance head pruning (Michel et al.)", HEAD_PRUNING_OPTIONS,
        refinetune=True,
    ),
    "layer-drop": PruningBaseline(layer_drop, "drop the top k layers, k = 0..L-1 (Sajjad et al.)", refinetune=True),
    "retraining-free": PruningBaseline(
        retraining_free, "Fisher mask search, rearrangement and tuning (Kwon et al.)", RETRAINING_FREE_OPTIONS
    ),
}


def get_baseline(name: str) -> PruningBaseline:
    """The registered method called `name`; a ValueError names the registered ones otherwise."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; registered: {', '.join(BASELINES)}")
    return BASELINES[name]

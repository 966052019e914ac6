"""`CoFiConfig`: every setting of one CoFi(-transfer) run, its checks, and its command-line form."""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field

from nas_pruning.arguments import fraction, non_negative_float, number, positive_float
from nas_pruning.cofi.masks import KINDS, check_kinds
from nas_pruning.cofi.transfer import COUPLINGS, DELTA_PENALTIES, STAGES, TRANSFERS, check_choice
from nas_pruning.models.loading import POOLING_HELP
from nas_pruning.tasks import get_task

#: The target -> auxiliary pairs of the benchmark (all data in shared/data/glue).
DEFAULT_AUXILIARY = {"rte": "qnli", "mrpc": "stsb", "cola": "sst2", "stsb": "mrpc", "sst2": "cola"}
#: The settings a CoFi-transfer search varies; the others are fixed per search.
SEARCHED_SETTINGS = ("target_sparsity", "coupling", "lambda_delta", "aux_task", "stage", "transfer")


# Accepted ranges, checked on creation and, for the command line, while parsing.
_AT_LEAST = {
    "target_examples": 1, "max_aux_examples": 1, "max_eval_examples": 1, "teacher_epochs": 0,
    "prune_epochs": 1, "finetune_epochs": 0, "max_length": 8, "batch_size": 1,
    "latency_batch_size": 1, "latency_seq_len": 1, "latency_repeats": 1, "num_threads": 1,
}  # fmt: skip
_POSITIVE = ("teacher_learning_rate", "learning_rate", "finetune_learning_rate", "gate_learning_rate",
             "lambda_learning_rate", "distill_temperature")  # fmt: skip
_NON_NEGATIVE = ("lambda_delta", "task_loss_weight", "logit_distill_weight", "layer_distill_weight", "aux_weight")
_PARSERS = {
    **{name: number(int, lowest) for name, lowest in _AT_LEAST.items()},
    **{name: positive_float for name in _POSITIVE},
    **{name: non_negative_float for name in _NON_NEGATIVE},
    "target_sparsity": fraction,
    "sparsity_warmup": number(float, 0, 1),
}


def _setting(default, help: str, alias: str | None = None):
    """A dataclass field with its command-line help and an optional extra flag."""
    return field(default=default, metadata={"help": help, "alias": alias})


@dataclass
class CoFiConfig:
    """Settings of one run: prune the target task's model to a sparsity, with or
    without an auxiliary task, then fine-tune the pruned model."""

    task: str = _setting("rte", "target GLUE task")
    aux_task: str | None = _setting(None, f"auxiliary GLUE task (default for {DEFAULT_AUXILIARY})")
    target_examples: int | None = _setting(1000, "target training examples, sampled with the seed (none: all)")
    target_sparsity: float = _setting(0.95, "fraction of the encoder layers' parameters to remove, in (0, 1)")
    coupling: str = _setting("delta", f"how the tasks' masks are coupled: {', '.join(COUPLINGS)}")
    lambda_delta: float = _setting(0.01, "weight of the penalty on the delta masks (delta coupling)")
    delta_penalty: str = _setting("l2", f"penalty on the delta masks: {', '.join(DELTA_PENALTIES)}")
    stage: str = _setting("both", f"stage(s) that use the auxiliary task: {', '.join(STAGES)}")
    transfer: str = _setting("both", f"what the auxiliary task trains: {', '.join(TRANSFERS)}")
    model: str | None = _setting(None, "Hugging Face BERT/RoBERTa name or folder (default: bundled MiniLM)")
    pooling: str = _setting("auto", POOLING_HELP)
    data_dir: str | None = _setting(None, "folder of GLUE TSVs (default: $GLUE_DIR, else the hub)")
    seed: int = _setting(0, "seed of data splits, sampling, initialisation and shuffling")
    max_length: int = _setting(128, "tokens per example (longer texts are truncated)")
    batch_size: int = _setting(32, "examples per training batch (the auxiliary task uses the same)")
    max_aux_examples: int | None = _setting(None, "cap on auxiliary training examples (none: all)")
    max_eval_examples: int | None = _setting(None, "cap on validation examples scored each epoch (none: all)")
    teacher_epochs: int = _setting(5, "epochs of fine-tuning the unpruned teacher (0: use the model as is)")
    teacher_learning_rate: float = _setting(5e-5, "learning rate of the teacher's fine-tuning")
    prune_epochs: int = _setting(20, "epochs of the pruning stage (passes over the target data)")
    finetune_epochs: int = _setting(10, "epochs of fine-tuning the pruned model")
    sparsity_warmup: float = _setting(0.5, "fraction of the pruning steps over which the target rises from 0")
    learning_rate: float = _setting(3e-5, "learning rate of the weights while pruning")
    finetune_learning_rate: float = _setting(3e-5, "learning rate of the pruned model's fine-tuning")
    gate_learning_rate: float = _setting(0.05, "learning rate of the gate scores (log_alpha)")
    lambda_learning_rate: float = _setting(0.05, "learning rate (ascent) of the Lagrange multipliers")
    gate_init: float = _setting(1.0, "initial log_alpha of every gate")
    gate_kinds: tuple[str, ...] = _setting(KINDS, f"gate kinds to learn, comma-separated from {', '.join(KINDS)}")
    distill_temperature: float = _setting(2.0, "temperature of logit distillation")
    task_loss_weight: float = _setting(1.0, "weight of the target task's own loss")
    logit_distill_weight: float = _setting(1.0, "weight of logit distillation from the teacher")
    layer_distill_weight: float = _setting(1.0, "weight of hidden-state distillation (pruning stage)")
    aux_weight: float = _setting(1.0, "weight of the auxiliary task's loss")
    latency_batch_size: int = _setting(32, "batch size of the speed measurement")
    latency_seq_len: int = _setting(128, "sequence length of the speed measurement")
    latency_repeats: int = _setting(3, "timed forward passes per speed measurement")
    num_threads: int | None = _setting(
        None, "torch CPU threads (default: os.cpu_count())", alias="--threads"  # the other commands' spelling
    )
    device: str | None = _setting(None, "torch device (default: cuda if available, else cpu)")
    cache_dir: str | None = _setting(None, "folder caching fine-tuned teachers (default: ~/.cache/nas_pruning/cofi)")

    def __post_init__(self) -> None:
        if isinstance(self.gate_kinds, str):
            self.gate_kinds = tuple(kind.strip() for kind in self.gate_kinds.split(",") if kind.strip())
        self.gate_kinds = check_kinds(self.gate_kinds)
        self.task = get_task(self.task).name
        if not (isinstance(self.target_sparsity, (int, float)) and 0.0 < self.target_sparsity < 1.0):
            raise ValueError(f"target sparsity must lie strictly between 0 and 1, got {self.target_sparsity}")
        check_choice("coupling", self.coupling, COUPLINGS)
        check_choice("stage", self.stage, STAGES)
        check_choice("transfer", self.transfer, TRANSFERS)
        check_choice("delta penalty", self.delta_penalty, DELTA_PENALTIES)
        if self.coupling != "none":
            if self.aux_task is None:
                if self.task not in DEFAULT_AUXILIARY:
                    raise ValueError(
                        f"coupling {self.coupling!r} needs an auxiliary task; pass aux_task (--aux-task) "
                        f"for target {self.task!r}, or use coupling 'none'"
                    )
                self.aux_task = DEFAULT_AUXILIARY[self.task]
            self.aux_task = get_task(self.aux_task).name
            if self.aux_task == self.task:
                raise ValueError(f"the auxiliary task must differ from the target task, both are {self.task!r}")
        self._check_ranges()

    def _check_ranges(self) -> None:
        for name, lowest in _AT_LEAST.items():
            value = getattr(self, name)
            if value is not None and value < lowest:
                raise ValueError(f"{name} must be at least {lowest}, got {value}")
        for name in _POSITIVE:
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be a positive number, got {getattr(self, name)}")
        for name in _NON_NEGATIVE:
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be a non-negative number, got {getattr(self, name)}")
        if not 0.0 <= self.sparsity_warmup <= 1.0:
            raise ValueError(f"sparsity_warmup must lie in [0, 1], got {self.sparsity_warmup}")

    def uses_auxiliary(self, stage: str) -> bool:
        """Whether the auxiliary task takes part in stage ``prune`` or ``finetune``. The
        fine-tuning stage has weights only, so transferring only structure skips it."""
        if self.coupling == "none" or self.stage not in (stage, "both"):
            return False
        return stage == "prune" or self.transfer != "structure"

    @property
    def prune_coupling(self) -> str:
        """The coupling of the pruning stage's masks ('none' when it has no auxiliary task)."""
        return self.coupling if self.uses_auxiliary("prune") else "none"

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["gate_kinds"] = ",".join(self.gate_kinds)
        return values

    # -- command line ---------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, exclude=()) -> None:
        """One option per setting (except those in `exclude`), spelt ``--target-examples``
        and ``--target_examples`` (the latter is how Syne Tune passes hyperparameters)."""
        hints = typing.get_type_hints(cls)
        for item in dataclasses.fields(cls):
            if item.name in exclude:
                continue
            flags = [f"--{item.name.replace('_', '-')}"]
            if "_" in item.name:
                flags.append(f"--{item.name}")
            if item.metadata["alias"]:
                flags.append(item.metadata["alias"])
            shown = ",".join(item.default) if isinstance(item.default, tuple) else item.default
            text = item.metadata["help"]
            parser.add_argument(
                *flags,
                dest=item.name,
                type=_parser_for(hints[item.name], _PARSERS.get(item.name)),
                default=item.default,
                help=text if "default" in text else f"{text} (default: {shown})",  # some say what None means
            )

    @classmethod
    def from_namespace(cls, namespace: argparse.Namespace) -> "CoFiConfig":
        names = [item.name for item in dataclasses.fields(cls) if hasattr(namespace, item.name)]
        return cls(**{name: getattr(namespace, name) for name in names})

    @classmethod
    def setting_names(cls) -> list[str]:
        return [item.name for item in dataclasses.fields(cls)]


def _parser_for(hint, checked=None):
    """A string -> value parser for a field type ('none' means None for optional fields);
    `checked`: a range-checking parser of `nas_pruning.arguments` to use for other values."""
    optional = isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)
    base = next(arg for arg in typing.get_args(hint) if arg is not type(None)) if optional else hint
    if typing.get_origin(base) is tuple:
        base = str  # comma-separated, split by __post_init__

    def parse(text: str):
        if optional and text.lower() == "none":
            return None
        return base(text) if checked is None else checked(text)

    parse.__name__ = getattr(checked or base, "__name__", "value")
    return parse

"""Options that several `nas-pruning` commands take, each declared once here.

The value checks (`positive_int`, `output_folder`, ...) are `nas_pruning.arguments`, below every
layer, since `CoFiConfig` parses its settings with them too.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nas_pruning.arguments import non_negative_float, output_folder, positive_float, positive_int
from nas_pruning.backends.trial_engine import RayTrials
from nas_pruning.models.loading import POOLING_CHOICES, POOLING_HELP
from nas_pruning.search_spaces import SEARCH_SPACES
from nas_pruning.tasks import TASKS

DEFAULT_MODEL_HELP = "Hugging Face BERT/RoBERTa name or folder (default: the bundled all-MiniLM-L6-v2)"
DATA_DIR_HELP = "folder of GLUE TSVs (RTE/, MRPC/, ...); default: env GLUE_DIR, else the Hugging Face hub"


def add_task_argument(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """--task, a name of the task registry; required unless `default` is given."""
    parser.add_argument("--task", required=default is None, default=default, help="GLUE task: " + ", ".join(TASKS))


def add_model_arguments(
    parser: argparse.ArgumentParser, help: str = DEFAULT_MODEL_HELP, required: bool = False
) -> None:
    """--model (a name or folder; `help` says which kind the command wants) and --pooling."""
    parser.add_argument("--model", required=required, default=None, help=help)
    parser.add_argument("--pooling", default="auto", choices=POOLING_CHOICES, help=POOLING_HELP)


def add_search_space_argument(
    parser: argparse.ArgumentParser, default: str | None = "small", help: str | None = None
) -> None:
    """--search-space, a name of `nas_pruning.search_spaces.SEARCH_SPACES`."""
    parser.add_argument("--search-space", default=default, choices=sorted(SEARCH_SPACES), help=help)


def add_data_dir_argument(parser: argparse.ArgumentParser, help: str = DATA_DIR_HELP) -> None:
    """--data-dir: where the task's data is read from."""
    parser.add_argument("--data-dir", default=None, help=help)


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """--threads: torch threads."""
    parser.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: all cores)")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--data-dir and --threads."""
    add_data_dir_argument(parser)
    add_threads_argument(parser)


def add_output_dir_argument(
    parser: argparse.ArgumentParser, default: str | Path | None = None, required: bool = False, help: str | None = None
) -> None:
    """--output-dir, the folder a command writes into (`help` says its default or content)."""
    parser.add_argument("--output-dir", type=output_folder, required=required, default=default, help=help)


def add_supernet_argument(parser: argparse.ArgumentParser) -> None:
    """--supernet: the super-network to search or tabulate."""
    parser.add_argument("--supernet", required=True, help="folder written by `nas-pruning finetune`")


def add_max_validation_examples_argument(parser: argparse.ArgumentParser) -> None:
    """--max-validation-examples: score on a random validation subset."""
    parser.add_argument(
        "--max-validation-examples", type=positive_int, default=None,
        help="score on a random validation subset of this size",
    )


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --ray, --ray-address, --cpus-per-trial and --gpus-per-trial (the fields of `RayTrials`) for the
    commands whose trials are scripts (`cofi-search`, `baseline standard-nas`)."""
    group = parser.add_argument_group("Ray: trials as Ray tasks (pip install 'nas_pruning[ray]')")
    group.add_argument(
        "--ray", action="store_true", help="run each trial as a Ray task (a local Ray instance without --ray-address)"
    )
    group.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="run the trials on this Ray cluster ('auto': the one this machine joined with `ray start`, "
        "or HOST:6379); implies --ray",
    )
    group.add_argument(
        "--cpus-per-trial", type=positive_float, default=None, metavar="C",
        help="CPUs Ray reserves per trial, also its torch threads (default 1)",
    )  # fmt: skip
    group.add_argument(
        "--gpus-per-trial", type=non_negative_float, default=None, metavar="G",
        help="GPUs Ray reserves per trial (default 0)",
    )


def ray_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `run_cofi_search` / `standard_nas` from `add_ray_arguments`' options."""
    return {name: getattr(args, name) for name in asdict(RayTrials())}

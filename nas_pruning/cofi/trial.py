"""The CoFi(-transfer) trial: one run of :func:`nas_pruning.cofi.run_cofi` as a Syne Tune trial.

Syne Tune's ``LocalBackend`` (or a Ray task, :mod:`nas_pruning.backends.trial_engine`)
runs this file as the trial script of a CoFi-transfer search
(:mod:`nas_pruning.experiments.cofi_transfer`), with the trial's settings as
``--name value`` options. It reports, after every pruning and fine-tuning epoch (one
``epoch`` axis, so that MOASHA can stop bad trials early), ``error`` (validation,
1 - metric), ``params`` (parameter ratio of the exported model), ``speedup`` (measured
on this machine) and more; a finished trial leaves its pruned model in
``<trial folder>/result/model``. One trial by hand:

    python -m nas_pruning.cofi.trial --task rte --coupling delta --output-dir out
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from syne_tune import Reporter

from nas_pruning.cofi.config import CoFiConfig
from nas_pruning.cofi.divergence import TrainingDiverged
from nas_pruning.cofi.pipeline import run_cofi

TRIAL_RESULT_FOLDER = "result"
"""Folder beside a trial's checkpoints (in its Syne Tune trial folder) that holds its results and model."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one trial: settings as ``--name value`` options; reports to Syne Tune."""
    parser = argparse.ArgumentParser(description="One CoFi(-transfer) trial, reporting to Syne Tune.")
    CoFiConfig.add_arguments(parser)
    parser.add_argument("--st_checkpoint_dir", default=None, help="set by Syne Tune: this trial's checkpoint folder")
    parser.add_argument(
        "--output-dir", "--output_dir", default=None, help="results folder (default: beside checkpoints)"
    )
    args = parser.parse_args(argv)
    if args.output_dir is None and args.st_checkpoint_dir is None:
        parser.error("pass --output-dir (Syne Tune passes --st_checkpoint_dir instead)")
    output_dir = Path(args.output_dir or Path(args.st_checkpoint_dir).parent / TRIAL_RESULT_FOLDER)
    try:
        config = CoFiConfig.from_namespace(args)
    except ValueError as error:
        print(f"cofi trial: error: {error}", file=sys.stderr)
        return 2
    reporter = Reporter()
    try:
        run_cofi(
            config,
            output_dir,
            report=lambda row: reporter(**{k: v for k, v in row.items() if isinstance(v, (int, float))}),
            checkpoint_dir=args.st_checkpoint_dir,
            progress=False,
        )
    except TrainingDiverged as error:
        print(f"cofi trial: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

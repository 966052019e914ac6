"""The `nas-pruning` command: the top layer, which only parses options and calls the layers below.

One module per command group, each with `add_commands(subparsers)`: `model` (info, space), `finetune`,
`search` (search, export, run), `blackbox` (tabulate, benchmark), `cofi` (cofi, cofi-search) and
`baselines` (baseline ...); options that several take are declared once in `arguments`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from transformers.utils import logging as transformers_logging

from nas_pruning.cli import baselines, blackbox, cofi, finetune, model, search
from nas_pruning.experiments.weight_sharing import SearchInterrupted


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nas-pruning",
        description="Structural pruning of pre-trained language models as multi-objective NAS (Syne Tune plugin).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (model, finetune, search, blackbox, cofi, baselines):
        group.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, ImportError) as error:
        print(f"nas-pruning {args.command}: error: {error}", file=sys.stderr)
        return 2
    except SearchInterrupted as stop:
        print(f"nas-pruning {args.command}: {stop}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # training resumes from its last epoch's checkpoint
        print(f"nas-pruning {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0

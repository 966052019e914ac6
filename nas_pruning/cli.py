"""The `nas-pruning` command."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from transformers.utils import logging as transformers_logging

from nas_pruning.models import count_parameters, get_adapter, load_model
from nas_pruning.search_spaces import SEARCH_SPACES, get_search_space


def _add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help="Hugging Face BERT/RoBERTa name or folder (default: the bundled all-MiniLM-L6-v2)",
    )


def cmd_info(args: argparse.Namespace) -> None:
    model = load_model(args.model)
    dims = get_adapter(model).dims(model.config)
    total = count_parameters(model)
    print(f"model type       {model.config.model_type} ({type(model).__name__})")
    print(f"layers           {dims.num_layers}")
    print(f"heads per layer  {dims.num_heads} (head size {dims.head_size})")
    print(f"hidden size      {dims.hidden_size}")
    print(f"FFN units        {dims.intermediate_size}")
    print(f"parameters       {total:,} ({total / 1e6:.1f} M)")


def cmd_space(args: argparse.Namespace) -> None:
    model = load_model(args.model)
    space = get_search_space(args.search_space, model.config)
    print(f"search space {space.name!r}: {len(space.config_space)} hyperparameters")
    for name, domain in list(space.config_space.items())[: args.max_rows]:
        print(f"  {name:<16} {type(domain).__name__} {domain.domain_str}")
    if len(space.config_space) > args.max_rows:
        print(f"  ... and {len(space.config_space) - args.max_rows} more")
    for label, config in (("smallest", space.smallest()), ("largest", space.largest())):
        print(f"{label:<9} parameter ratio {space.parameter_ratio(config):.4f}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nas-pruning",
        description="Structural pruning of pre-trained language models as multi-objective NAS (Syne Tune plugin).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser("info", help="print a model's architecture and parameter count")
    _add_model_argument(info)
    info.set_defaults(func=cmd_info)

    space = commands.add_parser("space", help="print a search space and the parameter ratios of its extremes")
    _add_model_argument(space)
    space.add_argument("--search-space", default="small", choices=sorted(SEARCH_SPACES))
    space.add_argument("--max-rows", type=int, default=20, help="hyperparameters to list")
    space.set_defaults(func=cmd_space)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"nas-pruning {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

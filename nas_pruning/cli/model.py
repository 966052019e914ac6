"""`nas-pruning info` and `nas-pruning space`: a model's architecture and a search space over it."""

from __future__ import annotations

import argparse

from nas_pruning.arguments import positive_int
from nas_pruning.cli.arguments import add_model_arguments, add_search_space_argument
from nas_pruning.models import count_parameters, get_adapter, load_model
from nas_pruning.search_spaces import get_search_space


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `info` and `space`."""
    info = subparsers.add_parser("info", help="print a model's architecture and parameter count")
    add_model_arguments(info)
    info.set_defaults(func=cmd_info)

    space = subparsers.add_parser("space", help="print a search space and the parameter ratios of its extremes")
    add_model_arguments(space)
    add_search_space_argument(space)
    space.add_argument("--max-rows", type=positive_int, default=20, help="hyperparameters to list")
    space.set_defaults(func=cmd_space)


def cmd_info(args: argparse.Namespace) -> None:
    model = load_model(args.model, pooling=args.pooling)
    dims = get_adapter(model).dims(model.config)
    total = count_parameters(model)
    print(f"model type       {model.config.model_type} ({type(model).__name__})")
    print(f"layers           {dims.num_layers}")
    print(f"heads per layer  {dims.num_heads} (head size {dims.head_size})")
    print(f"hidden size      {dims.hidden_size}")
    print(f"FFN units        {dims.intermediate_size}")
    print(f"pooling          {model.config.classifier_pooling}")
    print(f"parameters       {total:,} ({total / 1e6:.1f} M)")


def cmd_space(args: argparse.Namespace) -> None:
    model = load_model(args.model, pooling=args.pooling)
    space = get_search_space(args.search_space, model.config)
    print(f"search space {space.name!r}: {len(space.config_space)} hyperparameters")
    for name, domain in list(space.config_space.items())[: args.max_rows]:
        print(f"  {name:<16} {type(domain).__name__} {domain.domain_str}")
    if len(space.config_space) > args.max_rows:
        print(f"  ... and {len(space.config_space) - args.max_rows} more")
    for label, config in (("smallest", space.smallest()), ("largest", space.largest())):
        print(f"{label:<9} parameter ratio {space.parameter_ratio(config):.4f}")

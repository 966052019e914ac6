"""argparse `type=` functions shared by every `nas-pruning` command.

Each rejects a bad value while the command line is parsed, so the command exits
with status 2 and one line naming the option, the value and the accepted range,
before any model or data loads.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Callable


def number(
    kind: type = int,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[str], int | float]:
    """A parser of `kind` values (int or float) within [low, high]; `*_open` excludes that bound."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    accepted = f"{'an integer' if kind is int else 'a number'}{' ' + ' and '.join(parts) if parts else ''}"

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {accepted}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {accepted}")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"{text!r} is not {accepted}")
        return value

    parse.__name__ = accepted  # argparse names the type in some messages
    return parse


positive_int = number(int, 1)
non_negative_int = number(int, 0)
positive_float = number(float, 0, low_open=True)
non_negative_float = number(float, 0)
fraction = number(float, 0, 1, low_open=True, high_open=True)  # strictly between 0 and 1
ratio = number(float, 0, 1, low_open=True)  # in (0, 1]
warmup_ratio = number(float, 0, 1, high_open=True)  # in [0, 1)


def output_folder(text: str) -> Path:
    """A folder to write into: refused if it, or the nearest part of it that exists, is a file."""
    path = Path(text).expanduser()
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "it" if existing == path else f"{existing}"
        raise argparse.ArgumentTypeError(f"{text!r} cannot be an output folder: {where} is a file")
    return path

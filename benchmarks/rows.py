"""Benchmark rows that outlive a session: one CSV row per finished run, committed to git.

A benchmark asks `done(path, keys)` which runs the CSV already holds, runs only the
others, and `append(path, row)`s each as soon as it finishes; reports are rebuilt
from the CSV alone.
"""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd


def read(path: Path) -> pd.DataFrame:
    """The rows written so far (an empty table when there are none)."""
    return pd.read_csv(path) if path.is_file() and path.stat().st_size > 0 else pd.DataFrame()


def done(path: Path, keys: list[str]) -> set[tuple]:
    """The `keys` values of every row already in the CSV at `path`."""
    rows = read(path)
    if rows.empty:
        return set()
    return set(rows[keys].itertuples(index=False, name=None))


@contextmanager
def _locked(path: Path):
    """Hold an exclusive lock beside `path`: benchmark processes running side by side share one CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def append(path: Path, row: dict[str, Any]) -> None:
    """Add one row to the CSV at `path`, widening its columns if the row brings new ones."""
    with _locked(path):
        rows = pd.concat([read(path), pd.DataFrame([row])], ignore_index=True)
        temporary = path.with_suffix(".tmp")
        rows.to_csv(temporary, index=False)
        temporary.replace(path)  # a run killed while writing leaves the previous rows intact

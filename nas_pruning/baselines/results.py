"""The common results table of the baselines.

One row per pruned model, in the format of the weight-sharing search, so that
`nas_pruning.pareto` scores every method the same way:

- `method`: which baseline (and variant) produced the row,
- `error`: validation error, 1 - task metric (minimised),
- `params`: parameters of the pruned model over those of the unpruned one
  (embeddings included; counted on the extracted model),
- `test_error`, `test_metric`: the same model on the test split,
- `wall_time`: seconds since the method started (when the row was complete),

plus method-specific columns (step, k, budget, per-layer sizes, ...). The table is
rewritten to its CSV file after every row: a stopped run keeps its rows, and a rerun
with the same file skips what is done (`ResultsTable.has`) and continues the clock.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from nas_pruning.baselines.data import BaselineData
from nas_pruning.models import SubNetwork

RESULT_COLUMNS = ("method", "error", "params", "test_error", "test_metric", "wall_time")


class ResultsTable:
    """The rows of one method's run.

    method: value of the `method` column of this run's rows.
    path: CSV file written after every row; None keeps the rows in memory only. Rows
        of this method already in the file are resumed from (and rows of other
        methods are kept as they are).
    models_dir: if given, `add_model` saves each model there (`save_pretrained`) and
        records the folder in a `model_path` column.
    """

    def __init__(
        self, method: str, path: str | os.PathLike | None = None, models_dir: str | os.PathLike | None = None
    ) -> None:
        self.method = method
        self.path = Path(path) if path is not None else None
        self.models_dir = Path(models_dir) if models_dir is not None else None
        existing = pd.read_csv(self.path) if self.path is not None and self.path.is_file() else pd.DataFrame()
        mine = existing["method"] == method if "method" in existing else pd.Series(False, index=existing.index)
        self._others = existing[~mine]
        self.rows: list[dict[str, Any]] = existing[mine].to_dict("records")
        done = max((row["wall_time"] for row in self.rows), default=0.0)
        self._start = time.perf_counter() - done

    def elapsed(self) -> float:
        """Seconds of this method so far, earlier runs on the same file included."""
        return time.perf_counter() - self._start

    def has(self, column: str, value: Any) -> bool:
        """Whether a row of this method has `value` in `column` (to skip finished settings)."""
        return any(row.get(column) == value for row in self.rows)

    def add(self, **values: Any) -> dict[str, Any]:
        """Append a row (method and wall_time are added) and write the table."""
        row = {"method": self.method, **values, "wall_time": self.elapsed()}
        self.rows.append(row)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(".partial")
            pd.concat([self._others, self.frame], ignore_index=True).to_csv(partial, index=False)
            os.replace(partial, self.path)  # a crash while writing keeps the previous table
        return row

    def add_model(
        self, model: nn.Module, full_parameters: int, data: BaselineData, name: str, **values: Any
    ) -> dict[str, Any]:
        """Score a standalone pruned `model` and append its row.

        full_parameters: parameter count of the unpruned model (the `params` denominator).
        name: folder name of the model under `models_dir`.
        values: the method's own columns.
        """
        scores = data.score(model)
        params = sum(p.numel() for p in model.parameters()) / full_parameters
        if self.models_dir is not None:
            folder = self.models_dir / name
            model.save_pretrained(folder)
            values["model_path"] = str(folder)
        return self.add(**scores, params=params, **values)

    @property
    def frame(self) -> pd.DataFrame:
        """This method's rows, results columns first."""
        frame = pd.DataFrame(self.rows)
        if frame.empty:
            return pd.DataFrame(columns=list(RESULT_COLUMNS))
        return frame[list(RESULT_COLUMNS) + [c for c in frame.columns if c not in RESULT_COLUMNS]]


def structure_columns(sub: SubNetwork) -> dict[str, str]:
    """Per-layer head and unit counts of a sub-network, as JSON lists (CSV-friendly)."""
    return {"heads": json.dumps(sub.heads_per_layer()), "units": json.dumps(sub.units_per_layer())}

"""`export_member`: write one member of a searched Pareto front as a standalone model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from nas_pruning.evaluation import Yardsticks
from nas_pruning.files import stored_path
from nas_pruning.models import extract_subnetwork, load_tokenizer
from nas_pruning.pareto import ERROR, knee_point, select_member
from nas_pruning.search import SEARCH_SETTINGS_FILE, STARTED_FILE, front_configs
from nas_pruning.search_spaces import get_search_space
from nas_pruning.supernet import INFO_FILE, load_supernet


class NothingLearned(ValueError):
    """No front member beats the task's trivial predictor on validation: there is no
    knee worth exporting."""


def useful_members(front: pd.DataFrame, yardsticks: Yardsticks | None) -> pd.DataFrame:
    """The front members whose validation metric beats the trivial predictor's (all of
    them when the search recorded no yardsticks)."""
    if yardsticks is None:
        return front
    return front[front["metric"] > yardsticks.trivial_validation]


def export_member(
    search_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    index: int | None = None,
    max_params: float | None = None,
    overwrite: bool = False,
) -> Path:
    """Extract a front member of the search in `search_dir` into `output_dir`.

    index: position in the front sorted by parameter ratio (0 = smallest);
    max_params: instead, the lowest-error member with parameter ratio <= max_params;
    neither: the knee point (closest to zero error and zero parameters, the error scaled
    by the trivial predictor's) among the members that beat the trivial predictor on
    validation; NothingLearned if none does.
    The folder loads with plain transformers
    (`AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)`)
    and has a README.md model card stating the ratio and scores.
    overwrite: write into `output_dir` even if it is not empty. It is never a super-network
        or search folder (nor inside one): that would destroy what the model comes from.
    """
    search_dir = Path(search_dir)
    summary_file = search_dir / SEARCH_SETTINGS_FILE
    if not summary_file.is_file():
        raise FileNotFoundError(
            f"{search_dir} is not a search folder: no {SEARCH_SETTINGS_FILE} (run `nas-pruning search`)"
        )
    summary = json.loads(summary_file.read_text())
    supernet = stored_path(summary["supernet"], summary_file)
    output_dir = Path(output_dir)
    _check_output(output_dir, search_dir, supernet, overwrite)
    front = pd.read_csv(search_dir / "pareto.csv")
    yardsticks = Yardsticks(**summary["yardsticks"]) if "yardsticks" in summary else None
    if index is None and max_params is None:
        useful = useful_members(front, yardsticks)
        if useful.empty:
            raise NothingLearned(
                f"no member of the front in {search_dir} beats the trivial predictor on validation "
                f"({summary['metric']} {yardsticks.trivial_validation:.4f}, the majority class or a constant): "
                f"nothing worth exporting as the knee. Train longer or on more data; --index or --max-params "
                f"still export a chosen member"
            )
        trivial_error = 1.0 - (yardsticks.trivial_validation if yardsticks else 0.0)
        member = knee_point(useful, bounds={ERROR: (0.0, trivial_error)})
    else:
        member = select_member(front, index=index, max_params=max_params)
    config = front_configs(member.to_frame().T)[0]

    model, info = load_supernet(supernet)
    space = get_search_space(summary["settings"]["search_space"], model.config)
    small = extract_subnetwork(model, space.to_subnetwork(config))
    small.save_pretrained(output_dir)
    load_tokenizer(supernet).save_pretrained(output_dir)
    metric = summary["metric"]
    judged = "" if yardsticks is None else (
        f"Trivial predictor (majority class / constant): test {metric} {yardsticks.trivial_test:.4f}; "
        f"unpruned model: test {metric} {yardsticks.unpruned_test:.4f}. This model keeps "
        f"{yardsticks.kept(member['test_metric']):.1%} of the unpruned test {metric} and "
        f"{yardsticks.gap_kept(member['test_metric']):.1%} of its gap over the trivial predictor.\n\n"
    )
    card = (
        f"# {info['base_model']} pruned for {summary['task']} by nas_pruning\n\n"
        f"Sub-network of the {info['strategy']['name']} super-network "
        f"`{supernet}`, found by {summary['settings']['optimizer']} over the "
        f"{space.name} search space.\n\n"
        f"parameter ratio {member['params']:.4f}; validation {metric} {member['metric']:.4f}; "
        f"test {metric} {member['test_metric']:.4f}\n\n"
        f"{judged}"
        f"Config: `{json.dumps(config)}`\n\n"
        f"Load with `AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)`.\n"
    )
    (output_dir / "README.md").write_text(card)
    return output_dir


def _check_output(output_dir: Path, search_dir: Path, supernet: str, overwrite: bool) -> None:
    """Refuse an output folder that is (or lies in) a super-network or search folder, or is not
    empty without `overwrite`."""
    target = output_dir.resolve()
    for folder, kind in ((search_dir, "search"), (Path(supernet), "super-network")):
        if target == folder.resolve() or folder.resolve() in target.parents:
            raise ValueError(f"{output_dir} is in the {kind} folder {folder}: export into a folder of its own")
    for record, kind in ((INFO_FILE, "super-network"), (SEARCH_SETTINGS_FILE, "search"), (STARTED_FILE, "search")):
        if (output_dir / record).exists():
            raise ValueError(f"{output_dir} is a {kind} folder (it has {record}): export into a folder of its own")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise ValueError(f"{output_dir} is not empty: pass --overwrite to replace its model, or another --output-dir")

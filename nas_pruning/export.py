"""Front members of a search as standalone models people can deploy.

`export_member` writes one member (the knee point, a position in the front or the best under a
size limit) into one folder; `export_front` writes every member, one folder each
(`member_00` = fewest parameters), and `index.csv` with one row per member: its config,
parameter ratio, validation and test metric (and the share of the unpruned model's gap over the
trivial predictor it keeps), and latency per runtime.

A member folder holds, by `ExportSettings.format`:

- "torch": config.json, model.safetensors, pruned_modeling.py; loads with
  `AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)`
  (transformers has no per-layer head counts for BERT/RoBERTa, so the class ships with it);
- "onnx": model.onnx (dynamic batch and sequence axes, see nas_pruning.runtimes) and
  config.json; with quantize="int8" also model_int8.onnx;
- "both": all of it;

always the tokenizer, which loads with plain `AutoTokenizer.from_pretrained(folder)` (no
remote code, no prompt), and README.md, a model card with the scores, the latencies and how to
load or run the model. The model keeps the super-network's classifier pooling ([CLS] or mean).

The output folder is never a super-network or search folder (nor inside one), and a non-empty
one is refused unless `overwrite`; overwriting replaces what an earlier export wrote there.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nas_pruning.evaluation import Yardsticks
from nas_pruning.files import stored_path
from nas_pruning.models import extract_subnetwork, load_tokenizer
from nas_pruning.pareto import ERROR, knee_point, select_member
from nas_pruning.runtimes import (
    ORT_DISABLED_OPTIMIZERS,
    LatencySpec,
    OnnxClassifier,
    dummy_inputs,
    export_onnx,
    import_onnxruntime,
    quantize_int8,
)
from nas_pruning.experiments.report import FRONT_FILE, SUMMARY_FILE
from nas_pruning.experiments.weight_sharing import (
    STARTED_FILE,
    front_configs,
    load_search_summary,
    load_supernet_data,
)
from nas_pruning.search_spaces import get_search_space
from nas_pruning.supernet import INFO_FILE, SupernetRecord, load_supernet, read_info
from nas_pruning.tasks import get_task, make_loader

FORMATS = ("torch", "onnx", "both")
QUANTIZATIONS = ("int8",)
INDEX_FILE = "index.csv"
ONNX_FILE, INT8_FILE = "model.onnx", "model_int8.onnx"
#: Weights an export writes only for some formats: removed from an overwritten folder first, so
#: that none of an earlier, different model stays beside the new one.
MODEL_FILES = ("model.safetensors", ONNX_FILE, INT8_FILE)
#: Largest difference of ONNX Runtime's logits from PyTorch's an export accepts.
LOGITS_TOLERANCE = 1e-4


def base_model_name(folder: str | os.PathLike, info: SupernetRecord) -> str:
    """The name of the model the super-network (or fine-tuned model) in `folder` was made from.

    info: its supernet.json record. A hub name is returned as recorded; a local folder that is
    itself a nas_pruning folder (it has supernet.json) gives the name of the model it was made
    from, any other folder its own name: a model card names a model, not a path on the machine
    that exported it.
    """
    base = info.base_model
    if not base:
        return Path(folder).name
    path = Path(stored_path(base, Path(folder) / INFO_FILE))
    if (path / INFO_FILE).is_file():
        return base_model_name(path, read_info(path))
    return path.name if path.is_dir() or path.is_absolute() else str(base)


class NothingLearned(ValueError):
    """No front member beats the task's trivial predictor on validation: there is no
    knee worth exporting."""


def useful_members(front: pd.DataFrame, yardsticks: Yardsticks | None) -> pd.DataFrame:
    """The front members whose validation metric beats the trivial predictor's (all of
    them when the search recorded no yardsticks)."""
    if yardsticks is None:
        return front
    return front[front["metric"] > yardsticks.trivial_validation]


@dataclass
class ExportSettings:
    """What to write and measure.

    format: "torch", "onnx" or "both" (see the module docstring).
    quantize: None, or "int8" (ONNX Runtime dynamic quantization; needs an ONNX format);
        its test metric is reported next to the fp32 one.
    latency_batch_sizes: a latency column per runtime and batch size (seconds per batch).
    latency_length, latency_warmup, latency_repeats: as in nas_pruning.runtimes.LatencySpec.
    data_dir: GLUE folder for the int8 test metric; default: the super-network's.
    batch_size: batch size of that evaluation.
    """

    format: str = "torch"
    quantize: str | None = None
    latency_batch_sizes: Sequence[int] = (1,)
    latency_length: int = 128
    latency_warmup: int = 2
    latency_repeats: int = 10
    data_dir: str | os.PathLike | None = None
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"unknown export format {self.format!r}; accepted: {', '.join(FORMATS)}")
        if self.quantize is not None and self.quantize not in QUANTIZATIONS:
            raise ValueError(f"unknown quantization {self.quantize!r}; accepted: {', '.join(QUANTIZATIONS)}")
        if self.quantize is not None and not self.writes_onnx:
            raise ValueError(f"--quantize {self.quantize} quantizes the ONNX model: use --format onnx or both")
        if self.writes_onnx:
            import_onnxruntime()  # before anything loads: names the extra to install
        self.latency_specs()  # bad shapes fail here

    @property
    def writes_torch(self) -> bool:
        return self.format in ("torch", "both")

    @property
    def writes_onnx(self) -> bool:
        return self.format in ("onnx", "both")

    def latency_specs(self, runtime: str = "torch") -> list[LatencySpec]:
        return [
            LatencySpec(runtime, size, self.latency_length, self.latency_warmup, self.latency_repeats)
            for size in self.latency_batch_sizes
        ]


class _Search:
    """A finished search folder: its summary and front; `load` adds its super-network and space."""

    def __init__(self, search_dir: str | os.PathLike) -> None:
        self.dir = Path(search_dir)
        self.summary = load_search_summary(self.dir)
        self.supernet = self.summary.supernet
        front_file = self.dir / FRONT_FILE
        self.front = pd.read_csv(front_file) if front_file.is_file() and front_file.stat().st_size > 1 else None
        if self.front is None or self.front.empty:
            raise ValueError(
                f"the search in {self.dir} has no Pareto front (no evaluation succeeded): nothing to export"
            )
        self.objectives = self.summary.objectives
        self.bounds = self.summary.hypervolume_bounds
        self.yardsticks = self.summary.yardsticks
        self._test_batches: list[dict] | None = None

    def check_output(self, output_dir: Path, overwrite: bool) -> None:
        """Refuse an output folder that is (or lies in) a super-network or search folder, or is not
        empty without `overwrite`."""
        target = output_dir.resolve()
        for folder, kind in ((self.dir, "search"), (Path(self.supernet), "super-network")):
            if target == folder.resolve() or folder.resolve() in target.parents:
                raise ValueError(f"{output_dir} is in the {kind} folder {folder}: export into a folder of its own")
        records = ((INFO_FILE, "super-network"), (SUMMARY_FILE, "search"), (STARTED_FILE, "search"))
        for record, kind in records:
            if (output_dir / record).exists():
                raise ValueError(f"{output_dir} is a {kind} folder (it has {record}): export into a folder of its own")
        if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
            raise ValueError(
                f"{output_dir} is not empty: pass --overwrite to replace its model, or another --output-dir"
            )

    def member(self, index: int | None = None, max_params: float | None = None) -> pd.Series:
        """See `export_member`: a chosen member, or the knee among those beating the trivial predictor."""
        if index is not None or max_params is not None:
            return select_member(self.front, index=index, max_params=max_params)
        useful = useful_members(self.front, self.yardsticks)
        if useful.empty:
            raise NothingLearned(
                f"no member of the front in {self.dir} beats the trivial predictor on validation "
                f"({self.summary.metric} {self.yardsticks.trivial_validation:.4f}, the majority class or a "
                f"constant): nothing worth exporting as the knee. Train longer or on more data; --index or "
                f"--max-params still export a chosen member"
            )
        trivial_error = 1.0 - (self.yardsticks.trivial_validation if self.yardsticks else 0.0)
        return knee_point(useful, self.objectives, {**self.bounds, ERROR: (0.0, trivial_error)})

    def load(self) -> None:
        """Load the super-network, its search space and tokenizer (after the cheap checks)."""
        self.model, self.info = load_supernet(self.supernet)
        self.space = get_search_space(self.summary.settings.search_space or self.info.searched_space, self.model.config)
        self.tokenizer = load_tokenizer(self.supernet)

    def test_batches(self, settings: ExportSettings) -> list[dict]:
        if self._test_batches is None:
            data = load_supernet_data(self.info, self.tokenizer, settings.data_dir, ("test",))
            self._test_batches = list(
                make_loader(data.test, self.tokenizer, batch_size=settings.batch_size, by_length=True)
            )
        return self._test_batches

    def write(self, member: pd.Series, folder: Path, settings: ExportSettings) -> dict:
        """Write `member` into `folder`; its row of index.csv."""
        config = front_configs(member.to_frame().T)[0]
        small = extract_subnetwork(self.model, self.space.to_subnetwork(config)).cpu().eval()
        folder.mkdir(parents=True, exist_ok=True)
        for name in MODEL_FILES:
            (folder / name).unlink(missing_ok=True)
        if settings.writes_torch:
            small.save_pretrained(folder)
        else:
            small.config.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        row = {"folder": folder.name, **{f"config_{k}": v for k, v in config.items()}}
        scores = ("params", "metric", "test_metric", "gap_kept", "test_gap_kept")
        row.update({k: member[k] for k in scores if k in member.index})
        if "latency" in member.index:  # as measured during the search, with its settings
            row["search_latency"] = member["latency"]
        for spec in settings.latency_specs():
            row[f"latency_torch_bs{spec.batch_size}"] = spec.of_model(small)
        if settings.writes_onnx:
            row.update(self._write_onnx(small, folder, settings))
        (folder / "README.md").write_text(self._card(member, config, row, settings, small.config))
        return row

    def _write_onnx(self, small, folder: Path, settings: ExportSettings) -> dict:
        row = {}
        onnx_path = export_onnx(small, folder / ONNX_FILE)
        row["onnx_max_abs_diff"] = _max_logit_difference(small, onnx_path)
        if row["onnx_max_abs_diff"] > LOGITS_TOLERANCE:
            raise RuntimeError(
                f"ONNX Runtime's logits differ from PyTorch's by {row['onnx_max_abs_diff']:.2e} "
                f"(> {LOGITS_TOLERANCE}) for {folder}"
            )
        for spec in settings.latency_specs("onnxruntime"):
            row[f"latency_onnxruntime_bs{spec.batch_size}"] = spec.of_onnx(onnx_path, small.config)
        if settings.quantize == "int8":
            int8_path = quantize_int8(onnx_path, folder / INT8_FILE)
            task = get_task(self.info.task)
            row["test_metric_int8"] = task.metric(*OnnxClassifier(int8_path).predict(self.test_batches(settings)))
            for spec in settings.latency_specs("onnxruntime"):
                row[f"latency_onnxruntime_int8_bs{spec.batch_size}"] = spec.of_onnx(int8_path, small.config)
        return row

    def _card(self, member: pd.Series, config: dict, row: dict, settings: ExportSettings, model_config) -> str:
        summary, info, marks = self.summary, self.info, self.yardsticks
        metric = summary.metric
        scores = f"validation {metric} {member['metric']:.4f}; test {metric} {member['test_metric']:.4f}"
        if "test_metric_int8" in row:
            scores += f"; test {metric} of the int8 ONNX model {row['test_metric_int8']:.4f}"
        judged = "" if marks is None else (
            f"Trivial predictor (majority class / constant): test {metric} {marks.trivial_test:.4f}; "
            f"unpruned model: test {metric} {marks.unpruned_test:.4f}. This model keeps "
            f"{marks.kept(member['test_metric']):.1%} of the unpruned test {metric} and "
            f"{marks.gap_kept(member['test_metric']):.1%} of its gap over the trivial predictor.\n\n"
        )
        pooling = getattr(model_config, "classifier_pooling", "cls")
        latencies = "\n".join(
            f"| {name[len('latency_'):]} | {value * 1000:.2f} |" for name, value in row.items()
            if name.startswith("latency_")
        )
        card = (
            f"# {base_model_name(self.supernet, info)} pruned for {summary.task} by nas_pruning\n\n"
            f"Sub-network of the {info.strategy['name']} super-network `{Path(self.supernet).name}`, found by "
            f"{summary.settings.optimizer} over the {self.space.name} search space "
            f"(objectives: {', '.join(self.objectives)}).\n\n"
            f"parameter ratio {member['params']:.4f}; {scores}\n\n"
            f"{judged}"
            f"The classifier reads {'the mean of the token states' if pooling == 'mean' else 'the [CLS] token'} "
            f"(pooling {pooling}).\n\n"
            f"Config: `{json.dumps(config)}`\n\n"
            f"Latency (ms per batch of {settings.latency_length} tokens per sequence, median of "
            f"{settings.latency_repeats} after {settings.latency_warmup} warm-up passes, on the machine that "
            f"exported it):\n\n| runtime, batch size | ms |\n|---|---|\n{latencies}\n\n"
            "In the code below, FOLDER is this folder.\n\n"
        )
        if settings.writes_torch:
            card += (
                "## PyTorch\n\n```python\n"
                "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n\n"
                'tokenizer = AutoTokenizer.from_pretrained("FOLDER")\n'
                'model = AutoModelForSequenceClassification.from_pretrained("FOLDER", trust_remote_code=True)\n```\n\n'
            )
        if settings.writes_onnx:
            card += _onnx_snippet(self.info.task, settings.quantize)
        return card


def _onnx_snippet(task_name: str, quantize: str | None) -> str:
    """A model card section whose code needs only onnxruntime and transformers' tokenizer."""
    task = get_task(task_name)
    texts = ", ".join(f'["{column} text"]' for column in task.text_columns)
    disabled = f"disabled_optimizers={list(ORT_DISABLED_OPTIMIZERS)!r}"
    int8 = f'# int8: session = onnxruntime.InferenceSession("FOLDER/{INT8_FILE}", {disabled})\n' if quantize else ""
    return (
        "## ONNX Runtime\n\n"
        f"Needs only `pip install onnxruntime transformers` (or the `tokenizers` package instead of "
        f"transformers: `Tokenizer.from_file(\"FOLDER/tokenizer.json\")`); no nas_pruning, no remote code. "
        f"`{disabled}` keeps residual + layer normalisation unfused: ONNX Runtime's fused "
        f"SkipLayerNormalization kernel took about 5x as long on the CPU nas_pruning measured it on.\n\n"
        "```python\nimport onnxruntime\nfrom transformers import AutoTokenizer\n\n"
        'tokenizer = AutoTokenizer.from_pretrained("FOLDER")\n'
        f'session = onnxruntime.InferenceSession("FOLDER/{ONNX_FILE}", {disabled})\n{int8}'
        f"batch = tokenizer({texts}, padding=True, truncation=True, max_length=128, return_tensors=\"np\")\n"
        'logits = session.run(["logits"], {i.name: batch[i.name] for i in session.get_inputs()})[0]\n'
        "print(logits.tolist())\n```\n"
    )


def _max_logit_difference(small, onnx_path: Path) -> float:
    """Largest |ONNX Runtime - PyTorch| logit over a padded random batch."""
    inputs = dummy_inputs(small.config, batch_size=3, length=min(16, small.config.max_position_embeddings // 2))
    inputs["attention_mask"][1, 5:] = 0  # padding exercises the attention mask (and mean pooling)
    with torch.inference_mode():
        expected = small(**inputs).logits.numpy()
    return float(np.abs(OnnxClassifier(onnx_path)(inputs) - expected).max())


def export_member(
    search_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    index: int | None = None,
    max_params: float | None = None,
    settings: ExportSettings | None = None,
    overwrite: bool = False,
) -> Path:
    """Extract one front member of the search in `search_dir` into `output_dir`.

    index: position in the front sorted by parameter ratio (0 = smallest);
    max_params: instead, the lowest-error member with parameter ratio <= max_params;
    neither: the knee point (closest to the ideal point over the search's objectives, the error
    scaled by the trivial predictor's) among the members that beat the trivial predictor on
    validation; NothingLearned if none does.
    settings: formats and measurements (default: PyTorch, latency at batch size 1).
    overwrite: write into `output_dir` even if it is not empty. It is never a super-network
        or search folder (nor inside one): that would destroy what the model comes from.
    """
    settings = settings or ExportSettings()
    search = _Search(search_dir)
    output_dir = Path(output_dir)
    search.check_output(output_dir, overwrite)
    member = search.member(index, max_params)
    search.load()
    search.write(member, output_dir, settings)
    return output_dir


def export_front(
    search_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    settings: ExportSettings | None = None,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Every front member of the search in `search_dir`, into `output_dir`/member_NN, and index.csv.

    Members are numbered by parameter ratio (member_00 = fewest parameters); members that do not
    beat the trivial predictor are written too (their gap_kept columns say so). overwrite: as in
    `export_member`; member folders an earlier export listed in index.csv that this front does not
    have are removed. Returns the index table.
    """
    settings = settings or ExportSettings()
    search = _Search(search_dir)
    output_dir = Path(output_dir)
    search.check_output(output_dir, overwrite)
    search.load()
    ordered = search.front.sort_values(["params", "error"], kind="stable").reset_index(drop=True)
    width = max(2, len(str(len(ordered) - 1)))
    folders = [f"member_{i:0{width}d}" for i in range(len(ordered))]
    earlier = output_dir / INDEX_FILE
    if earlier.is_file():
        for name in set(pd.read_csv(earlier)["folder"]) - set(folders):
            if str(name).startswith("member_") and Path(name).name == name and (output_dir / name).is_dir():
                shutil.rmtree(output_dir / name)
    rows = [search.write(member, output_dir / name, settings) for name, (_, member) in zip(folders, ordered.iterrows())]
    index = pd.DataFrame(rows)
    index.to_csv(output_dir / INDEX_FILE, index=False)
    return index

"""Front members of a search as standalone models people can deploy.

`export_member` writes one member (the knee point, a position in the front or the best under a
size limit) into one folder; `export_front` writes every member, one folder each
(`member_00` = fewest parameters), and `index.csv` with one row per member: its config,
parameter ratio, validation and test metric, and latency per runtime.

A member folder holds, by `ExportSettings.format`:

- "torch": config.json, model.safetensors, pruned_modeling.py; loads with
  `AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)`
  (transformers has no per-layer head counts for BERT/RoBERTa, so the class ships with it);
- "onnx": model.onnx (dynamic batch and sequence axes, see nas_pruning.runtimes) and
  config.json; with quantize="int8" also model_int8.onnx;
- "both": all of it;

always the tokenizer, which loads with plain `AutoTokenizer.from_pretrained(folder)` (no
remote code, no prompt), and README.md, a model card with the scores, the latencies and how to
load or run the model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nas_pruning.models import extract_subnetwork, load_tokenizer
from nas_pruning.pareto import DEFAULT_BOUNDS, DEFAULT_OBJECTIVES, knee_point, select_member
from nas_pruning.runtimes import (
    LatencySpec,
    OnnxClassifier,
    dummy_inputs,
    export_onnx,
    import_onnxruntime,
    quantize_int8,
)
from nas_pruning.search import SEARCH_SETTINGS_FILE, front_configs, load_supernet_data
from nas_pruning.search_spaces import get_search_space
from nas_pruning.supernet import load_supernet
from nas_pruning.tasks import get_task, make_loader

FORMATS = ("torch", "onnx", "both")
QUANTIZATIONS = ("int8",)
INDEX_FILE = "index.csv"
ONNX_FILE, INT8_FILE = "model.onnx", "model_int8.onnx"
#: Largest difference of ONNX Runtime's logits from PyTorch's an export accepts.
LOGITS_TOLERANCE = 1e-4


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
    """A finished search folder: its summary, front, super-network and search space."""

    def __init__(self, search_dir: str | os.PathLike) -> None:
        search_dir = Path(search_dir)
        summary_file = search_dir / SEARCH_SETTINGS_FILE
        if not summary_file.is_file():
            raise FileNotFoundError(
                f"{search_dir} is not a search folder: no {SEARCH_SETTINGS_FILE} (run `nas-pruning search`)"
            )
        self.summary = json.loads(summary_file.read_text())
        front_file = search_dir / "pareto.csv"
        self.front = pd.read_csv(front_file) if front_file.is_file() and front_file.stat().st_size > 1 else None
        if self.front is None or self.front.empty:
            raise ValueError(
                f"the search in {search_dir} has no Pareto front (no evaluation succeeded): nothing to export"
            )
        self.objectives = self.summary.get("objectives", list(DEFAULT_OBJECTIVES))
        self.bounds = {**DEFAULT_BOUNDS, **{k: tuple(v) for k, v in self.summary.get("hypervolume_bounds", {}).items()}}
        self.model, self.info = load_supernet(self.summary["supernet"])
        self.space = get_search_space(self.summary["settings"]["search_space"], self.model.config)
        self.tokenizer = load_tokenizer(self.summary["supernet"])
        self._test_batches: list[dict] | None = None

    def member(self, index: int | None = None, max_params: float | None = None) -> pd.Series:
        """The knee point (over the search's objectives) without index / max_params; see pareto.select_member."""
        if index is None and max_params is None:
            return knee_point(self.front, self.objectives, self.bounds)
        return select_member(self.front, index=index, max_params=max_params)

    def test_batches(self, settings: ExportSettings) -> list[dict]:
        if self._test_batches is None:
            data = load_supernet_data(self.info, self.tokenizer, settings.data_dir, ("test",))
            self._test_batches = list(make_loader(data.test, self.tokenizer, batch_size=settings.batch_size))
        return self._test_batches

    def write(self, member: pd.Series, folder: Path, settings: ExportSettings) -> dict:
        """Write `member` into `folder`; its row of index.csv."""
        config = front_configs(member.to_frame().T)[0]
        small = extract_subnetwork(self.model, self.space.to_subnetwork(config)).cpu().eval()
        folder.mkdir(parents=True, exist_ok=True)
        if settings.writes_torch:
            small.save_pretrained(folder)
        else:
            small.config.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        row = {"folder": folder.name, **{f"config_{k}": v for k, v in config.items()}}
        row.update({k: member[k] for k in ("params", "metric", "test_metric") if k in member.index})
        if "latency" in member.index:  # as measured during the search, with its settings
            row["search_latency"] = member["latency"]
        for spec in settings.latency_specs():
            row[f"latency_torch_bs{spec.batch_size}"] = spec.of_model(small)
        if settings.writes_onnx:
            row.update(self._write_onnx(small, folder, settings))
        (folder / "README.md").write_text(self._card(member, config, row, settings))
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
            task = get_task(self.info["task"])
            row["test_metric_int8"] = task.metric(*OnnxClassifier(int8_path).predict(self.test_batches(settings)))
            for spec in settings.latency_specs("onnxruntime"):
                row[f"latency_onnxruntime_int8_bs{spec.batch_size}"] = spec.of_onnx(int8_path, small.config)
        return row

    def _card(self, member: pd.Series, config: dict, row: dict, settings: ExportSettings) -> str:
        summary, info = self.summary, self.info
        metric = summary["metric"]
        scores = f"validation {metric} {member['metric']:.4f}; test {metric} {member['test_metric']:.4f}"
        if "test_metric_int8" in row:
            scores += f"; test {metric} of the int8 ONNX model {row['test_metric_int8']:.4f}"
        latencies = "\n".join(
            f"| {name[len('latency_'):]} | {value * 1000:.2f} |" for name, value in row.items()
            if name.startswith("latency_")
        )
        card = (
            f"# {info['base_model']} pruned for {summary['task']} by nas_pruning\n\n"
            f"Sub-network of the {info['strategy']['name']} super-network `{summary['supernet']}`, found by "
            f"{summary['settings']['optimizer']} over the {self.space.name} search space "
            f"(objectives: {', '.join(self.objectives)}).\n\n"
            f"parameter ratio {member['params']:.4f}; {scores}\n\n"
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
            card += _onnx_snippet(self.info["task"], settings.quantize)
        return card


def _onnx_snippet(task_name: str, quantize: str | None) -> str:
    """A model card section whose code needs only onnxruntime and transformers' tokenizer."""
    task = get_task(task_name)
    texts = ", ".join(f'["{column} text"]' for column in task.text_columns)
    int8 = f'# int8: session = onnxruntime.InferenceSession("FOLDER/{INT8_FILE}")\n' if quantize else ""
    return (
        "## ONNX Runtime\n\n"
        f"Needs only `pip install onnxruntime transformers` (or the `tokenizers` package instead of "
        f"transformers: `Tokenizer.from_file(\"FOLDER/tokenizer.json\")`); no nas_pruning, no remote code.\n\n"
        "```python\nimport onnxruntime\nfrom transformers import AutoTokenizer\n\n"
        'tokenizer = AutoTokenizer.from_pretrained("FOLDER")\n'
        f'session = onnxruntime.InferenceSession("FOLDER/{ONNX_FILE}")\n{int8}'
        f"batch = tokenizer({texts}, padding=True, truncation=True, max_length=128, return_tensors=\"np\")\n"
        'logits = session.run(["logits"], {i.name: batch[i.name] for i in session.get_inputs()})[0]\n'
        "print(logits.tolist())\n```\n"
    )


def _max_logit_difference(small, onnx_path: Path) -> float:
    """Largest |ONNX Runtime - PyTorch| logit over a padded random batch."""
    inputs = dummy_inputs(small.config, batch_size=3, length=min(16, small.config.max_position_embeddings // 2))
    inputs["attention_mask"][1, 5:] = 0  # padding exercises the attention mask
    with torch.inference_mode():
        expected = small(**inputs).logits.numpy()
    return float(np.abs(OnnxClassifier(onnx_path)(inputs) - expected).max())


def export_member(
    search_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    index: int | None = None,
    max_params: float | None = None,
    settings: ExportSettings | None = None,
) -> Path:
    """Extract one front member of the search in `search_dir` into `output_dir`.

    index: position in the front sorted by parameter ratio (0 = smallest);
    max_params: instead, the lowest-error member with parameter ratio <= max_params;
    neither: the knee point (closest to the ideal point over the search's objectives).
    settings: formats and measurements (default: PyTorch, latency at batch size 1).
    """
    settings = settings or ExportSettings()
    search = _Search(search_dir)
    output_dir = Path(output_dir)
    search.write(search.member(index, max_params), output_dir, settings)
    return output_dir


def export_front(
    search_dir: str | os.PathLike, output_dir: str | os.PathLike, settings: ExportSettings | None = None
) -> pd.DataFrame:
    """Every front member of the search in `search_dir`, into `output_dir`/member_NN, and index.csv.

    Members are numbered by parameter ratio (member_00 = fewest parameters). Returns the index table.
    """
    settings = settings or ExportSettings()
    search = _Search(search_dir)
    output_dir = Path(output_dir)
    ordered = search.front.sort_values(["params", "error"], kind="stable").reset_index(drop=True)
    width = max(2, len(str(len(ordered) - 1)))
    rows = [search.write(member, output_dir / f"member_{i:0{width}d}", settings) for i, member in ordered.iterrows()]
    index = pd.DataFrame(rows)
    index.to_csv(output_dir / INDEX_FILE, index=False)
    return index

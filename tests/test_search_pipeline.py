"""The search -> pareto.csv -> export chain on a tiny super-network over real RTE rows."""

import json

import pandas as pd
import pytest
import torch
from conftest import tiny_model
from transformers import AutoModelForSequenceClassification

from nas_pruning.cli import main


def test_search_and_export_from_the_command_line(tiny_supernet, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path / "st"))
    search_dir = tmp_path / "search"
    argv = ["search", "--supernet", str(tiny_supernet), "--output-dir", str(search_dir), "--optimizer", "random",
            "--num-evaluations", "6", "--max-validation-examples", "32", "--threads", "2"]
    assert main(argv) == 0
    results = pd.read_csv(search_dir / "results.csv")
    front = pd.read_csv(search_dir / "pareto.csv")
    summary = json.loads((search_dir / "summary.json").read_text())
    assert len(results) >= 6 and 1 <= len(front) <= len(results)
    assert {"test_metric", "test_error", "params", "error"} <= set(front.columns)
    assert 0 < summary["hypervolume"] <= 1 and (search_dir / "front.png").stat().st_size > 0
    assert (search_dir / "hypervolume.png").stat().st_size > 0

    out = tmp_path / "model"
    assert main(["export", "--search-dir", str(search_dir), "--output-dir", str(out), "--index", "0"]) == 0
    smallest = front.sort_values("params").iloc[0]
    model = AutoModelForSequenceClassification.from_pretrained(out, trust_remote_code=True)
    full = sum(p.numel() for p in tiny_model("bert", num_labels=2, vocab_size=30522,
                                            max_position_embeddings=128).parameters())
    assert sum(p.numel() for p in model.parameters()) / full == pytest.approx(smallest["params"])
    assert f"parameter ratio {smallest['params']:.4f}" in (out / "README.md").read_text()
    with torch.no_grad():
        assert model(input_ids=torch.tensor([[101, 2023, 102]])).logits.shape == (1, 2)


def test_bad_input_gets_a_clear_message(tmp_path, capsys):
    assert main(["search", "--supernet", str(tmp_path), "--output-dir", str(tmp_path / "o")]) == 2
    assert "not a super-network folder" in capsys.readouterr().err
    assert main(["space", "--search-space", "small", "--model", str(tmp_path / "missing")]) == 2


@pytest.mark.integration
def test_the_main_job_runs_end_to_end_on_minilm_and_real_rte(tmp_path, glue_path, monkeypatch):
    """`nas-pruning run --quick` as the README runs it, on fewer examples and evaluations."""
    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path / "st"))
    argv = ["run", "--task", "rte", "--quick", "--data-dir", str(glue_path), "--output-dir", str(tmp_path / "job"),
            "--max-train-examples", "16", "--max-validation-examples", "16", "--num-evaluations", "4",
            "--max-length", "64", "--threads", "2"]
    assert main(argv) == 0
    job = tmp_path / "job"
    # plain fine-tuning, reordered by importance, is where the super-network starts
    finetuned = json.loads((job / "finetuned" / "supernet.json").read_text())
    assert finetuned["strategy"]["name"] == "standard" and finetuned["importance_examples"] == 512
    supernet = json.loads((job / "supernet" / "supernet.json").read_text())
    assert supernet["strategy"]["name"] == "full" and supernet["base_model"] == str(job / "finetuned")
    summary = json.loads((job / "search" / "summary.json").read_text())
    assert 0 <= summary["hypervolume"] <= 1 and (job / "search" / "front.png").stat().st_size > 0
    # --quick keeps the numbers it is given (not its 20); the Tuner may start one more before it stops
    assert 4 <= len(pd.read_csv(job / "search" / "results.csv")) <= 5
    assert len(pd.read_csv(job / "search" / "pareto.csv")) >= 1
    model = AutoModelForSequenceClassification.from_pretrained(job / "model", trust_remote_code=True)
    assert model.config.num_labels == 2 and "parameter ratio" in (job / "model" / "README.md").read_text()

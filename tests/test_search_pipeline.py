"""The search -> pareto.csv -> export chain on a tiny super-network over real RTE rows."""

import json

import pandas as pd
import pytest
import torch
from conftest import tiny_model
from transformers import AutoModelForSequenceClassification

from nas_pruning.cli import main
from nas_pruning.workflow import QUICK, quick_settings


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
    assert {"test_metric", "test_error", "params", "error", "gap_kept", "test_gap_kept"} <= set(front.columns)
    marks = summary["yardsticks"]
    # RTE's train part is about half entailment: the majority class scores near 0.5 on the GLUE dev split.
    assert 0.45 < marks["trivial_test"] < 0.55 and 0.4 < marks["trivial_validation"] < 0.6
    assert summary["hypervolume_reference"] == "trivial"
    assert summary["hypervolume_reference_point"] == pytest.approx([1 - marks["trivial_validation"], 1.0])
    expected_gap = (front["test_metric"] - marks["trivial_test"]) / (marks["unpruned_test"] - marks["trivial_test"])
    if marks["unpruned_test"] > marks["trivial_test"]:
        assert front["test_gap_kept"].to_numpy() == pytest.approx(expected_gap.to_numpy())
    assert 0 <= summary["hypervolume"] <= 1 and (search_dir / "front.png").stat().st_size > 0
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


def test_the_knee_is_never_a_member_no_better_than_the_trivial_predictor(tiny_supernet, tmp_path, capsys):
    search_dir = tmp_path / "search"
    search_dir.mkdir()
    summary = {"task": "rte", "metric": "accuracy", "supernet": str(tiny_supernet),
               "settings": {"search_space": "small", "optimizer": "random"},
               "yardsticks": {"trivial_validation": 0.52, "trivial_test": 0.527,
                              "unpruned_validation": 0.6, "unpruned_test": 0.58}}
    (search_dir / "summary.json").write_text(json.dumps(summary))
    front = pd.DataFrame({"params": [0.2, 0.6, 0.9], "error": [0.48, 0.45, 0.40], "metric": [0.52, 0.55, 0.60],
                          "test_metric": [0.527, 0.54, 0.58], "config_num_layers": [1, 1, 2],
                          "config_num_heads": [1, 2, 2], "config_num_units": [1, 3, 5]})
    front.to_csv(search_dir / "pareto.csv", index=False)
    out = tmp_path / "knee"
    assert main(["export", "--search-dir", str(search_dir), "--output-dir", str(out)]) == 0
    card = (out / "README.md").read_text()
    assert "parameter ratio 0.6000" in card  # the 0.2 member is the trivial predictor: never the knee
    assert "trivial predictor" in card and f"{(0.54 - 0.527) / (0.58 - 0.527):.1%} of its gap" in card
    front.assign(metric=[0.52, 0.50, 0.51]).to_csv(search_dir / "pareto.csv", index=False)
    assert main(["export", "--search-dir", str(search_dir), "--output-dir", str(tmp_path / "none")]) == 2
    assert "beats the trivial predictor" in capsys.readouterr().err


def test_bad_input_gets_a_clear_message(tmp_path, capsys):
    assert main(["search", "--supernet", str(tmp_path), "--output-dir", str(tmp_path / "o")]) == 2
    assert "not a super-network folder" in capsys.readouterr().err
    assert main(["space", "--search-space", "small", "--model", str(tmp_path / "missing")]) == 2


def test_the_quick_preset_keeps_the_numbers_given_and_fills_in_the_rest():
    given = {"epochs": 3, "max_train_examples": 16, "supernet_epochs": 2, "num_evaluations": None,
             "max_validation_examples": None}
    assert quick_settings(given) == {**QUICK, "max_train_examples": 16}
    # supernet_epochs is capped, not raised: 0 (no separate super-network stage) stays 0
    assert quick_settings({**given, "supernet_epochs": 0, "num_evaluations": 4})["supernet_epochs"] == 0
    assert quick_settings({**given, "num_evaluations": 4})["num_evaluations"] == 4


@pytest.mark.integration
def test_the_main_job_runs_end_to_end_on_minilm_and_real_stsb(tmp_path, glue_path, monkeypatch, capsys):
    """`nas-pruning run --quick` as the README runs it, on fewer examples and evaluations."""
    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path / "st"))
    argv = ["run", "--task", "stsb", "--quick", "--data-dir", str(glue_path), "--output-dir", str(tmp_path / "job"),
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
    # --quick keeps the numbers it is given (not its 20), and exactly that many run
    assert len(pd.read_csv(job / "search" / "results.csv")) == 4
    front = pd.read_csv(job / "search" / "pareto.csv")
    assert len(front) >= 1 and supernet["pooling"] == "mean"  # MiniLM declares mean pooling
    assert summary["yardsticks"]["trivial_test"] == 0.0  # a constant has no rank correlation
    # The knee is exported only if some member beats the trivial predictor on validation.
    learned = bool((front["metric"] > summary["yardsticks"]["trivial_validation"]).any())
    assert (job / "model").exists() == learned
    if learned:
        model = AutoModelForSequenceClassification.from_pretrained(job / "model", trust_remote_code=True)
        assert model.config.num_labels == 1 and model.config.classifier_pooling == "mean"
        assert "gap over the trivial predictor" in (job / "model" / "README.md").read_text()
    else:
        assert "no model exported" in capsys.readouterr().out

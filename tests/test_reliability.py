"""Nothing lost, nothing silently wrong (issue 18): damaged checkpoints, killed and resumed
searches, protected outputs, bad options and bad data, each a clear one-line error or the
right result. Tiny models; seconds per test."""

import re
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import random_batches, tiny_model
from syne_tune.backend.trial_status import Status

from nas_pruning.backends.weight_sharing import WeightSharingBackend
from nas_pruning.cli import main
from nas_pruning.cofi.pipeline import run_checkpoint
from nas_pruning.cofi.config import CoFiConfig
from nas_pruning.files import CheckpointError, stored_path
from nas_pruning.models import load_tokenizer
from nas_pruning.search_spaces import get_search_space
from nas_pruning.supernet import CHECKPOINT_DIR, TrainingConfig, train_supernet
from nas_pruning.tasks import get_task, load_custom_task

PROGRESS_BAR = re.compile(r"\d+%\|")
SEARCH = ["--optimizer", "random", "--max-validation-examples", "16", "--threads", "1"]


def search(supernet, output_dir, evaluations: int, *extra: str) -> int:
    argv = ["search", "--supernet", str(supernet), "--output-dir", str(output_dir), "--num-evaluations"]
    return main([*argv, str(evaluations), *SEARCH, *extra])


def tiny_folder(tmp_path) -> str:
    """A tiny 2-class BERT folder (64 positions) with MiniLM's tokenizer, like a pre-trained checkpoint."""
    tokenizer = load_tokenizer()
    model = tiny_model(vocab_size=tokenizer.vocab_size, max_position_embeddings=64, num_labels=2)
    model.save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    return str(tmp_path / "tiny")


def one_line_error(capsys, *fragments: str) -> str:
    """The command's stderr: a single line holding every fragment."""
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if line.strip() and not PROGRESS_BAR.search(line)]
    err = "\n".join(lines)  # progress bars (tqdm, on stderr) are not part of the message
    assert "Traceback" not in err and len(lines) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


# -- searches ------------------------------------------------------------------------------------


def test_a_search_runs_exactly_the_evaluations_asked_for(tiny_supernet, tmp_path, capsys):
    assert search(tiny_supernet, tmp_path / "s", 4) == 0
    results = pd.read_csv(tmp_path / "s" / "results.csv")
    assert sorted(results["trial_id"]) == [0, 1, 2, 3]
    assert json.loads((tmp_path / "s" / "summary.json").read_text())["evaluations"] == 4


def test_an_interrupted_search_keeps_its_results_and_resumes_to_exactly_n(tiny_supernet, tmp_path, capsys, monkeypatch):
    # Ctrl-C reaches the main thread, which runs the Tuner's loop while evaluations run in worker threads. It is
    # raised there, once two evaluations are done, rather than with _thread.interrupt_main() from a worker: the
    # main thread would take that signal at a moment of its own choosing (inside a finalizer it is lost).
    fetch, completed = WeightSharingBackend._all_trial_results, set()

    def interrupted_after_two(self, trial_ids):
        results = fetch(self, trial_ids)
        if len(completed) >= 2:  # the Tuner has taken in two evaluations
            raise KeyboardInterrupt
        completed.update(r.trial_id for r in results if r.status == Status.completed)
        return results

    monkeypatch.setattr(WeightSharingBackend, "_all_trial_results", interrupted_after_two)
    assert search(tiny_supernet, tmp_path / "s", 6) == 130
    one_line_error(capsys, "search interrupted", "run the same command again to resume")
    kept = pd.read_csv(tmp_path / "s" / "results.csv")
    assert 1 <= len(kept) < 6 and (tmp_path / "s" / "pareto.csv").is_file()
    assert not (tmp_path / "s" / "summary.json").exists()

    monkeypatch.setattr(WeightSharingBackend, "_all_trial_results", fetch)
    assert search(tiny_supernet, tmp_path / "s", 6) == 0
    results = pd.read_csv(tmp_path / "s" / "results.csv")
    assert sorted(results["trial_id"]) == list(range(6))
    columns = ["trial_id", "error", "params"] + [c for c in kept.columns if c.startswith("config_")]
    pd.testing.assert_frame_equal(results[columns].iloc[: len(kept)], kept[columns])
    # the resumed part did not redo the initial design (largest, smallest, midpoint) it had done
    configs = results[[c for c in columns if c.startswith("config_")]]
    assert not configs.duplicated().any()

    # a finished search asked again for the same budget runs nothing more
    assert search(tiny_supernet, tmp_path / "s", 6) == 0
    assert len(pd.read_csv(tmp_path / "s" / "results.csv")) == 6


def test_a_search_killed_mid_way_resumes_to_exactly_n(tiny_supernet, tmp_path):
    """SIGKILL (no clean-up at all) once k evaluations are in results.csv; the rerun adds only N - k."""
    output = tmp_path / "s"
    argv = ["search", "--supernet", str(tiny_supernet), "--output-dir", str(output), "--num-evaluations", "12",
            "--optimizer", "random", "--max-validation-examples", "128", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen([sys.executable, "-m", "nas_pruning.cli", *argv], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            if (output / "results.csv").is_file() and len(pd.read_csv(output / "results.csv")) >= 3:
                break
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
    kept = pd.read_csv(output / "results.csv")
    assert 3 <= len(kept) < 12 and not (output / "summary.json").exists()
    assert main(argv) == 0
    results = pd.read_csv(output / "results.csv")
    assert sorted(results["trial_id"]) == list(range(12))
    pd.testing.assert_frame_equal(results[kept.columns].iloc[: len(kept)], kept)


def test_resuming_a_search_with_other_settings_or_a_smaller_budget_is_refused(tiny_supernet, tmp_path, capsys):
    assert search(tiny_supernet, tmp_path / "s", 3) == 0
    capsys.readouterr()
    assert search(tiny_supernet, tmp_path / "s", 3, "--search-seed", "1") == 2
    one_line_error(capsys, "other settings", "seed: before 0, now 1", "delete")
    assert search(tiny_supernet, tmp_path / "s", 2) == 2
    one_line_error(capsys, "already holds 3 evaluations")


# -- checkpoints -----------------------------------------------------------------------------------

DAMAGES = {
    "zeros": lambda data: bytes(len(data)),
    "empty": lambda data: b"",
    "truncated": lambda data: data[: len(data) // 2],
    "random": lambda data: bytes(np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8)),
}


def train_tiny(output_dir, epochs: int = 1):
    model = tiny_model()
    config = TrainingConfig(epochs=epochs, learning_rate=1e-2, num_threads=1)
    train_supernet(model, random_batches(2, 4), get_task("mnli"), "standard", None, config, output_dir=output_dir,
                   progress=False)


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_training_checkpoint_is_refused_naming_the_folder_to_delete(tmp_path, damage):
    train_tiny(tmp_path)
    state = tmp_path / CHECKPOINT_DIR / "state.pt"
    state.write_bytes(DAMAGES[damage](state.read_bytes()))
    with pytest.raises(CheckpointError, match=f"checkpoint {state} .*delete {tmp_path / CHECKPOINT_DIR}"):
        train_tiny(tmp_path, epochs=2)


def test_a_checkpoint_without_its_digest_is_refused_and_a_sound_one_resumes(tmp_path):
    train_tiny(tmp_path)
    state = tmp_path / CHECKPOINT_DIR / "state.pt"
    digest = state.with_name("state.pt.sha256")
    assert digest.read_text().split()[0] == hashlib.sha256(state.read_bytes()).hexdigest()
    assert torch.load(state, weights_only=True)["state"]["epoch"] == 1  # no pickled objects needed
    train_tiny(tmp_path)  # resumes (finished: nothing to train): the sound checkpoint passes its check
    digest.unlink()
    with pytest.raises(CheckpointError, match="has no recorded SHA-256"):
        train_tiny(tmp_path)


def test_a_damaged_cofi_checkpoint_is_refused(tmp_path):
    checkpoint = run_checkpoint(tmp_path, CoFiConfig(task="rte"))
    checkpoint.save({"stage": "prune", "history": [{"error": 0.5}]})
    assert checkpoint.load()["stage"] == "prune"
    (tmp_path / "state.pt").write_bytes(bytes(100))
    with pytest.raises(CheckpointError, match=f"damaged.*delete {tmp_path} to start the run over"):
        checkpoint.load()
    checkpoint.clear()
    assert checkpoint.load() is None and not list(tmp_path.glob("state.pt*"))


def test_finetune_with_a_damaged_checkpoint_exits_with_one_line(tmp_path, glue_path, capsys):
    argv = ["finetune", "--task", "rte", "--model", tiny_folder(tmp_path), "--data-dir", str(glue_path),
            "--strategy", "standard", "--epochs", "1", "--batch-size", "8", "--max-train-examples", "16",
            "--max-length", "32", "--threads", "1", "--output-dir", str(tmp_path / "out")]
    state = tmp_path / "out" / CHECKPOINT_DIR / "state.pt"
    state.parent.mkdir(parents=True)
    state.write_bytes(bytes(1000))
    state.with_name("state.pt.sha256").write_text("0" * 64 + "  state.pt\n")
    assert main(argv) == 2
    one_line_error(capsys, f"checkpoint {state} is damaged", f"delete {state.parent}")
    assert not (tmp_path / "out" / "supernet.json").exists()


# -- outputs ---------------------------------------------------------------------------------------


def test_export_protects_existing_folders_and_finds_the_supernet_from_anywhere(
    tiny_supernet, tmp_path, capsys, monkeypatch
):
    assert search(tiny_supernet, tmp_path / "s", 3) == 0
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["supernet"] == str(tiny_supernet.resolve())

    def export(output_dir, *extra):
        return main(["export", "--search-dir", str(tmp_path / "s"), "--output-dir", str(output_dir), *extra])

    inside = ((tiny_supernet, "super-network"), (tmp_path / "s", "search"), (tmp_path / "s" / "m", "search"))
    for folder, kind in inside:
        assert export(folder, "--overwrite") == 2
        one_line_error(capsys, f"{kind} folder")
    assert json.loads((tiny_supernet / "supernet.json").read_text())["task"] == "rte"  # untouched

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the stored path is absolute: export works from any directory
    # --index: the tiny random super-network beats no trivial predictor, so it has no knee to export
    assert export(tmp_path / "model", "--index", "0") == 0
    capsys.readouterr()
    assert export(tmp_path / "model", "--index", "0") == 2
    one_line_error(capsys, "is not empty", "--overwrite")
    assert export(tmp_path / "model", "--index", "0", "--overwrite") == 0


def test_records_with_relative_paths_still_resolve(tmp_path):
    (tmp_path / "run" / "supernet").mkdir(parents=True)
    record = tmp_path / "run" / "summary.json"
    assert stored_path("supernet", record) == str(tmp_path / "run" / "supernet")
    assert stored_path(str(tmp_path), record) == str(tmp_path)
    assert stored_path("bert-base-uncased", record) == "bert-base-uncased"  # a hub name stays one


# -- bad options, models and data ------------------------------------------------------------------

BAD_OPTIONS = [
    (["search", "--supernet", "x", "--output-dir", "o", "--num-evaluations", "0"], "--num-evaluations", ">= 1"),
    (["search", "--supernet", "x", "--output-dir", "o", "--num-evaluations", "-3"], "--num-evaluations", ">= 1"),
    (["search", "--supernet", "x", "--output-dir", "o", "--max-time", "-1"], "--max-time", "> 0"),
    (["search", "--supernet", "x", "--output-dir", "o", "--max-validation-examples", "0"],
     "--max-validation-examples", ">= 1"),
    (["search", "--supernet", "x", "--output-dir", "o", "--workers", "0"], "--workers", ">= 1"),
    (["finetune", "--task", "rte", "--max-length", "0"], "--max-length", ">= 1"),
    (["finetune", "--task", "rte", "--epochs", "0"], "--epochs", ">= 1"),
    (["finetune", "--task", "rte", "--batch-size", "0"], "--batch-size", ">= 1"),
    (["finetune", "--task", "rte", "--learning-rate", "nan"], "--learning-rate", "> 0"),
    (["finetune", "--task", "rte", "--warmup-ratio", "1"], "--warmup-ratio", "< 1"),
    (["finetune", "--task", "rte", "--threads", "0"], "--threads", ">= 1"),
    (["run", "--num-evaluations", "0"], "--num-evaluations", ">= 1"),
    (["run", "--supernet-epochs", "-1"], "--supernet-epochs", ">= 0"),
    (["export", "--search-dir", "s", "--output-dir", "o", "--max-params", "1.5"], "--max-params", "<= 1"),
    (["search", "--supernet", "x", "--output-dir", "o", "--latency-repeats", "0"], "--latency-repeats", ">= 1"),
    (["export", "--search-dir", "s", "--output-dir", "o", "--latency-batch-size", "1", "0"],
     "--latency-batch-size", ">= 1"),
    (["run", "--latency-warmup", "-1"], "--latency-warmup", ">= 0"),
    (["run", "--latency-length", "0"], "--latency-length", ">= 1"),
    (["baseline", "head-pruning", "--task", "rte", "--model", "m", "--heads-per-step", "0"],
     "--heads-per-step", ">= 1"),
    (["baseline", "retraining-free", "--task", "rte", "--model", "m", "--budgets", "0"], "--budgets", "> 0"),
    (["baseline", "standard-nas", "--task", "rte", "--max-trials", "0"], "--max-trials", ">= 1"),
    (["cofi-search", "--n-trials", "0"], "--n-trials", ">= 1"),
    (["cofi", "--prune-epochs", "0"], "--prune-epochs", ">= 1"),
    (["cofi", "--target-sparsity", "1"], "--target-sparsity", "< 1"),
    (["cofi", "--finetune-learning-rate", "0"], "--finetune-learning-rate", "> 0"),
    (["cofi-search", "--sparsity-range", "0.5", "1"], "--sparsity-range", "< 1"),
    (["tabulate", "--supernet", "s", "--output-dir", "o", "--num-configs", "-1"], "--num-configs", ">= 0"),
    (["tabulate", "--supernet", "s", "--output-dir", "o", "--num-configs", "4", "--max-validation-examples", "0"],
     "--max-validation-examples", ">= 1"),
    (["benchmark", "--blackbox", "b", "--output-dir", "o", "--seeds", "0"], "--seeds", ">= 1"),
    (["benchmark", "--blackbox", "b", "--output-dir", "o", "--num-evaluations", "1.5"], "--num-evaluations", ">= 1"),
    (["benchmark", "--blackbox", "b", "--output-dir", "o", "--workers", "0"], "--workers", ">= 1"),
]


@pytest.mark.parametrize(
    "argv, option, accepted", BAD_OPTIONS, ids=[" ".join(case[0][:1] + case[0][-2:]) for case in BAD_OPTIONS]
)
def test_bad_numeric_options_exit_2_naming_the_accepted_range(argv, option, accepted, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and accepted in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["finetune", "cofi", "baseline"])
def test_a_missing_model_folder_is_one_line(command, tmp_path, capsys):
    missing = str(tmp_path / "no-such-model")
    argv = {
        "finetune": ["finetune", "--task", "rte", "--model", missing, "--output-dir", str(tmp_path / "o")],
        "cofi": ["cofi", "--task", "rte", "--model", missing, "--output-dir", str(tmp_path / "o")],
        "baseline": ["baseline", "layer-drop", "--task", "rte", "--model", missing],
    }[command]
    assert main(argv) == 2
    one_line_error(capsys, f"cannot load model {missing!r}")


@pytest.mark.parametrize("command", ["finetune", "search", "export", "cofi", "baseline", "tabulate", "benchmark"])
def test_an_output_dir_that_is_a_file_is_refused_before_any_work(command, tmp_path, capsys):
    taken = tmp_path / "file.txt"
    taken.write_text("mine")
    argv = {
        "finetune": ["finetune", "--task", "rte"],
        "search": ["search", "--supernet", "x"],
        "export": ["export", "--search-dir", "x"],
        "cofi": ["cofi", "--task", "rte"],
        "baseline": ["baseline", "layer-drop", "--task", "rte", "--model", "m"],
        "tabulate": ["tabulate", "--supernet", "x", "--num-configs", "4"],
        "benchmark": ["benchmark", "--blackbox", "x"],
    }[command]
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--output-dir", str(taken / "sub")])
    assert stop.value.code == 2 and "is a file" in capsys.readouterr().err
    assert taken.read_text() == "mine"


def test_max_length_beyond_the_models_positions_is_refused(tmp_path, capsys):
    argv = ["finetune", "--task", "rte", "--model", tiny_folder(tmp_path), "--max-length", "65",
            "--output-dir", str(tmp_path / "o")]
    assert main(argv) == 2
    one_line_error(capsys, "max_length must lie in [1, 64]")


def classifier_folder(tmp_path, name: str, num_labels: int = 2, task: str | None = None, info_task: str | None = None):
    """A tiny classifier folder; `task` recorded in config.json, `info_task` in a supernet.json."""
    model = tiny_model(num_labels=num_labels, max_position_embeddings=64)
    if task is not None:
        model.config.finetuning_task = task
    model.save_pretrained(tmp_path / name)
    if info_task is not None:
        (tmp_path / name / "supernet.json").write_text(json.dumps({"task": info_task, "data": {}}))
    return str(tmp_path / name)


@pytest.mark.parametrize(
    "folder, message",
    [
        (dict(name="mrpc", task="mrpc"), "was fine-tuned on 'mrpc', not on 'rte'"),
        (dict(name="stsb", num_labels=1, info_task="stsb"), "was fine-tuned on 'stsb', not on 'rte'"),
        (dict(name="regression", num_labels=1), "has 1 outputs but task 'rte' needs 2"),
    ],
)
def test_a_baseline_refuses_a_model_not_fine_tuned_on_its_task(folder, message, tmp_path, capsys):
    model = classifier_folder(tmp_path, **folder)
    assert main(["baseline", "layer-drop", "--task", "rte", "--model", model, "--output-dir", str(tmp_path / "o")]) == 2
    one_line_error(capsys, message)
    assert not (tmp_path / "o").exists()


def test_a_baseline_refuses_a_bare_pretrained_model(tmp_path, capsys):
    assert main(["baseline", "head-pruning", "--task", "rte", "--model", "all-MiniLM-L6-v2"]) == 2
    one_line_error(capsys, "has no trained classification head")


def test_finetune_records_the_task_for_the_baselines(tmp_path, glue_path):
    from nas_pruning.supernet import finetune

    folder = finetune("rte", model=tiny_folder(tmp_path), strategy="standard", search_space=None, data_dir=glue_path,
                      output_dir=tmp_path / "ft", epochs=1, batch_size=8, max_train_examples=8, max_length=16,
                      num_threads=1, progress=False)
    assert json.loads((folder / "config.json").read_text())["finetuning_task"] == "rte"
    info = json.loads((folder / "supernet.json").read_text())
    assert info["base_model"] == str(tmp_path / "tiny") and info["data"]["data_dir"] == str(glue_path.resolve())


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("header.csv", "text,label\n", "holds no examples"),
        ("nested.jsonl", '{"text": {"a": 1}, "label": 1}\n{"text": "b", "label": 0}\n',
         "text column 'text' holds nested or mixed values"),
        ("mixed.jsonl", '{"text": "a", "label": [1, 2]}\n{"text": "b", "label": 1}\n',
         "label column 'label' holds nested or mixed values"),
    ],
)
def test_bad_custom_data_names_the_file_and_column(name, content, message, tmp_path):
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=f"{tmp_path / name}.*{message}") as error:
        load_custom_task(tmp_path / name)
    assert "Arrow" not in str(error.value) and "Instruction" not in str(error.value)


@pytest.mark.parametrize("value", [1.5, 2.0, "2", None, 0, 4])
def test_to_subnetwork_names_the_hyperparameter_and_its_range(value):
    space = get_search_space("small", tiny_model().config)
    with pytest.raises(ValueError, match=r"num_layers=.* accepted integers in \[1, 3\]|num_layers=.*\(1, 3\)"):
        space.to_subnetwork({"num_layers": value, "num_heads": 1, "num_units": 1})

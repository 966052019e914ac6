"""Typed stage records: supernet.json and a search's summary.json as versioned JSON; folders written
before records were versioned (no "version" field) still load."""

import json

import pytest

from nas_pruning.evaluation import Yardsticks
from nas_pruning.experiments.weight_sharing import SUMMARY_VERSION, load_search_summary
from nas_pruning.pareto import DEFAULT_BOUNDS
from nas_pruning.supernet import INFO_FILE, DataSplit, SupernetRecord, TrainingConfig, read_info
from nas_pruning.supernet.storage import RECORD_VERSION
from nas_pruning.tasks import DEFAULT_MAX_LENGTH

# supernet.json as finetune wrote it before records were versioned (the STS-B super-network of the
# weight-sharing benchmark; history shortened).
LEGACY_SUPERNET = {
    "task": "stsb", "base_model": "/work/bench/benchmarks/runs/weight_sharing_fair/stsb-seed0/start",
    "strategy": {"name": "full", "num_random": 2}, "search_space": "small", "pooling": "mean",
    "training": {
        "epochs": 2, "learning_rate": 0.0001, "batch_size": 32, "weight_decay": 0.01, "warmup_ratio": 0.1,
        "max_grad_norm": 1.0, "temperature": 1.0, "distill_task_weight": 0.0, "num_random": 2, "seed": 0,
        "num_threads": 1, "max_steps": None, "validate_subnetworks": False, "group_by_length": True,
    },
    "data": {"data_dir": None, "split_seed": 0, "val_fraction": 0.3, "max_train_examples": None, "max_length": 128},
    "importance_examples": 0,
    "history": [{"epoch": 1, "step": 126, "train_loss": 11.41, "train_seconds": 403.1, "val_metric": 0.798}],
}

# summary.json of that benchmark's search (seed 0), written before summaries were versioned and before
# the objectives and latency settings existed.
LEGACY_SUMMARY = {
    "supernet": "/work/bench/benchmarks/runs/weight_sharing_fair/stsb-seed0/full", "task": "stsb",
    "metric": "spearman", "experiment": "weight-sharing-local_search-2026-12-03-13-32-03-548", "evaluations": 100,
    "front_size": 23, "hypervolume": 0.34128453858060814, "hypervolume_objectives": ["error", "params"],
    "hypervolume_bounds": {"error": [0.0, 1.0], "params": [0.0, 1.0]}, "hypervolume_reference": "trivial",
    "hypervolume_reference_point": [1.0, 1.0],
    "yardsticks": {"trivial_validation": 0.0, "trivial_test": 0.0, "unpruned_validation": 0.8133690187923477,
                   "unpruned_test": 0.8515903235894065},
    "settings": {"search_space": "small", "optimizer": "local_search", "num_evaluations": 100,
                 "max_wallclock_time": None, "n_workers": 1, "seed": 0, "batch_size": 64,
                 "max_validation_examples": 400, "measure_latency": False, "hypervolume_reference": "trivial",
                 "num_threads": 1, "ray_actors": None, "ray_address": None, "actor_cpus": 1.0, "actor_gpus": 0.0},
}


def test_a_legacy_supernet_record_loads(tmp_path):
    (tmp_path / INFO_FILE).write_text(json.dumps(LEGACY_SUPERNET))
    record = read_info(tmp_path)
    assert record.task == "stsb" and record.strategy == {"name": "full", "num_random": 2}
    # It grouped by length with the mega-batches of its time (50 batches), not today's default.
    assert record.training == TrainingConfig(**LEGACY_SUPERNET["training"], mega_batches=50)
    assert record.data == DataSplit(None, 0, 0.3, None, 128) and record.searched_space == "small"
    assert record.history == LEGACY_SUPERNET["history"] and record.data_parallel_ranks is None


def test_a_supernet_record_round_trips_with_a_version(tmp_path):
    record = SupernetRecord(task="rte", training=TrainingConfig(epochs=2), data=DataSplit(max_length=32),
                            history=[{"epoch": 1}], data_parallel_ranks=2)
    (tmp_path / INFO_FILE).write_text(record.to_json())
    assert json.loads(record.to_json())["version"] == RECORD_VERSION
    assert read_info(tmp_path) == record


def test_what_an_old_supernet_record_leaves_out_takes_the_defaults(tmp_path):
    (tmp_path / INFO_FILE).write_text(json.dumps({"task": "rte", "data": {}, "retired_field": 1}))
    record = read_info(tmp_path)
    assert record.data.max_length == DEFAULT_MAX_LENGTH and record.searched_space == "small"
    assert record.training is None and record.history == []


def test_an_old_record_keeps_the_batching_it_trained_with(tmp_path):
    (tmp_path / INFO_FILE).write_text(json.dumps({"task": "rte", "data": {}, "training": {"epochs": 2}}))
    training = read_info(tmp_path).training
    assert training.epochs == 2 and not training.group_by_length and training.mega_batches == 50
    assert TrainingConfig().mega_batches == 4  # today's mega-batch size differs


def test_a_record_of_a_later_version_is_refused(tmp_path):
    (tmp_path / INFO_FILE).write_text(json.dumps({"version": RECORD_VERSION + 1, "task": "rte"}))
    with pytest.raises(ValueError, match=f"version {RECORD_VERSION + 1}, newer than this nas_pruning reads"):
        read_info(tmp_path)


def test_a_legacy_search_summary_loads(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps(LEGACY_SUMMARY))
    summary = load_search_summary(tmp_path)
    assert summary.hypervolume == 0.34128453858060814 and summary.front_size == 23
    assert summary.yardsticks == Yardsticks(**LEGACY_SUMMARY["yardsticks"])
    assert summary.objectives == ["error", "params"] and summary.hypervolume_bounds == DEFAULT_BOUNDS
    assert summary.settings.search_space == "small" and summary.settings.max_validation_examples == 400
    assert summary.settings.objectives == ("error", "params") and summary.latency is None


def test_a_search_summary_round_trips_with_a_version(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps(LEGACY_SUMMARY))
    summary = load_search_summary(tmp_path)
    (tmp_path / "summary.json").write_text(summary.to_json())
    assert json.loads(summary.to_json())["version"] == SUMMARY_VERSION
    assert load_search_summary(tmp_path) == summary


def test_a_folder_without_a_summary_is_not_a_search(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a search folder: no summary.json"):
        load_search_summary(tmp_path)


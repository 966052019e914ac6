"""Data-parallel super-network training: 2 CPU processes (gloo, torchrun) match one process, same global batch."""

import os
import socket
import subprocess
import sys

import datasets
import pytest
import torch
from conftest import tiny_model

from nas_pruning.cli import main
from nas_pruning.models import load_tokenizer
from nas_pruning.supernet import load_supernet
from nas_pruning.tasks import make_loader
from nas_pruning.training.distributed import DataParallel, data_parallel_from_environment

NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # dropout masks differ per rank


def dataset(n=24):
    """`n` examples of 5 to 10 random tokens."""
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(5, 11, (n,), generator=g)
    ids = [torch.randint(3, 60, (int(length),), generator=g).tolist() for length in lengths]
    return datasets.Dataset.from_dict(
        {
            "input_ids": ids,
            "attention_mask": [[1] * len(x) for x in ids],
            "labels": torch.randint(0, 3, (n,), generator=g).tolist(),
        }
    )


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("examples, batch_size", [(24, 8), (25, 9), (25, 8)])
def test_ranks_share_the_single_process_batches_epoch_after_epoch(examples, batch_size):
    data = dataset(examples).add_column("index", list(range(examples)))
    tokenizer = load_tokenizer()
    whole = make_loader(data, tokenizer, batch_size, shuffle=True, seed=3)
    cpu = torch.device("cpu")
    ranks = [DataParallel(rank, 2, cpu).loader(data, tokenizer, batch_size, seed=3) for rank in range(2)]
    for _ in range(2):  # epochs
        expected = [b["index"].tolist() for b in whole if len(b["index"]) >= 2]  # (25, 8): the last 1 is skipped
        parts = [[b["index"].tolist() for b in loader] for loader in ranks]
        assert len(parts[0]) == len(parts[1]) == len(expected) == len(ranks[0])
        for k, batch in enumerate(expected):
            assert parts[0][k] + parts[1][k] == batch
            assert abs(len(parts[0][k]) - len(parts[1][k])) <= 1
    assert expected[0] != sorted(expected[0])  # shuffled


def test_a_batch_smaller_than_the_ranks_is_refused():
    with pytest.raises(ValueError, match="a global batch of 1 examples cannot be shared by 2 processes"):
        DataParallel(0, 2, torch.device("cpu")).loader(dataset(), load_tokenizer(), 1)


def test_a_single_process_is_not_data_parallel(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with data_parallel_from_environment() as data_parallel:
        assert data_parallel is None


@pytest.mark.integration
def test_finetune_under_torchrun_matches_one_process(tmp_path, glue_path):
    """`torchrun --nproc_per_node 2 -m nas_pruning.cli finetune` on a tiny model and 24 real RTE rows, 2 epochs.

    Strategy `full`: the ranks must sample the same sub-networks and distil them alike.
    """
    model_dir = tmp_path / "tiny"
    tiny_model(num_labels=2, vocab_size=30522, max_position_embeddings=64, **NO_DROPOUT).save_pretrained(model_dir)
    load_tokenizer().save_pretrained(model_dir)
    args = ["finetune", "--task", "rte", "--model", str(model_dir), "--data-dir", str(glue_path), "--epochs", "2",
            "--batch-size", "8", "--max-train-examples", "24", "--max-length", "32", "--strategy", "full",
            "--threads", "1", "--learning-rate", "1e-2"]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                str(free_port()), "-m", "nas_pruning.cli"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    launched = subprocess.run(launcher + args + ["--output-dir", str(tmp_path / "two")], env=env,
                              capture_output=True, text=True, timeout=170)
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert main(args + ["--output-dir", str(tmp_path / "one")]) == 0

    two, two_info = load_supernet(tmp_path / "two")
    one, one_info = load_supernet(tmp_path / "one")
    assert two_info.data_parallel_ranks == 2 and one_info.data_parallel_ranks is None
    assert [h["step"] for h in two_info.history] == [h["step"] for h in one_info.history] == [3, 6]
    for two_epoch, one_epoch in zip(two_info.history, one_info.history):
        assert two_epoch["train_loss"] == pytest.approx(one_epoch["train_loss"], rel=1e-5)
        assert two_epoch["val_error"] == pytest.approx(one_epoch["val_error"], abs=1e-9)
    for (name, a), b in zip(two.state_dict().items(), one.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name
    initial = tiny_model(num_labels=2, vocab_size=30522, max_position_embeddings=64, **NO_DROPOUT).state_dict()
    assert not torch.equal(one.state_dict()["bert.encoder.layer.0.output.dense.weight"],
                           initial["bert.encoder.layer.0.output.dense.weight"])  # it did train


def test_ranks_share_the_single_process_length_grouped_batches():
    data = dataset(40).add_column("index", list(range(40)))
    tokenizer = load_tokenizer()
    whole = make_loader(data, tokenizer, 8, shuffle=True, seed=3, by_length=True)
    ranks = [DataParallel(rank, 2, torch.device("cpu")).loader(data, tokenizer, 8, seed=3, by_length=True)
             for rank in range(2)]
    for _ in range(2):  # epochs
        expected = [b["index"].tolist() for b in whole]
        parts = [[b["index"].tolist() for b in loader] for loader in ranks]
        assert [p0 + p1 for p0, p1 in zip(*parts)] == expected

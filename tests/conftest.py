"""Shared fixtures: tiny randomly initialised BERT / RoBERTa classifiers built in code."""

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, RobertaConfig, RobertaForSequenceClassification

from nas_pruning.models import load_tokenizer
from nas_pruning.supernet import save_supernet

TINY = dict(
    vocab_size=60,
    hidden_size=16,
    num_hidden_layers=3,
    num_attention_heads=4,
    intermediate_size=12,
    max_position_embeddings=40,
    num_labels=3,
)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run faster on one thread than split over busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(family: str = "bert", seed: int = 0, **overrides):
    torch.manual_seed(seed)
    values = {**TINY, **overrides}
    if family == "bert":
        return BertForSequenceClassification(BertConfig(**values)).eval()
    return RobertaForSequenceClassification(RobertaConfig(pad_token_id=1, **values)).eval()


def random_batches(num_batches: int, batch_size: int, seed: int = 0) -> list[dict]:
    """Labelled batches of random token ids for a 2-class tiny model (label: first token's parity)."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(num_batches):
        ids = torch.randint(3, TINY["vocab_size"], (batch_size, 10), generator=generator)
        batches.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids[:, 0] % 2})
    return batches


@pytest.fixture(params=["bert", "roberta"])
def family(request) -> str:
    return request.param


@pytest.fixture
def tiny_batch():
    torch.manual_seed(1)
    input_ids = torch.randint(3, TINY["vocab_size"], (3, 10))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 7:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def glue_dir() -> Path | None:
    candidates = [os.environ.get("GLUE_DIR"), Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"]
    for candidate in candidates:
        if candidate and Path(candidate, "RTE", "dev.tsv").exists():
            return Path(candidate)
    return None


@pytest.fixture
def glue_path() -> Path:
    path = glue_dir()
    if path is None:
        pytest.skip("GLUE copy not found: set GLUE_DIR or place shared/data/glue beside the repo")
    return path


@pytest.fixture
def tiny_supernet(tmp_path, glue_path):
    """A saved tiny BERT super-network (MiniLM's vocabulary and tokenizer) for RTE, over the real GLUE rows."""
    model = tiny_model("bert", num_labels=2, vocab_size=30522, max_position_embeddings=128)
    info = {
        "task": "rte",
        "base_model": "tiny-bert",
        "strategy": {"name": "standard"},
        "search_space": "small",
        "data": {"data_dir": str(glue_path), "split_seed": 0, "val_fraction": 0.3, "max_length": 64},
    }
    return save_supernet(tmp_path / "supernet", model, info, load_tokenizer())

"""Shared fixtures: tiny randomly initialised BERT / RoBERTa classifiers built in code."""

import contextlib
import io
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, RobertaConfig, RobertaForSequenceClassification

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


def tiny_model(family: str = "bert", seed: int = 0, pooling: str = "cls", **overrides):
    """A tiny classifier; pooling "mean" builds nas_pruning's mean-pooling class (no pooler)."""
    torch.manual_seed(seed)
    values = {**TINY, **overrides}
    if pooling == "mean":
        from nas_pruning.models.pruned_modeling import (
            BertForSequenceClassificationPooled,
            RobertaForSequenceClassificationPooled,
        )

        if family == "bert":
            return BertForSequenceClassificationPooled(BertConfig(classifier_pooling="mean", **values)).eval()
        config = RobertaConfig(pad_token_id=1, classifier_pooling="mean", **values)
        return RobertaForSequenceClassificationPooled(config).eval()
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


@pytest.fixture(params=["cls", "mean"])
def pooling(request) -> str:
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


def save_tiny_supernet(folder: Path, glue_path: Path, pooling: str = "cls") -> Path:
    """A 3-layer BERT super-network folder on RTE (real GLUE rows; MiniLM's vocabulary and tokenizer),
    as `finetune` writes it, with a [CLS] or mean-pooling head."""
    from nas_pruning.models import load_tokenizer
    from nas_pruning.supernet import DataSplit, SupernetRecord, save_supernet

    model = tiny_model("bert", pooling=pooling, num_labels=2, vocab_size=30522, max_position_embeddings=128)
    info = SupernetRecord(
        task="rte", base_model="tiny-bert", strategy={"name": "standard"}, search_space="small",
        data=DataSplit(data_dir=str(glue_path), split_seed=0, val_fraction=0.3, max_length=64),
    )
    return save_supernet(folder, model, info, load_tokenizer())


@pytest.fixture
def tiny_supernet(tmp_path, glue_path):
    """`save_tiny_supernet` with a [CLS] head."""
    return save_tiny_supernet(tmp_path / "supernet", glue_path)


TINY_STSB_VALIDATION = 48  # validation examples each evaluation of the tiny STS-B blackbox scores


@pytest.fixture(scope="session")
def tiny_stsb(tmp_path_factory):
    """A tiny STS-B super-network, a live local search of it (seed 1) and a blackbox tabulated from both."""
    from nas_pruning.cli import main
    from nas_pruning.models import load_tokenizer
    from nas_pruning.experiments.weight_sharing import SearchSettings, run_search
    from nas_pruning.supernet import DataSplit, SupernetRecord, save_supernet

    glue = glue_dir()
    if glue is None:
        pytest.skip("GLUE copy not found: set GLUE_DIR or place shared/data/glue beside the repo")
    root = tmp_path_factory.mktemp("blackbox")
    model = tiny_model("bert", num_labels=1, vocab_size=30522, max_position_embeddings=128)
    info = SupernetRecord(
        task="stsb", base_model="tiny-bert", strategy={"name": "standard"}, search_space="small",
        data=DataSplit(data_dir=str(glue), split_seed=0, val_fraction=0.3, max_length=32, max_train_examples=200),
    )
    supernet = save_supernet(root / "supernet", model, info, load_tokenizer())
    settings = SearchSettings(
        optimizer="local_search", num_evaluations=20, seed=1, max_validation_examples=TINY_STSB_VALIDATION,
        num_threads=1,
    )
    run_search(supernet, root / "search", settings, progress=False)
    argv = ["tabulate", "--supernet", str(supernet), "--output-dir", str(root / "bb"), "--num-configs", "24",
            "--include-search", str(root / "search"), "--max-validation-examples", str(TINY_STSB_VALIDATION),
            "--subset-seed", "1", "--threads", "1"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(argv) == 0
    return {"supernet": supernet, "search": root / "search", "blackbox": root / "bb", "printed": printed.getvalue()}

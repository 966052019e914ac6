"""The task registry: what a model has to predict and how predictions are scored.

A :class:`Task` says what a model has to predict (text columns, number of
labels) and how predictions are scored (:data:`METRICS`, the trivial predictor);
:data:`TASKS` holds the GLUE tasks and where their files live; a :class:`TaskData`
holds a task's ``train`` / ``validation`` / ``test`` datasets.

Every metric is "higher is better", so ``1 - task.metric(...)`` is an error to
minimise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import datasets
import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

SPLITS = ("train", "validation", "test")


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------


def _accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(predictions == labels))


def _f1(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(f1_score(labels, predictions, pos_label=1, zero_division=0.0))


def _mcc(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(matthews_corrcoef(labels, predictions))


def _spearman(predictions: np.ndarray, labels: np.ndarray) -> float:
    # Constant predictions or labels have no rank correlation: spearmanr
    # returns NaN there, which we report as 0 (no correlation) so that
    # ``1 - metric`` stays a usable error.
    if np.ptp(predictions) == 0 or np.ptp(labels) == 0:
        return 0.0
    return float(spearmanr(predictions, labels).statistic)


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": _accuracy,
    "f1": _f1,
    "mcc": _mcc,
    "spearman": _spearman,
}
"""Metric name -> function(predictions, labels) on class ids or real values."""


# ---------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GlueFiles:
    """Where a GLUE task is stored, locally and on the hub.

    :param hub_config: configuration name of ``nyu-mll/glue`` on the hub
    :param folder: subfolder of a GLUE data folder that holds the TSV files
    :param columns: ``(file column, dataset column)`` pairs to keep from the
        TSV files; the dataset columns are the hub's names
    :param header_names: column names for files without a header line
        (CoLA); ``None`` when the first line is a header
    :param dev_file: file name of the GLUE dev split
    :param hub_dev_split: name of the GLUE dev split on the hub
    """

    hub_config: str
    folder: str
    columns: tuple[tuple[str, str], ...]
    header_names: tuple[str, ...] | None = None
    dev_file: str = "dev.tsv"
    hub_dev_split: str = "validation"

    def file_name(self, split: str) -> str:
        """TSV file name of the GLUE split ``"train"`` or ``"dev"``."""
        return "train.tsv" if split == "train" else self.dev_file

    def hub_split(self, split: str) -> str:
        """Hub split name of the GLUE split ``"train"`` or ``"dev"``."""
        return "train" if split == "train" else self.hub_dev_split


@dataclass(frozen=True)
class Task:
    """A text classification or regression task.

    :param name: short name, e.g. ``"rte"``
    :param text_columns: one or two text columns fed to the tokenizer (as a
        single text or a text pair)
    :param label_names: names of the classes, in class-id order; ``None`` for
        a regression task (one real-valued target)
    :param metric_name: ``"accuracy"``, ``"f1"`` (binary, class 1 positive),
        ``"mcc"`` (Matthews correlation) or ``"spearman"``; higher is better
    :param glue: where the task's GLUE files live; ``None`` for custom tasks
    """

    name: str
    text_columns: tuple[str, ...]
    label_names: tuple[str, ...] | None
    metric_name: str
    glue: GlueFiles | None = None

    def __post_init__(self):
        if len(self.text_columns) not in (1, 2):
            raise ValueError(
                f"task {self.name!r}: text_columns must hold 1 or 2 names, "
                f"got {self.text_columns}"
            )
        if self.metric_name not in METRICS:
            raise ValueError(
                f"task {self.name!r}: unknown metric {self.metric_name!r}; "
                f"known metrics: {sorted(METRICS)}"
            )
        if self.is_regression != (self.metric_name == "spearman"):
            raise ValueError(
                f"task {self.name!r}: metric {self.metric_name!r} does not fit a "
                f"{'regression' if self.is_regression else 'classification'} task"
            )
        if self.metric_name in ("f1", "mcc") and self.num_labels != 2:
            raise ValueError(
                f"task {self.name!r}: metric {self.metric_name!r} needs 2 classes, "
                f"the task has {self.num_labels}"
            )

    @property
    def is_regression(self) -> bool:
        return self.label_names is None

    @property
    def num_labels(self) -> int:
        """Size of the model's output: number of classes, 1 for regression."""
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns of the task's datasets: the text columns and ``"label"``."""
        return self.text_columns + ("label",)

    def features(self) -> datasets.Features:
        """Dataset features of the task: strings and a class or float label."""
        label = (
            datasets.Value("float32")
            if self.label_names is None
            else datasets.ClassLabel(names=list(self.label_names))
        )
        features = {column: datasets.Value("string") for column in self.text_columns}
        return datasets.Features({**features, "label": label})

    def metric(self, predictions: Sequence | np.ndarray, labels: Sequence | np.ndarray) -> float:
        """Score predictions against labels with the task's metric.

        :param predictions: logits of shape ``[N, C]`` (arg-maxed), class ids
            of shape ``[N]``, or for regression real values of shape ``[N]``
            or ``[N, 1]``
        :param labels: class ids or real values, shape ``[N]``
        :return: the metric, higher is better
        """
        predictions = np.asarray(predictions)
        labels = np.asarray(labels).reshape(-1)
        if self.is_regression:
            predictions = predictions.reshape(-1).astype(np.float64)
        elif predictions.ndim == 2:
            predictions = predictions.argmax(axis=-1)
        if predictions.shape != labels.shape:
            raise ValueError(
                f"task {self.name!r}: {predictions.shape[0]} predictions for "
                f"{labels.shape[0]} labels"
            )
        if len(labels) == 0:
            raise ValueError(f"task {self.name!r}: no predictions to score")
        return METRICS[self.metric_name](predictions, labels)

    def trivial_prediction(self, train_labels: Sequence | np.ndarray) -> float:
        """What a model that ignores its input predicts: the majority class of
        ``train_labels`` (the lowest class id on a tie), or their mean for regression."""
        train_labels = np.asarray(train_labels).reshape(-1)
        if len(train_labels) == 0:
            raise ValueError(f"task {self.name!r}: no training labels to take a trivial prediction from")
        if self.is_regression:
            return float(train_labels.astype(np.float64).mean())
        return int(np.bincount(train_labels.astype(np.int64), minlength=self.num_labels).argmax())

    def trivial_metric(self, train_labels: Sequence | np.ndarray, labels: Sequence | np.ndarray) -> float:
        """The metric of the trivial predictor (:meth:`trivial_prediction` for every
        example) on ``labels``: what a pruned model has to beat to have learned anything.
        A constant has no rank correlation, so it is 0 for Spearman."""
        labels = np.asarray(labels).reshape(-1)
        return self.metric(np.full(len(labels), self.trivial_prediction(train_labels)), labels)


NLI = ("entailment", "not_entailment")

TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            "cola",
            ("sentence",),
            ("unacceptable", "acceptable"),
            "mcc",
            GlueFiles(
                "cola",
                "CoLA",
                (("sentence", "sentence"), ("label", "label")),
                header_names=("source", "label", "mark", "sentence"),
            ),
        ),
        Task(
            "sst2",
            ("sentence",),
            ("negative", "positive"),
            "accuracy",
            GlueFiles("sst2", "SST-2", (("sentence", "sentence"), ("label", "label"))),
        ),
        Task(
            "mrpc",
            ("sentence1", "sentence2"),
            ("not_equivalent", "equivalent"),
            "f1",
            GlueFiles(
                "mrpc",
                "MRPC",
                (
                    ("#1 String", "sentence1"),
                    ("#2 String", "sentence2"),
                    ("Quality", "label"),
                ),
            ),
        ),
        Task(
            "stsb",
            ("sentence1", "sentence2"),
            None,
            "spearman",
            GlueFiles(
                "stsb",
                "STS-B",
                (("sentence1", "sentence1"), ("sentence2", "sentence2"), ("score", "label")),
            ),
        ),
        Task(
            "qqp",
            ("question1", "question2"),
            ("not_duplicate", "duplicate"),
            "accuracy",
            GlueFiles(
                "qqp",
                "QQP",
                (
                    ("question1", "question1"),
                    ("question2", "question2"),
                    ("is_duplicate", "label"),
                ),
            ),
        ),
        Task(
            "mnli",
            ("premise", "hypothesis"),
            ("entailment", "neutral", "contradiction"),
            "accuracy",
            GlueFiles(
                "mnli",
                "MNLI",
                (
                    ("sentence1", "premise"),
                    ("sentence2", "hypothesis"),
                    ("gold_label", "label"),
                ),
                dev_file="dev_matched.tsv",
                hub_dev_split="validation_matched",
            ),
        ),
        Task(
            "qnli",
            ("question", "sentence"),
            NLI,
            "accuracy",
            GlueFiles(
                "qnli",
                "QNLI",
                (("question", "question"), ("sentence", "sentence"), ("label", "label")),
            ),
        ),
        Task(
            "rte",
            ("sentence1", "sentence2"),
            NLI,
            "accuracy",
            GlueFiles(
                "rte",
                "RTE",
                (("sentence1", "sentence1"), ("sentence2", "sentence2"), ("label", "label")),
            ),
        ),
    )
}
"""The GLUE tasks, by name. Label names and columns are those of ``nyu-mll/glue``."""


def get_task(name: str) -> Task:
    """The GLUE task called ``name`` (case, ``-`` and ``_`` are ignored, so
    ``"SST-2"`` and ``"sst2"`` are the same)."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[key]


@dataclass(frozen=True)
class TaskData:
    """The datasets of a task. A split that was not loaded is ``None``.

    Before :func:`encode`, each dataset has the columns ``task.columns``;
    after it, the tokenizer's columns and ``labels``.

    :param task: the task the data belongs to
    :param train: examples to train on
    :param validation: held-out part of the training data, for model selection
    :param test: examples to report on (GLUE: the dev split)
    """

    task: Task
    train: datasets.Dataset | None = None
    validation: datasets.Dataset | None = None
    test: datasets.Dataset | None = None

    def splits(self) -> dict[str, datasets.Dataset]:
        """The loaded splits, by name."""
        return {
            split: getattr(self, split) for split in SPLITS if getattr(self, split) is not None
        }

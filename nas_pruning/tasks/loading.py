"""Loading a task's data: GLUE from a local folder of TSVs or the hub, and users' files.

:func:`load_task` loads a GLUE task either from a local folder of the standard
GLUE TSV files or from the Hugging Face hub (``nyu-mll/glue``); both give
datasets with the same columns and features. :func:`load_custom_task` does the
same for a user's CSV / TSV / JSON files or any hub dataset.

Splits follow the protocol of Klein et al. (2024): the original training split
is divided at random (seeded) into ``train`` and ``validation`` (70/30 by
default), and the original GLUE dev split serves as ``test``. Pareto sets are
chosen on ``validation`` and reported on ``test``.
"""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import datasets
import numpy as np
import pandas as pd

from nas_pruning.tasks.registry import SPLITS, Task, TaskData, get_task

GLUE_HUB_NAME = "nyu-mll/glue"
#: Share of a train set held out as the validation split (the paper's 70/30 split).
VAL_FRACTION = 0.3
GLUE_DIR_HINT = (
    "GLUE_DIR or --data-dir should point at a folder of GLUE TSVs "
    "(e.g. ../shared/data/glue)"
)


# ---------------------------------------------------------------------------
# Loading GLUE
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    """Hide the progress bars of ``datasets`` and restore their state after."""
    enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if enabled:
            datasets.enable_progress_bars()


def _glue_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """The local GLUE folder to read from, or ``None`` to use the hub."""
    if data_dir is None:
        data_dir = os.environ.get("GLUE_DIR") or None
    if data_dir is None:
        return None
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"GLUE data folder {path} does not exist; {GLUE_DIR_HINT}")
    return path


def _read_glue_tsv(task: Task, path: Path) -> datasets.Dataset:
    """Read one GLUE TSV file into a dataset with the hub's columns and features."""
    glue = task.glue
    frame = pd.read_csv(
        path,
        sep="\t",
        quoting=csv.QUOTE_NONE,  # sentences hold bare '"' characters
        header=None if glue.header_names else 0,
        names=glue.header_names,
        dtype=str,
        keep_default_na=False,  # a sentence "NA" or "null" stays a string
        encoding="utf-8-sig",  # the MRPC header starts with a byte-order mark
    )
    missing = [column for column, _ in glue.columns if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{path} lacks the column(s) {missing}; its columns are {list(frame.columns)}"
        )
    frame = frame[[column for column, _ in glue.columns]].rename(columns=dict(glue.columns))
    if task.is_regression:
        frame["label"] = frame["label"].astype(np.float32)
    else:
        frame["label"] = _class_ids(frame["label"], task.label_names, path)
    return datasets.Dataset.from_pandas(frame, features=task.features(), preserve_index=False)


def _class_ids(labels: pd.Series, label_names: tuple[str, ...], path: Path) -> pd.Series:
    """Map labels given as class names ("entailment") or ids ("0") to ids."""
    ids = {name: i for i, name in enumerate(label_names)}
    ids.update({str(i): i for i in range(len(label_names))})
    mapped = labels.map(ids)
    unknown = labels[mapped.isna()].unique()
    if len(unknown):
        raise ValueError(
            f"{path}: unknown label(s) {list(unknown[:5])}; expected one of "
            f"{list(label_names)} or a class id 0..{len(label_names) - 1}"
        )
    return mapped.astype(np.int64)


def load_task_split(
    name: str, split: str = "dev", data_dir: str | os.PathLike | None = None
) -> datasets.Dataset:
    """A whole, unsplit GLUE split (e.g. QNLI's dev set as auxiliary training data).

    :param name: GLUE task name, see :data:`TASKS`
    :param split: ``"train"`` or ``"dev"`` (MNLI: dev-matched)
    :param data_dir: folder of GLUE TSVs with one subfolder per task; ``None``
        reads the environment variable ``GLUE_DIR``, and without it the hub
    :return: dataset with the columns ``task.columns``
    """
    task = get_task(name)
    if split not in ("train", "dev"):
        raise ValueError(f"GLUE split must be 'train' or 'dev', got {split!r}")
    glue_dir = _glue_dir(data_dir)
    if glue_dir is None:
        return _load_glue_from_hub(task, split)
    folder = glue_dir / task.glue.folder
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no folder {folder} for task {task.name!r} (expected {task.glue.folder}/ "
            f"with {task.glue.file_name('train')} and {task.glue.dev_file}); {GLUE_DIR_HINT}"
        )
    path = folder / task.glue.file_name(split)
    if not path.is_file():
        hint = (
            "; only the test split can be loaded from this folder, e.g. "
            "load_task(..., splits=('test',)), or load the task from the hub"
            if split == "train"
            else ""
        )
        raise FileNotFoundError(f"no file {path} for the {split} split of {task.name!r}{hint}")
    return _read_glue_tsv(task, path)


def _load_glue_from_hub(task: Task, split: str) -> datasets.Dataset:
    config, hub_split = task.glue.hub_config, task.glue.hub_split(split)
    try:
        with quiet_progress():
            dataset = datasets.load_dataset(GLUE_HUB_NAME, config, split=hub_split)
    except ConnectionError as err:
        raise ConnectionError(
            f"could not load {GLUE_HUB_NAME}/{config} ({hub_split}) from the hub: {err}. "
            f"Without a network, {GLUE_DIR_HINT}"
        ) from err
    return dataset.select_columns(list(task.columns))


def _split_off_validation(
    dataset: datasets.Dataset, val_fraction: float, seed: int
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Split ``dataset`` at random into (train, validation) parts; each part
    keeps the original row order."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    num_validation = round(len(dataset) * val_fraction)
    if not 0 < num_validation < len(dataset):
        raise ValueError(
            f"cannot split {len(dataset)} examples into train and validation "
            f"with val_fraction={val_fraction}"
        )
    order = np.random.default_rng(seed).permutation(len(dataset))
    return (
        dataset.select(np.sort(order[num_validation:])),
        dataset.select(np.sort(order[:num_validation])),
    )


def _subsample(dataset: datasets.Dataset, num_examples: int, seed: int) -> datasets.Dataset:
    """``num_examples`` rows of ``dataset`` drawn at random without replacement."""
    if not 0 < num_examples <= len(dataset):
        raise ValueError(
            f"max_train_examples={num_examples}, but the train part has "
            f"{len(dataset)} examples (1..{len(dataset)} allowed)"
        )
    rows = np.random.default_rng(seed).choice(len(dataset), size=num_examples, replace=False)
    return dataset.select(np.sort(rows))


def _make_task_data(
    task: Task,
    train_data: Callable[[], datasets.Dataset],
    test_data: Callable[[], datasets.Dataset | None],
    seed: int,
    val_fraction: float,
    max_train_examples: int | None,
    splits: tuple[str, ...],
) -> TaskData:
    """Split the training data 70/30 and subsample; load only what ``splits`` asks."""
    unknown = set(splits) - set(SPLITS)
    if unknown or not splits:
        raise ValueError(f"splits must be a non-empty subset of {SPLITS}, got {splits}")
    train = validation = test = None
    if "train" in splits or "validation" in splits:
        train, validation = _split_off_validation(train_data(), val_fraction, seed)
        if max_train_examples is not None:
            train = _subsample(train, max_train_examples, seed)
    if "test" in splits:
        test = test_data()
    return TaskData(
        task,
        train=train if "train" in splits else None,
        validation=validation if "validation" in splits else None,
        test=test,
    )


def load_task(
    name: str,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    val_fraction: float = VAL_FRACTION,
    max_train_examples: int | None = None,
    splits: tuple[str, ...] = SPLITS,
) -> TaskData:
    """Load a GLUE task with the paper's splits.

    The GLUE train split is split at random into ``train`` and ``validation``;
    the GLUE dev split is ``test``.

    :param name: task name, see :data:`TASKS`
    :param data_dir: folder of GLUE TSVs with one subfolder per task (``RTE/``,
        ``MRPC/``, ...); ``None`` reads the environment variable ``GLUE_DIR``,
        and without it loads ``nyu-mll/glue`` from the hub
    :param seed: seed of the train/validation split and of the subsampling
    :param val_fraction: fraction of the GLUE train split used for validation
    :param max_train_examples: if given, keep this many random examples of the
        train part (after the split), e.g. to study small-data regimes
    :param splits: which of ``"train"``, ``"validation"``, ``"test"`` to load;
        the others are ``None``. ``("test",)`` does not need a GLUE train file.
    """
    task = get_task(name)
    return _make_task_data(
        task,
        train_data=lambda: load_task_split(task.name, "train", data_dir),
        test_data=lambda: load_task_split(task.name, "dev", data_dir),
        seed=seed,
        val_fraction=val_fraction,
        max_train_examples=max_train_examples,
        splits=splits,
    )


# ---------------------------------------------------------------------------
# Custom tasks
# ---------------------------------------------------------------------------

_FILE_READERS = {
    ".csv": ("csv", {}),
    # TSV files have no quoting convention; bare '"' is text (as in GLUE).
    ".tsv": ("csv", {"sep": "\t", "quoting": csv.QUOTE_NONE}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
}


def _read_data_file(path: Path) -> datasets.Dataset:
    builder, options = _FILE_READERS[path.suffix.lower()]
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    try:
        with quiet_progress():
            return datasets.load_dataset(builder, data_files=str(path), split="train", **options)
    except datasets.exceptions.DatasetGenerationError as err:
        raise ValueError(f"could not read {path}: {err.__cause__ or err}") from err
    except ValueError as err:  # `datasets` says 'Instruction "train" corresponds to no data!'
        if "no data" not in str(err):
            raise
        raise ValueError(f"{path} holds no examples: it needs a header line and at least one row") from err


def _load_custom_data(source: str) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """(train, test-or-None) from a data file, or from a hub dataset's
    ``train`` and ``validation`` (else ``test``) splits."""
    path = Path(source).expanduser()
    if path.suffix.lower() in _FILE_READERS or path.exists():
        if path.suffix.lower() not in _FILE_READERS:
            raise ValueError(
                f"cannot read {path}: supported file types are {', '.join(_FILE_READERS)}"
            )
        return _read_data_file(path), None
    try:
        with quiet_progress():
            dataset_dict = datasets.load_dataset(source)
    except (OSError, ValueError) as err:
        raise FileNotFoundError(
            f"{source!r} is neither an existing file nor a dataset on the hub: {err}"
        ) from err
    if "train" not in dataset_dict:
        raise ValueError(
            f"hub dataset {source!r} has no train split; its splits are {list(dataset_dict)}"
        )
    test_split = next((s for s in ("validation", "test") if s in dataset_dict), None)
    return dataset_dict["train"], dataset_dict[test_split] if test_split else None


def _select_columns(
    dataset: datasets.Dataset, text_columns: tuple[str, ...], label_column: str, source: str
) -> datasets.Dataset:
    """Keep the text and label columns, the label renamed to ``"label"``."""
    for column in text_columns + (label_column,):
        if column not in dataset.column_names:
            raise ValueError(
                f"{source} has no column {column!r}; its columns are {dataset.column_names}"
            )
    dataset = dataset.select_columns(list(text_columns) + [label_column])
    for column in text_columns:
        feature = dataset.features[column]
        if not isinstance(feature, datasets.Value):
            raise ValueError(f"{source}: text column {column!r} holds {_kind(feature)}; it must hold plain text")
        if feature.dtype not in ("string", "large_string"):  # numbers as text, e.g. from a CSV file
            with quiet_progress():
                dataset = dataset.cast_column(column, datasets.Value("string"))
    label = dataset.features[label_column]
    if not (isinstance(label, datasets.ClassLabel) or (isinstance(label, datasets.Value) and _scalar(label.dtype))):
        raise ValueError(
            f"{source}: label column {label_column!r} holds {_kind(label)}; labels must be strings or numbers"
        )
    return dataset if label_column == "label" else dataset.rename_column(label_column, "label")


def _scalar(dtype: str) -> bool:
    return dtype in ("string", "large_string", "bool") or dtype.startswith(("int", "uint", "float"))


def _kind(feature) -> str:
    """What a column holds, for messages (`datasets` reads mixed or nested JSON values as Json / lists)."""
    if isinstance(feature, datasets.Value):
        return f"{feature.dtype} values"
    return f"nested or mixed values ({type(feature).__name__})"


def _infer_label_names(parts: list[datasets.Dataset]) -> tuple[tuple[str, ...] | None, dict]:
    """Decide classification vs regression from the label values.

    :return: ``(label_names, ids)``: ``label_names`` is ``None`` for
        regression; ``ids`` maps label values to class ids (empty when the
        labels already are class ids)
    """
    feature = parts[0].features["label"]
    if isinstance(feature, datasets.ClassLabel):
        return tuple(feature.names), {}
    values = set()
    for part in parts:
        values.update(part.unique("label"))
    if None in values:
        raise ValueError("the label column has missing values")
    if all(isinstance(v, str) for v in values):
        names = sorted(values)
        return tuple(names), {v: i for i, v in enumerate(names)}
    if not all(isinstance(v, (int, float)) for v in values):
        raise ValueError(
            f"labels must be all strings or all numbers, got {sorted(map(repr, values))[:5]}"
        )
    if all(float(v).is_integer() for v in values):
        classes = sorted(values)
        return tuple(str(int(v)) for v in classes), {v: i for i, v in enumerate(classes)}
    return None, {}


def _to_task_labels(dataset: datasets.Dataset, task: Task, ids: dict) -> datasets.Dataset:
    """Cast the label column to the task's feature, mapping values to ids."""
    if not ids:
        return dataset.cast(task.features())
    with quiet_progress():
        return dataset.map(
            lambda batch: {"label": [ids[v] for v in batch["label"]]},
            batched=True,
            features=task.features(),
        )


def load_custom_task(
    train_file: str | os.PathLike,
    test_file: str | os.PathLike | None = None,
    text_columns: tuple[str, ...] = ("text",),
    label_column: str = "label",
    seed: int = 0,
    val_fraction: float = VAL_FRACTION,
    task_name: str = "custom",
    metric_name: str | None = None,
    max_train_examples: int | None = None,
) -> TaskData:
    """Load a user's text classification or regression data.

    Labels that are strings or integers (also integral floats such as 1.0)
    make a classification task, with class ids given in sorted label order
    (``task.label_names`` keeps the labels); non-integral numbers make a
    regression task.

    :param train_file: a ``.csv``, ``.tsv`` (read without quoting), ``.json``
        or ``.jsonl`` file; anything else that does not exist as a path is
        taken as a hub dataset name, whose ``train`` split is used for
        training and whose ``validation`` (else ``test``) split is the test set
    :param test_file: a file of test examples with the same columns; it
        replaces the hub dataset's test split. ``None``: no test set for a file
    :param text_columns: one or two text columns
    :param label_column: the label column (renamed to ``"label"``)
    :param seed: seed of the train/validation split and of the subsampling
    :param val_fraction: fraction of ``train_file`` used for validation
    :param task_name: name of the resulting :class:`Task`
    :param metric_name: metric of the task; default ``"accuracy"`` for
        classification, ``"spearman"`` for regression
    :param max_train_examples: if given, keep this many random examples of the
        train part (after the split)
    """
    text_columns = tuple(text_columns)
    train, test = _load_custom_data(str(train_file))
    if test_file is not None:
        test = _read_data_file(Path(test_file).expanduser())
    train = _select_columns(train, text_columns, label_column, str(train_file))
    if test is not None:
        test = _select_columns(test, text_columns, label_column, str(test_file or train_file))
    label_names, ids = _infer_label_names([train] + ([test] if test is not None else []))
    if metric_name is None:
        metric_name = "spearman" if label_names is None else "accuracy"
    task = Task(task_name, text_columns, label_names, metric_name)
    train = _to_task_labels(train, task, ids)
    test = _to_task_labels(test, task, ids) if test is not None else None
    return _make_task_data(
        task,
        train_data=lambda: train,
        test_data=lambda: test,
        seed=seed,
        val_fraction=val_fraction,
        max_train_examples=max_train_examples,
        splits=SPLITS,
    )

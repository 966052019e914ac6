"""Adapter for BERT sequence classifiers (BertForSequenceClassification, MiniLM, ...)."""

from nas_pruning.models.adapter import HIDDEN, ArchitectureAdapter
from nas_pruning.models.pruned_modeling import (
    BertForSequenceClassificationPooled,
    PrunedBertConfig,
    PrunedBertForSequenceClassification,
)


class BertAdapter(ArchitectureAdapter):
    model_types = ("bert",)
    base_prefix = "bert"
    outer_params = {
        r"bert\.embeddings\.(word|position|token_type)_embeddings\.weight": (None, HIDDEN),
        r"bert\.embeddings\.LayerNorm\.(weight|bias)": (HIDDEN,),
        r"bert\.pooler\.dense\.weight": (HIDDEN, HIDDEN),
        r"bert\.pooler\.dense\.bias": (HIDDEN,),
        r"classifier\.weight": (None, HIDDEN),
        r"classifier\.bias": (None,),
    }
    pruned_config_class = PrunedBertConfig
    pruned_model_class = PrunedBertForSequenceClassification
    model_class = BertForSequenceClassificationPooled

"""Adapter for RoBERTa sequence classifiers (RoBERTa, XLM-RoBERTa)."""

from nas_pruning.models.adapter import HIDDEN, ArchitectureAdapter
from nas_pruning.models.pruned_modeling import (
    RobertaForSequenceClassificationPooled,
    PrunedRobertaConfig,
    PrunedRobertaForSequenceClassification,
)


class RobertaAdapter(ArchitectureAdapter):
    model_types = ("roberta", "xlm-roberta")
    base_prefix = "roberta"
    outer_params = {
        r"roberta\.embeddings\.(word|position|token_type)_embeddings\.weight": (None, HIDDEN),
        r"roberta\.embeddings\.LayerNorm\.(weight|bias)": (HIDDEN,),
        r"roberta\.pooler\.dense\.weight": (HIDDEN, HIDDEN),
        r"roberta\.pooler\.dense\.bias": (HIDDEN,),
        r"classifier\.dense\.weight": (HIDDEN, HIDDEN),
        r"classifier\.dense\.bias": (HIDDEN,),
        r"classifier\.out_proj\.weight": (None, HIDDEN),
        r"classifier\.out_proj\.bias": (None,),
    }
    pruned_config_class = PrunedRobertaConfig
    pruned_model_class = PrunedRobertaForSequenceClassification
    model_class = RobertaForSequenceClassificationPooled

"""Sequence classifiers with a choice of pooling, and standalone pruned models.

Pooling: a sentence-transformer checkpoint (all-MiniLM-L6-v2, say) was trained to
represent a text by the mean of its token states; its [CLS] pooler was never
trained for that. `config.classifier_pooling = "mean"` makes the classifier read
that mean (masked by the attention mask) and drops the unused pooler; "cls" (or
no such field) is the stock [CLS] head. `BertForSequenceClassificationPooled` /
`RobertaForSequenceClassificationPooled` are the stock classes with that choice.

Pruned models: per-layer head and FFN sizes.

Transformers has one head count and one FFN size for all layers and derives the
head size from hidden_size / num_attention_heads, so it cannot describe a pruned
encoder. These classes extend the BERT / RoBERTa sequence classifiers with three
config fields:

- `layer_heads[i]`: attention heads kept in layer i (0 skips the attention block),
- `layer_units[i]`: FFN units kept in layer i (0 skips the FFN block),
- `attention_head_size`: dims per head, independent of `hidden_size`.

This file imports only torch and transformers: `save_pretrained` copies it next to
the weights, so plain transformers loads the model back with
`AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)`.

The configs keep the stock `model_type` ("bert", "roberta"): AutoConfig and AutoTokenizer
read config.json first, and an unknown model_type with custom config code makes them ask
"run the custom code? [y/N]" even to load a tokenizer. With a stock model_type they load
the plain config without asking; `trust_remote_code=True` still selects these classes.
"""

import copy

import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification, RobertaConfig, RobertaForSequenceClassification
from transformers.modeling_outputs import SequenceClassifierOutput

POOLINGS = ("cls", "mean")


def mean_pool(hidden_states, attention_mask):
    """Mean of the token states over the tokens the attention mask keeps."""
    if attention_mask is None:
        return hidden_states.mean(dim=1)
    mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
    return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def classification_loss(config, logits, labels):
    """The stock classifiers' loss: MSE for one regression output, else cross-entropy."""
    if config.num_labels == 1:
        return nn.functional.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
    return nn.functional.cross_entropy(logits.view(-1, config.num_labels), labels.view(-1))


class PoolingMixin:
    """The classifier forward of `config.classifier_pooling`: "mean" reads the masked
    mean of the last token states, "cls" (the default) runs the stock forward."""

    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        pooling = getattr(config, "classifier_pooling", "cls")
        if pooling not in POOLINGS:
            raise ValueError(f"classifier_pooling must be one of {POOLINGS}, got {pooling!r}")
        if pooling == "mean":  # the [CLS] pooler would be dead weight, and would be counted
            getattr(self, self.base_model_prefix).pooler = None

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, **kwargs):
        if getattr(self.config, "classifier_pooling", "cls") != "mean":
            return super().forward(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                position_ids=position_ids, inputs_embeds=inputs_embeds, labels=labels, **kwargs,
            )
        kwargs.pop("return_dict", None)
        outputs = getattr(self, self.base_model_prefix)(
            input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, inputs_embeds=inputs_embeds, return_dict=True, **kwargs,
        )
        logits = self.classify(mean_pool(outputs.last_hidden_state, attention_mask))
        loss = None if labels is None else classification_loss(self.config, logits, labels)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class _BertHead:
    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(pooled))


class _RobertaHead:
    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(pooled.unsqueeze(1))  # the head reads position 0: here, the mean


class BertForSequenceClassificationPooled(PoolingMixin, _BertHead, BertForSequenceClassification):
    config_class = BertConfig


class RobertaForSequenceClassificationPooled(PoolingMixin, _RobertaHead, RobertaForSequenceClassification):
    config_class = RobertaConfig


class SkipAttention(nn.Module):
    """An attention block with no heads: the layer passes its input on unchanged."""

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states, None


class SkipIntermediate(nn.Module):
    """The first half of an FFN block with no units: nothing to compute."""

    def forward(self, hidden_states):
        return hidden_states


class SkipOutput(nn.Module):
    """The second half of an FFN block with no units: returns the block's input."""

    def forward(self, hidden_states, input_tensor):
        return input_tensor


def _init_pruned_fields(config, layer_heads, layer_units, attention_head_size) -> None:
    layers = config.num_hidden_layers
    config.attention_head_size = attention_head_size or config.hidden_size // config.num_attention_heads
    config.layer_heads = list(layer_heads) if layer_heads is not None else [config.num_attention_heads] * layers
    config.layer_units = list(layer_units) if layer_units is not None else [config.intermediate_size] * layers
    if len(config.layer_heads) != layers or len(config.layer_units) != layers:
        raise ValueError(
            f"layer_heads and layer_units need {layers} entries (num_hidden_layers), "
            f"got {len(config.layer_heads)} and {len(config.layer_units)}"
        )


class PrunedBertConfig(BertConfig):
    model_type = "bert"  # see the module docstring

    def __init__(self, layer_heads=None, layer_units=None, attention_head_size=None, **kwargs):
        super().__init__(**kwargs)
        _init_pruned_fields(self, layer_heads, layer_units, attention_head_size)


class PrunedRobertaConfig(RobertaConfig):
    model_type = "roberta"  # see the module docstring

    def __init__(self, layer_heads=None, layer_units=None, attention_head_size=None, **kwargs):
        super().__init__(**kwargs)
        _init_pruned_fields(self, layer_heads, layer_units, attention_head_size)


def _buildable(config):
    """A copy that the stock modules accept (hidden_size % num_attention_heads == 0)."""
    build = copy.deepcopy(config)
    build.num_attention_heads = 1
    return build


def _resize(model, build_config, config, layers: nn.ModuleList) -> None:
    """Give each layer of a stock-built model the sizes `config` asks for."""
    config._attn_implementation = build_config._attn_implementation
    for module in model.modules():
        if getattr(module, "config", None) is build_config:
            module.config = config
    hidden, head_size = config.hidden_size, config.attention_head_size
    for layer, heads, units in zip(layers, config.layer_heads, config.layer_units):
        if heads == 0:
            layer.attention = SkipAttention()
        else:
            attn = layer.attention.self
            attn.num_attention_heads = heads
            attn.attention_head_size = head_size
            attn.all_head_size = heads * head_size
            attn.scaling = head_size**-0.5
            attn.query = nn.Linear(hidden, heads * head_size)
            attn.key = nn.Linear(hidden, heads * head_size)
            attn.value = nn.Linear(hidden, heads * head_size)
            layer.attention.output.dense = nn.Linear(heads * head_size, hidden)
        if units == 0:
            layer.intermediate = SkipIntermediate()
            layer.output = SkipOutput()
        else:
            layer.intermediate.dense = nn.Linear(hidden, units)
            layer.output.dense = nn.Linear(units, hidden)


class PrunedBertForSequenceClassification(PoolingMixin, _BertHead, BertForSequenceClassification):
    config_class = PrunedBertConfig

    def __init__(self, config):
        build = _buildable(config)
        super().__init__(build)
        _resize(self, build, config, self.bert.encoder.layer)


class PrunedRobertaForSequenceClassification(PoolingMixin, _RobertaHead, RobertaForSequenceClassification):
    config_class = PrunedRobertaConfig

    def __init__(self, config):
        build = _buildable(config)
        super().__init__(build)
        _resize(self, build, config, self.roberta.encoder.layer)


for _config_cls, _model_cls in (
    (PrunedBertConfig, PrunedBertForSequenceClassification),
    (PrunedRobertaConfig, PrunedRobertaForSequenceClassification),
):
    _config_cls.register_for_auto_class()
    _model_cls.register_for_auto_class("AutoModelForSequenceClassification")
# Saved with an auto_map, so that a mean-pooling model loads with its pooling (trust_remote_code=True).
for _model_cls in (BertForSequenceClassificationPooled, RobertaForSequenceClassificationPooled):
    _model_cls.register_for_auto_class("AutoModelForSequenceClassification")

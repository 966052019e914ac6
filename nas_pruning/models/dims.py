"""`ModelDims`: the structural sizes of a transformer encoder that pruning acts on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelDims:
    """Sizes of an encoder. num_layers: L; num_heads: H per layer; head_size: dims per
    head; intermediate_size: I FFN units per layer; hidden_size: D of the residual stream."""

    num_layers: int
    num_heads: int
    head_size: int
    intermediate_size: int
    hidden_size: int

    @classmethod
    def from_config(cls, config) -> "ModelDims":
        """Read the sizes from a Hugging Face BERT-like config."""
        heads = config.num_attention_heads
        return cls(
            num_layers=config.num_hidden_layers,
            num_heads=heads,
            head_size=getattr(config, "attention_head_size", None) or config.hidden_size // heads,
            intermediate_size=config.intermediate_size,
            hidden_size=config.hidden_size,
        )

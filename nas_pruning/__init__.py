"""nas_pruning: structural pruning of pre-trained language models as multi-objective NAS."""

__version__ = "0.1.0"

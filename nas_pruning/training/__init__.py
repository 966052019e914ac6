"""What every training loop of the package shares; below the methods (supernet, cofi, baselines).

- :mod:`~nas_pruning.training.distillation`: the task loss and distillation from a
  teacher (logits, and CoFi's layer-wise hidden states).
"""

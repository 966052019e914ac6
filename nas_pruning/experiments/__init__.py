"""Syne Tune experiments over trial scripts, one module per method, above the backends:

- :mod:`~nas_pruning.experiments.cofi_transfer`: CoFi pruning with transfer
  (trial script :mod:`nas_pruning.cofi.trial`);
- :mod:`~nas_pruning.experiments.standard_nas`: standard NAS, every candidate fine-tuned
  (trial script :mod:`nas_pruning.baselines.standard_nas`).

Import the functions from their modules; each pulls in Syne Tune.
"""

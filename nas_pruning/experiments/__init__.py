"""Syne Tune experiments, one module per method, above the backends; every one runs through
:func:`~nas_pruning.experiments.runner.run_experiment` (the package's one Syne Tune ``Tuner``):

- :mod:`~nas_pruning.experiments.weight_sharing`: the weight-sharing search behind
  ``nas-pruning search`` (resumable, in-process or Ray-actor evaluations of a super-network);
- :mod:`~nas_pruning.experiments.cofi_transfer`: CoFi pruning with transfer
  (trial script :mod:`nas_pruning.cofi.trial`);
- :mod:`~nas_pruning.experiments.standard_nas`: standard NAS, every candidate fine-tuned
  (trial script :mod:`nas_pruning.baselines.standard_nas`);
- :mod:`~nas_pruning.experiments.pruning_baselines`: one run of a registered pruning baseline
  (``nas-pruning baseline <name>``; no Syne Tune Tuner: each baseline is one job).

Import the functions from their modules; each pulls in Syne Tune.
"""

"""The methods weight-sharing NAS is compared with, each writing the common results table.

- `standard_nas`: fine-tune one SMALL-space candidate (the Syne Tune trial of standard NAS,
  whose experiment is `nas_pruning.experiments.standard_nas.standard_nas`).
- `head_pruning.head_pruning`: iterative gradient-importance head pruning (Michel et al. 2019).
- `layer_drop.layer_drop`: drop the top k layers (Sajjad et al.).
- `retraining_free.retraining_free`: Fisher mask search, rearrangement and tuning (Kwon et al. 2022).

They share `data.BaselineData` (task and batches), `results.ResultsTable` (the table:
method, error, params, test_error, test_metric, wall_time, ...). `registry.BASELINES` lists
the methods that prune a fine-tuned model (name -> function, help, options): a new one is a
module plus one entry there, and gets its `nas-pruning baseline <name>` command
(`nas_pruning.cli.baselines`) and its run (`nas_pruning.experiments.pruning_baselines`).
The functions are imported from their modules
(`from nas_pruning.baselines.head_pruning import head_pruning`), which keeps `python -m nas_pruning.baselines.standard_nas` (a trial) free of the others.
"""

"""Text-classification tasks, split by job:

- :mod:`~nas_pruning.tasks.registry`: :class:`Task` (columns, labels, metric, trivial
  predictor), the GLUE registry :data:`TASKS`, :data:`METRICS` and :class:`TaskData`;
- :mod:`~nas_pruning.tasks.loading`: GLUE from a local folder or the hub, users' files
  and hub datasets, and the paper's seeded 70/30 train/validation split;
- :mod:`~nas_pruning.tasks.batching`: tokenisation (:func:`encode`) and batches
  (:func:`make_loader`, length-grouped with :class:`LengthGroupedBatchSampler`).

The names below are the public ones; import them from ``nas_pruning.tasks``.
"""

from nas_pruning.tasks.batching import (
    DEFAULT_MAX_LENGTH,
    MEGA_BATCHES,
    LengthGroupedBatchSampler,
    batch_sampler,
    encode,
    make_loader,
)
from nas_pruning.tasks.loading import (
    GLUE_DIR_HINT,
    GLUE_HUB_NAME,
    VAL_FRACTION,
    load_custom_task,
    load_task,
    load_task_split,
)
from nas_pruning.tasks.registry import METRICS, NLI, SPLITS, TASKS, GlueFiles, Task, TaskData, get_task

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "GLUE_DIR_HINT",
    "GLUE_HUB_NAME",
    "MEGA_BATCHES",
    "METRICS",
    "NLI",
    "SPLITS",
    "TASKS",
    "VAL_FRACTION",
    "GlueFiles",
    "LengthGroupedBatchSampler",
    "Task",
    "TaskData",
    "batch_sampler",
    "encode",
    "get_task",
    "load_custom_task",
    "load_task",
    "load_task_split",
    "make_loader",
]

"""Super-networks: the fine-tuning stage (:func:`finetune`: importance order, training, saving) and
super-network folders (:func:`save_supernet`, :func:`load_supernet`). The training loop and its
weight-sharing strategies live in :mod:`nas_pruning.training` and are re-exported here.

```python
from nas_pruning.supernet import finetune, load_supernet
folder = finetune("rte", strategy="full", search_space="small", output_dir="runs/rte")
model, info = load_supernet(folder)  # info: a SupernetRecord (supernet.json)
```
"""

from nas_pruning import training
from nas_pruning.supernet.pipeline import finetune
from nas_pruning.supernet.storage import (
    DEFAULT_SEARCH_SPACE,
    INFO_FILE,
    DataSplit,
    SupernetRecord,
    load_supernet,
    read_info,
    save_supernet,
    training_seconds,
)
from nas_pruning.training import *  # noqa: F403 (the training loop, re-exported as the super-network API)

__all__ = [
    *training.__all__, "DEFAULT_SEARCH_SPACE", "INFO_FILE", "DataSplit", "SupernetRecord", "finetune", "load_supernet",
    "read_info", "save_supernet", "training_seconds",
]

"""Super-networks: the fine-tuning stage (:func:`finetune`: importance order, training, saving) and
super-network folders (:func:`save_supernet`, :func:`load_supernet`). The training loop and its
weight-sharing strategies live in :mod:`nas_pruning.training` and are re-exported here.

```python
from nas_pruning.supernet import finetune, load_supernet
folder = finetune("rte", strategy="full", search_space="small", output_dir="runs/rte")
model, info = load_supernet(folder)
```
"""

from nas_pruning.supernet.pipeline import finetune
from nas_pruning.supernet.storage import INFO_FILE, load_supernet, read_info, save_supernet, training_seconds
from nas_pruning.training import (  # the training loop, re-exported as the super-network API
    CHECKPOINT_DIR,
    STRATEGIES,
    Checkpoint,
    DistillationLoss,
    Pass,
    Strategy,
    TrainingConfig,
    TrainingState,
    as_strategy,
    get_strategy,
    random_subnetwork,
    smallest_subnetwork,
    task_loss,
    train_supernet,
)

__all__ = [
    "CHECKPOINT_DIR",
    "Checkpoint",
    "DistillationLoss",
    "INFO_FILE",
    "Pass",
    "STRATEGIES",
    "Strategy",
    "TrainingConfig",
    "TrainingState",
    "as_strategy",
    "finetune",
    "get_strategy",
    "load_supernet",
    "random_subnetwork",
    "read_info",
    "save_supernet",
    "smallest_subnetwork",
    "task_loss",
    "train_supernet",
    "training_seconds",
]

"""Super-network training: weight-sharing strategies, the training loop, saving and loading.

```python
from nas_pruning.supernet import finetune, load_supernet
folder = finetune("rte", strategy="full", search_space="small", output_dir="runs/rte")
model, info = load_supernet(folder)
```
"""

from nas_pruning.supernet.checkpoint import Checkpoint, TrainingState
from nas_pruning.supernet.config import TrainingConfig
from nas_pruning.supernet.pipeline import finetune
from nas_pruning.supernet.storage import INFO_FILE, load_supernet, read_info, save_supernet, training_seconds
from nas_pruning.supernet.strategies import (
    STRATEGIES,
    Pass,
    Strategy,
    as_strategy,
    get_strategy,
    random_subnetwork,
    smallest_subnetwork,
)
from nas_pruning.supernet.trainer import CHECKPOINT_DIR, train_supernet
from nas_pruning.training.distillation import DistillationLoss, task_loss

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

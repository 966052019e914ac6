"""`python -m nas_pruning.cli` (and `torchrun ... -m nas_pruning.cli`): the `nas-pruning` command."""

import sys

from nas_pruning.cli import main

sys.exit(main())

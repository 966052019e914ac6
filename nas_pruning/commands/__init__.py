"""Command groups of ``nas-pruning`` that live apart from :mod:`nas_pruning.cli` (the top layer):
:mod:`~nas_pruning.commands.cofi` (``cofi``, ``cofi-search``) and
:mod:`~nas_pruning.commands.baselines` (``baseline ...``). Each has ``add_commands(subparsers)``."""

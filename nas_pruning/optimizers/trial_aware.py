"""`TrialAwareSearcher`: the searchers that are told which trial runs which suggestion."""

from syne_tune.optimizer.schedulers.searchers.searcher import BaseSearcher

from nas_pruning.optimizers.config_codec import Config


class TrialAwareSearcher(BaseSearcher):
    """A searcher that wants to know which trial runs which of its suggestions.

    Syne Tune 0.16 tells searchers the trial id only with results, and
    ``on_trial_error`` gets the id alone; the scheduler of
    :mod:`nas_pruning.optimizers` calls :meth:`on_trial_add` so that such
    searchers can tell which suggestion failed.
    """

    def on_trial_add(self, trial_id: int, config: Config) -> None:
        """``config`` (hyperparameters only) now runs as trial ``trial_id``."""

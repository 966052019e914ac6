"""`Float64EHVI`: Syne Tune 0.16's expected-hypervolume-improvement searcher with its dtype, reference-point
and bookkeeping bugs worked around (needs BoTorch)."""

import numpy as np
import torch
from syne_tune.optimizer.schedulers.multiobjective.expected_hyper_volume_improvement import (
    ExpectedHyperVolumeImprovement,
)

from nas_pruning.optimizers.config_codec import Config


class Float64EHVI(ExpectedHyperVolumeImprovement):
    """Syne Tune 0.16's EHVI searcher, made to work.

    Workarounds, each a small override:

    * dtype: Syne Tune builds the GP in float64 (``double_precision=True``)
      but creates inputs, outcomes and the reference point with
      ``torch.Tensor(...)`` / ``torch.ones``, i.e. in the default float32.
      BoTorch's qLogEHVI kernel then fails with ``RuntimeError: expected
      scalar type Double but found Float``. :meth:`suggest` therefore runs
      with torch's default dtype set to float64, restored afterwards.
    * reference point: Syne Tune fixes it at 2.0 in BoTorch's maximisation
      space (negated objectives), where no point in [0, 1] ever improves on it,
      so every candidate has the same (zero) improvement. :meth:`objectives`
      rescales each objective so that its worst observed value maps to -2.1
      and its best to -3.1: the fixed reference point then lies 10% of the
      observed range beyond the worst point (BoTorch's usual choice). The map
      is monotone per objective, so dominance is unchanged.
    * bookkeeping: observations are kept in completion order but
      configurations in suggestion order, which pairs the wrong rows when
      trials finish out of order; and a failed trial stays pending forever.
      Both lists are taken in suggestion order here, and a failed trial is
      dropped. Like Syne Tune, trial ids are assumed to follow suggestion
      order (true under :class:`syne_tune.Tuner`).
    """

    def suggest(self) -> Config | None:
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            return super().suggest()
        finally:
            torch.set_default_dtype(previous)

    def on_trial_error(self, trial_id: int):
        self.pending_trials.discard(trial_id)

    def objectives(self) -> np.ndarray:
        raw = np.array(
            [self.trial_observations[trial] for trial in self.trial_configs if trial in self.trial_observations],
            dtype=float,
        )
        if len(raw) == 0:
            return raw
        best, worst = raw.min(axis=0), raw.max(axis=0)
        width = np.where(worst > best, worst - best, 1.0)
        return (raw - worst) / width - 2.1

    def _configs_with_results(self) -> list[Config]:
        return [config for trial, config in self.trial_configs.items() if trial in self.trial_observations]

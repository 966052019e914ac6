"""The one way the package runs a Syne Tune experiment: `run_experiment` builds and runs the
`Tuner` with its record in a chosen folder, `read_results` reads the record's results table back.

Syne Tune takes its experiment folder from the environment (SYNETUNE_FOLDER) when the Tuner is
built and while it runs; `synetune_folder` sets it for that time and restores it afterwards, so
one experiment's folder does not leak into the next.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd
from syne_tune import StoppingCriterion, Tuner
from syne_tune.backend.trial_backend import TrialBackend
from syne_tune.constants import ST_RESULTS_DATAFRAME_FILENAME, SYNE_TUNE_ENV_FOLDER
from syne_tune.optimizer.scheduler import TrialScheduler
from syne_tune.tuner_callback import TunerCallback


@contextmanager
def synetune_folder(folder: str | os.PathLike | None) -> Iterator[None]:
    """Point Syne Tune's experiment folder (env SYNETUNE_FOLDER) at `folder` for a while;
    None leaves it as it is (Syne Tune's default: SYNETUNE_FOLDER or ~/syne-tune)."""
    if folder is None:
        yield
        return
    previous = os.environ.get(SYNE_TUNE_ENV_FOLDER)
    os.environ[SYNE_TUNE_ENV_FOLDER] = str(folder)
    try:
        yield
    finally:
        if previous is None:
            del os.environ[SYNE_TUNE_ENV_FOLDER]
        else:
            os.environ[SYNE_TUNE_ENV_FOLDER] = previous


def run_experiment(
    backend: TrialBackend,
    scheduler: TrialScheduler,
    stop_criterion: StoppingCriterion,
    experiments_dir: str | os.PathLike | None,
    name: str,
    n_workers: int,
    max_failures: int,
    callbacks: Sequence[TunerCallback] = (),
    **tuner_options: Any,
) -> Tuner:
    """Run `scheduler`'s trials on `backend` until `stop_criterion` holds; return the finished Tuner.

    experiments_dir: folder of Syne Tune's record (one subfolder per experiment); None: Syne Tune's
        default.
    name: the experiment's name (Syne Tune adds a time stamp to its folder).
    n_workers: trials run at the same time.
    max_failures: failed trials tolerated before the experiment stops with an error.
    callbacks: Syne Tune tuner callbacks; none: Syne Tune's default, which stores the results table
        `read_results` reads (pass a `StoreResultsCallback`, or a subclass, among others to keep it).
    tuner_options: other arguments of Syne Tune's `Tuner` (sleep_time, save_tuner, ...).
    A KeyboardInterrupt propagates (the environment restored) for the caller to handle.
    """
    with synetune_folder(experiments_dir):
        tuner = Tuner(
            trial_backend=backend,
            scheduler=scheduler,
            stop_criterion=stop_criterion,
            n_workers=n_workers,
            max_failures=max_failures,
            tuner_name=name,
            # None, not []: without callbacks Syne Tune adds its own StoreResultsCallback (read_results reads it).
            callbacks=list(callbacks) or None,
            **tuner_options,
        )
        tuner.run()
    return tuner


def read_results(tuner: Tuner, columns: Sequence[str] = ()) -> pd.DataFrame:
    """The results table a finished Tuner wrote (one row per reported result); when no trial
    reported (the time ran out first), an empty table with `columns`."""
    try:
        return pd.read_csv(tuner.tuner_path / ST_RESULTS_DATAFRAME_FILENAME)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame(columns=list(columns))

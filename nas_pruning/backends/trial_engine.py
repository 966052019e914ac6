"""Where the trials of a trial-script search run: local processes or Ray tasks.

The CoFi-transfer and standard-NAS experiments (`nas_pruning.experiments`) run every
trial as a Syne Tune `LocalBackend` entry-point script (`nas_pruning.cofi.trial`,
`nas_pruning.baselines.standard_nas`). `RayTrials` holds the options that send those trials to Ray
instead, and `script_backend` makes the one choice between a `LocalBackend` (a process
per trial on this machine) and a `RayScriptBackend` (a Ray task per trial, with its
own CPU / GPU request, on any node of a Ray cluster). Both commands take the options of
`nas_pruning.cli.arguments.add_ray_arguments`, and both Python functions the same names as parameters;
`--ray-address` means what it means for `nas-pruning search`: alone, it selects Ray.

This module imports neither torch, Ray nor Syne Tune (whose local backend changes
OMP_NUM_THREADS on import), so that commands pay nothing for it.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from nas_pruning.backends.ray_tasks import import_ray, threads_for

if TYPE_CHECKING:
    from syne_tune.backend import LocalBackend


@dataclass(frozen=True)
class RayTrials:
    """Whether and how trials run as Ray tasks.

    ray: run each trial as a Ray task; without `ray_address`, on a local Ray
        instance started for the search (and stopped after it).
    ray_address: the Ray cluster to run the trials on ("auto": the one this machine
        joined with `ray start`; or the head node's "HOST:6379"); setting it implies `ray`.
    cpus_per_trial: CPUs Ray reserves for each trial, which also sets its torch
        threads (None: 1). Only with Ray.
    gpus_per_trial: GPUs Ray reserves for each trial (None: 0; fractions share a GPU).
        Only with Ray.

    Checks the values, and that Ray is installed when it is asked for (before any
    model loads), on creation.
    """

    ray: bool = False
    ray_address: str | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None

    def __post_init__(self) -> None:
        if not self.uses_ray and (self.cpus_per_trial is not None or self.gpus_per_trial is not None):
            # Ignored, a GPU request would silently leave the trials on the CPU.
            raise ValueError("cpus_per_trial and gpus_per_trial are Ray requests: pass ray=True (--ray) or ray_address")
        if not (self.num_cpus > 0 and self.num_gpus >= 0):  # checked now, not after a teacher has trained
            raise ValueError(
                f"cpus_per_trial must be > 0 and gpus_per_trial >= 0, "
                f"got {self.cpus_per_trial} and {self.gpus_per_trial}"
            )
        if self.uses_ray:
            import_ray()  # says how to install Ray if it is missing

    @property
    def uses_ray(self) -> bool:
        return self.ray or self.ray_address is not None

    @property
    def num_cpus(self) -> float:
        return 1.0 if self.cpus_per_trial is None else self.cpus_per_trial

    @property
    def num_gpus(self) -> float:
        return 0.0 if self.gpus_per_trial is None else self.gpus_per_trial

    def threads(self, local_threads: int | None) -> int | None:
        """Torch threads of each trial: its CPU request on Ray (a trial there would
        otherwise take every core of its node), `local_threads` in local processes."""
        return threads_for(self.num_cpus) if self.uses_ray else local_threads


def check_command_line(settings: dict[str, Any]) -> None:
    """Raise ValueError for a fixed setting a trial script cannot receive: Syne Tune passes the
    config on a command line split at whitespace, so a string setting must be non-empty and
    hold no whitespace."""
    for name, value in settings.items():
        if isinstance(value, str) and (not value or any(c.isspace() for c in value)):
            raise ValueError(
                f"setting {name}={value!r}: Syne Tune passes it to the trial script on a command line, "
                "so it must be non-empty and hold no whitespace"
            )


@contextmanager
def script_backend(entry_point: str, ray_trials: RayTrials = RayTrials()) -> Iterator[LocalBackend]:
    """The Syne Tune backend that runs trials of `entry_point` as `ray_trials` says, for a `with` block.

    A `LocalBackend`, or a `RayScriptBackend` that is closed after the block (which
    stops the local Ray instance if it started one). Checkpoints of finished trials
    are deleted in both: they are only needed while a trial may resume.
    """
    if not ray_trials.uses_ray:
        from syne_tune.backend import LocalBackend

        yield LocalBackend(entry_point=entry_point, delete_checkpoints=True)
        return
    from nas_pruning.backends.ray_backend import RayScriptBackend

    backend = RayScriptBackend(
        entry_point, num_cpus_per_trial=ray_trials.num_cpus, num_gpus_per_trial=ray_trials.num_gpus,
        ray_address=ray_trials.ray_address, delete_checkpoints=True,
    )
    try:
        yield backend
    finally:
        backend.close()



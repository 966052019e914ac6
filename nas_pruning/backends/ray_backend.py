"""Ray mode of the weight-sharing backend: sub-network evaluations on a pool of Ray actors.

`RayWeightSharingBackend` is a Syne Tune `TrialBackend` like
`nas_pruning.backends.weight_sharing.WeightSharingBackend`, but each model replica
lives in a Ray actor (a process, on this machine or anywhere on a Ray cluster)
that holds the super-network and the validation batches for the whole search.
Every trial the Tuner starts becomes one `evaluate` call on the least busy actor.
Syne Tune's results table stays the single record of the experiment.

An actor that dies (its node lost, killed, out of memory) is replaced by a fresh
one, and each trial it was running is evaluated again, up to `max_retries` times;
after that the trial is marked failed with the reason as its stderr. No trial is
lost silently. An evaluation that raises is not retried (it would raise again):
its trial is marked failed with the remote traceback.

```python
import ray
ray.init(address="auto")      # or let the backend start a local instance
backend = RayWeightSharingBackend(evaluator, num_actors=4, num_cpus_per_actor=2)
Tuner(trial_backend=backend, scheduler=..., n_workers=4, ...).run()
backend.close()
```

`RayScriptBackend` runs trial *scripts* (CoFi-transfer, standard NAS: Syne Tune
`LocalBackend` entry points) as Ray tasks, each with its own CPU / GPU request, on
any node of the cluster. It is a `LocalBackend` whose trial processes are small
local launchers (`python -m nas_pruning.backends.ray_tasks`): each submits its trial
command as a Ray task and relays the command's output and exit code, so that Syne
Tune reads results, stops and fails trials as it does for local processes.

Ray is an optional dependency (`pip install nas_pruning[ray]`); this module imports
without it and says so when a backend is created.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from syne_tune.backend import LocalBackend
from syne_tune.backend.trial_backend import TrialBackend
from syne_tune.backend.trial_status import Status, TrialResult

from nas_pruning.backends import ray_tasks
from nas_pruning.backends.ray_tasks import connect, import_ray, threads_for
from nas_pruning.backends.weight_sharing import StatelessEvaluations, SubnetworkEvaluator, with_worker_fields


class EvaluatorActor:
    """The body of one Ray actor: a replica of the evaluator, resident for the whole search.

    evaluator: the evaluator to replicate (Ray copies it into the actor's process).
    num_threads: torch CPU threads of the actor; match its CPU request.
    use_gpu: move the model and the batches to the actor's GPU once, at start.
    """

    def __init__(self, evaluator: SubnetworkEvaluator, num_threads: int, use_gpu: bool) -> None:
        torch.set_num_threads(num_threads)
        if use_gpu:
            evaluator.model.to("cuda")
            evaluator.batches = [{k: v.to("cuda") for k, v in batch.items()} for batch in evaluator.batches]
        self.evaluator = evaluator

    def evaluate(self, config: dict[str, Any]) -> dict[str, Any]:
        started = time.time()
        return with_worker_fields(self.evaluator(config), started)

    def pid(self) -> int:
        return os.getpid()


@dataclass
class _Attempt:
    """One evaluation of a trial in flight: its Ray object ref, the actor and slot running it.

    `future` completes when the result arrives; checking it costs nothing, whereas
    asking Ray (`ray.wait`) at every poll of the Tuner steals CPU from the actors.
    """

    ref: Any
    future: Future
    slot: int
    actor: Any
    config: dict[str, Any]
    retries: int = 0


class RayWeightSharingBackend(StatelessEvaluations, TrialBackend):
    """A Syne Tune `TrialBackend` that evaluates trials with shared weights on Ray actors.

    evaluator: scores one config (see `SubnetworkEvaluator`); each actor gets a copy
        of it (super-network and validation batches), sent once through Ray's object store.
    num_actors: model replicas, i.e. concurrent evaluations; match the Tuner's `n_workers`.
    num_cpus_per_actor: CPUs Ray reserves for each actor (and its torch threads).
    num_gpus_per_actor: GPUs Ray reserves for each actor (0: evaluate on CPU); an
        actor with a GPU keeps the model and the batches on it.
    ray_address: where Ray runs (see `connect`); ignored if this process is
        already connected (`ray.init` called before).
    max_retries: evaluations again of a trial whose actor died, each on a fresh actor;
        then the trial is marked failed.
    startup_timeout: seconds to wait for the first actors to be up (each loads the
        super-network); a pool that does not start in time, e.g. on a cluster without
        the requested resources, raises a TimeoutError instead of waiting forever.

    A trial whose evaluation raises is marked failed with the traceback as its
    stderr; pass a large `max_failures` to the Tuner so that the experiment goes on.
    `close()` ends the actors (and the local Ray instance if this backend started it).
    """

    def __init__(
        self,
        evaluator: SubnetworkEvaluator,
        num_actors: int = 1,
        num_cpus_per_actor: float = 1,
        num_gpus_per_actor: float = 0,
        ray_address: str | None = None,
        max_retries: int = 1,
        startup_timeout: float = 600.0,
    ) -> None:
        super().__init__()
        checks = {
            "num_actors": (num_actors, num_actors >= 1, ">= 1"),
            "num_cpus_per_actor": (num_cpus_per_actor, num_cpus_per_actor > 0, "> 0"),
            "num_gpus_per_actor": (num_gpus_per_actor, num_gpus_per_actor >= 0, ">= 0"),
            "max_retries": (max_retries, max_retries >= 0, ">= 0"),
        }
        for name, (value, ok, accepted) in checks.items():
            if not ok:
                raise ValueError(f"{name} must be {accepted}, got {value!r}")
        self._ray = import_ray()
        self.num_actors = num_actors
        self.max_retries = max_retries
        self._owns_ray = connect(ray_address)
        threads = threads_for(num_cpus_per_actor)
        # Ray's workers inherit OMP_NUM_THREADS=1 from a driver that imported Syne Tune's
        # local backend; torch then evaluates markedly slower, whatever set_num_threads says.
        self._actor_class = self._ray.remote(EvaluatorActor).options(
            num_cpus=num_cpus_per_actor,
            num_gpus=num_gpus_per_actor,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": str(threads)}},
        )
        self._actor_args = (threads, num_gpus_per_actor > 0)
        self._evaluator_ref = self._ray.put(evaluator)
        self._actors = [self._new_actor() for _ in range(num_actors)]
        self._wait_until_started(startup_timeout, f"num_cpus={num_cpus_per_actor}, num_gpus={num_gpus_per_actor}")
        self._running: dict[int, _Attempt] = {}
        self._abandoned: list[_Attempt] = []  # stopped trials whose evaluation may still run
        self._errors: dict[int, str] = {}
        self.actor_restarts = 0

    @property
    def actors(self) -> list[Any]:
        """The handles of the live actors, one per slot (a dead actor is replaced in its slot)."""
        return list(self._actors)

    def _wait_until_started(self, timeout: float, resources: str) -> None:
        # Started actors keep the Tuner's clock (and a benchmark's) off their loading time.
        pings = [actor.pid.remote() for actor in self._actors]
        started, _ = self._ray.wait(pings, num_returns=len(pings), timeout=timeout)
        if len(started) < len(pings):
            self.close()
            raise TimeoutError(
                f"only {len(started)} of {len(pings)} Ray actors started within {timeout:.0f} s; "
                f"does the cluster have {resources} free for each? (see `ray status`)"
            )
        self._ray.get(pings)  # raises here if an actor failed to load the evaluator

    def _new_actor(self):
        return self._actor_class.remote(self._evaluator_ref, *self._actor_args)

    # -- running evaluations --------------------------------------------------
    def _schedule(self, trial_id: int, config: dict[str, Any]) -> None:
        self._submit(trial_id, config, retries=0)

    def _submit(self, trial_id: int, config: dict[str, Any], retries: int) -> None:
        load = [0] * self.num_actors
        for attempt in [*self._running.values(), *self._abandoned]:
            load[attempt.slot] += 1
        slot = load.index(min(load))
        actor = self._actors[slot]
        ref = actor.evaluate.remote(config)
        self._running[trial_id] = _Attempt(ref, ref.future(), slot, actor, config, retries)

    def _all_trial_results(self, trial_ids: list[int]) -> list[TrialResult]:
        self._collect()
        return [self._trial_dict[trial_id] for trial_id in trial_ids]

    def _collect(self) -> None:
        """Record every evaluation that has finished since the last call."""
        ray = self._ray
        self._abandoned = [a for a in self._abandoned if not a.future.done()]
        for trial_id, attempt in list(self._running.items()):
            if not attempt.future.done():
                continue
            del self._running[trial_id]
            try:
                result = attempt.future.result()
            except ray.exceptions.RayActorError as error:
                self._replace(attempt)
                if attempt.retries < self.max_retries:
                    self._submit(trial_id, attempt.config, attempt.retries + 1)
                    continue
                self._fail(trial_id, f"the Ray actor evaluating this trial died {attempt.retries + 1} time(s): {error}")
            except ray.exceptions.RayError as error:  # the evaluation raised, or its result was lost
                self._fail(trial_id, str(error))
            else:
                trial = self._trial_dict[trial_id]
                trial.metrics = [result]
                trial.status = Status.completed
                trial.training_end_time = datetime.now()

    def _replace(self, attempt: _Attempt) -> None:
        """Put a fresh actor in the slot of the dead one (once, however many trials it was running)."""
        if self._actors[attempt.slot] is attempt.actor:
            self._actors[attempt.slot] = self._new_actor()
            self.actor_restarts += 1

    def _fail(self, trial_id: int, message: str) -> None:
        trial = self._trial_dict[trial_id]
        self._errors[trial_id] = message
        trial.status = Status.failed
        trial.training_end_time = datetime.now()

    def busy_trial_ids(self) -> list[tuple[int, str]]:
        return [(trial_id, Status.in_progress) for trial_id in self._running]

    def _abandon(self, trial_id: int) -> None:
        attempt = self._running.pop(trial_id, None)
        if attempt is not None:
            self._ray.cancel(attempt.ref)  # drops it if still queued on the actor
            self._abandoned.append(attempt)

    def _stop_trial(self, trial_id: int, result: dict | None) -> None:
        self._abandon(trial_id)
        self._trial_dict[trial_id].status = Status.stopped

    def _pause_trial(self, trial_id: int, result: dict | None) -> None:
        self._abandon(trial_id)

    # -- identity -----------------------------------------------------------------
    def entrypoint_path(self) -> Path:
        return Path(__file__)  # names the Tuner's experiments "ray-backend-..."

    def set_entrypoint(self, entry_point: str) -> None:
        raise ValueError("the Ray weight-sharing backend evaluates on actors and has no entry point script")

    def close(self) -> None:
        """End the actors (running evaluations are dropped); shut Ray down if this backend started it."""
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors, self._running, self._abandoned = [], {}, []
        if self._owns_ray:
            self._ray.shutdown()
            self._owns_ray = False

    def __getstate__(self) -> dict:
        # The Tuner pickles its backend when saving: keep the trial records,
        # leave out Ray's module, actor handles and object refs.
        state = self.__dict__.copy()
        for key in ("_ray", "_actor_class", "_evaluator_ref", "_actors", "_running", "_abandoned"):
            state.pop(key)
        return state


# -- trial scripts as Ray tasks ------------------------------------------------------


class RayScriptBackend(LocalBackend):
    """A Syne Tune `LocalBackend` whose trials run as Ray tasks with their own resource requests.

    entry_point: the trial script (as for `LocalBackend`); it must exist at the same
        path on every node (the same installation), and the files trials write
        (checkpoints, models) land on the node that ran them: use a shared file
        system for the experiment folder on a multi-node cluster.
    num_cpus_per_trial: CPUs Ray reserves for each trial.
    num_gpus_per_trial: GPUs Ray reserves for each trial; Ray sets the trial's
        CUDA_VISIBLE_DEVICES.
    ray_address: where Ray runs (see `connect`).
    delete_checkpoints: as for `LocalBackend`.

    Each trial process of the `LocalBackend` is a launcher on this machine that runs
    the trial command as a Ray task on the worker's Python and relays its stdout
    (with the reported results) and stderr line by line; stopping a trial ends the
    launcher, and Ray then ends the task and its command. Environment variables that
    trials read (prefixes in `ray_tasks.FORWARDED_ENV_PREFIXES`: Hugging Face,
    GLUE_DIR, Syne Tune) are passed on; the rest is the Ray worker's.
    """

    def __init__(
        self,
        entry_point: str,
        num_cpus_per_trial: float = 1,
        num_gpus_per_trial: float = 0,
        ray_address: str | None = None,
        delete_checkpoints: bool = False,
    ) -> None:
        if not num_cpus_per_trial > 0 or not num_gpus_per_trial >= 0:
            raise ValueError(
                f"num_cpus_per_trial must be > 0 and num_gpus_per_trial >= 0, "
                f"got {num_cpus_per_trial} and {num_gpus_per_trial}"
            )
        ray = import_ray()
        self._owns_ray = connect(ray_address)
        launcher = [
            sys.executable, "-m", ray_tasks.__name__, "--address", ray.get_runtime_context().gcs_address,
            "--num-cpus", str(num_cpus_per_trial), "--num-gpus", str(num_gpus_per_trial), "--",
        ]
        # LocalBackend runs `binary entry_point --key value ...`, split at spaces.
        super().__init__(entry_point, binary=" ".join(launcher), delete_checkpoints=delete_checkpoints,
                         rotate_gpus=False)

    def close(self) -> None:
        """Shut Ray down if this backend started it (running trials end with it)."""
        if self._owns_ray:
            import_ray().shutdown()
            self._owns_ray = False

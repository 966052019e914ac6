"""Scoring sub-networks against a trained super-network, as a Syne Tune backend.

`SubnetworkEvaluator` turns a config of a search space into objectives: it runs the
sub-network with the super-network's shared weights (no retraining) on resident
validation batches. `WeightSharingBackend` is a Syne Tune `TrialBackend` that runs
the evaluator for each trial the Tuner starts, on a pool of threads that each own
a replica of the super-network (`select_subnetwork` patches modules, so two
concurrent evaluations must never share one model). Searches run it through
`nas_pruning.experiments.weight_sharing` (`run_search`, what `nas-pruning search` and the benchmarks call).
"""

from __future__ import annotations

import copy
import queue
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from syne_tune.backend.trial_backend import TrialBackend
from syne_tune.backend.trial_status import Status, TrialResult
from syne_tune.constants import ST_WORKER_ITER, ST_WORKER_TIME, ST_WORKER_TIMESTAMP
from torch import nn

from nas_pruning.evaluation import SharedEmbeddings, evaluate
from nas_pruning.models import count_parameters
from nas_pruning.runtimes import LatencyMeter
from nas_pruning.search_spaces import SearchSpace
from nas_pruning.tasks import Task


class SubnetworkEvaluator:
    """Objectives of search-space configs, evaluated with shared weights.

    model: the trained super-network (kept resident, put in eval mode; its weights
        must not change while the evaluator is in use).
    search_space: the space the configs come from.
    batches: validation batches (dicts of tensors with `labels`), kept resident on the
        model's device; batches sorted by length (`make_loader(..., by_length=True)`)
        waste the least compute on padding.
    task: gives the metric; `error` = 1 - metric.
    latency: if given, each evaluation also reports `latency`, measured on the
        extracted sub-network (see nas_pruning.runtimes.LatencyMeter; replicas share its cache).
    """

    def __init__(
        self,
        model: nn.Module,
        search_space: SearchSpace,
        batches: Sequence[dict],
        task: Task,
        latency: LatencyMeter | None = None,
    ) -> None:
        self.model = model.eval()
        self.search_space = search_space
        device = next(model.parameters()).device
        self.batches = [{k: v.to(device) for k, v in batch.items()} for batch in batches]
        self.task = task
        self.latency = latency
        self._full_params = count_parameters(model)
        # Every sub-network keeps the whole hidden size (select_subnetwork prunes no
        # hidden dimensions), so all share the embedding layer's output on a batch.
        self._embeddings = SharedEmbeddings()

    def __call__(self, config: dict[str, Any]) -> dict[str, float]:
        start = time.perf_counter()
        sub = self.search_space.to_subnetwork(config)
        scores = evaluate(self.model, self.batches, self.task, sub, shared=self._embeddings)
        result = {
            "error": scores["error"],
            "metric": scores["metric"],
            "params": count_parameters(self.model, sub) / self._full_params,
            "eval_time": time.perf_counter() - start,
        }
        if self.latency is not None:
            result["latency"] = self.latency(self.model, sub)
        return result

    def replicate(self) -> "SubnetworkEvaluator":
        """An evaluator over its own copy of the model (data tensors are shared, read-only)."""
        clone = copy.copy(self)
        clone.model = copy.deepcopy(self.model)
        clone._embeddings = SharedEmbeddings()  # one per replica: threads must not fill one cache at once
        return clone


def with_worker_fields(metrics: dict[str, float], started: float) -> dict[str, Any]:
    """`metrics` of one evaluation that began at `started` (time.time()), with the bookkeeping fields
    Syne Tune expects in every reported result; what both the in-process and the Ray-actor backend report."""
    now = time.time()
    return {**metrics, "epoch": 1, ST_WORKER_ITER: 0, ST_WORKER_TIMESTAMP: now, ST_WORKER_TIME: now - started}


class StatelessEvaluations:
    """Trial-backend methods shared by backends whose trials are single evaluations.

    Evaluations keep no state, so there are no checkpoints and a resumed trial is
    evaluated again; a failed evaluation's error text (in `self._errors`) is its stderr.
    """

    _errors: dict[int, str]

    def _resume_trial(self, trial_id: int) -> None:
        """Nothing to restore: `_schedule` evaluates the config again."""

    def copy_checkpoint(self, src_trial_id: int, tgt_trial_id: int) -> None:
        """Evaluations keep no state: there is no checkpoint to copy."""

    def delete_checkpoint(self, trial_id: int) -> None:
        """Evaluations keep no state: there is no checkpoint to delete."""

    def stdout(self, trial_id: int) -> list[str]:
        return []

    def stderr(self, trial_id: int) -> list[str]:
        return [self._errors[trial_id]] if trial_id in self._errors else []


class WeightSharingBackend(StatelessEvaluations, TrialBackend):
    """A Syne Tune `TrialBackend` that evaluates trials in-process with shared weights.

    evaluator: scores one config (see `SubnetworkEvaluator`); it is replicated so
        that each of `n_replicas` threads owns one model copy.
    n_replicas: concurrent evaluations; match the Tuner's `n_workers`.

    A trial whose evaluation raises is marked failed with the traceback as its
    stderr; pass a large `max_failures` to the Tuner so that the experiment goes on.
    Evaluations keep no state, so checkpoints are empty and pausing a trial means
    evaluating it again on resume.
    """

    def __init__(self, evaluator: SubnetworkEvaluator, n_replicas: int = 1) -> None:
        super().__init__()
        if n_replicas < 1:
            raise ValueError(f"n_replicas must be >= 1, got {n_replicas}")
        self.n_replicas = n_replicas
        self._evaluators: queue.Queue[SubnetworkEvaluator] = queue.Queue()
        self._evaluators.put(evaluator)
        for _ in range(n_replicas - 1):
            self._evaluators.put(evaluator.replicate())
        self._pool = ThreadPoolExecutor(max_workers=n_replicas, thread_name_prefix="weight-sharing")
        self._futures: dict[int, Future] = {}
        self._errors: dict[int, str] = {}

    # -- running evaluations --------------------------------------------------
    def _schedule(self, trial_id: int, config: dict[str, Any]) -> None:
        self._futures[trial_id] = self._pool.submit(self._evaluate, config)

    def _evaluate(self, config: dict[str, Any]) -> dict[str, Any]:
        started = time.time()
        evaluator = self._evaluators.get()
        try:
            return with_worker_fields(evaluator(config), started)
        finally:
            self._evaluators.put(evaluator)

    def _all_trial_results(self, trial_ids: list[int]) -> list[TrialResult]:
        results = []
        for trial_id in trial_ids:
            trial = self._trial_dict[trial_id]
            future = self._futures.get(trial_id)
            if trial.status == Status.in_progress and future is not None and future.done():
                trial.training_end_time = datetime.now()
                error = future.exception()
                if error is None:
                    trial.metrics = [future.result()]
                    trial.status = Status.completed
                else:
                    self._errors[trial_id] = "".join(traceback.format_exception(error))
                    trial.status = Status.failed
            results.append(trial)
        return results

    def busy_trial_ids(self) -> list[tuple[int, str]]:
        return [
            (trial_id, Status.in_progress)
            for trial_id, future in self._futures.items()
            if not future.done() and self._trial_dict[trial_id].status == Status.in_progress
        ]

    def _stop_trial(self, trial_id: int, result: dict | None) -> None:
        self._futures[trial_id].cancel()
        self._trial_dict[trial_id].status = Status.stopped

    def _pause_trial(self, trial_id: int, result: dict | None) -> None:
        self._futures[trial_id].cancel()

    # -- identity -----------------------------------------------------------------
    def entrypoint_path(self) -> Path:
        return Path(__file__)  # names the Tuner's experiments "weight-sharing-..."

    def set_entrypoint(self, entry_point: str) -> None:
        raise ValueError("the weight-sharing backend evaluates in-process and has no entry point script")

    def close(self) -> None:
        """Wait for running evaluations and release the worker threads."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __getstate__(self) -> dict:
        # The Tuner pickles its backend when saving: keep the trial records,
        # leave out the models, threads and futures.
        state = self.__dict__.copy()
        for key in ("_evaluators", "_pool", "_futures"):
            state.pop(key)
        return state


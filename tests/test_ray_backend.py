"""Ray: the weight-sharing backend's actor pool (same results as in-process, no trial lost), trial scripts as tasks."""

import json
import os
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import random_batches, tiny_model
from test_baselines import pretrained_folder, tiny_glue  # noqa: F401 (fixtures)
from syne_tune import StoppingCriterion, Tuner
from syne_tune.config_space import randint
from syne_tune.experiments import load_experiment
from syne_tune.optimizer.baselines import RandomSearch
from syne_tune.results_callback import StoreResultsCallback
from syne_tune.tuner_callback import TunerCallback

from syne_tune.backend import LocalBackend

from nas_pruning.backends import ray_backend
from nas_pruning.backends.ray_backend import RayScriptBackend, RayWeightSharingBackend
from nas_pruning.backends.trial_engine import script_backend
from nas_pruning.backends.weight_sharing import SubnetworkEvaluator, WeightSharingBackend
from nas_pruning.cli import build_parser, main
from nas_pruning.cofi import trial as cofi_trial
from nas_pruning.experiments import cofi_transfer
from nas_pruning.experiments import standard_nas as standard_nas_module
from nas_pruning.experiments.standard_nas import standard_nas
from nas_pruning.optimizers import make_scheduler
from nas_pruning.runtimes import LatencyMeter, LatencySpec
from nas_pruning.search_spaces import get_search_space
from nas_pruning.tasks import get_task

CONFIGS = [
    {"num_layers": layers, "num_heads": heads, "num_units": units}
    for layers, heads, units in [(3, 4, 12), (1, 1, 1), (2, 3, 7), (3, 2, 5), (1, 4, 12), (2, 1, 3), (3, 3, 9)]
]
KEYS = ["num_layers", "num_heads", "num_units"]


@pytest.fixture(scope="module")
def ray():
    ray = pytest.importorskip("ray")
    # Ray nices its workers by default: on a busy machine they would starve for minutes.
    previous = os.environ.get("RAY_worker_niceness")
    os.environ["RAY_worker_niceness"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
    if previous is None:
        del os.environ["RAY_worker_niceness"]
    else:
        os.environ["RAY_worker_niceness"] = previous


def make_evaluator(latency_repeats=1):
    """A tiny super-network on 48 random examples; `latency_repeats` slows each evaluation down."""
    model = tiny_model("bert", num_labels=2)
    batches = random_batches(3, 16)
    space = get_search_space("small", model.config)
    meter = LatencyMeter(LatencySpec(batch_size=16, length=10, warmup=0, repeats=latency_repeats))
    return SubnetworkEvaluator(model, space, batches, get_task("rte"), latency=meter)


class KillActorWhenTrialStarts(TunerCallback):
    """Kills the backend's first actor when trial `trial_id` starts, while other trials run on it."""

    def __init__(self, ray, backend, trial_id):
        self.ray, self.backend, self.trial_id, self.killed = ray, backend, trial_id, False

    def on_start_trial(self, trial):
        if trial.trial_id == self.trial_id:
            self.ray.kill(self.backend.actors[0])
            self.killed = True


def run_tuner(backend, tmp_path, monkeypatch, n_workers, configs=CONFIGS, callbacks=()):
    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path))
    space = get_search_space("small", tiny_model("bert").config)
    tuner = Tuner(
        trial_backend=backend,
        scheduler=make_scheduler("random", space.config_space, points_to_evaluate=configs, random_seed=0),
        stop_criterion=StoppingCriterion(max_num_trials_finished=len(configs)),
        wait_trial_completion_when_stopping=True,  # no trial left running at the end
        n_workers=n_workers,
        sleep_time=0.01,
        results_update_interval=0.5,
        print_update_interval=60,
        max_failures=1000,
        callbacks=[StoreResultsCallback(), *callbacks],
    )
    try:
        tuner.run()
    finally:
        backend.close()
    return load_experiment(tuner.name, local_path=str(tmp_path)).results


def by_config(results):
    """The objectives of the CONFIGS rows (the Tuner may have started a random config or two more)."""
    table = results.rename(columns={f"config_{k}": k for k in KEYS}).astype({k: int for k in KEYS})
    table = table.drop_duplicates(KEYS).set_index(KEYS)[["error", "metric", "params"]]
    return table.loc[[tuple(c[k] for k in KEYS) for c in CONFIGS]]


def test_ray_search_equals_in_process_and_survives_a_killed_actor(ray, tmp_path, monkeypatch):
    in_process = run_tuner(WeightSharingBackend(make_evaluator(), n_replicas=2), tmp_path / "threads", monkeypatch, 2)
    # about 0.1 s per evaluation, so that the killed actor surely has a trial in flight
    backend = RayWeightSharingBackend(make_evaluator(latency_repeats=100), num_actors=2)
    killer = KillActorWhenTrialStarts(ray, backend, trial_id=3)
    on_ray = run_tuner(backend, tmp_path / "ray", monkeypatch, 2, callbacks=[killer])

    assert killer.killed and backend.actor_restarts == 1
    statuses = {backend._trial_dict[t].status for t in backend.trial_ids}
    assert statuses == {"Completed"}  # the killed actor's trial was evaluated again on its replacement
    assert len(on_ray) == len(backend.trial_ids) >= len(CONFIGS)  # and every trial is in the results table
    assert by_config(on_ray).equals(by_config(in_process))
    assert on_ray["error"].nunique() > 1  # the configs are told apart
    assert not backend._owns_ray and ray.is_initialized()  # joined the fixture's instance, left it running


def wait_until_idle(backend, timeout=60):
    deadline = time.time() + timeout
    while backend.busy_trial_ids():
        assert time.time() < deadline, "evaluations did not finish"
        backend.fetch_status_results(backend.trial_ids)
        time.sleep(0.05)


def test_failed_evaluations_and_dead_actors_without_retries_fail_their_trials(ray):
    backend = RayWeightSharingBackend(make_evaluator(latency_repeats=1000), num_actors=1, max_retries=0)
    try:
        broken = backend.start_trial({"num_layers": 9, "num_heads": 1, "num_units": 1}).trial_id
        wait_until_idle(backend)
        assert backend._trial_dict[broken].status == "Failed"
        assert "num_layers=9 is outside" in backend.stderr(broken)[0]  # the remote traceback
        assert backend.actor_restarts == 0  # a raising evaluation leaves its actor alive

        doomed = backend.start_trial(CONFIGS[0]).trial_id
        time.sleep(0.3)
        first = backend.actors[0]
        ray.kill(first)
        wait_until_idle(backend)
        assert backend._trial_dict[doomed].status == "Failed"
        assert "actor evaluating this trial died 1 time(s)" in backend.stderr(doomed)[0]
        assert backend.actor_restarts == 1 and backend.actors[0] is not first
    finally:
        backend.close()


def test_search_command_on_ray_actors(ray, tiny_supernet, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path / "st"))
    argv = ["search", "--supernet", str(tiny_supernet), "--output-dir", str(tmp_path / "search"), "--optimizer",
            "random", "--num-evaluations", "4", "--max-validation-examples", "32", "--threads", "1",
            "--ray-actors", "1", "--actor-cpus", "1"]
    assert main(argv) == 0
    results = pd.read_csv(tmp_path / "search" / "results.csv")
    summary = json.loads((tmp_path / "search" / "summary.json").read_text())
    assert len(results) >= 4 and results["error"].notna().all()
    assert summary["settings"]["ray_actors"] == 1 and summary["experiment"].startswith("weight-sharing-random")


TRIAL_SCRIPT = """
import argparse, os, sys
from syne_tune import Reporter
parser = argparse.ArgumentParser()
parser.add_argument("--x", type=int)
args, _ = parser.parse_known_args()
if args.x == 3:
    sys.exit("x=3 is not allowed")
report = Reporter()
for epoch in (1, 2):
    report(epoch=epoch, y=args.x * epoch, hf=os.environ["HF_HUB_OFFLINE"])
"""


def test_trial_scripts_run_as_ray_tasks(ray, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path / "st"))
    script = tmp_path / "trial.py"
    script.write_text(TRIAL_SCRIPT)
    backend = RayScriptBackend(str(script), num_cpus_per_trial=1)
    points = [{"x": 2}, {"x": 3}]
    tuner = Tuner(
        trial_backend=backend,
        scheduler=RandomSearch({"x": randint(1, 3)}, metrics=["y"], points_to_evaluate=points, random_seed=0),
        stop_criterion=StoppingCriterion(max_num_trials_finished=2),
        n_workers=2,
        sleep_time=0.05,
        results_update_interval=0.5,
        max_failures=10,
        wait_trial_completion_when_stopping=True,
    )
    tuner.run()
    backend.close()
    results = load_experiment(tuner.name, local_path=str(tmp_path / "st")).results
    first = results[results["trial_id"] == 0].sort_values("epoch")
    assert first["y"].tolist() == [2, 4] and (first["hf"] == 1).all()  # every report relayed; variables forwarded
    assert backend._trial_dict[1].status == "Failed"
    assert "x=3 is not allowed" in "".join(backend.stderr(1))
    assert not (results["config_x"] == 3).any()


def test_bad_settings_and_missing_ray_are_explained(monkeypatch, capsys):
    with pytest.raises(ValueError, match="num_actors must be >= 1, got 0"):
        RayWeightSharingBackend(make_evaluator(), num_actors=0)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    with pytest.raises(ImportError, match=r"pip install 'nas_pruning\[ray\]'"):
        RayWeightSharingBackend(make_evaluator())
    assert main(["search", "--supernet", "x", "--output-dir", "y", "--ray-actors", "2"]) == 2
    assert "pip install 'nas_pruning[ray]'" in capsys.readouterr().err
    for argv in (["baseline", "standard-nas", "--task", "rte", "--max-trials", "1"], ["cofi-search", "--task", "rte"]):
        assert main([*argv, "--output-dir", "y", "--ray"]) == 2  # before any model loads
        assert "pip install 'nas_pruning[ray]'" in capsys.readouterr().err
        assert main([*argv, "--output-dir", "y", "--gpus-per-trial", "1"]) == 2  # a request Ray would not see
        assert "are Ray requests: pass ray=True (--ray) or ray_address" in capsys.readouterr().err


# -- CoFi-transfer and standard NAS on Ray ----------------------------------------------


class RayBackendRequested(Exception):
    """Raised by a stand-in RayScriptBackend with the script and resources a command asked for."""


def test_trial_script_commands_ask_ray_for_the_requested_resources(
    monkeypatch, tmp_path, pretrained_folder,  # noqa: F811
):
    pytest.importorskip("ray")  # the options check that Ray is installed; none is started here

    def stand_in(entry_point, **resources):
        raise RayBackendRequested(Path(entry_point).name, resources)

    monkeypatch.setattr(ray_backend, "RayScriptBackend", stand_in)
    spaces = []
    for module in (standard_nas_module, cofi_transfer):
        monkeypatch.setattr(module, "make_scheduler", lambda optimizer, space, *args, **kwargs: spaces.append(space))
    monkeypatch.setattr(cofi_transfer, "prepare_teacher", lambda config: None)  # no teacher to train
    commands = {
        "standard_nas.py": ["baseline", "standard-nas", "--task", "rte", "--model", str(pretrained_folder),
                            "--max-trials", "4", "--threads", "1"],
        "trial.py": ["cofi-search", "--task", "rte", "--threads", "1"],
    }  # fmt: skip
    for script, argv in commands.items():
        ray_argv = ["--ray-address", "auto", "--cpus-per-trial", "3", "--gpus-per-trial", "0.5"]
        args = build_parser().parse_args([*argv, "--output-dir", str(tmp_path / script), *ray_argv])
        with pytest.raises(RayBackendRequested) as requested:
            args.func(args)
        resources = {"num_cpus_per_trial": 3.0, "num_gpus_per_trial": 0.5, "ray_address": "auto"}
        assert requested.value.args == (script, {**resources, "delete_checkpoints": True})
        assert spaces.pop()["num_threads"] == 3  # each trial's torch threads: its CPUs, not the local setting
    with script_backend(cofi_trial.__file__) as backend:  # no Ray option: local processes
        assert type(backend) is LocalBackend


def test_standard_nas_trials_run_as_ray_tasks(ray, tmp_path, pretrained_folder, tiny_glue):  # noqa: F811
    results = standard_nas(
        "rte", model=str(pretrained_folder), optimizer="random", epochs=1, max_trials=2, n_workers=2,
        data_dir=tiny_glue, batch_size=8, learning_rate=1e-3, max_length=32, output_dir=tmp_path / "nas",
        ray=True, cpus_per_trial=1,
    )  # fmt: skip
    finished = results[results["epoch"] == 1]
    assert {0, 1} <= set(finished["trial_id"])  # both trials ran to their end and reported
    assert finished["error"].between(0, 1).all() and (finished["params"] > 0).all()
    assert (results["config_num_threads"] == 1).all()  # the trial's CPU request
    assert ray.is_initialized()  # the fixture's instance, joined and left running

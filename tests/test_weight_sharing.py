import numpy as np
import pytest
import torch
from conftest import random_batches, tiny_model
from syne_tune import StoppingCriterion, Tuner
from syne_tune.experiments import load_experiment

from nas_pruning.backends.weight_sharing import SubnetworkEvaluator, WeightSharingBackend
from nas_pruning.evaluation import SharedEmbeddings, evaluate, predict
from nas_pruning.models import extract_subnetwork
from nas_pruning.optimizers import OPTIMIZERS, make_scheduler
from nas_pruning.runtimes import LatencyMeter, LatencySpec
from nas_pruning.search_spaces import get_search_space
from nas_pruning.tasks import get_task


@pytest.fixture
def evaluator():
    model = tiny_model("bert", num_labels=2)
    batches = random_batches(3, 8)
    space = get_search_space("small", model.config)
    meter = LatencyMeter(LatencySpec(batch_size=2, length=8, warmup=0, repeats=2))
    return SubnetworkEvaluator(model, space, batches, get_task("rte"), latency=meter)


def test_evaluator_scores_match_the_extracted_subnetwork(evaluator):
    config = {"num_layers": 2, "num_heads": 3, "num_units": 7}
    result = evaluator(config)
    small = extract_subnetwork(evaluator.model, evaluator.search_space.to_subnetwork(config))
    assert result["error"] == pytest.approx(evaluate(small, evaluator.batches, evaluator.task)["error"])
    assert result["params"] == pytest.approx(evaluator.search_space.parameter_ratio(config))
    assert result["latency"] > 0 and result["eval_time"] > 0


def test_latency_is_measured_once_per_architecture(evaluator):
    config = {"num_layers": 2, "num_heads": 3, "num_units": 7}
    first = evaluator(config)["latency"]
    assert evaluator(config)["latency"] == first and evaluator.latency.measurements == 1
    evaluator.replicate()({"num_layers": 1, "num_heads": 3, "num_units": 7})  # replicas share the cache
    assert evaluator.latency.measurements == 2


def _run_tuner(evaluator, method, tmp_path, monkeypatch, n_workers=2, trials=5, seed=0):
    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path))
    space = evaluator.search_space
    backend = WeightSharingBackend(evaluator, n_replicas=n_workers)
    scheduler = make_scheduler(
        method, space.config_space, points_to_evaluate=space.initial_design(), random_seed=seed, **(
            {"max_t": 1} if method == "moasha" else {})
    )
    tuner = Tuner(
        trial_backend=backend,
        scheduler=scheduler,
        stop_criterion=StoppingCriterion(max_num_trials_finished=trials),
        n_workers=n_workers,
        sleep_time=0.01,
        results_update_interval=0.5,
        print_update_interval=60,
        max_failures=1000,
    )
    tuner.run()
    backend.close()
    return load_experiment(tuner.name, local_path=str(tmp_path)).results, backend


@pytest.mark.parametrize("method", [m for m in OPTIMIZERS if m != "ehvi"])
def test_tuner_with_two_workers_and_every_optimizer(evaluator, method, tmp_path, monkeypatch):
    results, _ = _run_tuner(evaluator, method, tmp_path, monkeypatch)
    assert len(results) >= 5
    assert set(results.columns) >= {"trial_id", "error", "params", "eval_time", "config_num_layers"}
    # evaluations of concurrent workers do not corrupt each other: rerun each config alone
    for _, row in results.iterrows():
        config = {k: int(row[f"config_{k}"]) for k in ("num_layers", "num_heads", "num_units")}
        assert row["error"] == pytest.approx(evaluator(config)["error"])
        assert row["params"] == pytest.approx(evaluator.search_space.parameter_ratio(config))


def test_tuner_with_ehvi(evaluator, tmp_path, monkeypatch):
    pytest.importorskip("botorch")
    results, _ = _run_tuner(evaluator, "ehvi", tmp_path, monkeypatch, n_workers=1, trials=5)
    assert len(results) >= 5


def test_failing_evaluation_does_not_stop_the_experiment(evaluator, tmp_path, monkeypatch):
    class Flaky(SubnetworkEvaluator):
        def __call__(self, config):
            if config["num_heads"] == 1:  # the smallest config of the initial design
                raise RuntimeError("simulated evaluation failure")
            return super().__call__(config)

    flaky = Flaky(evaluator.model, evaluator.search_space, evaluator.batches, evaluator.task)
    results, backend = _run_tuner(flaky, "random", tmp_path, monkeypatch, trials=6)
    failed = [t for t in backend.trial_ids if backend._trial_dict[t].status == "Failed"]
    assert failed and "simulated evaluation failure" in "".join(backend.stderr(failed[0]))
    assert len(results) + len(failed) >= 6 and len(results) >= 3  # the experiment went on
    assert (results["config_num_heads"] != 1).all()


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_shared_embeddings_give_the_plain_evaluation_and_embed_each_batch_once(family):
    model = tiny_model(family, num_labels=2)
    generator = torch.Generator().manual_seed(0)
    batches = []
    for length in (10, 7, 4):  # padded batches, as sorted by length
        ids = torch.randint(3, 60, (6, length), generator=generator)
        mask = torch.ones_like(ids)
        mask[::2, length // 2 :] = 0
        ids[mask == 0] = model.config.pad_token_id
        batches.append({"input_ids": ids, "attention_mask": mask, "labels": ids[:, 1] % 2})
    space = get_search_space("small", model.config)
    evaluator = SubnetworkEvaluator(model, space, batches, get_task("mrpc"))
    calls = []
    embeddings = model.base_model.embeddings
    hook = embeddings.register_forward_hook(lambda module, args, output: calls.append(output))
    configs = [{"num_layers": 3, "num_heads": 4, "num_units": 12}, {"num_layers": 2, "num_heads": 1, "num_units": 5},
               {"num_layers": 1, "num_heads": 3, "num_units": 1}]
    shared = [evaluator(config) for config in configs]
    assert len(calls) == len(batches)  # embedded once, reused by the other sub-networks
    assert len(evaluator._embeddings.projections) == 3 * len(batches)  # first layer's query/key/value, once each
    hook.remove()
    assert model.base_model.embeddings is embeddings  # the real layer is back
    for config, result in zip(configs, shared):
        plain = evaluate(model, batches, evaluator.task, space.to_subnetwork(config))
        assert result["metric"] == plain["metric"] and result["error"] == plain["error"]
        logits, _ = predict(model, batches, space.to_subnetwork(config))
        cached, _ = predict(model, batches, space.to_subnetwork(config), shared=evaluator._embeddings)
        # Rows of the full projection: the same dot products, but a BLAS may sum them in another
        # order for another output width (bit-equal on the MiniLM of docs/throughput.md).
        np.testing.assert_allclose(cached, logits, rtol=1e-5, atol=1e-8)


def test_shared_embeddings_refuse_a_training_model():
    with pytest.raises(ValueError, match="shared embeddings need a model in eval mode"):
        with SharedEmbeddings().installed(tiny_model().train()):
            pass


def test_shared_projections_follow_the_first_layer_a_subnetwork_runs():
    """MEDIUM sub-networks may drop layer 0 or skip its attention: the projections read
    the embedding output only in the first layer that runs, and are shared by its key."""
    model = tiny_model("bert", num_labels=2).eval()
    batches = random_batches(2, 6)
    space = get_search_space("medium", model.config)
    shared = SharedEmbeddings()
    layers = model.config.num_hidden_layers
    heads, units = model.config.num_attention_heads, model.config.intermediate_size
    full = {**{f"num_heads_{i}": heads for i in range(layers)}, **{f"num_units_{i}": units for i in range(layers)}}
    dropped_first = {**full, "num_heads_0": 0, "num_units_0": 0}
    no_attention_first = {**dropped_first, "num_units_0": 3}
    for config in (dropped_first, no_attention_first, {**dropped_first, "num_heads_1": 1}):
        sub = space.to_subnetwork(config)
        plain, _ = predict(model, batches, sub)
        cached, _ = predict(model, batches, sub, shared=shared)
        np.testing.assert_allclose(cached, plain, rtol=1e-5, atol=1e-8)
    # layer 1's query/key/value on each batch, once: the third config reuses the first's
    assert len(shared.projections) == 3 * len(batches)

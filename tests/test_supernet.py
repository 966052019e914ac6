"""Super-network training: strategies, distillation, the loop, checkpoints, saving, finetune."""

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_model
from torch.utils.data import DataLoader

from nas_pruning.models import SubNetwork, extract_subnetwork, get_adapter, load_tokenizer
from nas_pruning.search_spaces import get_search_space
from nas_pruning.supernet import (
    CHECKPOINT_DIR,
    STRATEGIES,
    DistillationLoss,
    Pass,
    Strategy,
    SupernetRecord,
    TrainingConfig,
    finetune,
    get_strategy,
    load_supernet,
    save_supernet,
    smallest_subnetwork,
    train_supernet,
)
from nas_pruning.tasks import get_task

MNLI = get_task("mnli")  # 3 classes, like the tiny models
STSB = get_task("stsb")  # regression


def examples(n=16, regression=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 60, (n, 10), generator=g)
    mask = torch.ones_like(ids)
    mask[::3, 7:] = 0
    labels = torch.rand(n, generator=g) * 5 if regression else torch.randint(0, 3, (n,), generator=g)
    return [{"input_ids": ids[i], "attention_mask": mask[i], "labels": labels[i]} for i in range(n)]


def loader(data, shuffle=True, seed=0):
    return DataLoader(data, batch_size=4, shuffle=shuffle, generator=torch.Generator().manual_seed(seed))


def config(**overrides):
    values = dict(epochs=1, learning_rate=1e-2, num_threads=1, weight_decay=0.0)
    return TrainingConfig(**{**values, **overrides})


def weights(model):
    return {name: p.detach().clone() for name, p in model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


class Spy(Strategy):
    """Runs `inner`, records what it asked for and can crash at a given step."""

    def __init__(self, inner, crash_at_step=None):
        self.inner, self.crash_at_step = inner, crash_at_step
        self.name, self.needs_search_space = inner.name, inner.needs_search_space
        self.calls = []  # (progress, passes) per step

    def passes(self, space, rng, progress):
        if len(self.calls) == self.crash_at_step:
            raise RuntimeError("simulated crash")
        passes = self.inner.passes(space, rng, progress)
        self.calls.append((progress, passes))
        return passes

    def describe(self):
        return self.inner.describe()


@dataclass(frozen=True)
class SmallestOnly(Strategy):
    name = "smallest_only"

    def passes(self, space, rng, progress):
        return [Pass(smallest_subnetwork(space))]


def same_subnetwork(a, b):
    return torch.equal(a.head_mask, b.head_mask) and torch.equal(a.ffn_mask, b.ffn_mask)


# -- strategies -------------------------------------------------------------------


def test_strategy_names_and_clear_errors():
    assert list(STRATEGIES) == ["standard", "random", "random_linear", "sandwich", "kd", "full"]
    with pytest.raises(ValueError, match="unknown super-network training strategy 'best'.*sandwich"):
        get_strategy("best")
    with pytest.raises(ValueError, match="no option.*'k'.*num_random"):
        get_strategy("sandwich", k=3)
    with pytest.raises(ValueError, match="num_random must be an integer >= 1"):
        get_strategy("kd", num_random=0)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("standard", ["full"]),
        ("random", ["random"]),
        ("sandwich", ["full", "random", "random", "smallest"]),
        ("kd", ["full", "random*", "random*"]),
        ("full", ["full", "random*", "random*", "smallest*"]),
    ],
)
def test_strategy_passes(name, expected):
    model = tiny_model()
    space = get_search_space("small", model.config)
    smallest = space.to_subnetwork(space.smallest())
    assert smallest.kept_layers() == [0] and smallest.heads_per_layer()[0] == 1
    passes = get_strategy(name).passes(space, np.random.RandomState(0), 0.5)
    kinds = []
    for p in passes:
        kind = "full" if p.sub is None else "smallest" if same_subnetwork(p.sub, smallest) else "random"
        kinds.append(kind + ("*" if p.distill else ""))
    assert kinds == expected
    for p in passes:  # random sub-networks are SMALL-space members: a prefix of layers, equal sizes
        if p.sub is not None:
            kept = p.sub.kept_layers()
            assert kept == list(range(len(kept)))
            assert len({p.sub.heads_per_layer()[i] for i in kept}) == 1


def test_random_linear_probability_rises_from_zero_to_one():
    model = tiny_model()
    space = get_search_space("small", model.config)
    strategy, rng = get_strategy("random_linear"), np.random.RandomState(0)

    def share_of_subnetworks(progress):
        return np.mean([strategy.passes(space, rng, progress)[0].sub is not None for _ in range(400)])

    assert share_of_subnetworks(0.0) == 0.0
    assert 0.15 < share_of_subnetworks(0.25) < 0.35
    assert 0.65 < share_of_subnetworks(0.75) < 0.85
    assert share_of_subnetworks(1.0) == 1.0


# -- distillation -----------------------------------------------------------------


def test_distillation_is_temperature_scaled_kl_from_the_teacher():
    torch.manual_seed(0)
    student, teacher, labels = torch.randn(5, 3), torch.randn(5, 3), torch.randint(0, 3, (5,))
    t = 2.5
    p_teacher = F.softmax(teacher / t, dim=-1)
    manual = (p_teacher * (p_teacher.log() - F.log_softmax(student / t, dim=-1))).sum(-1).mean() * t**2
    torch.testing.assert_close(DistillationLoss(temperature=t)(student, teacher, labels), manual)
    assert DistillationLoss(temperature=1.0)(student, teacher, labels) != DistillationLoss(temperature=4.0)(
        student, teacher, labels
    )
    assert DistillationLoss(temperature=3.0)(teacher, teacher, labels).abs() < 1e-6


def test_distillation_adds_weighted_task_loss_and_detaches_teacher():
    torch.manual_seed(0)
    student = torch.randn(4, 3, requires_grad=True)
    teacher = torch.randn(4, 3, requires_grad=True)
    labels = torch.tensor([0, 2, 1, 1])
    plain = DistillationLoss(temperature=2.0)(student, teacher, labels)
    mixed = DistillationLoss(temperature=2.0, task_weight=0.5)(student, teacher, labels)
    torch.testing.assert_close(mixed - plain, 0.5 * F.cross_entropy(student, labels))
    mixed.backward()
    assert student.grad is not None and teacher.grad is None


def test_regression_distillation_is_mse_to_the_teacher():
    torch.manual_seed(0)
    student, teacher, labels = torch.randn(6, 1), torch.randn(6, 1), torch.rand(6)
    for t in (1.0, 3.0):  # a temperature has no meaning for real-valued outputs
        loss = DistillationLoss(temperature=t, is_regression=True)(student, teacher, labels)
        torch.testing.assert_close(loss, F.mse_loss(student, teacher))


def test_bad_training_settings_are_rejected():
    with pytest.raises(ValueError, match="temperature must be > 0"):
        DistillationLoss(temperature=0.0)
    with pytest.raises(ValueError, match="TrainingConfig.warmup_ratio must be in \\[0, 1\\)"):
        TrainingConfig(warmup_ratio=1.5)


# -- the training loop --------------------------------------------------------------


def test_loop_runs_what_the_strategy_asks_for_every_step():
    model = tiny_model()
    space = get_search_space("small", model.config)
    spy = Spy(get_strategy("full"))
    forwards = []
    model.classifier.register_forward_hook(lambda *args: forwards.append(1))
    train_supernet(model, loader(examples()), MNLI, spy, space, config(epochs=2), progress=False)
    assert len(spy.calls) == 8  # 2 epochs x 4 batches
    assert len(forwards) == sum(len(passes) for _, passes in spy.calls) == 8 * 4
    np.testing.assert_allclose([progress for progress, _ in spy.calls], np.linspace(0, 1, 8))


def test_standard_strategy_trains_every_head(family):
    model = tiny_model(family)
    before = weights(model)
    train_supernet(model, loader(examples()), MNLI, "standard", config=config(), progress=False)
    dims = get_adapter(model).dims(model.config)
    for i, layer in enumerate(get_adapter(model).layers(model)):
        name = next(n for n, p in model.named_parameters() if p is layer.attention.self.query.weight)
        change = (model.state_dict()[name] - before[name]).abs().view(dims.num_heads, dims.head_size, -1)
        assert (change.sum(dim=(1, 2)) > 0).all(), f"layer {i}: a head was not trained"


def test_a_subnetwork_pass_trains_only_its_own_weights(family):
    """The smallest SMALL sub-network: layer 0, its first head and first FFN unit."""
    model = tiny_model(family)
    before = weights(model)
    train_supernet(model, loader(examples()), MNLI, SmallestOnly(), "small", config(), progress=False)
    after = model.state_dict()
    layers = get_adapter(model).layers(model)
    names = {p: n for n, p in model.named_parameters()}
    hs = get_adapter(model).dims(model.config).head_size

    def rows_changed(param, dim):
        name = names[param]
        return (after[name] - before[name]).abs().sum(dim=dim) > 0

    first = layers[0]
    assert rows_changed(first.attention.self.query.weight, 1).tolist() == [True] * hs + [False] * (3 * hs)
    assert rows_changed(first.attention.output.dense.weight, 0).tolist() == [True] * hs + [False] * (3 * hs)
    assert rows_changed(first.intermediate.dense.weight, 1).tolist() == [True] + [False] * 11
    assert rows_changed(first.output.dense.weight, 0).tolist() == [True] + [False] * 11
    for layer in layers[1:]:  # dropped layers get no gradient at all
        for param in layer.parameters():
            assert torch.equal(after[names[param]], before[names[param]])


def test_sampling_strategies_need_a_search_space():
    with pytest.raises(ValueError, match="strategy 'sandwich' samples sub-networks: pass a search_space"):
        train_supernet(tiny_model(), loader(examples()), MNLI, "sandwich", config=config(), progress=False)


def test_train_loader_needs_a_length():
    batches = (batch for batch in loader(examples()))
    with pytest.raises(ValueError, match="train_loader must have a length"):
        train_supernet(tiny_model(), batches, MNLI, "standard", config=config(), progress=False)


@pytest.mark.parametrize("strategy, temperature_matters", [("kd", True), ("sandwich", False)])
def test_loop_passes_the_temperature_on(strategy, temperature_matters):
    trained = []
    for temperature in (1.0, 4.0):
        model = tiny_model()
        cfg = config(temperature=temperature, max_steps=1)
        train_supernet(model, loader(examples()), MNLI, strategy, "small", cfg, progress=False)
        trained.append(model.classifier.weight.detach().clone())
    assert torch.equal(trained[0], trained[1]) != temperature_matters


def test_regression_task_trains_with_validation():
    model = tiny_model(num_labels=1)
    before = weights(model)
    history = train_supernet(
        model, loader(examples(regression=True)), STSB, "full", "medium", config(),
        val_loader=loader(examples(8, regression=True, seed=1), shuffle=False), progress=False,
    )
    assert np.isfinite(history[0]["train_loss"])
    assert {"val_metric", "val_error", "val_smallest_error", "val_midpoint_error"} <= history[0].keys()
    assert not torch.equal(model.classifier.weight, before["classifier.weight"])


def test_epoch_callback_max_steps_and_history():
    reported = []
    history = train_supernet(
        tiny_model(), loader(examples()), MNLI, "random_linear", "small", config(epochs=3, max_steps=6),
        val_loader=loader(examples(8, seed=1), shuffle=False), on_epoch_end=lambda e, m: reported.append((e, m)),
        progress=False,
    )
    assert [entry["epoch"] for entry in history] == [1, 2]  # 4 steps per epoch, stopped at 6
    assert [entry["step"] for entry in history] == [4, 6]
    assert history[-1]["lr"] == 0.0  # the linear schedule ends at max_steps
    assert reported == [(entry["epoch"], entry) for entry in history]
    assert history[0]["train_seconds"] <= history[1]["train_seconds"]
    assert 0.0 <= history[0]["val_error"] <= 1.0


def test_standard_trains_an_extracted_pruned_model(family):
    model = tiny_model(family)
    dims = get_adapter(model).dims(model.config)
    pruned = extract_subnetwork(model, SubNetwork.from_counts(dims, [2, 0, 3], [5, 0, 0]))
    before = weights(pruned)
    history = train_supernet(
        pruned, loader(examples()), MNLI, "standard", config=config(),
        val_loader=loader(examples(8, seed=1), shuffle=False), progress=False,
    )
    assert set(history[0]) >= {"val_error", "val_metric"} and "val_smallest_error" not in history[0]
    changed = [name for name, value in pruned.state_dict().items() if not torch.equal(value, before[name])]
    assert any("encoder.layer.0.attention" in name for name in changed)


# -- checkpoints ------------------------------------------------------------------


def run(output_dir, strategy="full", **overrides):
    """3 epochs of `full` training on a fresh tiny model, as a new process would start it."""
    model = tiny_model()
    history = train_supernet(
        model, loader(examples()), MNLI, strategy, "small", config(epochs=3, weight_decay=0.01, **overrides),
        val_loader=loader(examples(8, seed=1), shuffle=False), output_dir=output_dir, progress=False,
    )
    return model, history


def without_time(history):
    return [{k: v for k, v in entry.items() if k != "train_seconds"} for entry in history]


def test_resumed_run_ends_with_the_uninterrupted_weights(tmp_path):
    reference, reference_history = run(tmp_path / "reference")
    crashing = Spy(get_strategy("full"), crash_at_step=5)  # the second batch of epoch 2
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "crashed", crashing)
    assert (tmp_path / "crashed" / CHECKPOINT_DIR / "state.pt").is_file()
    resumed, history = run(tmp_path / "crashed")
    assert_same_weights(weights(resumed), weights(reference))
    assert without_time(history) == without_time(reference_history)


def test_finished_run_resumes_without_training(tmp_path):
    model, history = run(tmp_path)
    spy = Spy(get_strategy("full"))
    again, again_history = run(tmp_path, spy)
    assert spy.calls == []
    assert again_history == history
    assert_same_weights(weights(again), weights(model))


def test_checkpoint_of_another_setup_is_refused(tmp_path):
    run(tmp_path, max_steps=2)
    with pytest.raises(ValueError, match="other settings \\(learning_rate: checkpoint 0.01, now 0.001\\)"):
        run(tmp_path, max_steps=2, learning_rate=1e-3)


# -- saving, loading, finetune ------------------------------------------------------


def test_saved_supernet_loads_back_with_same_logits(family, tmp_path, tiny_batch):
    model = tiny_model(family)
    info = SupernetRecord(strategy={"name": "full", "num_random": 2}, history=[{"epoch": 1, "val_error": 0.5}])
    save_supernet(tmp_path, model, info)
    loaded, loaded_info = load_supernet(tmp_path)
    assert loaded_info == info
    with torch.no_grad():
        torch.testing.assert_close(loaded(**tiny_batch).logits, model(**tiny_batch).logits, rtol=0, atol=0)


def test_load_supernet_explains_a_wrong_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a super-network folder.*supernet.json"):
        load_supernet(tmp_path)


def _tiny_folder(tmp_path) -> str:
    tokenizer = load_tokenizer()
    tiny_model(vocab_size=tokenizer.vocab_size, max_position_embeddings=64, num_labels=2).save_pretrained(
        tmp_path / "tiny"
    )
    tokenizer.save_pretrained(tmp_path / "tiny")
    return str(tmp_path / "tiny")


def test_finetune_writes_a_loadable_supernet(tmp_path, glue_path):
    folder = finetune(
        "rte", model=_tiny_folder(tmp_path), strategy="full", search_space="small", output_dir=tmp_path / "out",
        data_dir=glue_path, epochs=2, batch_size=8, learning_rate=1e-3, max_train_examples=16, max_length=32,
        num_threads=1, progress=False, temperature=2.0, validate_subnetworks=False,
    )
    model, info = load_supernet(folder)
    assert info.task == "rte" and info.strategy == {"name": "full", "num_random": 2}
    assert info.search_space == "small" and info.training.temperature == 2.0
    assert not info.training.validate_subnetworks and "val_smallest_error" not in info.history[0]
    assert info.data.split_seed == 0 and info.data.max_length == 32
    assert [entry["epoch"] for entry in info.history] == [1, 2]
    assert model.config.num_labels == 2
    assert load_tokenizer(str(folder))("a test").input_ids == load_tokenizer()("a test").input_ids


def test_finetune_command_passes_its_training_options(tmp_path, glue_path):
    from nas_pruning.cli import main

    argv = ["finetune", "--task", "rte", "--model", _tiny_folder(tmp_path), "--data-dir", str(glue_path),
            "--strategy", "kd", "--epochs", "1", "--batch-size", "8", "--max-train-examples", "16",
            "--max-length", "32", "--threads", "1", "--output-dir", str(tmp_path / "out"), "--warmup-ratio", "0.25",
            "--temperature", "3", "--distill-task-weight", "0.5", "--num-random", "3", "--group-by-length",
            "--mega-batches", "2"]
    assert main(argv) == 0
    _, info = load_supernet(tmp_path / "out")
    assert info.strategy == {"name": "kd", "num_random": 3}
    training = info.training
    assert (training.warmup_ratio, training.temperature, training.distill_task_weight) == (0.25, 3.0, 0.5)
    assert training.group_by_length and training.mega_batches == 2  # off (and 4) unless asked for


def test_reordering_by_importance_keeps_what_the_model_computes(tmp_path, glue_path, tiny_batch):
    base = _tiny_folder(tmp_path)
    common = dict(model=base, strategy="standard", search_space=None, data_dir=glue_path, epochs=1, batch_size=8,
                  learning_rate=1e-3, max_train_examples=16, max_length=32, num_threads=1, progress=False)
    plain, _ = load_supernet(finetune("rte", output_dir=tmp_path / "plain", **common))
    ordered, info = load_supernet(finetune("rte", output_dir=tmp_path / "ordered", importance_examples=8, **common))
    assert info.importance_examples == 8
    # Training is the same; the permutation changes the weights but not what the model computes.
    query = [m.layer[0].attention.self.query.weight for m in (plain.bert.encoder, ordered.bert.encoder)]
    assert not torch.equal(*query)
    with torch.no_grad():
        torch.testing.assert_close(ordered(**tiny_batch).logits, plain(**tiny_batch).logits)


@pytest.mark.parametrize("strategy, order, resumed_order", [
    ("sandwich", ["reorder", "train"], ["train"]),  # the checkpoint holds the reordered weights
    ("standard", ["train", "reorder"], ["train", "reorder"]),  # it holds the weights before reordering
])
def test_reordering_comes_before_sampling_strategies_and_after_standard(strategy, order, resumed_order, tmp_path,
                                                                         glue_path, monkeypatch):
    from nas_pruning.supernet import pipeline

    calls = []
    monkeypatch.setattr(pipeline, "reorder_by_importance", lambda *args: calls.append("reorder"))
    train = pipeline.train_supernet
    monkeypatch.setattr(pipeline, "train_supernet", lambda *a, **k: calls.append("train") or train(*a, **k))
    model = _tiny_folder(tmp_path)
    for expected in (order, resumed_order):
        calls.clear()
        finetune("rte", model=model, strategy=strategy, output_dir=tmp_path / "out",
                 data_dir=glue_path, epochs=1, batch_size=8, max_train_examples=8, max_length=32, num_threads=1,
                 progress=False, importance_examples=4, validate_subnetworks=False)
        assert calls == expected


def test_finetune_rejects_a_negative_importance_sample():
    with pytest.raises(ValueError, match="importance_examples must be an integer >= 0, got -1"):
        finetune("rte", importance_examples=-1)


def test_training_seconds_adds_the_model_a_supernet_started_from(tmp_path):
    from nas_pruning.supernet import training_seconds

    def write(name, base, seconds):
        (tmp_path / name).mkdir()
        history = [{"train_seconds": s} for s in seconds]  # cumulative per epoch, as the trainer records
        (tmp_path / name / "supernet.json").write_text(json.dumps({"base_model": base, "history": history}))
        return str(tmp_path / name)

    standard = write("standard", "all-MiniLM-L6-v2", [10.0, 25.0])
    assert training_seconds(write("full", standard, [30.0, 70.0])) == 95.0
    assert training_seconds(tmp_path / "missing") == 0.0


def test_finetune_rejects_unknown_options():
    with pytest.raises(ValueError, match="unknown option.*'temprature'"):
        finetune("rte", temprature=2.0)


@pytest.mark.integration
def test_minilm_trains_as_supernet_on_real_rte(glue_path):
    from nas_pruning.models import load_model
    from nas_pruning.tasks import encode, load_task, make_loader

    tokenizer = load_tokenizer()
    data = encode(load_task("rte", glue_path, max_train_examples=8, splits=("train", "validation")), tokenizer, 64)
    model = load_model(num_labels=2)
    before = weights(model)
    history = train_supernet(
        model, make_loader(data.train, tokenizer, batch_size=8, shuffle=True), data.task, "full", "small",
        config(learning_rate=2e-5), val_loader=make_loader(data.validation.select(range(8)), tokenizer, 8),
        progress=False,
    )
    assert history[0]["step"] == 1 and {"val_error", "val_smallest_error"} <= history[0].keys()
    last = "bert.encoder.layer.5.output.dense.weight"
    assert not torch.equal(model.state_dict()[last], before[last])

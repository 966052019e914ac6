"""CoFi gates on tiny models: hard concrete, parameter counts, deterministic gates,
gated forward == extracted model, and the Lagrangian."""

import copy

import pytest
import torch
from conftest import tiny_model
from transformers import AutoModelForSequenceClassification

from nas_pruning.cofi import hard_concrete
from nas_pruning.cofi.deterministic import deterministic_gates
from nas_pruning.cofi.gated_model import apply_gates, extract_gated, fold_gates
from nas_pruning.cofi.lagrangian import Lagrangian, TargetSchedule
from nas_pruning.cofi.masks import KINDS, GateValues, MaskScores, gate_shapes, sample_gates
from nas_pruning.cofi.sparsity import (
    expected_prunable_parameters,
    expected_sparsity,
    full_prunable_parameters,
    measured_sparsity,
    prunable_parameters,
)
from nas_pruning.models import ModelDims, count_parameters, extract_subnetwork, get_adapter

MINILM = ModelDims(num_layers=6, num_heads=12, head_size=32, intermediate_size=1536, hidden_size=384)



def dims_of(model):
    return get_adapter(model).dims(model.config)


def logits(model, batch):
    with torch.no_grad():
        return model(**batch).logits


def encoder_layer_parameters(model):
    return sum(p.numel() for name, p in model.named_parameters() if ".encoder.layer." in name)


def random_gates(dims, seed, kinds=KINDS, zero_fraction=0.4):
    """0/1-or-soft gate values with some exact zeros, incl. whole blocks and hidden dims."""
    generator = torch.Generator().manual_seed(seed)
    values = {}
    for kind, shape in gate_shapes(dims).items():
        if kind in kinds:
            value = torch.rand(shape, generator=generator) * 0.8 + 0.2
            value[torch.rand(shape, generator=generator) < zero_fraction] = 0.0
            values[kind] = value
    return GateValues.from_values(values)


# -- hard concrete ------------------------------------------------------------------


def test_hard_concrete_samples_lie_in_unit_interval_and_match_closed_form_probability():
    torch.manual_seed(0)
    log_alpha = torch.tensor([-3.0, -1.0, 0.0, 1.0, 3.0])
    samples = hard_concrete.sample(log_alpha.expand(40000, 5))
    assert samples.min() >= 0 and samples.max() <= 1
    assert (samples == 0).any() and (samples == 1).any()  # the stretch gives point masses
    torch.testing.assert_close((samples > 0).float().mean(0), hard_concrete.prob_nonzero(log_alpha), atol=0.01, rtol=0)
    log_alpha.requires_grad_(True)
    hard_concrete.sample(log_alpha).sum().backward()
    assert log_alpha.grad is not None


def test_point_estimate_is_zero_or_one_for_confident_scores():
    values = hard_concrete.point_estimate(torch.tensor([-5.0, 0.0, 5.0]))
    assert values[0] == 0 and values[2] == 1 and 0 < values[1] < 1


# -- parameter counts ---------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_expected_parameters_equal_extracted_count_for_deterministic_gates(family, seed):
    model = tiny_model(family)
    dims = dims_of(model)
    gates = random_gates(dims, seed)
    sub = gates.to_subnetwork(dims)
    if not sub.kept_layers():
        pytest.skip("random gates kept nothing")
    small = extract_subnetwork(model, sub)
    probabilities = {kind: keep.float() for kind, keep in gates.keep.items()}
    expected = expected_prunable_parameters(dims, probabilities)
    assert float(expected) == prunable_parameters(dims, sub) == encoder_layer_parameters(small)
    assert full_prunable_parameters(dims) == encoder_layer_parameters(model)
    # ... and what is not prunable (embeddings, pooler, classifier) follows the hidden mask exactly.
    assert count_parameters(model, sub) == sum(p.numel() for p in small.parameters())


def test_expected_sparsity_is_differentiable_and_monotone_in_the_scores():
    scores = {kind: torch.zeros(shape, requires_grad=True) for kind, shape in gate_shapes(MINILM).items()}
    low = expected_sparsity(MINILM, scores)
    low.backward()
    assert all(bool((score.grad < 0).all()) for score in scores.values())  # higher scores keep more
    high = expected_sparsity(MINILM, {kind: score.detach() - 2 for kind, score in scores.items()})
    assert 0 < low.item() < high.item() < 1


@pytest.mark.parametrize("target", [0.5, 0.7, 0.9, 0.95, 0.98])
@pytest.mark.parametrize("kinds", [KINDS, ("head", "unit"), ("mha", "unit", "hidden")])
def test_deterministic_gates_meet_the_target_within_one_point(target, kinds):
    torch.manual_seed(0)
    scores = MaskScores(MINILM, kinds, init=0.0, noise=2.0).scores()
    sub = deterministic_gates(scores, MINILM, target).to_subnetwork(MINILM)
    real = 1 - prunable_parameters(MINILM, sub) / full_prunable_parameters(MINILM)
    assert target <= real < target + 0.01


def test_block_gates_alone_meet_the_target_within_one_block():
    torch.manual_seed(0)
    scores = MaskScores(MINILM, ("mha", "ffn"), init=0.0, noise=2.0).scores()
    sub = deterministic_gates(scores, MINILM, 0.5).to_subnetwork(MINILM)
    real = 1 - prunable_parameters(MINILM, sub) / full_prunable_parameters(MINILM)
    ffn_block = (2 * 384 * 1536 + 1536 + 3 * 384) / full_prunable_parameters(MINILM)
    assert 0.5 <= real < 0.5 + ffn_block


def test_deterministic_gates_keep_the_most_probable_structures():
    scores = {kind: torch.full(shape, -4.0) for kind, shape in gate_shapes(MINILM).items()}
    scores["mha"] = torch.full((6,), 4.0)
    scores["ffn"] = torch.full((6,), 4.0)
    scores["hidden"] = torch.full((384,), 4.0)
    scores["head"][2, 5] = 4.0
    scores["unit"][4, :100] = 4.0
    sub = deterministic_gates(scores, MINILM, 0.5).to_subnetwork(MINILM)
    assert bool(sub.head_mask[2, 5]) and bool(sub.ffn_mask[4, :100].all())


# -- gated forward == extracted model -----------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_extracted_model_equals_gated_model(family, tiny_batch, seed):
    model = tiny_model(family)
    dims = dims_of(model)
    scores = MaskScores(dims, init=0.5, noise=2.0).scores()
    gates = deterministic_gates(scores, dims, target_sparsity=0.2 + 0.2 * seed)
    with apply_gates(model, gates):
        gated = logits(model, tiny_batch)
    small = extract_gated(model, gates).eval()
    torch.testing.assert_close(logits(small, tiny_batch), gated, atol=1e-4, rtol=0)
    assert not torch.allclose(gated, logits(model, tiny_batch), atol=1e-4)  # gating did something
    assert measured_sparsity(small, dims) >= 0.2 + 0.2 * seed


@pytest.mark.parametrize("seed", range(4))
def test_soft_gates_fold_into_weights_exactly(family, tiny_batch, seed):
    model = tiny_model(family)
    dims = dims_of(model)
    gates = random_gates(dims, seed)
    if not gates.to_subnetwork(dims).kept_layers():
        pytest.skip("random gates kept nothing")
    with apply_gates(model, gates):
        gated = logits(model, tiny_batch)
    folded = copy.deepcopy(model)
    fold_gates(folded, gates)
    small = extract_subnetwork(folded, gates.to_subnetwork(dims)).eval()
    torch.testing.assert_close(logits(small, tiny_batch), gated, atol=1e-4, rtol=0)


def test_closed_block_is_skipped_like_extraction(tiny_batch):
    model = tiny_model("bert")
    dims = dims_of(model)
    values = {kind: torch.ones(shape) for kind, shape in gate_shapes(dims).items()}
    values["mha"][1] = 0.0  # layer 1 without attention, LayerNorm included
    values["unit"][2] = 0.0  # layer 2 without FFN units: its FFN block is skipped too
    gates = GateValues.from_values(values)
    with apply_gates(model, gates):
        gated = logits(model, tiny_batch)
    sub = gates.to_subnetwork(dims)
    assert sub.heads_per_layer() == [4, 0, 4] and sub.units_per_layer() == [12, 12, 0]
    torch.testing.assert_close(logits(extract_subnetwork(model, sub).eval(), tiny_batch), gated, atol=1e-5, rtol=0)


def test_apply_gates_restores_the_model(tiny_batch):
    model = tiny_model("roberta")
    before = logits(model, tiny_batch)
    names = [name for name, _ in model.named_modules()]
    with apply_gates(model, random_gates(dims_of(model), 0)):
        logits(model, tiny_batch)
    torch.testing.assert_close(logits(model, tiny_batch), before)
    assert [name for name, _ in model.named_modules()] == names


def test_gradients_reach_weights_and_gate_scores(tiny_batch):
    model = tiny_model("bert").train()
    masks = MaskScores(dims_of(model), init=0.0)
    with apply_gates(model, sample_gates(masks.scores())):
        loss = model(**tiny_batch, labels=torch.tensor([0, 1, 2])).loss
    loss.backward()
    assert model.bert.encoder.layer[0].intermediate.dense.weight.grad is not None
    assert all(score.grad is not None and score.grad.abs().sum() > 0 for score in masks.parameters())


def test_exported_model_loads_with_plain_transformers_and_matches(tmp_path, tiny_batch, family):
    model = tiny_model(family)
    dims = dims_of(model)
    gates = deterministic_gates(MaskScores(dims, init=0.5, noise=2.0).scores(), dims, 0.6)
    with apply_gates(model, gates):
        gated = logits(model, tiny_batch)
    extract_gated(model, gates).save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path, trust_remote_code=True).eval()
    torch.testing.assert_close(logits(loaded, tiny_batch), gated, atol=1e-4, rtol=0)


# -- Lagrangian -----------------------------------------------------------------------


@pytest.mark.parametrize("target", [0.5, 0.95])
def test_lagrangian_drives_expected_sparsity_to_the_target(target):
    torch.manual_seed(0)
    dims = ModelDims(num_layers=3, num_heads=4, head_size=8, intermediate_size=64, hidden_size=32)
    masks, lagrangian = MaskScores(dims, init=1.0), Lagrangian()
    gates = torch.optim.AdamW(masks.parameters(), lr=0.05, weight_decay=0)
    lambdas = torch.optim.AdamW(lagrangian.parameters(), lr=0.05, weight_decay=0, maximize=True)
    schedule = TargetSchedule(target, warmup_steps=200)
    start = expected_sparsity(dims, masks.scores()).item()
    for step in range(600):
        loss = lagrangian(expected_sparsity(dims, masks.scores()), schedule(step))
        loss.backward()
        for optimizer in (gates, lambdas):
            optimizer.step()
            optimizer.zero_grad()
    final = expected_sparsity(dims, masks.scores()).item()
    assert start < 0.2 and abs(final - target) < 0.02


def test_target_schedule_warms_up_linearly():
    schedule = TargetSchedule(0.9, warmup_steps=10)
    assert [schedule(s) for s in (0, 5, 10, 50)] == [0.0, 0.45, 0.9, 0.9]
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        TargetSchedule(1.0, 10)

"""Transfer couplings, what the auxiliary task may train, multi-task heads and distillation,
on tiny models with synthetic batches."""

import copy

import pytest
import torch
from conftest import TINY, tiny_model

from nas_pruning.cofi.config import CoFiConfig
from nas_pruning.cofi.pruner import CoFiPruner
from nas_pruning.cofi.transfer import AUXILIARY, TARGET, CoupledMasks, MultiTaskModel, mask_difference, with_new_head
from nas_pruning.models import get_adapter
from nas_pruning.tasks import get_task
from nas_pruning.training.distillation import (
    DistillationLoss,
    LayerDistillation,
    _match,
    default_teacher_layers,
    logit_distillation_loss,
)


def batches(seed, count, regression=False):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(count):
        input_ids = torch.randint(3, TINY["vocab_size"], (4, 12), generator=generator)
        if regression:
            labels = torch.rand(4, generator=generator) * 5
        else:
            labels = torch.randint(0, 2, (4,), generator=generator)
        yield {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}


def make_pruner(coupling="delta", steps=1, **settings):
    """A pruner for a tiny 2-class target with a regression auxiliary task (STS-B's label set)."""
    teacher = tiny_model("bert", num_labels=2)
    config = CoFiConfig(task="rte", aux_task="stsb", coupling=coupling, prune_epochs=1, **settings)
    torch.manual_seed(0)
    model = MultiTaskModel(copy.deepcopy(teacher).train(), get_task("stsb") if coupling != "none" else None)
    return CoFiPruner(model, teacher, config, steps_per_epoch=steps)


def train(pruner, steps):
    aux = batches(2, steps, regression=True) if pruner.model.auxiliary is not None else None
    pruner.train_epoch(list(batches(1, steps)), aux, progress=False)


# -- couplings ---------------------------------------------------------------------------


def test_delta_masks_differ_less_as_lambda_delta_grows():
    differences = []
    for lambda_delta in (0.0, 0.1, 10.0):
        pruner = make_pruner("delta", steps=20, lambda_delta=lambda_delta, gate_learning_rate=0.2, gate_init=0.0)
        train(pruner, 20)
        differences.append(mask_difference(pruner.masks.scores(TARGET), pruner.masks.scores(AUXILIARY)))
    assert differences[0] > 0.01
    assert differences[0] > differences[1] > differences[2]


def test_shared_coupling_uses_one_mask_and_independent_two():
    dims = get_adapter(tiny_model()).dims(tiny_model().config)
    shared = CoupledMasks(dims, "shared")
    assert shared.scores(TARGET) is not None and all(
        shared.scores(TARGET)[k] is shared.scores(AUXILIARY)[k] for k in shared.scores(TARGET)
    )
    assert shared.constrained_roles == (TARGET,)
    independent = CoupledMasks(dims, "independent")
    assert mask_difference(independent.scores(TARGET), independent.scores(AUXILIARY)) > 0
    assert independent.constrained_roles == (TARGET, AUXILIARY)
    with pytest.raises(ValueError, match="no mask for role"):
        CoupledMasks(dims, "none").scores(AUXILIARY)
    with pytest.raises(ValueError, match="unknown coupling 'tied'; accepted: none, shared, independent, delta"):
        CoupledMasks(dims, "tied")


def test_delta_penalty_is_zero_at_start_and_grows_with_the_deltas():
    dims = get_adapter(tiny_model()).dims(tiny_model().config)
    masks = CoupledMasks(dims, "delta", delta_penalty="l1")
    assert masks.penalty().item() == 0
    with torch.no_grad():
        masks.delta[AUXILIARY].log_alpha["head"].fill_(0.5)
    assert masks.penalty().item() == pytest.approx(0.5 * dims.num_layers * dims.num_heads)


# -- what the auxiliary task trains ----------------------------------------------------


@pytest.mark.parametrize("transfer", ["weights", "structure", "both"])
def test_transfer_decides_what_the_auxiliary_loss_updates(transfer):
    # Target losses off, multipliers at 0: everything that moves was moved by the auxiliary task.
    pruner = make_pruner(
        "independent", transfer=transfer, task_loss_weight=0, logit_distill_weight=0, layer_distill_weight=0
    )
    encoder = [p.detach().clone() for p in pruner.model.encoder_parameters()]
    aux_mask = {k: v.detach().clone() for k, v in pruner.masks.scores(AUXILIARY).items()}
    aux_head = [p.detach().clone() for p in pruner.model.head_parameters(AUXILIARY)]
    train(pruner, 1)
    encoder_moved = any(not torch.equal(a, b) for a, b in zip(encoder, pruner.model.encoder_parameters()))
    mask_moved = any(not torch.equal(aux_mask[k], v) for k, v in pruner.masks.scores(AUXILIARY).items())
    assert encoder_moved == (transfer in ("weights", "both"))
    assert mask_moved == (transfer in ("structure", "both"))
    assert any(not torch.equal(a, b) for a, b in zip(aux_head, pruner.model.head_parameters(AUXILIARY)))


def test_coupling_none_trains_the_target_alone():
    pruner = make_pruner("none", steps=3)
    assert pruner.model.auxiliary is None and pruner.masks.roles == (TARGET,)
    train(pruner, 3)
    assert pruner.steps == 3


# -- multi-task model ---------------------------------------------------------------------


def test_auxiliary_head_shares_the_encoder_and_has_its_own_label_set(family):
    target = tiny_model(family, num_labels=2)
    model = MultiTaskModel(target, get_task("stsb"))
    assert model.auxiliary.base_model is target.base_model
    assert model.auxiliary.config.num_labels == 1 and model.auxiliary.config.problem_type == "regression"
    assert target.config.num_labels == 2
    batch = next(batches(0, 1, regression=True))
    assert model.auxiliary(**batch).logits.shape == (4, 1)
    head_ids = {id(p) for p in model.head_parameters(AUXILIARY)}
    assert head_ids.isdisjoint(id(p) for p in model.encoder_parameters())
    assert head_ids.isdisjoint(id(p) for p in model.head_parameters(TARGET))


def test_new_head_works_on_an_extracted_model():
    from nas_pruning.models import SubNetwork, extract_subnetwork

    model = tiny_model("bert")
    dims = get_adapter(model).dims(model.config)
    small = extract_subnetwork(model, SubNetwork.from_counts(dims, [1, 0, 2], [3, 4, 0]))
    auxiliary = with_new_head(small, get_task("qnli"))
    assert auxiliary.base_model is small.base_model and auxiliary.config.num_labels == 2


# -- distillation ---------------------------------------------------------------------------


def test_logit_distillation_is_zero_for_equal_logits_and_positive_otherwise():
    logits = torch.randn(5, 3)
    assert logit_distillation_loss(logits, logits, 2.0).item() == pytest.approx(0, abs=1e-6)
    assert logit_distillation_loss(logits, logits.flip(0), 2.0).item() > 0
    assert logit_distillation_loss(logits[:, :1], logits[:, :1] + 1, 2.0, is_regression=True).item() == pytest.approx(1)


@pytest.mark.parametrize("is_regression", [False, True])
def test_super_network_and_cofi_distil_logits_with_one_loss(is_regression):
    # The super-network's DistillationLoss (task weight 0) is CoFi's logit loss on a detached teacher, to the bit.
    student, teacher = torch.randn(6, 1 if is_regression else 3), torch.randn(6, 1 if is_regression else 3)
    for temperature in (1.0, 2.0, 3.5):
        shared = logit_distillation_loss(student, teacher, temperature, is_regression)
        supernet = DistillationLoss(temperature, is_regression=is_regression)(student, teacher, torch.zeros(6))
        assert torch.equal(shared, supernet)


def test_layer_matching_is_monotone_and_skips_inactive_layers():
    errors = torch.tensor([[0.1, 5.0, 5.0, 5.0], [5.0, 0.2, 0.1, 5.0], [5.0, 5.0, 0.1, 0.3]])
    assert _match(errors, torch.ones(4, dtype=torch.bool)) == [0, 1, 2]
    assert _match(errors, torch.tensor([True, True, False, True])) == [0, 1, 3]
    assert default_teacher_layers(12) == [2, 5, 8, 11]
    assert default_teacher_layers(3) == [0, 1, 2]


def test_layer_distillation_starts_at_zero_for_the_teacher_itself():
    model = tiny_model("bert")
    batch = next(batches(0, 1))
    with torch.no_grad():
        states = model(input_ids=batch["input_ids"], output_hidden_states=True).hidden_states[1:]
    distillation = LayerDistillation(TINY["hidden_size"], TINY["num_hidden_layers"])
    assert distillation(states, states, batch["attention_mask"]).item() == pytest.approx(0, abs=1e-10)
    shifted = [state + 1 for state in states]
    assert distillation(shifted, states, batch["attention_mask"]).item() > 0

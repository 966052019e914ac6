"""The one training loop (`nas_pruning.training.loop`) and the one checkpoint module, on toy steps."""

import random

import numpy as np
import pytest
import torch
from torch import nn

from nas_pruning.files import CheckpointError, save_checkpoint
from nas_pruning.training.checkpoint import Checkpoint, capture_rng, restore_rng
from nas_pruning.training.loop import TrainingSteps, train_epoch


class ToySteps(TrainingSteps):
    """Two parameters with loss 100 * (a.sum() + b.sum()); SGD with learning rate 1."""

    def __init__(self, max_grad_norm=None, clip_only_a=False, schedule=False):
        parameters = {"a": nn.Parameter(torch.zeros(4)), "b": nn.Parameter(torch.zeros(4))}
        self.model = self.trained = nn.ParameterDict(parameters)
        self.optimizers = [torch.optim.SGD(self.trained.parameters(), lr=1.0)]
        if schedule:
            self.schedulers = [torch.optim.lr_scheduler.LambdaLR(self.optimizers[0], lambda step: 0.5**step)]
        self.max_grad_norm = max_grad_norm
        self.clip_only_a = clip_only_a
        self.seen = []

    def clip_parameters(self):
        return [self.trained["a"]] if self.clip_only_a else super().clip_parameters()

    def forward_backward(self, batch, step):
        self.seen.append((batch, step))
        loss = 100 * (self.trained["a"].sum() + self.trained["b"].sum())
        loss.backward()
        return {"loss": loss.detach()}


def test_each_steps_object_keeps_its_own_clipping_rule():
    unclipped = ToySteps()
    train_epoch(unclipped, [0])
    assert torch.equal(unclipped.trained["a"].detach(), torch.full((4,), -100.0))
    clipped = ToySteps(max_grad_norm=1.0)  # the norm over both parameters (8 gradients of 100) becomes 1
    train_epoch(clipped, [0])
    torch.testing.assert_close(clipped.trained["a"].detach(), torch.full((4,), -1 / 8**0.5))
    only_a = ToySteps(max_grad_norm=1.0, clip_only_a=True)  # b's gradient stays as it is
    train_epoch(only_a, [0])
    torch.testing.assert_close(only_a.trained["a"].detach(), torch.full((4,), -0.5))
    assert torch.equal(only_a.trained["b"].detach(), torch.full((4,), -100.0))


def test_steps_are_numbered_over_the_run_stop_where_asked_and_leave_no_gradients():
    steps = ToySteps(schedule=True)
    results = train_epoch(steps, ["x", "y", "z"], first_step=5, stop_at=7)
    assert steps.seen == [("x", 5), ("y", 6)] and len(results) == 2
    # gradients do not pile up across steps: each step moves the weights by lr * 100, lr halving per step
    assert torch.equal(steps.trained["a"].detach(), torch.full((4,), -150.0))
    assert all(p.grad is None for p in steps.trained.parameters())


def test_training_state_round_trips_through_a_checkpoint(tmp_path):
    steps = ToySteps(schedule=True)
    train_epoch(steps, [0, 1])
    checkpoint = Checkpoint(tmp_path, {"lr": 1.0})
    checkpoint.save({"training": steps.state_dict()})
    again = ToySteps(schedule=True)
    again.load_state_dict(checkpoint.load()["training"])
    assert torch.equal(again.trained["a"], steps.trained["a"])
    assert again.schedulers[0].get_last_lr() == steps.schedulers[0].get_last_lr() == [0.25]


@pytest.mark.parametrize("sampler", [None, np.random.RandomState(3)])
def test_random_states_are_restored_exactly(sampler):
    state = capture_rng(sampler)
    draw = lambda: (torch.rand(2), (sampler or np.random).rand(2), random.random())  # noqa: E731
    first = draw()
    restore_rng(state, sampler)
    second = draw()
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1]) and first[2] == second[2]


def test_a_checkpoint_of_an_earlier_layout_is_refused_in_one_line(tmp_path):
    save_checkpoint({"settings": {}, "stage": "prune"}, tmp_path / Checkpoint.FILE)  # as cofi/checkpoint.py wrote
    with pytest.raises(CheckpointError, match=f"another version of nas_pruning .*delete {tmp_path} to start"):
        Checkpoint(tmp_path, {}).load()
    assert Checkpoint(None, {}).load() is None and not Checkpoint(tmp_path / "none", {}).exists()

"""Super-network training strategies: which networks one optimizer step trains.

A strategy is a small object that, at every step, returns the list of forward /
backward passes of that step (:class:`Pass`): the full network, random
sub-networks of the search space, the smallest one, each trained on the labels or
distilled from the full network's logits of the same step. The training loop
(`nas_pruning.training.trainer`) sums the gradients of all passes and takes one
optimizer step.

Strategies (Klein et al. 2024, section "super-network training"):

- ``standard``: the full network only (plain fine-tuning).
- ``random``: one random sub-network.
- ``random_linear``: a random sub-network with probability rising linearly from 0
  to 1 over training, else the full network.
- ``sandwich``: the full network, ``num_random`` random sub-networks and the
  smallest sub-network, all on the labels.
- ``kd``: the full network on the labels and ``num_random`` random sub-networks
  distilled from its logits.
- ``full``: sandwich, with every sub-network distilled from the full network.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from nas_pruning.models import SubNetwork
from nas_pruning.search_spaces import SearchSpace


@dataclass(frozen=True)
class Pass:
    """One forward and backward pass of a training step.

    sub: the sub-network to run; None runs the full network (whatever its
        architecture, so pruned models train as they are).
    distill: fit the logits the full network produced earlier in the same step
        (a strategy lists the full network first) instead of the labels.
    """

    sub: SubNetwork | None = None
    distill: bool = False


FULL = Pass()


class Strategy(ABC):
    """Which networks one optimizer step trains; options are dataclass fields."""

    name: ClassVar[str]
    needs_search_space: ClassVar[bool] = True

    @abstractmethod
    def passes(self, space: SearchSpace | None, rng: np.random.RandomState, progress: float) -> list[Pass]:
        """The passes of one step.

        space: the search space sub-networks are drawn from (None for strategies
            that do not sample).
        rng: the random state to draw sub-networks with (the trainer checkpoints it).
        progress: position in training, 0.0 at the first step and 1.0 at the last.
        """

    def describe(self) -> dict[str, Any]:
        """Name and options (dataclass fields), as recorded in checkpoints and `supernet.json`."""
        options = dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}
        return {"name": self.name, **options}


def random_subnetwork(space: SearchSpace, rng: np.random.RandomState) -> SubNetwork:
    """A uniformly random sub-network of `space` (never an empty one)."""
    return space.to_subnetwork(space.sample(rng))


def smallest_subnetwork(space: SearchSpace) -> SubNetwork:
    """The smallest sub-network of `space`: at least one layer, head and unit."""
    return space.to_subnetwork(space.smallest())


def _check_num_random(strategy: Strategy, minimum: int) -> None:
    if not isinstance(strategy.num_random, int) or strategy.num_random < minimum:
        raise ValueError(f"{strategy.name}: num_random must be an integer >= {minimum}, got {strategy.num_random!r}")


@dataclass(frozen=True)
class Standard(Strategy):
    """The full network only: plain fine-tuning."""

    name = "standard"
    needs_search_space = False

    def passes(self, space, rng, progress):
        return [FULL]


@dataclass(frozen=True)
class RandomSubnetwork(Strategy):
    """One uniformly random sub-network per step."""

    name = "random"

    def passes(self, space, rng, progress):
        return [Pass(random_subnetwork(space, rng))]


@dataclass(frozen=True)
class RandomLinear(Strategy):
    """A random sub-network with probability `progress` (0 -> 1 over training), else the full network."""

    name = "random_linear"

    def passes(self, space, rng, progress):
        return [Pass(random_subnetwork(space, rng))] if rng.rand() < progress else [FULL]


@dataclass(frozen=True)
class Sandwich(Strategy):
    """The full network, `num_random` random sub-networks and the smallest sub-network.

    num_random: random sub-networks per step (Yu & Huang's sandwich rule uses 2).
    """

    name = "sandwich"
    distill: ClassVar[bool] = False
    num_random: int = 2

    def __post_init__(self) -> None:
        _check_num_random(self, 0)

    def passes(self, space, rng, progress):
        subs = [random_subnetwork(space, rng) for _ in range(self.num_random)] + [smallest_subnetwork(space)]
        return [FULL] + [Pass(sub, distill=self.distill) for sub in subs]


class Full(Sandwich):
    """Sandwich with every sub-network distilled from the full network (the paper's best)."""

    name = "full"
    distill = True


@dataclass(frozen=True)
class KnowledgeDistillation(Strategy):
    """The full network on the labels and `num_random` random sub-networks distilled from it.

    num_random: random sub-networks per step.
    """

    name = "kd"
    num_random: int = 2

    def __post_init__(self) -> None:
        _check_num_random(self, 1)

    def passes(self, space, rng, progress):
        return [FULL] + [Pass(random_subnetwork(space, rng), distill=True) for _ in range(self.num_random)]


STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (Standard, RandomSubnetwork, RandomLinear, Sandwich, KnowledgeDistillation, Full)
}


def get_strategy(name: str, **options: Any) -> Strategy:
    """The strategy called `name` (see STRATEGIES) with `options` (e.g. num_random=2)."""
    key = name.lower()
    if key not in STRATEGIES:
        raise ValueError(f"unknown super-network training strategy {name!r}; choose one of {list(STRATEGIES)}")
    cls = STRATEGIES[key]
    accepted = [field.name for field in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"strategy {key!r} has no option(s) {unknown}; its options are {accepted or 'none'}")
    return cls(**options)


def as_strategy(strategy: str | Strategy, **defaults: Any) -> Strategy:
    """`strategy` itself, or the named strategy with those `defaults` it has an option for."""
    if isinstance(strategy, Strategy):
        return strategy
    if not isinstance(strategy, str):
        raise TypeError(f"strategy must be a name from {list(STRATEGIES)} or a Strategy, got {type(strategy).__name__}")
    cls = STRATEGIES.get(strategy.lower())
    accepted = {field.name for field in dataclasses.fields(cls)} if cls is not None else set()
    return get_strategy(strategy, **{key: value for key, value in defaults.items() if key in accepted})

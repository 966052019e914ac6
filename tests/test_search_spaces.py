import numpy as np
import pytest
from conftest import tiny_model
from syne_tune.config_space import Domain

from nas_pruning.models import count_parameters
from nas_pruning.search_spaces import SEARCH_SPACES, get_search_space


@pytest.mark.parametrize("name", sorted(SEARCH_SPACES))
def test_space_basics(name):
    model = tiny_model("bert")
    space = get_search_space(name, model.config)
    assert all(isinstance(d, Domain) for d in space.config_space.values())
    largest, smallest = space.to_subnetwork(space.largest()), space.to_subnetwork(space.smallest())
    assert count_parameters(model, largest) == count_parameters(model)
    assert space.parameter_ratio(space.largest()) == 1.0
    # the smallest keeps one layer (and, where the space can, one head and one unit): not zero layers
    assert len(smallest.kept_layers()) == 1
    if name != "layer":
        assert sum(smallest.heads_per_layer()) == 1 and sum(smallest.units_per_layer()) == 1
    ratios = [space.parameter_ratio(space.sample(seed)) for seed in range(20)]
    assert min(ratios) >= space.parameter_ratio(space.smallest())
    rng = np.random.RandomState(0)
    for _ in range(20):
        config = space.sample(rng)
        space.validate(config)
        assert all(space.config_space[k].is_valid(v) for k, v in config.items())


def test_paper_ranges_small_space():
    space = get_search_space("SMALL", tiny_model("bert").config)
    domains = space.config_space
    assert (domains["num_layers"].lower, domains["num_layers"].upper) == (1, 3)
    assert (domains["num_heads"].lower, domains["num_heads"].upper) == (1, 4)
    assert (domains["num_units"].lower, domains["num_units"].upper) == (1, 12)
    sub = space.to_subnetwork({"num_layers": 2, "num_heads": 3, "num_units": 5})
    assert sub.heads_per_layer() == [3, 3, 0] and sub.units_per_layer() == [5, 5, 0]
    assert sub.head_mask[0].tolist() == [True, True, True, False]  # first k


def test_medium_and_layer_semantics():
    config = tiny_model("bert").config
    medium = get_search_space("medium", config)
    sub = medium.to_subnetwork({"num_heads_0": 0, "num_units_0": 4, "num_heads_1": 0, "num_units_1": 0,
                                "num_heads_2": 2, "num_units_2": 0})
    assert sub.kept_layers() == [0, 2]
    layer = get_search_space("layer", config)
    assert layer.to_subnetwork({"layer_0": 0, "layer_1": 1, "layer_2": 1}).kept_layers() == [1, 2]
    large = get_search_space("large", config)
    assert len(large.config_space) == 3 * 4 + 3 * 12


def test_configs_outside_the_space_are_refused():
    small_model_space = get_search_space("small", tiny_model("bert").config)
    with pytest.raises(ValueError, match=r"num_heads=7 is outside .*\(1, 4\)"):
        small_model_space.to_subnetwork({"num_layers": 2, "num_heads": 7, "num_units": 5})
    with pytest.raises(ValueError, match="missing num_units"):
        small_model_space.to_subnetwork({"num_layers": 2, "num_heads": 1})
    with pytest.raises(ValueError, match="unknown search space 'huge'.*large"):
        get_search_space("huge", tiny_model("bert").config)
    # a config for another model size
    bigger = get_search_space("medium", tiny_model("bert", num_hidden_layers=4).config)
    with pytest.raises(ValueError, match="unknown num_heads_3"):
        get_search_space("medium", tiny_model("bert").config).to_subnetwork(bigger.largest())
    with pytest.raises(ValueError, match="keeps no layer"):
        get_search_space("layer", tiny_model("bert").config).to_subnetwork({"layer_0": 0, "layer_1": 0, "layer_2": 0})

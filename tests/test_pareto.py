import numpy as np
import pandas as pd
import pytest

from nas_pruning.pareto import (
    make_reference_point,
    DEFAULT_REFERENCE_POINT,
    final_results,
    hypervolume,
    hypervolume_over_time,
    joint_bounds,
    knee_point,
    pareto_front,
    select_member,
)

def table(points, **columns):
    errors, params = zip(*points)
    return pd.DataFrame({"error": errors, "params": params, **columns})


def test_final_results_keeps_last_report_per_trial():
    df = pd.DataFrame({"trial_id": [0, 1, 0, 1, 2], "epoch": [1, 1, 2, 2, 1], "error": [0.5, 0.4, 0.3, 0.35, 0.9]})
    last = final_results(df)
    assert last["trial_id"].tolist() == [0, 1, 2]
    assert last["epoch"].tolist() == [2, 2, 1]
    assert last["error"].tolist() == [0.3, 0.35, 0.9]


def test_experiments_concatenated_keep_their_trials_apart():
    first = table([(0.5, 0.2), (0.3, 0.6)], trial_id=[0, 1], tuner_name="a")
    second = table([(0.2, 0.9), (0.6, 0.1)], trial_id=[0, 1], tuner_name="b")
    both = pd.concat([first, second], ignore_index=True)
    assert len(final_results(both)) == 4
    assert sorted(pareto_front(both)["params"]) == [0.1, 0.2, 0.6, 0.9]


def test_final_results_needs_trial_id():
    with pytest.raises(ValueError, match="trial_id"):
        final_results(table([(0.1, 0.2)]))


def test_pareto_front_removes_dominated_duplicates_and_nan():
    df = table(
        [(0.1, 0.9), (0.3, 0.5), (0.3, 0.5), (0.4, 0.6), (0.6, 0.2), (np.nan, 0.1), (0.05, np.nan), (0.7, 0.2)],
        name=list("abcdefgh"),
    )
    front = pareto_front(df)
    assert front["name"].tolist() == ["e", "b", "a"]  # sorted by params, duplicate c dropped
    assert front["params"].tolist() == [0.2, 0.5, 0.9]
    assert front.index.tolist() == [0, 1, 2]


def test_pareto_front_uses_last_report_of_each_trial():
    df = pd.DataFrame(
        {"trial_id": [0, 0, 1], "error": [0.1, 0.5, 0.3], "params": [0.5, 0.5, 0.5], "st_tuner_time": [1.0, 2.0, 3.0]}
    )
    front = pareto_front(df)
    assert front["trial_id"].tolist() == [1]


def test_pareto_front_of_only_failed_rows_is_empty():
    assert pareto_front(table([(np.nan, 0.5)])).empty


def test_hypervolume_of_single_point():
    assert hypervolume(np.array([[0.5, 0.5]])) == pytest.approx(0.25)
    assert DEFAULT_REFERENCE_POINT == (1.0, 1.0)


def test_hypervolume_of_two_points_by_hand():
    # union of [0.2, 1] x [0.6, 1] and [0.6, 1] x [0.2, 1]: 0.32 + 0.32 - 0.16
    points = np.array([[0.2, 0.6], [0.6, 0.2]])
    assert hypervolume(points) == pytest.approx(0.48)
    assert hypervolume(table(points.tolist())) == pytest.approx(0.48)
    dominated = np.vstack([points, [[0.7, 0.7]]])
    assert hypervolume(dominated) == pytest.approx(0.48)


def test_hypervolume_ignores_failed_rows_and_uses_last_report():
    df = pd.DataFrame({"trial_id": [0, 0, 1], "error": [0.0, 0.5, np.nan], "params": [0.0, 0.5, 0.1]})
    assert hypervolume(df) == pytest.approx(0.25)


def test_points_outside_the_reference_box_contribute_nothing():
    assert hypervolume(np.array([[1.5, 0.2], [0.5, 1.0]])) == 0.0
    assert hypervolume(np.array([[1.5, 0.2], [0.5, 0.5]])) == pytest.approx(0.25)
    assert hypervolume(np.empty((0, 2))) == 0.0


def test_reference_point_is_in_normalised_space():
    assert hypervolume(np.array([[0.5, 0.5]]), reference_point=0.75) == pytest.approx(0.0625)
    assert hypervolume(np.array([[0.5, 0.5]]), reference_point=[1.0, 0.75]) == pytest.approx(0.125)


def test_constant_predictors_add_no_hypervolume_under_the_trivial_reference():
    # The sub-networks of every size that predict the majority class score the trivial error, 0.19 on MRPC.
    constant = pd.DataFrame({"error": [0.19, 0.19, 0.19], "params": [0.5, 0.7, 1.0]})
    reference = make_reference_point(reference="trivial", trivial_error=0.19)
    assert reference == pytest.approx((0.19, 1.0))
    assert hypervolume(constant, reference_point=reference) == 0.0
    assert hypervolume(constant, reference_point=make_reference_point(reference="fixed")) == pytest.approx(0.81 * 0.5)
    learned = pd.concat([constant, pd.DataFrame({"error": [0.09], "params": [0.6]})])
    assert hypervolume(learned, reference_point=reference) == pytest.approx(0.10 * 0.4)
    with pytest.raises(ValueError, match="needs the trivial predictor's error"):
        make_reference_point(reference="trivial")
    with pytest.raises(ValueError, match="unknown hypervolume reference 'best'.*trivial, fixed"):
        make_reference_point(reference="best", trivial_error=0.1)


def test_bounds_normalise_each_objective():
    points = np.array([[0.5, 100.0]])
    bounds = {"latency": (0.0, 200.0)}
    assert hypervolume(points, objectives=("error", "latency"), bounds=bounds) == pytest.approx(0.25)
    # error in [0.2, 0.7]: 0.5 -> 0.6; params in [0.5, 1.0]: 0.75 -> 0.5
    narrow = {"error": (0.2, 0.7), "params": (0.5, 1.0)}
    assert hypervolume(np.array([[0.5, 0.75]]), bounds=narrow) == pytest.approx(0.4 * 0.5)


def test_objectives_without_default_bounds_need_bounds():
    with pytest.raises(ValueError, match="latency"):
        hypervolume(np.array([[0.5, 10.0]]), objectives=("error", "latency"))


def test_joint_bounds_span_all_tables():
    a = table([(0.2, 0.5), (0.4, 0.9)])
    b = table([(0.1, 0.7), (np.nan, 0.3)])
    assert joint_bounds([a, b]) == {"error": (0.1, 0.4), "params": (0.3, 0.9)}
    assert hypervolume(a, bounds=joint_bounds([a, b])) > 0


def test_hypervolume_over_time_is_a_running_front():
    df = table(
        [(0.9, 0.9), (0.5, 0.5), (0.8, 0.8), (0.2, 0.9), (np.nan, 0.1), (0.6, 0.1)],
        trial_id=range(6),
        st_tuner_time=[3.0, 1.0, 2.0, 4.0, 5.0, 5.0],
    )
    curve = hypervolume_over_time(df)
    assert list(curve.columns) == ["time", "hypervolume"]
    assert curve["time"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert np.all(np.diff(curve["hypervolume"]) >= 0)
    assert curve["hypervolume"].iloc[0] == pytest.approx(0.25)
    assert curve["hypervolume"].iloc[-1] == pytest.approx(hypervolume(df))


def test_select_member_by_position_and_by_budget():
    front = table([(0.1, 0.9), (0.3, 0.5), (0.6, 0.2)])
    assert select_member(front, index=0)["params"] == 0.2
    assert select_member(front, index=-1)["params"] == 0.9
    assert select_member(front, max_params=0.6)["error"] == 0.3
    assert select_member(front, max_params=0.2)["error"] == 0.6
    with pytest.raises(ValueError, match="smallest available is 0.2"):
        select_member(front, max_params=0.1)
    with pytest.raises(ValueError, match="exactly one"):
        select_member(front)
    with pytest.raises(ValueError, match="out of range"):
        select_member(front, index=3)


def test_knee_point_is_closest_to_the_ideal_point():
    front = table([(0.05, 0.9), (0.3, 0.35), (0.7, 0.1)])
    assert knee_point(front)["params"] == 0.35
    # stretching params makes small models look better
    assert knee_point(front, bounds={"params": (0.0, 0.2)})["params"] == 0.1


import pandas as pd

from nas_pruning.pareto import pareto_front
from nas_pruning.plots import plot_front, plot_hypervolume
from test_pareto import table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_front_writes_png(tmp_path):
    all_points = table([(0.1, 0.9), (0.3, 0.5), (0.6, 0.2), (0.7, 0.7)])
    fronts = {"nsga2": pareto_front(all_points), "random": table([(0.2, 0.9), (0.7, 0.3)])}
    path = plot_front(fronts, tmp_path / "front.png", all_points=all_points)
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_plot_hypervolume_writes_png_with_seed_bands(tmp_path):
    run = lambda times, values: pd.DataFrame({"time": times, "hypervolume": values})  # noqa: E731
    curves = {
        "nsga2": [run([1.0, 3.0], [0.2, 0.5]), run([2.0, 4.0], [0.3, 0.4])],
        "random": run([1.5, 2.5], [0.1, 0.3]),
    }
    path = plot_hypervolume(curves, tmp_path / "hv.png")
    assert path.stat().st_size > 0
    assert path.read_bytes().startswith(PNG_MAGIC)

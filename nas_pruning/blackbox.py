"""The search space of a trained super-network as a Syne Tune blackbox.

`tabulate` evaluates sub-networks of a super-network once, with the same
`SubnetworkEvaluator` a live search uses, and stores them in Syne Tune's
blackbox-repository format (`syne_tune.blackbox_repository.serialize`), so that
optimizers can be compared in seconds in simulated time
(`nas_pruning.optimizer_benchmark`). The configs evaluated are

- the search space's initial design (largest, smallest, midpoint: every optimizer starts there),
- the members of any given searches (their results.csv), so that replaying those searches
  on the blackbox returns exactly what they saw,
- a scrambled Sobol design of `num_configs` points of the unit cube, decoded onto the
  space's Syne Tune domains (`nas_pruning.optimizers.config_codec.ConfigCodec`).

A blackbox folder holds Syne Tune's files (configspace.json, fidelityspace.json,
hyperparameters.parquet, objectives_evaluations.npy, fidelities_values.npy,
metadata.json), the super-network's model config (config.json, to rebuild the search
space) and table.csv (the same table, readable). Objectives: `error` (1 - task metric on
validation), `params` (parameter ratio), `latency` (only with a `latency` spec) and
`eval_time` (seconds the evaluation took: the simulated time a trial is charged). The
metadata names the task and metric, the trivial predictor's and the unpruned model's
metric on validation and test, and the hypervolume reference point at the trivial
predictor's validation error.

`load_tabulated` returns a `TabulatedSpace`: tabulated configs get their stored values;
any other config of the space gets `params` computed exactly from the model config and
the other objectives from a surrogate fitted on the whole table with Syne Tune's
`add_surrogate`. The surrogate's held-out R^2 and Spearman rank correlation (fitted on
80% of the table, scored on the other 20%) are stored in the metadata.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import qmc, spearmanr
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import r2_score
from sklearn.neighbors import KNeighborsRegressor
from syne_tune.blackbox_repository import add_surrogate
from syne_tune.blackbox_repository.blackbox import Blackbox, ObjectiveFunctionResult
from syne_tune.blackbox_repository.blackbox_tabular import BlackboxTabular, deserialize, serialize
from syne_tune.blackbox_repository.serialize import deserialize_metadata
from syne_tune.config_space import randint
from tqdm.auto import tqdm
from transformers import AutoConfig

from nas_pruning.evaluation import Yardsticks
from nas_pruning.files import absolute_path
from nas_pruning.pareto import DEFAULT_BOUNDS, DEFAULT_OBJECTIVES, ERROR, PARAMS, make_reference_point
from nas_pruning.runtimes import LatencyMeter, LatencySpec
from nas_pruning.experiments.weight_sharing import LATENCY, front_configs, prepare_evaluation
from nas_pruning.search_spaces import Config, SearchSpace, get_search_space
from nas_pruning.optimizers.config_codec import ConfigCodec
from nas_pruning.supernet import load_supernet

#: Sub-networks are evaluated once, never trained: one fidelity level, which Syne Tune's
#: simulator needs (it reports results per fidelity).
FIDELITY = "epoch"
#: The objective holding each evaluation's seconds: what the simulator charges a trial.
ELAPSED_TIME = "eval_time"
#: The surrogate regressors `load_tabulated` accepts (scikit-learn, fitted by Syne Tune's
#: `add_surrogate` on standardised configs).
SURROGATES: dict[str, Callable[[], Any]] = {
    "random_forest": lambda: RandomForestRegressor(n_estimators=50, min_samples_leaf=2, random_state=0),
    "knn": lambda: KNeighborsRegressor(n_neighbors=3, weights="distance"),
}
HOLDOUT_FRACTION = 0.2


def space_filling_design(space: SearchSpace, num_configs: int, seed: int = 0) -> list[Config]:
    """`num_configs` distinct configs of `space` from a scrambled Sobol sequence over the unit
    cube, decoded by Syne Tune's own encoding of the domains (integers rounded to equal
    shares); configs that keep no layer are skipped. Fewer come back only if the space has
    fewer distinct configs than asked for."""
    codec = ConfigCodec(space.config_space)
    sampler = qmc.Sobol(d=codec.dim, scramble=True, seed=seed)
    configs: dict[tuple, Config] = {}
    for _ in range(64):  # rounds of 2^k points; a small space runs out of new configs before
        for point in sampler.random(max(2, 1 << int(np.ceil(np.log2(num_configs))))):
            config = codec.decode(point)
            if len(configs) < num_configs and codec.key(config) not in configs and _valid(space, config):
                configs[codec.key(config)] = config
        if len(configs) == num_configs:
            break
    return list(configs.values())


def search_configs(search_dir: str | os.PathLike) -> list[Config]:
    """The configs a search evaluated, in order (from its results.csv, written by `nas-pruning search`)."""
    path = Path(search_dir) / "results.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: --include-search takes a folder written by `nas-pruning search`")
    return front_configs(pd.read_csv(path))


def tabulate(
    supernet_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    num_configs: int,
    include_searches: Sequence[str | os.PathLike] = (),
    data_dir: str | os.PathLike | None = None,
    max_validation_examples: int | None = None,
    subset_seed: int = 0,
    latency: LatencySpec | None = None,
    design_seed: int = 0,
    surrogate: str = "random_forest",
    num_threads: int | None = None,
    progress: bool = True,
) -> "TabulatedSpace":
    """Evaluate sub-networks of the super-network in `supernet_dir` and store them as a blackbox.

    num_configs: size of the space-filling design; the initial design and the members of
        `include_searches` are added to it (each distinct config is evaluated once).
    include_searches: folders written by `nas-pruning search` whose configs are tabulated too.
    max_validation_examples, subset_seed: score on a random validation subset of this size,
        drawn with this seed (a search with `--max-validation-examples` draws it with its
        `--search-seed`: use the same to reproduce its values); None: the whole validation split.
    latency: also tabulate each sub-network's `latency`, measured on the extracted model as this
        spec says (as a search with latency measures it); None: no latency.
    design_seed: seed of the scrambled Sobol design.
    surrogate: a name of SURROGATES, answering configs that are not in the table.
    """
    if num_configs < 0:
        raise ValueError(f"num_configs must be >= 0, got {num_configs}")
    if surrogate not in SURROGATES:
        raise ValueError(f"unknown surrogate {surrogate!r}; choose one of {', '.join(SURROGATES)}")
    searched = {f"search:{path}": search_configs(path) for path in include_searches}  # before the slow loading
    torch.set_num_threads(num_threads or os.cpu_count())
    model, info = load_supernet(supernet_dir)
    space = get_search_space(info.searched_space, model.config)  # as `nas-pruning search` picks it
    setup = prepare_evaluation(
        supernet_dir, model, info, space, data_dir, max_validation_examples=max_validation_examples,
        subset_seed=subset_seed, latency=LatencyMeter(latency) if latency is not None else None, progress=progress,
    )
    codec = ConfigCodec(space.config_space)
    sources = {"initial_design": space.initial_design()}
    sources.update(searched)
    sources["space_filling"] = space_filling_design(space, num_configs, design_seed)
    configs: dict[tuple, Config] = {}
    for config in (c for group in sources.values() for c in group):
        space.validate(config)  # a search of another space or model fails here, with the reason
        configs.setdefault(codec.key(config), config)

    rows = []
    for config in tqdm(list(configs.values()), desc="tabulating", unit="config", disable=not progress):
        rows.append({**config, **setup.evaluator(config)})
    objectives = [ERROR, PARAMS] + ([LATENCY] if latency is not None else []) + [ELAPSED_TIME]
    table = pd.DataFrame(rows)
    yardsticks = setup.yardsticks
    metadata = {
        "task": setup.task.name,
        "metric": setup.task.metric_name,
        "search_space": space.name,
        "supernet": absolute_path(supernet_dir),
        "elapsed_time_attr": ELAPSED_TIME,
        "latency": latency.as_dict() if latency is not None else None,
        "yardsticks": asdict(yardsticks),
        "hypervolume_objectives": list(DEFAULT_OBJECTIVES),
        "hypervolume_bounds": DEFAULT_BOUNDS,
        "hypervolume_reference": "trivial",
        "hypervolume_reference_point": make_reference_point(
            DEFAULT_OBJECTIVES, "trivial", trivial_error=1.0 - yardsticks.trivial_validation
        ),
        "design": {
            "tabulated": len(table),
            "sobol_seed": design_seed,
            **{name: len(group) for name, group in sources.items()},
        },
        "validation": {
            "examples": sum(len(batch["labels"]) for batch in setup.evaluator.batches),
            "max_examples": max_validation_examples,
            "subset_seed": subset_seed,
        },
    }
    tabular = _tabular(table, space, objectives)
    metadata["surrogate"] = {
        "model": surrogate,
        "holdout_fraction": HOLDOUT_FRACTION,
        "heldout": surrogate_quality(tabular, surrogate),
    }
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    serialize({setup.task.name: tabular}, str(output_dir), metadata=metadata)
    # Syne Tune's serialize stores objectives as float32; keep the evaluator's float64 values
    # so that a tabulated config returns exactly what the live evaluator computed.
    np.save(output_dir / "objectives_evaluations.npy", tabular.objectives_evaluations[None], allow_pickle=False)
    setup.evaluator.model.config.save_pretrained(output_dir)
    table.to_csv(output_dir / "table.csv", index=False)
    return load_tabulated(output_dir, surrogate)


def surrogate_quality(
    tabular: BlackboxTabular, surrogate: str, holdout_fraction: float = HOLDOUT_FRACTION, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Held-out quality of the surrogate per objective it predicts: fitted on a random
    (1 - holdout_fraction) of the table, `r2` and `spearman` (rank correlation) between
    its predictions and the tabulated values on the rest. NaN when the table is too small
    to hold out two rows."""
    objectives = _surrogate_objectives(tabular.objectives_names)
    num_rows = len(tabular.hyperparameters)
    num_held = int(round(holdout_fraction * num_rows))
    if num_held < 2 or num_rows - num_held < 2:
        return {name: {"r2": float("nan"), "spearman": float("nan")} for name in objectives}
    order = np.random.RandomState(seed).permutation(num_rows)
    held, fit = np.sort(order[:num_held]), np.sort(order[num_held:])
    part = BlackboxTabular(
        hyperparameters=tabular.hyperparameters.iloc[fit].reset_index(drop=True),
        configuration_space=tabular.configuration_space,
        fidelity_space=tabular.fidelity_space,
        objectives_evaluations=tabular.objectives_evaluations[fit],
        objectives_names=tabular.objectives_names,
    )
    model = _fit_surrogate(part, surrogate)
    predicted = np.vstack(
        [model.objective_function(config)[0] for config in tabular.hyperparameters.iloc[held].to_dict("records")]
    )
    truth = tabular.objectives_evaluations[held, 0, 0, :]
    columns = [tabular.objectives_names.index(name) for name in objectives]
    return {
        name: {
            "r2": float(r2_score(truth[:, column], predicted[:, k])),
            "spearman": float(spearmanr(truth[:, column], predicted[:, k]).statistic),
        }
        for k, (name, column) in enumerate(zip(objectives, columns))
    }


class TabulatedSpace(Blackbox):
    """A tabulated search space: stored values for tabulated configs, exact `params` and a
    surrogate's prediction for the others (see the module docstring).

    table: the tabulated evaluations (one seed, one fidelity).
    metadata: the blackbox's metadata.json.
    space: the search space the configs belong to (computes `params` of any config).
    surrogate: a name of SURROGATES.

    Usable wherever Syne Tune takes a blackbox, e.g. `UserBlackboxBackend(blackbox,
    elapsed_time_attr=ELAPSED_TIME)`; every answer for an untabulated config is cached.
    """

    def __init__(self, table: BlackboxTabular, metadata: dict, space: SearchSpace, surrogate: str = "random_forest"):
        super().__init__(table.configuration_space, table.fidelity_space, table.objectives_names)
        self.table = table
        self.metadata = metadata
        self.space = space
        self.codec = ConfigCodec(space.config_space)
        self._rows = {self.codec.key(c): i for i, c in enumerate(table.hyperparameters.to_dict("records"))}
        self._surrogate = _fit_surrogate(table, surrogate)
        self._predicted: dict[tuple, np.ndarray] = {}

    @property
    def fidelity_values(self) -> np.ndarray:
        return self.table.fidelity_values

    @property
    def yardsticks(self) -> Yardsticks:
        """Trivial predictor and unpruned model, validation and test, as tabulated."""
        return Yardsticks(**self.metadata["yardsticks"])

    def reference_point(self, reference: str = "trivial") -> tuple[float, ...]:
        """Hypervolume reference point (normalised error, params) that `reference` (a name of
        nas_pruning.pareto.REFERENCES) stands for; "trivial": the trivial predictor's validation error."""
        return make_reference_point(
            DEFAULT_OBJECTIVES, reference, trivial_error=1.0 - self.yardsticks.trivial_validation
        )

    def is_tabulated(self, config: Config) -> bool:
        return self.codec.key(config) in self._rows

    def dataframe(self) -> pd.DataFrame:
        """The tabulated configs and their objectives, one row each."""
        values = pd.DataFrame(self.table.objectives_evaluations[:, 0, 0, :], columns=self.objectives_names)
        return pd.concat([self.table.hyperparameters.reset_index(drop=True), values], axis=1)

    def _objective_function(
        self, configuration: dict[str, Any], fidelity: dict | None = None, seed: int | None = None
    ) -> ObjectiveFunctionResult:
        key = self.codec.key(configuration)
        row = self._rows.get(key)
        if row is None:
            values = self._predict(key, configuration)
        else:
            values = self.table.objectives_evaluations[row, 0, 0, :]
        return dict(zip(self.objectives_names, values)) if fidelity is not None else values[None, :]

    def _predict(self, key: tuple, config: Config) -> np.ndarray:
        if key not in self._predicted:
            config = {name: config[name] for name in self.configuration_space}
            params = self.space.parameter_ratio(config)  # exact; ValueError for a config that keeps no layer
            guess = dict(zip(self._surrogate.objectives_names, self._surrogate.objective_function(config)[0]))
            self._predicted[key] = np.array(
                [params if name == PARAMS else guess[name] for name in self.objectives_names]
            )
        return self._predicted[key]


def load_tabulated(path: str | os.PathLike, surrogate: str | None = None) -> TabulatedSpace:
    """The blackbox `tabulate` wrote to `path`, with its surrogate (default: the one it was scored with)."""
    path = Path(path)
    if not (path / "metadata.json").exists():
        raise FileNotFoundError(
            f"{path} is not a blackbox folder (no metadata.json): make one with `nas-pruning tabulate`"
        )
    (tabular,) = deserialize(str(path)).values()
    metadata = deserialize_metadata(str(path))
    surrogate = surrogate or metadata["surrogate"]["model"]
    if surrogate not in SURROGATES:
        raise ValueError(f"unknown surrogate {surrogate!r}; choose one of {', '.join(SURROGATES)}")
    space = get_search_space(metadata["search_space"], AutoConfig.from_pretrained(path))
    return TabulatedSpace(tabular, metadata, space, surrogate)


def _tabular(table: pd.DataFrame, space: SearchSpace, objectives: list[str]) -> BlackboxTabular:
    values = table[objectives].to_numpy(dtype=np.float64)
    return BlackboxTabular(
        hyperparameters=table[list(space.config_space)].reset_index(drop=True),
        configuration_space=space.config_space,
        fidelity_space={FIDELITY: randint(1, 1)},
        objectives_evaluations=values[:, None, None, :],  # (configs, seeds, fidelities, objectives)
        objectives_names=objectives,
    )


def _surrogate_objectives(objectives: Sequence[str]) -> list[str]:
    return [name for name in objectives if name != PARAMS]  # params is computed exactly


def _fit_surrogate(tabular: BlackboxTabular, surrogate: str) -> Blackbox:
    names = _surrogate_objectives(tabular.objectives_names)
    return add_surrogate(tabular.rename_objectives({name: name for name in names}), surrogate=SURROGATES[surrogate]())


def _valid(space: SearchSpace, config: Config) -> bool:
    try:
        space.to_subnetwork(config)
    except ValueError:
        return False
    return True

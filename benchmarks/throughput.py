"""Evaluations per minute and super-network training steps per second: the previous version against this one.

One run measures both versions on the same machine, interleaved: the previous
version (a git commit, checked out into a temporary `git worktree`) and this tree
each run in a worker subprocess that imports its own `nas_pruning` (PYTHONPATH),
and the parent hands them the same work in alternating order, one at a time:

- evaluation: the same random configs of the SMALL space, in chunks, scored with
  each version's `SubnetworkEvaluator` on the same validation examples of STS-B
  (bundled MiniLM with a seeded regression head), batched as each version's search
  batches them; evaluations per minute per chunk, and every config's metric;
- training: super-network training steps (strategy `full`, SMALL space, batch 32,
  STS-B train part), batched as each version's `finetune` batches them; steps per
  second per repeat;
- training quality: per training seed, each version trains a fresh copy of the
  model as a `full` super-network on the same examples and scores its full network,
  midpoint and smallest sub-network on the validation examples, so the change in
  batching is judged against the seed-to-seed spread (`--quality-seeds` with no seed
  skips it; `--grouping-quality` compares batching on a model that learns instead).

Other processes share the CPU, so the report gives medians over the interleaved
chunks / repeats and the load average seen during the run.

    GLUE_DIR=/work/shared/data/glue python benchmarks/throughput.py
    GLUE_DIR=... python benchmarks/throughput.py --configs 40 --threads 1   # shorter, one thread

Writes docs/throughput.md, docs/throughput_chunks.csv, docs/throughput_configs.csv (another name with
`--report NAME`) and
docs/throughput_quality.csv (with quality seeds); `--grouping-quality` writes
docs/throughput_grouping.md and .csv.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
BASE_COMMIT = "a1bed23"


# ---------------------------------------------------------------------------
# Worker: runs under either version's nas_pruning; reads one JSON command per line.
# ---------------------------------------------------------------------------


class Worker:
    """The model, data and evaluator of one version, kept between commands."""

    def __init__(self, validation_examples: int, threads: int | None, batch_size: int | None,
                 training_mega_batches: int | None = None) -> None:
        import copy

        import torch

        from nas_pruning.backends.weight_sharing import SubnetworkEvaluator
        from nas_pruning.models import load_model, load_tokenizer
        from nas_pruning.search_spaces import get_search_space
        from nas_pruning.tasks import encode, load_task, make_loader

        self.threads = threads or os.cpu_count()
        torch.set_num_threads(self.threads)
        self.make_loader = make_loader
        # Each version batches as its own search and finetune do.
        self.by_length = "by_length" in inspect.signature(make_loader).parameters
        self.training_batching = (training_batching() if training_mega_batches is None
                                  else {"by_length": True, "mega_batches": training_mega_batches})
        self.tokenizer = load_tokenizer()
        data = load_task("stsb", seed=0, splits=("train", "validation"))
        validation = data.validation.shuffle(seed=0).select(range(validation_examples))
        self.data = encode(type(data)(data.task, train=data.train, validation=validation), self.tokenizer)
        torch.manual_seed(0)  # the same regression head in both versions
        # The previous version reads [CLS] only; the new one is asked for the same head, so both compute the same.
        pooling = {"pooling": "cls"} if "pooling" in inspect.signature(load_model).parameters else {}
        self.model = load_model(num_labels=1, is_regression=True, **pooling)
        self.train_model = copy.deepcopy(self.model)
        self.space = get_search_space("small", self.model.config)
        self.batch_size = batch_size or search_batch_size()
        options = {"by_length": True} if self.by_length else {}
        batches = list(make_loader(self.data.validation, self.tokenizer, batch_size=self.batch_size, **options))
        self.evaluator = SubnetworkEvaluator(self.model, self.space, batches, self.data.task)
        self.evaluator(self.space.midpoint())  # warm-up, not timed (both versions alike)
        self.batches = batches

    def configs(self, n: int, seed: int) -> list[dict]:
        import numpy as np

        rng = np.random.RandomState(seed)
        return [{k: int(v) for k, v in self.space.sample(rng).items()} for _ in range(n)]

    def evaluate(self, configs: list[dict]) -> dict:
        start = time.perf_counter()
        metrics = [self.evaluator(config) for config in configs]
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "results": [{k: r[k] for k in ("metric", "params")} for r in metrics]}

    def train(self, steps: int, seed: int) -> dict:
        from nas_pruning.supernet import TrainingConfig, train_supernet

        loader = self.make_loader(self.data.train, self.tokenizer, batch_size=32, shuffle=True, seed=seed,
                                  **self.training_batching)
        config = TrainingConfig(epochs=1, max_steps=steps, seed=seed, num_threads=self.threads,
                                validate_subnetworks=False)
        history = train_supernet(self.train_model, loader, self.data.task, "full", self.space, config, progress=False)
        return {"seconds": history[-1]["train_seconds"], "steps": history[-1]["step"]}

    def quality(self, seed: int, examples: int, epochs: int) -> dict:
        """Train a fresh copy of the model (`full`, learning rate 1e-4, 10% warm-up) on the first `examples`
        of the train part (the same for every seed) and score three networks on the validation examples."""
        import copy

        from nas_pruning.backends.weight_sharing import SubnetworkEvaluator
        from nas_pruning.supernet import TrainingConfig, train_supernet

        model = copy.deepcopy(self.model)
        train = self.data.train.select(range(examples))
        loader = self.make_loader(train, self.tokenizer, batch_size=32, shuffle=True, seed=seed,
                                  **self.training_batching)
        config = TrainingConfig(epochs=epochs, learning_rate=1e-4, warmup_ratio=0.1, seed=seed,
                                num_threads=self.threads, validate_subnetworks=False)
        train_supernet(model, loader, self.data.task, "full", self.space, config, progress=False)
        evaluator = SubnetworkEvaluator(model, self.space, self.batches, self.data.task)
        networks = {"full": self.space.largest(), "midpoint": self.space.midpoint(), "smallest": self.space.smallest()}
        return {name: evaluator(config)["metric"] for name, config in networks.items()}


def _batching(info: dict) -> str:
    """A worker's training batching in words (versions before the setting grouped in 50-batch mega-batches)."""
    from nas_pruning.supernet.storage import LEGACY_MEGA_BATCHES

    options = info.get("training_batching", {})
    if not options.get("by_length"):
        return "shuffled"
    return f"grouped by length in mega-batches of {options.get('mega_batches', LEGACY_MEGA_BATCHES)} batches"


def training_batching() -> dict:
    """The `make_loader` options with which the imported version's `finetune` batches training data by
    default (its `TrainingConfig` defaults; a version without length grouping: none)."""
    from nas_pruning.supernet import TrainingConfig

    defaults = TrainingConfig()
    if not getattr(defaults, "group_by_length", False):
        return {}
    sizes = {"mega_batches": defaults.mega_batches} if hasattr(defaults, "mega_batches") else {}
    return {"by_length": True, **sizes}


def search_batch_size() -> int:
    """The evaluation batch size of the imported version's search (its `SearchSettings` default)."""
    try:
        from nas_pruning.experiments.weight_sharing import SearchSettings
    except ImportError:  # the previous version kept it in nas_pruning/search.py
        from nas_pruning.search import SearchSettings
    return SearchSettings.batch_size


def worker_main(args: argparse.Namespace) -> None:
    worker = Worker(args.validation_examples, args.threads, args.batch_size, args.training_mega_batches)
    import nas_pruning

    print(json.dumps({"by_length": worker.by_length, "training_batching": worker.training_batching,
                      "batch_size": worker.batch_size, "package": nas_pruning.__file__}),
          flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        name = command.pop("command")
        print(json.dumps(getattr(worker, name)(**command)), flush=True)


# ---------------------------------------------------------------------------
# Parent: starts both workers and interleaves their work.
# ---------------------------------------------------------------------------


class Version:
    """A worker subprocess importing `nas_pruning` from `tree`."""

    def __init__(self, name: str, tree: Path, args: argparse.Namespace) -> None:
        self.name = name
        env = {**os.environ, "PYTHONPATH": str(tree), "TQDM_DISABLE": "1"}
        command = [sys.executable, str(Path(__file__).resolve()), "--worker",
                   "--validation-examples", str(args.validation_examples)]
        options = [("--batch-size", args.batch_size), ("--threads", args.threads)]
        if name == "new":
            options.append(("--training-mega-batches", args.new_mega_batches))
        for option, value in options:
            command += [option, str(value)] if value else []
        # Run from an empty folder so that the current directory's nas_pruning is not imported instead.
        self.process = subprocess.Popen(command, env=env, cwd=tempfile.gettempdir(), stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.info = self._read()

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} worker stopped (see its error output above)")
        return json.loads(line)

    def __call__(self, command: str, **kwargs) -> dict:
        self.process.stdin.write(json.dumps({"command": command, **kwargs}) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def base_worktree(commit: str, folder: Path) -> Path:
    """A detached checkout of `commit` in `folder` (git worktree), created if missing."""
    if not (folder / "nas_pruning").is_dir():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(folder), commit], check=True)
    return folder


def interleaved(versions: list[Version], n: int, run) -> dict[str, list]:
    """`run(version, i)` for i < n, alternating which version goes first."""
    out = {v.name: [] for v in versions}
    for i in range(n):
        for version in versions if i % 2 == 0 else versions[::-1]:
            out[version.name].append(run(version, i))
    return out


def measure(args: argparse.Namespace) -> tuple[list[dict], list[dict], dict]:
    import numpy as np

    folder = Path(tempfile.gettempdir()) / f"nas_pruning_base_{args.base}"
    loads = [os.getloadavg()[0]]
    versions = [Version("previous", base_worktree(args.base, folder), args), Version("new", REPO, args)]
    try:
        configs = versions[1]("configs", n=args.configs, seed=args.seed)
        assert versions[0]("configs", n=args.configs, seed=args.seed) == configs, "the versions sample other configs"
        chunks = [configs[i : i + args.chunk] for i in range(0, len(configs), args.chunk)]

        def evaluate(version, i):
            result = version("evaluate", configs=chunks[i])
            loads.append(os.getloadavg()[0])
            print(f"chunk {i} {version.name}: {len(chunks[i]) / result['seconds'] * 60:.1f} evaluations/min",
                  flush=True)
            return result

        def train(version, i):
            result = version("train", steps=args.train_steps, seed=args.seed + i)
            loads.append(os.getloadavg()[0])
            print(f"repeat {i} {version.name}: {result['steps'] / result['seconds']:.3f} steps/s", flush=True)
            return result

        def quality(version, i):
            seed = args.quality_seeds[i]
            result = version("quality", seed=seed, examples=args.quality_examples, epochs=args.quality_epochs)
            print(f"quality seed {seed} {version.name}: {result}", flush=True)
            return result

        evaluations = interleaved(versions, len(chunks), evaluate)
        training = interleaved(versions, args.train_repeats, train)
        trained = interleaved(versions, len(args.quality_seeds), quality)
        info = {v.name: v.info for v in versions}
    finally:
        for version in versions:
            version.close()
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(folder)], check=False)
    chunk_rows = []
    for name in evaluations:
        for i, result in enumerate(evaluations[name]):
            chunk_rows.append({"kind": "evaluation", "version": name, "repeat": i, "work": len(chunks[i]),
                               "seconds": result["seconds"], "rate": len(chunks[i]) / result["seconds"] * 60})
        for i, result in enumerate(training[name]):
            chunk_rows.append({"kind": "training", "version": name, "repeat": i, "work": result["steps"],
                               "seconds": result["seconds"], "rate": result["steps"] / result["seconds"]})
    config_rows = []
    flat = {name: [r for result in evaluations[name] for r in result["results"]] for name in evaluations}
    for config, old, new in zip(configs, flat["previous"], flat["new"]):
        config_rows.append({**{f"config_{k}": v for k, v in config.items()}, "params": new["params"],
                            "metric_previous": old["metric"], "metric_new": new["metric"],
                            "abs_difference": abs(old["metric"] - new["metric"])})
    quality_rows = [{"version": name, "seed": seed, "network": network, "metric": metric}
                    for name in trained for seed, result in zip(args.quality_seeds, trained[name])
                    for network, metric in result.items()]
    run = {"loads": loads, "info": info, "median_load": float(np.median(loads))}
    return chunk_rows, config_rows, quality_rows, run


def spread_lines(table: pd.DataFrame, by: str, before, after) -> list[str]:
    """One markdown row per network of `table` (columns network, metric, `by`): the mean ± sample std over
    seeds of the `before` and `after` groups, their difference, and whether it is within the seed-to-seed
    spread (the larger of the two std)."""
    lines = []
    for network, rows in table.groupby("network", sort=False):
        stats = rows.groupby(by).metric.agg(["mean", "std"])
        old, new = stats.loc[before], stats.loc[after]
        gap, spread = new["mean"] - old["mean"], max(old["std"], new["std"])
        lines.append(f"| {network} | {old['mean']:.4f} ± {old['std']:.4f} | {new['mean']:.4f} ± {new['std']:.4f} "
                     f"| {gap:+.4f} | {spread:.4f} | {'yes' if abs(gap) <= spread else 'NO'} |")
    return lines


def quality_lines(args: argparse.Namespace, quality: pd.DataFrame) -> list[str]:
    """Training quality: per network, each version's mean and sample std over seeds against the seed spread."""
    return ["", f"Training quality: validation Spearman after training a fresh `full` super-network "
            f"({args.quality_examples} STS-B training examples, {args.quality_epochs} epoch(s), learning rate 1e-4, "
            f"10% warm-up), training seeds {', '.join(map(str, args.quality_seeds))}; mean ± sample std over seeds:",
            "", "| network | previous | new | new - previous | seed spread (max std) | within spread |",
            "|---|---|---|---|---|---|", *spread_lines(quality, "version", "previous", "new")]


def report(args: argparse.Namespace, chunk_rows: list[dict], config_rows: list[dict], quality_rows: list[dict],
           run: dict) -> str:
    from nas_pruning.pareto import pareto_front

    chunks = pd.DataFrame(chunk_rows)
    configs = pd.DataFrame(config_rows)
    DOCS.mkdir(exist_ok=True)
    chunks.to_csv(DOCS / f"{args.report}_chunks.csv", index=False)
    configs.to_csv(DOCS / f"{args.report}_configs.csv", index=False)
    if quality_rows:
        pd.DataFrame(quality_rows).to_csv(DOCS / f"{args.report}_quality.csv", index=False)

    def median(kind: str, version: str) -> float:
        return float(chunks[(chunks.kind == kind) & (chunks.version == version)].rate.median())

    def ratios(kind: str) -> list[float]:
        rows = chunks[chunks.kind == kind]
        new, old = rows[rows.version == "new"].rate.to_numpy(), rows[rows.version == "previous"].rate.to_numpy()
        return (new / old).tolist()

    lines = [
        "# Throughput: the previous version against this one, same machine, one run",
        "",
        f"Generated by `benchmarks/throughput.py` (previous version: commit `{args.base}`). Re-run:",
        "",
        "```bash",
        f"GLUE_DIR=/work/shared/data/glue python benchmarks/throughput.py --configs {args.configs} "
        f"--chunk {args.chunk} --train-repeats {args.train_repeats} --train-steps {args.train_steps} "
        + (f"--quality-seeds {' '.join(map(str, args.quality_seeds))} --quality-examples {args.quality_examples} "
           f"--quality-epochs {args.quality_epochs}" if args.quality_seeds else "--quality-seeds")
        + (f" --threads {args.threads}" if args.threads else "")
        + (f" --batch-size {args.batch_size}" if args.batch_size else "")
        + (f" --new-mega-batches {args.new_mega_batches}" if args.new_mega_batches else "")
        + (f" --report {args.report}" if args.report != "throughput" else ""),
        "```",
        "",
        f"Machine: {os.cpu_count()} CPU cores, torch threads {args.threads or os.cpu_count()}; "
        f"load average (1 min) during the run: median {run['median_load']:.1f}, "
        f"range {min(run['loads']):.1f}-{max(run['loads']):.1f} (other processes shared the cores).",
        "",
        "| measure | previous | new | new / previous (median of per-repeat ratios) | target |",
        "|---|---|---|---|---|",
    ]
    for kind, unit, target in (("evaluation", "evaluations/min", 2.0), ("training", "training steps/s", 1.5)):
        old, new, per = median(kind, "previous"), median(kind, "new"), statistics.median(ratios(kind))
        verdict = "met" if new / old >= target and per >= target else "NOT met"
        lines.append(f"| {unit} (median) | {old:.3g} | {new:.3g} | {new / old:.2f}x ({per:.2f}x) "
                     f"| >= {target}x: {verdict} |")
    info = run["info"]
    batch_sizes = (f"{info['previous']['batch_size']} (previous) and {info['new']['batch_size']} (new), "
                   "each version's search default" if not args.batch_size else str(args.batch_size))
    evaluation = (f"{args.configs} configs of the SMALL space (seed {args.seed}) in chunks of {args.chunk}, "
                  f"STS-B, {args.validation_examples} validation examples, batch {batch_sizes}, bundled "
                  f"MiniLM with a seeded regression head reading [CLS] in both versions (the previous one has no "
                  f"mean pooling)")
    training = (f"{args.train_repeats} repeats of {args.train_steps} steps, strategy `full` (full network, 2 random "
                f"and the smallest sub-network, distilled), SMALL space, batch 32, STS-B train part")
    equal = int((configs.abs_difference == 0).sum())
    lines += [
        "",
        f"- Evaluation: {evaluation}. Training: {training}.",
        f"- Evaluation batches: previous {'by length' if info['previous']['by_length'] else 'in data order'}, "
        f"new {'by length' if info['new']['by_length'] else 'in data order'}; training batches: previous "
        f"{_batching(info['previous'])} (its `finetune` default), new {_batching(info['new'])} "
        + ("(`--new-mega-batches`: `finetune --group-by-length --mega-batches "
           f"{args.new_mega_batches}`, not its default)" if args.new_mega_batches else "(its `finetune` default)")
        + f" (packages: {info['previous']['package']}, {info['new']['package']}).",
        f"- Metrics of the same configs: {equal} of {len(configs)} equal exactly; largest difference "
        f"{configs.abs_difference.max():.2e} (Spearman; see docs/{args.report}_configs.csv).",
        *(quality_lines(args, pd.DataFrame(quality_rows)) if quality_rows else []),
    ]
    fronts = {}
    for version in ("previous", "new"):
        table = configs.rename(columns={f"metric_{version}": "metric"})
        table["error"] = 1 - table["metric"]
        fronts[version] = pareto_front(table)[["params", "metric"]].round(6)
    lines += ["", "Pareto front (error = 1 - Spearman, params ratio) of the evaluated configs:", "",
              "| version | members | params ratios | metrics |", "|---|---|---|---|"]
    for version, front in fronts.items():
        lines.append(f"| {version} | {len(front)} | {', '.join(f'{p:.3f}' for p in front.params)} "
                     f"| {', '.join(f'{m:.5f}' for m in front.metric)} |")
    lines += ["", "Per repeat (evaluations/min or steps/s):", "", "| kind | repeat | previous | new | ratio |",
              "|---|---|---|---|---|"]
    for kind in ("evaluation", "training"):
        rows = chunks[chunks.kind == kind]
        for i, ratio in enumerate(ratios(kind)):
            old = rows[(rows.version == "previous") & (rows.repeat == i)].rate.iloc[0]
            new = rows[(rows.version == "new") & (rows.repeat == i)].rate.iloc[0]
            lines.append(f"| {kind} | {i} | {old:.3g} | {new:.3g} | {ratio:.2f} |")
    return "\n".join(lines) + "\n"


def grouping_quality(args: argparse.Namespace) -> None:
    """What length grouping changes in what training learns, in this version on a model that learns:
    `finetune` (strategy `full`, mean pooling, the bundled MiniLM) per training seed with
    group_by_length off (the previous batching) and on with each of `--mega-batches`; validation Spearman
    of the full network, the midpoint and the smallest sub-network; written to
    docs/throughput_grouping.csv and .md. Runs whose row is there are skipped."""
    from nas_pruning.supernet import finetune
    from nas_pruning.supernet.storage import LEGACY_MEGA_BATCHES
    from notes import write_keeping_notes

    recipe = {"examples": args.quality_examples, "epochs": args.quality_epochs}
    path = DOCS / "throughput_grouping.csv"
    columns = ["seed", *recipe, "group_by_length", "mega_batches"]
    earlier = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=columns)
    if "mega_batches" not in earlier:  # rows from before the option: grouped ones used 50 batches
        earlier["mega_batches"] = earlier.group_by_length.map({True: LEGACY_MEGA_BATCHES, False: 0})
    rows = earlier.to_dict("records")
    done = {tuple(row[name] for name in columns) for row in rows}
    batchings = [(False, 0)] + [(True, size) for size in args.mega_batches]
    for seed in args.quality_seeds:
        for grouped, size in batchings:
            if (seed, *recipe.values(), grouped, size) in done:
                continue
            with tempfile.TemporaryDirectory() as folder:
                out = finetune("stsb", strategy="full", search_space="small", output_dir=Path(folder) / "net",
                               epochs=args.quality_epochs, learning_rate=1e-4, warmup_ratio=0.1, seed=seed,
                               max_train_examples=args.quality_examples, num_threads=args.threads or 1,
                               group_by_length=grouped, **({"mega_batches": size} if grouped else {}),
                               validate_subnetworks=True, progress=False)
                last = json.loads((out / "supernet.json").read_text())["history"][-1]
            rows.append({"seed": seed, **recipe, "group_by_length": grouped, "mega_batches": size,
                         "full": last["val_metric"], "midpoint": 1 - last["val_midpoint_error"],
                         "smallest": 1 - last["val_smallest_error"], "train_seconds": last["train_seconds"]})
            print(rows[-1], flush=True)
            # After every run, so that a stopped run keeps what it trained.
            pd.DataFrame(rows).sort_values(columns).to_csv(path, index=False)
    table = pd.DataFrame(rows)
    table = table[(table[list(recipe)] == pd.Series(recipe)).all(axis=1)].sort_values(columns)
    table["batching"] = [f"on, {size}" if grouped else "off" for grouped, size in zip(table.group_by_length,
                                                                                       table.mega_batches)]
    networks = table.melt(id_vars=["seed", "batching"], value_vars=["full", "midpoint", "smallest"],
                          var_name="network", value_name="metric")
    lines = ["# Length-grouped training batches: what training learns, on and off", "",
             "Generated by `GLUE_DIR=/work/shared/data/glue python benchmarks/throughput.py --grouping-quality "
             f"--quality-seeds {' '.join(map(str, sorted(table.seed.unique())))} "
             f"--quality-examples {args.quality_examples} --quality-epochs {args.quality_epochs} --mega-batches "
             f"{' '.join(map(str, sorted(table.mega_batches[table.group_by_length].unique())))}"
             + (f" --threads {args.threads}" if args.threads else "") + "`: "
             f"`finetune('stsb', strategy='full')` from the bundled MiniLM (mean pooling) on {args.quality_examples} "
             f"training examples, {args.quality_epochs} epoch(s) at 1e-4 with 10% warm-up, once per training seed "
             "with `group_by_length` off (plain shuffled batches) and on with mega-batches of the given number of "
             "batches (batch 32); validation Spearman on the 30% validation part. Rows: docs/throughput_grouping.csv "
             "(runs already there are skipped, so seeds may come from several runs).", ""]
    for batching in sorted(set(table.batching) - {"off"}, key=lambda name: int(name.split(", ")[1])):
        pair = networks[networks.batching.isin(["off", batching])]
        seeds = sorted(set(pair.seed[pair.batching == "off"]) & set(pair.seed[pair.batching == batching]))
        lines += [f"Grouped with mega-batches of {batching.split(', ')[1]} batches, seeds "
                  f"{', '.join(map(str, seeds))}; mean training seconds off {_seconds(table, 'off', seeds):.0f}, "
                  f"on {_seconds(table, batching, seeds):.0f}:", "",
                  "| network | off (mean ± std) | on (mean ± std) | on - off | seed spread (max std) | within spread |",
                  "|---|---|---|---|---|---|",
                  *spread_lines(pair[pair.seed.isin(seeds)], "batching", "off", batching), ""]
    write_keeping_notes(DOCS / "throughput_grouping.md", "\n".join(lines))
    print("\n".join(lines))


def _seconds(table: pd.DataFrame, batching: str, seeds: list[int]) -> float:
    return table.train_seconds[(table.batching == batching) & table.seed.isin(seeds)].mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=BASE_COMMIT, help="git commit of the previous version")
    parser.add_argument("--configs", type=int, default=100, help="SMALL-space configs each version evaluates")
    parser.add_argument("--chunk", type=int, default=10, help="configs per timed chunk (versions alternate)")
    parser.add_argument("--validation-examples", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="evaluation batch size of both versions; default: each version's search default")
    parser.add_argument("--train-repeats", type=int, default=6, help="timed training repeats per version")
    parser.add_argument("--train-steps", type=int, default=5, help="training steps per repeat")
    parser.add_argument("--threads", type=int, default=None, help="torch threads; default: all cores")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quality-seeds", type=int, nargs="*", default=[0, 1, 2],
                        help="training seeds of the training-quality comparison (none: skip it)")
    parser.add_argument("--quality-examples", type=int, default=1000, help="its training examples")
    parser.add_argument("--quality-epochs", type=int, default=1, help="its training epochs")
    parser.add_argument("--grouping-quality", action="store_true",
                        help="only compare training with group_by_length off and on in this version (mean pooling)")
    parser.add_argument("--mega-batches", type=int, nargs="+", default=[50],
                        help="with --grouping-quality: mega-batch sizes (in batches) of the grouped runs")
    parser.add_argument("--new-mega-batches", type=int, default=None,
                        help="train the new version grouped by length in mega-batches of this many batches "
                             "(`finetune --group-by-length --mega-batches N`) instead of its finetune default")
    parser.add_argument("--report", default="throughput",
                        help="name of the report: docs/<name>.md, docs/<name>_chunks.csv, ... (default throughput)")
    parser.add_argument("--training-mega-batches", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return
    if not os.environ.get("GLUE_DIR"):
        parser.error("set GLUE_DIR to the folder of the GLUE TSVs (e.g. /work/shared/data/glue)")
    sys.path.insert(0, str(REPO))
    if args.grouping_quality:
        return grouping_quality(args)
    from notes import write_keeping_notes

    chunk_rows, config_rows, quality_rows, run = measure(args)
    path = DOCS / f"{args.report}.md"
    write_keeping_notes(path, report(args, chunk_rows, config_rows, quality_rows, run))
    print(path.read_text())


if __name__ == "__main__":
    main()

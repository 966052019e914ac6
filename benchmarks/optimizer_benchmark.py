"""Timing check of the simulated optimizer benchmark: how long do optimizers x seeds x evaluations
take on a tabulated blackbox, on this machine, and does it fit a budget?

    python benchmarks/optimizer_benchmark.py --blackbox bb/stsb --output-dir bench/stsb \\
        --optimizers random morea nsga2 ehvi local_search --seeds 10 --num-evaluations 200 --budget 300 \\
        --processes 2

Runs `nas_pruning.optimizer_benchmark.benchmark` (the `nas-pruning benchmark` command) and writes,
beside its tables, timing.json: total wall seconds, CPU seconds (this process and its worker processes),
wall seconds per optimizer (summed over its runs), the budget, whether the total wall time fits, the
machine's CPU count and load average at the start and end (the benchmark's own time competes with
whatever else runs; CPU seconds / processes is the wall time it would take on idle cores).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

from nas_pruning.blackbox import load_tabulated
from nas_pruning.optimizer_benchmark import benchmark
from nas_pruning.optimizers import OPTIMIZERS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blackbox", required=True, help="folder written by `nas-pruning tabulate`")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--optimizers", nargs="+", default=["random", "morea", "nsga2", "ehvi", "local_search"],
                        choices=list(OPTIMIZERS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--num-evaluations", type=int, default=200)
    parser.add_argument("--budget", type=float, default=300.0, help="seconds the whole benchmark should fit in")
    parser.add_argument("--processes", type=int, default=1, help="runs simulated at once, one worker process each")
    args = parser.parse_args()

    load = os.getloadavg()
    start = time.perf_counter()
    blackbox = load_tabulated(args.blackbox)
    outcome = benchmark(
        blackbox, args.optimizers, args.seeds, args.num_evaluations, output_dir=args.output_dir,
        processes=args.processes,
    )
    total = time.perf_counter() - start
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    timing = {
        "command": f"optimizers {' '.join(args.optimizers)}, {args.seeds} seeds, {args.num_evaluations} evaluations",
        "total_s": total,
        "cpu_s": cpu,
        "processes": args.processes,
        "per_optimizer_s": dict(zip(outcome.summary["optimizer"], outcome.summary["wall_s_total"])),
        "budget_s": args.budget,
        "within_budget": total <= args.budget,
        "cpus": os.cpu_count(),
        "load_average_at_start": load,
        "load_average_at_end": os.getloadavg(),
    }
    Path(args.output_dir, "timing.json").write_text(json.dumps(timing, indent=2) + "\n")
    print(outcome.summary.to_string(index=False, float_format="%.4f"))
    print(json.dumps(timing, indent=2))


if __name__ == "__main__":
    main()

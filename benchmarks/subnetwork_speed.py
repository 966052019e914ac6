"""Forward time of the full model, of `select_subnetwork`, and of extracted sub-networks.

Targets (issue "Foundation"): select_subnetwork within 1.15x of the extracted model's
time, and the extracted model's speedup over the full model at least 0.8x the ratio
of their encoder FLOPs.

    python benchmarks/subnetwork_speed.py                 # MiniLM, batch 32 x seq 128
    python benchmarks/subnetwork_speed.py --repeats 5     # quicker, noisier
    python benchmarks/subnetwork_speed.py --threads 1 --clock process   # on a busy machine: CPU time

Writes docs/subnetwork_speed.csv and docs/subnetwork_speed.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from nas_pruning.models import (
    SubNetwork,
    count_parameters,
    extract_subnetwork,
    get_adapter,
    load_model,
    select_subnetwork,
)
from nas_pruning.models.dims import ModelDims

DOCS = Path(__file__).resolve().parents[1] / "docs"


def encoder_flops(dims: ModelDims, sub: SubNetwork, seq_len: int) -> float:
    """Multiply-adds x2 per sequence for the encoder layers (projections, attention, FFN)."""
    flops = 0.0
    for heads, units in zip(sub.heads_per_layer(), sub.units_per_layer()):
        width = heads * dims.head_size
        flops += 2 * seq_len * (4 * dims.hidden_size * width)  # q, k, v, output projections
        flops += 2 * 2 * seq_len * seq_len * width  # scores and weighted sum
        flops += 2 * seq_len * (2 * dims.hidden_size * units)  # FFN in and out
    return flops


CLOCKS = {"wall": time.perf_counter, "process": time.process_time}


def timed(fn, clock) -> float:
    start = clock()
    fn()
    return clock() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model name or folder (default: bundled MiniLM)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: elapsed time; process: CPU time of this process (use with --threads 1 on a shared machine)",
    )
    parser.add_argument("--out", type=Path, default=DOCS / "subnetwork_speed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = load_model(args.model).eval()
    dims = get_adapter(model).dims(model.config)
    batch = {
        "input_ids": torch.randint(1000, 20000, (args.batch_size, args.seq_len)),
        "attention_mask": torch.ones(args.batch_size, args.seq_len, dtype=torch.long),
    }
    full = SubNetwork.full(dims)

    def run(m, sub=None):
        with torch.inference_mode():
            if sub is None:
                m(**batch)
            else:
                with select_subnetwork(m, sub):
                    m(**batch)

    rows = []
    for fraction in (0.75, 0.5, 0.25):
        heads = max(1, round(fraction * dims.num_heads))
        units = max(1, round(fraction * dims.intermediate_size))
        sub = SubNetwork.from_counts(dims, [heads] * dims.num_layers, [units] * dims.num_layers)
        small = extract_subnetwork(model, sub).eval()
        for m, s in ((model, None), (model, sub), (small, None)):
            run(m, s)  # warm-up
        # Interleave the three so that machine noise hits all of them alike.
        times = {"full": [], "select": [], "extracted": []}
        clock = CLOCKS[args.clock]
        for _ in range(args.repeats):
            times["full"].append(timed(lambda: run(model), clock))
            times["select"].append(timed(lambda: run(model, sub), clock))
            times["extracted"].append(timed(lambda: run(small), clock))
        t = {k: statistics.median(v) for k, v in times.items()}
        flop_ratio = encoder_flops(dims, full, args.seq_len) / encoder_flops(dims, sub, args.seq_len)
        speedup = t["full"] / t["extracted"]
        rows.append(
            {
                "kept_fraction": fraction,
                "heads_per_layer": heads,
                "units_per_layer": units,
                "param_ratio": count_parameters(model, sub) / count_parameters(model),
                "full_s": t["full"],
                "select_s": t["select"],
                "extracted_s": t["extracted"],
                "select_over_extracted": t["select"] / t["extracted"],
                "extracted_speedup": speedup,
                "encoder_flop_ratio": flop_ratio,
                "speedup_over_flop_ratio": speedup / flop_ratio,
            }
        )
        print(rows[-1])
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out.with_suffix(".csv"), index=False)
    header = (
        f"# Sub-network forward speed\n\n"
        f"Model: {args.model or 'all-MiniLM-L6-v2 (bundled)'}; batch {args.batch_size} x seq {args.seq_len}; "
        f"torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}; "
        f"median of {args.repeats} interleaved repeats, inference mode, {args.clock} clock.\n\n"
        f"Re-run: `python benchmarks/subnetwork_speed.py --repeats {args.repeats} --threads {args.threads} "
        f"--clock {args.clock}`\n\n"
        f"Targets: select_over_extracted <= 1.15; speedup_over_flop_ratio >= 0.8.\n\n"
    )
    args.out.with_suffix(".md").write_text(header + table.to_markdown(index=False, floatfmt=".3f") + "\n")


if __name__ == "__main__":
    main()

"""The CoFi-transfer benchmark's report, computed from its rows table alone.

One row per finished run (see :data:`KEY` and the benchmark
``benchmarks/cofi_transfer.py``). :func:`build_report` gives, per variant, the
mean and sample std over seeds of the test metric next to the trivial predictor,
the unpruned teacher, the real sparsity and the measured speedup, and judges the
claims of Dery et al. (2023) on the rows: each is marked *holds*, *does not hold*
or *not enough rows*, with the paper's number beside ours.
"""

from __future__ import annotations

import pandas as pd

#: The columns that identify a run; the benchmark skips a run whose key is already a row.
KEY = ("grid", "target", "aux", "target_sparsity", "variant", "seed")
#: The sparsity at which the paper's claims are made.
CLAIM_SPARSITY = 0.95
#: Test metric the best coupling must reach at CLAIM_SPARSITY to count as a real model (the issue's bar).
REAL_MODEL_BAR = {"stsb": 0.3}
#: Speedup at batch 32 x length 128 the 95%-sparse model must reach.
SPEEDUP_BAR = 5.0
COUPLINGS = ("none", "shared", "independent", "delta")
HOLDS, FAILS, MISSING = "holds", "does not hold", "not enough rows"


def variant_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (target, aux, sparsity, variant): seeds and mean / sample std over seeds of the results."""
    groups = rows.groupby(["target", "aux", "target_sparsity", "variant"], sort=False)
    return groups.agg(
        seeds=("seed", "nunique"), test=("test_metric", "mean"), test_std=("test_metric", "std"),
        val=("val_metric", "mean"), trivial=("trivial_test_metric", "mean"), teacher=("teacher_test_metric", "mean"),
        teacher_std=("teacher_test_metric", "std"), real_sparsity=("real_sparsity", "mean"), params=("params", "mean"),
        speedup_32x128=("speedup_32x128", "mean"), speedup_32x128_std=("speedup_32x128", "std"),
        speedup_1x128=("speedup_1x128", "mean"), wall_min=("wall_s", lambda s: s.mean() / 60),
    ).reset_index()  # fmt: skip


def _per_seed(rows: pd.DataFrame, variant: str) -> pd.Series:
    return rows[rows["variant"] == variant].set_index("seed")["test_metric"]


def _beats_each(rows: pd.DataFrame, winner: str, others: list[str], min_seeds: int) -> tuple[str, str]:
    """Whether `winner`'s mean test metric is above every one of `others`' (verdict, detail)."""
    scores = {variant: _per_seed(rows, variant) for variant in [winner, *others]}
    short = {variant: len(seeds) for variant, seeds in scores.items() if len(seeds) < min_seeds}
    if short:
        return MISSING, f"need {min_seeds} seeds of each of {', '.join(scores)}; have {short}"
    means = {variant: seeds.mean() for variant, seeds in scores.items()}
    runner_up = max(others, key=means.get)
    gaps = (scores[winner] - scores[runner_up]).dropna()  # paired by seed: same data and teacher
    detail = (
        ", ".join(f"{variant} {100 * mean:.1f}" for variant, mean in means.items())
        + f"; {winner} - {runner_up} = {100 * gaps.mean():+.1f} points (std over seeds {100 * gaps.std():.1f})"
    )
    return (HOLDS if means[winner] > means[runner_up] else FAILS), detail


def claims(rows: pd.DataFrame, min_seeds: int = 3) -> list[dict]:
    """The paper's claims and the issue's bars judged per target at CLAIM_SPARSITY: one dict per
    (target, claim) with ``target``, ``claim``, ``paper``, ``ours`` and ``verdict``."""
    judged = []
    at_claim = rows[(rows["target_sparsity"] - CLAIM_SPARSITY).abs() < 1e-9]
    for (target, aux), group in at_claim.groupby(["target", "aux"], sort=False):

        def add(claim: str, paper: str, verdict: str, ours: str) -> None:
            judged.append(dict(target=f"{target} + {aux}", claim=claim, paper=paper, ours=ours, verdict=verdict))

        delta, none = _per_seed(group, "delta"), _per_seed(group, "none")
        if min(len(delta), len(none)) < min_seeds:
            add("delta - none >= +5 points", "about +5 points", MISSING,
                f"need {min_seeds} seeds of delta and none; have {len(delta)} and {len(none)}")  # fmt: skip
        else:
            gaps = (delta - none).dropna()
            gain = 100 * (delta.mean() - none.mean())
            add("delta - none >= +5 points", "about +5 points", HOLDS if gain >= 5.0 else FAILS,
                f"{gain:+.1f} points (std over seeds of the paired gap {100 * gaps.std():.1f})")  # fmt: skip
        add("both stages > either alone", "both > either alone",
            *_beats_each(group, "delta", ["delta-prune", "delta-finetune"], min_seeds))  # fmt: skip
        add("weights + structure > either alone", "both > either alone",
            *_beats_each(group, "delta", ["delta-weights", "delta-structure"], min_seeds))  # fmt: skip
        speedups = group.groupby("variant")["speedup_32x128"].mean()
        if speedups.empty:
            add(f"speedup >= {SPEEDUP_BAR:g}x at 32 x 128", f">= {SPEEDUP_BAR:g}x", MISSING, "no rows")
        else:
            slowest = speedups.min()
            add(f"speedup >= {SPEEDUP_BAR:g}x at 32 x 128", f">= {SPEEDUP_BAR:g}x",
                HOLDS if slowest >= SPEEDUP_BAR else FAILS,
                f"slowest variant {speedups.idxmin()} {slowest:.1f}x, fastest {speedups.max():.1f}x")  # fmt: skip
        if target in REAL_MODEL_BAR:
            bar = REAL_MODEL_BAR[target]
            couplings = group[group["variant"].isin(COUPLINGS)].groupby("variant")
            seeds, means = couplings["seed"].nunique(), couplings["test_metric"].mean()
            claim = f"best coupling's mean test metric >= {bar}"
            if seeds.empty or seeds.min() < min_seeds or len(seeds) < len(COUPLINGS):
                have = seeds.astype(int).to_dict()
                add(claim, "(the issue's bar)", MISSING, f"need {min_seeds} seeds of each coupling; have {have}")
            else:
                best = means.idxmax()
                trivial = group["trivial_test_metric"].mean()
                add(claim, "(the issue's bar)", HOLDS if means[best] >= bar else FAILS,
                    f"{best} {means[best]:.3f} (trivial predictor {trivial:.3f})")  # fmt: skip
    return judged


def _mean_std(mean: float, std: float, digits: int = 3) -> str:
    if pd.isna(mean):
        return ""
    return f"{mean:.{digits}f}" if pd.isna(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def build_report(rows: pd.DataFrame, min_seeds: int = 3) -> str:
    """The report's generated part (markdown) from the rows table alone."""
    if rows.empty:
        return "# CoFi pruning with transfer learning (MiniLM, limited target data)\n\nNo rows yet.\n"
    settings = ("target_examples", "max_length", "max_aux_examples", "max_eval_examples", "teacher_epochs",
                "prune_epochs", "finetune_epochs", "learning_rate", "finetune_learning_rate")  # fmt: skip
    schedule = ", ".join(
        f"{name} {'/'.join(str(v) for v in rows[name].drop_duplicates())}" for name in settings if name in rows
    )
    teachers = rows.drop_duplicates(["target", "seed"])
    compute = (
        f"{rows['wall_s'].sum() / 3600:.2f} h wall time of runs plus {teachers['teacher_wall_s'].sum() / 3600:.2f} h "
        "of teachers"
    )
    if "cpu_s" in rows:
        cpu = rows["cpu_s"].sum() + teachers["teacher_cpu_s"].sum()
        compute += f" ({cpu / 3600:.2f} h of process CPU time, all threads, teachers included)"
    summary = variant_summary(rows)
    table = pd.DataFrame({
        "target": summary["target"] + " + " + summary["aux"],
        "sparsity": summary["target_sparsity"].map("{:.2f}".format),
        "variant": summary["variant"],
        "seeds": summary["seeds"],
        "test metric": [_mean_std(m, s) for m, s in zip(summary["test"], summary["test_std"])],
        "validation": summary["val"].map("{:.3f}".format),
        "trivial": summary["trivial"].map("{:.3f}".format),
        "teacher": [_mean_std(m, s) for m, s in zip(summary["teacher"], summary["teacher_std"])],
        "real sparsity": summary["real_sparsity"].map("{:.4f}".format),
        "params": summary["params"].map("{:.3f}".format),
        "speedup 32x128": [
            _mean_std(m, s, 1) for m, s in zip(summary["speedup_32x128"], summary["speedup_32x128_std"])
        ],
        "speedup 1x128": summary["speedup_1x128"].map("{:.1f}".format),
        "wall min": summary["wall_min"].map("{:.1f}".format),
    })  # fmt: skip
    judged = pd.DataFrame(claims(rows, min_seeds))
    claims_md = f"(no rows at {CLAIM_SPARSITY:.0%} sparsity)"
    if not judged.empty:
        claims_md = judged.to_markdown(index=False, disable_numparse=True)
    return (
        "# CoFi pruning with transfer learning (MiniLM, limited target data)\n\n"
        f"Generated from {len(rows)} rows (`docs/cofi_transfer_rows.csv`, grid "
        f"{', '.join(rows['grid'].drop_duplicates())}): {schedule}. Compute in the rows: {compute}.\n\n"
        "test metric: the target's metric (STS-B Spearman, SST-2 accuracy, ...) on its GLUE dev split, mean ± sample "
        "std over seeds; validation: on the held-out validation part; trivial: a constant predictor (majority class "
        "of the training examples; for regression a constant, correlation 0); teacher: the unpruned model "
        "fine-tuned on the same examples; params: parameter ratio of the exported model (embeddings included); "
        "speedup: unpruned / pruned forward time, median over interleaved pairs, mean ± std over seeds; wall: "
        "minutes per run (teacher excluded).\n\n"
        "## Results per variant\n\n" + table.to_markdown(index=False, disable_numparse=True) + "\n\n"
        f"## Claims at {CLAIM_SPARSITY:.0%} sparsity\n\n"
        f"Judged on mean test metrics over seeds (at least {min_seeds} seeds per variant needed).\n\n"
        + claims_md + "\n"
    )

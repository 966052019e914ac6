"""The CoFi-transfer benchmark's arithmetic: the report built from a synthetic rows table, resuming by rows,
and the interleaved speed comparison. No claim is tested here."""

import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from nas_pruning.cofi.report import FAILS, HOLDS, KEY, MISSING, build_report, claims, variant_summary
from nas_pruning.cofi.speed import speed_comparison

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import cofi_transfer as benchmark  # noqa: E402

# Mean test metric per variant at 95% on STS-B (seed s adds s / 100): delta - none = +7 points; delta is
# beaten by delta-finetune; delta beats both what-to-transfer ablations.
STSB_95 = {"none": 0.30, "shared": 0.33, "independent": 0.32, "delta": 0.37, "delta-prune": 0.36,
           "delta-finetune": 0.38, "delta-weights": 0.20, "delta-structure": 0.35}  # fmt: skip


def synthetic_rows() -> pd.DataFrame:
    rows = []

    def add(target, aux, sparsity, variant, seed, test, speedup):
        rows.append(dict(
            grid="test", target=target, aux=aux, target_sparsity=sparsity, variant=variant, seed=seed,
            val_metric=test + 0.01, test_metric=test, trivial_val_metric=0.0, trivial_test_metric=0.0,
            teacher_val_metric=0.8, teacher_test_metric=0.79 + seed / 100, real_sparsity=sparsity + 0.0001,
            params=0.5, speedup_32x128=speedup, speedup_1x128=2.0, wall_s=600.0, cpu_s=1000.0, teacher_wall_s=100.0,
            teacher_cpu_s=180.0,
            target_examples=1000, max_length=128, prune_epochs=3, finetune_epochs=2,
        ))  # fmt: skip

    for seed in range(3):
        for variant, test in STSB_95.items():
            add("stsb", "mrpc", 0.95, variant, seed, test + seed / 100, 4.0 if variant == "none" else 6.0)
        add("stsb", "mrpc", 0.9, "none", seed, 0.5, 3.0)
    for seed in range(2):  # SST-2: two seeds only
        for variant in STSB_95:
            add("sst2", "cola", 0.95, variant, seed, 0.7, 6.0)
    return pd.DataFrame(rows)


def test_variant_summary_has_means_and_sample_std_over_seeds():
    summary = variant_summary(synthetic_rows()).set_index(["target", "target_sparsity", "variant"])
    none = summary.loc[("stsb", 0.95, "none")]
    assert none["seeds"] == 3 and none["test"] == pytest.approx(0.31) and none["test_std"] == pytest.approx(0.01)
    assert none["teacher"] == pytest.approx(0.80) and none["speedup_32x128"] == 4.0 and none["wall_min"] == 10.0
    assert summary.loc[("stsb", 0.9, "none")]["test"] == pytest.approx(0.5)


def test_claims_are_judged_from_the_rows():
    judged = {(c["target"], c["claim"].split(" ")[0]): c for c in claims(synthetic_rows())}
    assert judged[("stsb + mrpc", "delta")]["verdict"] == HOLDS
    assert judged[("stsb + mrpc", "delta")]["ours"].startswith("+7.0 points")
    assert judged[("stsb + mrpc", "delta")]["paper"] == "about +5 points"
    both_stages = judged[("stsb + mrpc", "both")]
    assert both_stages["verdict"] == FAILS and "delta - delta-finetune = -1.0 points" in both_stages["ours"]
    transfer = judged[("stsb + mrpc", "weights")]
    assert transfer["verdict"] == HOLDS and "delta - delta-structure = +2.0 points" in transfer["ours"]
    speed = judged[("stsb + mrpc", "speedup")]
    assert speed["verdict"] == FAILS and "slowest variant none 4.0x" in speed["ours"]
    real = judged[("stsb + mrpc", "best")]
    assert real["verdict"] == HOLDS and real["ours"].startswith("delta 0.380")
    # Two seeds of SST-2: every accuracy claim lacks rows; the speedup is measured.
    assert judged[("sst2 + cola", "delta")]["verdict"] == MISSING
    assert judged[("sst2 + cola", "both")]["verdict"] == MISSING
    assert judged[("sst2 + cola", "speedup")]["verdict"] == HOLDS
    assert ("sst2 + cola", "best") not in judged  # the issue sets that bar for STS-B only


def test_a_claim_turns_with_the_numbers():
    rows = synthetic_rows()
    rows.loc[rows["variant"] == "delta", "test_metric"] -= 0.03  # delta - none = +4 points
    judged = {(c["target"], c["claim"].split(" ")[0]): c["verdict"] for c in claims(rows)}
    assert judged[("stsb + mrpc", "delta")] == FAILS


def test_report_is_built_from_rows_alone():
    report = build_report(synthetic_rows())
    assert "| stsb + mrpc | 0.95       | none            | 3       | 0.310 ± 0.010" in report
    assert "Compute in the rows: 7.17 h wall time of runs plus 0.14 h of teachers (12.19 h of process CPU" in report
    assert report.count(MISSING) == 3  # SST-2: delta - none, both stages, weights + structure
    assert "No rows yet" in build_report(pd.DataFrame(columns=list(synthetic_rows().columns)))


def test_planned_runs_and_resuming_by_rows(tmp_path):
    args = benchmark.parse_args(["--rows", str(tmp_path / "rows.csv"), "--work-dir", str(tmp_path)])
    runs = benchmark.planned_runs(args)
    assert len(runs) == 2 * 3 * (4 + 8)  # pairs x seeds x (couplings at 90% + all variants at 95%)
    benchmark.bench_rows.append(args.rows, {**runs[0], "test_metric": 0.5})
    benchmark.bench_rows.append(args.rows, {**runs[1], "test_metric": 0.6})
    rows = benchmark.bench_rows.read(args.rows)
    assert rows["test_metric"].tolist() == [0.5, 0.6] and not list(tmp_path.glob("*.tmp"))
    done = benchmark.bench_rows.done(args.rows, list(KEY))
    assert [benchmark.run_key(run) in done for run in runs[:3]] == [True, True, False]
    with pytest.raises(SystemExit, match="not in grid"):
        benchmark.planned_runs(benchmark.parse_args(["--pairs", "rte:qnli"]))


class Clock:
    """A fake perf_counter that only the stand-in models advance."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Recorder(nn.Module):
    """A stand-in model that logs its forward passes, each taking `seconds` on `clock`
    (its first `slow_passes` take a second: the warm-up a fair comparison must drop)."""

    def __init__(self, name: str, log: list, clock: Clock, seconds: float, slow_passes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.config = type("Config", (), {"vocab_size": 2000})()
        self.name, self.log, self.clock, self.seconds, self.slow_passes = name, log, clock, seconds, slow_passes

    def forward(self, input_ids, attention_mask):
        self.log.append((self.name, tuple(input_ids.shape)))
        self.clock.now += 1.0 if self.slow_passes > 0 else self.seconds
        self.slow_passes -= 1


def test_speed_comparison_interleaves_after_warmup_and_reports_median_and_iqr(monkeypatch):
    log, clock = [], Clock()
    monkeypatch.setattr("nas_pruning.cofi.speed.time.perf_counter", clock)
    slow, fast = Recorder("unpruned", log, clock, 0.02, 2), Recorder("pruned", log, clock, 0.005, 2)
    speed = speed_comparison(slow, fast, shapes=((4, 16), (1, 16)), repeats=5, warmup=2)
    assert log == [(name, (4, 16)) for _ in range(7) for name in ("unpruned", "pruned")] + [
        (name, (1, 16)) for _ in range(7) for name in ("unpruned", "pruned")
    ]
    for shape in ("4x16", "1x16"):
        assert speed[f"speedup_{shape}"] == pytest.approx(4.0) and speed[f"speedup_{shape}_iqr"] == pytest.approx(0)
        assert speed[f"baseline_latency_{shape}"] == pytest.approx(0.02)
        assert speed[f"latency_{shape}"] == pytest.approx(0.005)


def test_benchmark_appends_a_row_per_run_skips_it_on_rerun_and_rebuilds_the_report(
    glue_path, tmp_path, monkeypatch, capsys
):
    """The row pipeline end to end on a tiny random BERT (a 2-run grid): a row per finished run with
    the trivial predictor, the teacher and the speed comparison; a rerun runs nothing."""
    from transformers import BertConfig, BertForSequenceClassification

    from nas_pruning.models import load_tokenizer

    model_dir = tmp_path / "tiny-bert"
    tokenizer = load_tokenizer()
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=12, max_position_embeddings=128)  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    settings = dict(
        target_examples=16, max_aux_examples=32, max_eval_examples=16, max_length=32, batch_size=8, teacher_epochs=1,
        prune_epochs=1, finetune_epochs=1, latency_batch_size=4, latency_seq_len=16, latency_repeats=1,
    )  # fmt: skip
    grid = benchmark.Grid(pairs=(("rte", "qnli"),), variants={0.5: ["none", "delta"]}, seeds=(0,), settings=settings,
                          speed_repeats=1)  # fmt: skip
    monkeypatch.setitem(benchmark.GRIDS, "tiny", grid)
    argv = ["--grid", "tiny", "--model", str(model_dir), "--data-dir", str(glue_path), "--threads", "1",
            "--work-dir", str(tmp_path / "work"), "--rows", str(tmp_path / "rows.csv"),
            "--report", str(tmp_path / "report.md")]  # fmt: skip
    benchmark.main(argv)
    rows = pd.read_csv(tmp_path / "rows.csv")
    assert rows["variant"].tolist() == ["none", "delta"] and rows["coupling"].tolist() == ["none", "delta"]
    assert rows["pooling"].tolist() == ["cls", "cls"]  # a tiny BERT declares no sentence-transformers pooling
    # A constant class on RTE's dev split (131 entailment of 277), the same for both runs (one teacher, one seed).
    assert rows["trivial_test_metric"].nunique() == 1 and rows["trivial_test_metric"][0] in (131 / 277, 146 / 277)
    for column in ("val_metric", "test_metric", "teacher_test_metric", "real_sparsity", "params", "speedup_32x128",
                   "speedup_1x128_iqr", "wall_s", "cpu_s", "teacher_wall_s"):  # fmt: skip
        assert rows[column].notna().all(), column
    assert "## Results per variant" in (tmp_path / "report.md").read_text()
    capsys.readouterr()
    benchmark.main(argv)
    assert "[1/2]" not in capsys.readouterr().out and len(pd.read_csv(tmp_path / "rows.csv")) == 2

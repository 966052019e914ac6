"""CoFi runs end to end: bad input, a tiny run on real GLUE rows, resuming, divergence,
the CLI, the Syne Tune backend (two trials under LocalBackend) and one MiniLM run."""

import argparse
import json

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

from nas_pruning.cofi import CoFiConfig, TrainingDiverged, run_cofi
from nas_pruning.cofi.pipeline import run_checkpoint
from nas_pruning.cli.cofi import add_commands
from nas_pruning.cofi.data import load_transfer_data
from nas_pruning.evaluation import evaluate
from nas_pruning.models import count_parameters, load_model, load_tokenizer
from nas_pruning.tasks import get_task, make_loader



@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A tiny random BERT with MiniLM's vocabulary and tokenizer, saved as a model folder."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = load_tokenizer()
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=12, max_position_embeddings=64,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_config(model_dir, glue_path, tmp_path, **settings) -> CoFiConfig:
    values = dict(
        task="rte", aux_task="qnli", coupling="delta", model=str(model_dir), data_dir=str(glue_path),
        target_examples=16, max_aux_examples=32, max_eval_examples=16, max_length=32, batch_size=8,
        teacher_epochs=1, prune_epochs=2, finetune_epochs=1, target_sparsity=0.5,
        latency_batch_size=4, latency_seq_len=16, latency_repeats=1, num_threads=1, cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    return CoFiConfig(**{**values, **settings})


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="nas-pruning")
    add_commands(root.add_subparsers(dest="command", required=True))
    return root


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"target_sparsity": 1.0}, "strictly between 0 and 1"),
        ({"target_sparsity": 0.0}, "strictly between 0 and 1"),
        ({"aux_task": "rte"}, "must differ from the target task"),
        ({"coupling": "tied"}, "unknown coupling 'tied'; accepted: none, shared, independent, delta"),
        ({"stage": "later"}, "unknown stage"),
        ({"transfer": "everything"}, "unknown transfer"),
        ({"aux_task": "imdb"}, "unknown task 'imdb'"),
        ({"task": "mnli", "aux_task": None}, "needs an auxiliary task"),
        ({"prune_epochs": 0}, "prune_epochs must be at least 1"),
        ({"gate_learning_rate": float("nan")}, "gate_learning_rate must be a positive number"),
        ({"gate_kinds": "head,neuron"}, "gate kinds must be a non-empty subset"),
    ],
)
def test_bad_settings_give_clear_errors(settings, message):
    with pytest.raises(ValueError, match=message):
        CoFiConfig(**{"task": "rte", **settings})


def test_more_target_examples_than_exist_is_refused(glue_path):
    config = CoFiConfig(task="rte", coupling="none", target_examples=5000, data_dir=str(glue_path))
    with pytest.raises(ValueError, match="--target-examples 5000 is too many for 'rte'"):
        load_transfer_data(config, load_tokenizer())


def test_cli_rejects_bad_input_before_any_work():
    with pytest.raises(SystemExit):  # argparse: outside (0, 1)
        parser().parse_args(["cofi", "--task", "rte", "--target-sparsity", "1.5"])
    with pytest.raises(ValueError, match="strictly between 0 and 1"):  # the same check without the command line
        CoFiConfig(task="rte", target_sparsity=1.5)
    with pytest.raises(SystemExit):  # argparse: not a number
        parser().parse_args(["cofi", "--target-examples", "many"])


def test_cofi_commands_take_threads_like_the_other_commands():
    for command in ("cofi", "cofi-search"):
        assert parser().parse_args([command, "--threads", "3"]).num_threads == 3
        assert parser().parse_args([command, "--num-threads", "2"]).num_threads == 2


def test_data_uses_the_auxiliary_dev_split_when_there_is_no_train_split(glue_path):
    config = CoFiConfig(task="rte", aux_task="qnli", data_dir=str(glue_path), target_examples=16, max_aux_examples=40)
    data = load_transfer_data(config, load_tokenizer())
    assert len(data.target.train) == 16 and len(data.auxiliary.train) == 40
    assert data.auxiliary.task.name == "qnli" and len(data.target.test) == 277  # test = RTE's GLUE dev split
    alone = CoFiConfig(task="rte", coupling="none", data_dir=str(glue_path))
    assert load_transfer_data(alone, load_tokenizer()).auxiliary is None


# -- runs --------------------------------------------------------------------------------


def test_cli_run_reports_every_epoch_and_exports_a_plain_transformers_model(
    tiny_model_dir, glue_path, tmp_path, capsys
):
    config = tiny_config(tiny_model_dir, glue_path, tmp_path)
    options = [f"--{name.replace('_', '-')}={value}" for name, value in config.to_dict().items() if value is not None]
    args = parser().parse_args(["cofi", *options, "--output-dir", str(tmp_path / "run")])
    args.func(args)
    assert "pruned model:" in capsys.readouterr().out
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3]
    assert history["stage"].tolist() == ["prune", "prune", "finetune"]
    for column in ("error", "params", "sparsity", "speedup", "latency"):
        assert history[column].notna().all(), column
    final = json.loads((tmp_path / "run" / "result.json").read_text())["result"]
    assert 0.5 <= final["sparsity"] < 0.55 and final["params"] < 1
    # The saved model loads with plain transformers and reproduces the reported test score.
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run" / "model", trust_remote_code=True)
    data = load_transfer_data(config, load_tokenizer(str(tmp_path / "run" / "model")))
    scores = evaluate(model, make_loader(data.target.test, data.tokenizer, 8), get_task("rte"))
    assert scores["metric"] == pytest.approx(final["test_metric"])
    assert not (tmp_path / "run" / "checkpoint" / "state.pt").exists()  # cleared after success


class Interrupt(Exception):
    pass


def interrupt_run(config, tmp_path, after: int) -> None:
    """Run `config` into tmp_path/out (checkpoints in tmp_path/ckpt) and stop it once epoch `after` is reported."""

    def interrupt(row):
        if row["epoch"] == after:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_cofi(config, tmp_path / "out", interrupt, tmp_path / "ckpt", progress=False)


@pytest.mark.parametrize("interrupted_after", [1, 3])  # a pruning epoch, a fine-tuning epoch
def test_interrupted_run_resumes_from_its_last_epoch(tiny_model_dir, glue_path, tmp_path, interrupted_after):
    config = tiny_config(tiny_model_dir, glue_path, tmp_path, coupling="shared", prune_epochs=2, finetune_epochs=2)
    interrupt_run(config, tmp_path, interrupted_after)
    assert (tmp_path / "ckpt" / "state.pt").exists()
    seen = []
    run_cofi(config, tmp_path / "out", lambda row: seen.append(row["epoch"]), tmp_path / "ckpt", progress=False)
    assert seen == list(range(interrupted_after + 1, 5))
    assert pd.read_csv(tmp_path / "out" / "history.csv")["epoch"].tolist() == [1, 2, 3, 4]


def final_state(folder) -> dict:
    """Weights of the exported model of a finished run (its masks are its shapes and folded gates)."""
    return load_model(str(folder / "model"), 2, False).state_dict()


@pytest.mark.parametrize("interrupted_after", [1, 2, 3])  # mid-pruning, the last pruning epoch, mid-fine-tuning
def test_killed_and_resumed_run_equals_an_uninterrupted_one_exactly(
    tiny_model_dir, glue_path, tmp_path, interrupted_after
):
    """Resuming restores everything that decides the result (RNG states, gates, multipliers, optimizers,
    step), so the exported model is bit-for-bit that of a run never stopped."""
    config = tiny_config(tiny_model_dir, glue_path, tmp_path, coupling="delta", prune_epochs=2, finetune_epochs=2)
    run_cofi(config, tmp_path / "whole", None, tmp_path / "whole-ckpt", progress=False)
    interrupt_run(config, tmp_path, interrupted_after)
    torch.manual_seed(12345)  # a fresh process starts from another RNG state
    run_cofi(config, tmp_path / "out", None, tmp_path / "ckpt", progress=False)
    whole, resumed = final_state(tmp_path / "whole"), final_state(tmp_path / "out")
    assert whole.keys() == resumed.keys()
    for name in whole:
        assert torch.equal(whole[name], resumed[name]), name
    history = {name: pd.read_csv(tmp_path / name / "history.csv") for name in ("whole", "out")}
    for column in ("error", "params", "sparsity", "test_metric"):
        assert history["whole"][column].equals(history["out"][column]), column


def test_checkpoint_written_with_other_settings_is_refused(tmp_path):
    run_checkpoint(tmp_path, CoFiConfig(task="rte")).save({"stage": "prune"})
    with pytest.raises(ValueError, match=r"other settings \(seed: checkpoint 0, now 1\)"):
        run_checkpoint(tmp_path, CoFiConfig(task="rte", seed=1)).load()
    assert run_checkpoint(tmp_path, CoFiConfig(task="rte", num_threads=1)).load()["stage"] == "prune"


def test_diverging_run_stops_with_a_message_and_writes_no_model(glue_path, tmp_path):
    folder = tmp_path / "nan-bert"
    tokenizer = load_tokenizer()
    model = BertForSequenceClassification(
        BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                   intermediate_size=12, max_position_embeddings=64)  # fmt: skip
    )
    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    config = tiny_config(folder, glue_path, tmp_path, coupling="none", teacher_epochs=0)
    with pytest.raises(TrainingDiverged, match="the loss became nan at pruning epoch 1"):
        run_cofi(config, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "model").exists()


# -- Syne Tune backend ------------------------------------------------------------------


def test_backend_runs_two_trials_under_local_backend(tiny_model_dir, glue_path, tmp_path):
    from nas_pruning.experiments.cofi_transfer import cofi_transfer_config_space, max_epochs, run_cofi_search

    fixed = tiny_config(tiny_model_dir, glue_path, tmp_path).to_dict()
    for name in ("task", "target_sparsity", "coupling", "lambda_delta", "aux_task", "stage", "transfer"):
        fixed.pop(name)
    space = cofi_transfer_config_space("rte", sparsity_range=(0.3, 0.7), couplings=("none", "delta"), **fixed)
    assert max_epochs(space) == 3
    tables = run_cofi_search(space, tmp_path / "search", optimizer="random", n_trials=2)
    results = tables["results"]
    assert sorted(results["trial_id"].unique()) == [0, 1]
    assert results.groupby("trial_id")["epoch"].max().tolist() == [3, 3]  # reported every epoch
    assert {"error", "params", "speedup"} <= set(results.columns)
    for name in ("results.csv", "pareto.csv", "hypervolume.csv", "summary.json", "pareto_front.png"):
        assert (tmp_path / "search" / name).exists(), name
    front = pd.read_csv(tmp_path / "search" / "pareto.csv")
    assert len(front) >= 1 and all(AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True)
                                   for path in front["model_dir"])  # fmt: skip
    assert len(list((tmp_path / "search" / "syne-tune").glob("cofi-transfer*/*/result/model"))) == 2
    assert np.isfinite(json.loads((tmp_path / "search" / "summary.json").read_text())["hypervolume"])


# -- MiniLM -------------------------------------------------------------------------------


@pytest.mark.integration
def test_minilm_run_meets_the_target_sparsity_and_speeds_up(glue_path, tmp_path):
    config = CoFiConfig(
        task="mrpc", aux_task="stsb", coupling="delta", data_dir=str(glue_path), target_examples=32,
        max_aux_examples=32, max_eval_examples=32, max_length=32, batch_size=16, teacher_epochs=1,
        prune_epochs=1, finetune_epochs=1, target_sparsity=0.9, latency_batch_size=8, latency_seq_len=64,
        latency_repeats=2, num_threads=1, cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    final = run_cofi(config, tmp_path / "out", progress=False)
    assert 0.9 <= final["sparsity"] < 0.91
    assert final["speedup"] > 1.5 and final["params"] < 0.7
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out" / "model", trust_remote_code=True)
    full = count_parameters(load_model(None, num_labels=2))
    assert sum(p.numel() for p in loaded.parameters()) / full == pytest.approx(final["params"], rel=1e-9)


def test_a_search_fixes_only_the_shared_settings_that_differ_from_their_defaults():
    from nas_pruning.experiments.cofi_transfer import fixed_settings

    fields = CoFiConfig.__dataclass_fields__
    values = {
        "task": "stsb",  # the search's own target
        "target_sparsity": 0.9,  # searched
        "prune_epochs": fields["prune_epochs"].default + 1,  # changed: fixed for every trial
        "finetune_epochs": fields["finetune_epochs"].default,  # at its default: left out
        "output_dir": "somewhere",  # not a CoFi setting
    }
    assert fixed_settings(values) == {"prune_epochs": fields["prune_epochs"].default + 1}

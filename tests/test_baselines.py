"""Baselines: head pruning, layer dropping, retraining-free pruning, standard NAS."""

import argparse
import copy
import itertools
import json
import re

import pandas as pd
import pytest
import torch
from conftest import tiny_model
from transformers import AutoModelForSequenceClassification

from nas_pruning.baselines.data import BaselineData, load_baseline_data
from nas_pruning.baselines.head_pruning import head_importance, head_pruning
from nas_pruning.baselines.layer_drop import layer_drop, top_layers_dropped
from nas_pruning.baselines.mask_gradients import MaskGradients, mask_gradients
from nas_pruning.baselines.mask_tuning import tune_masks
from nas_pruning.arguments import ratio
from nas_pruning.baselines.registry import BASELINES, PruningBaseline, get_baseline, option
from nas_pruning.baselines.results import RESULT_COLUMNS, ResultsTable
from nas_pruning.baselines.retraining_free import (
    FisherInformation,
    MaskCosts,
    prune_retraining_free,
    pruning_loss,
    rearrange_masks,
    retraining_free,
    search_masks,
)
from nas_pruning.baselines import standard_nas as standard_nas_module
from nas_pruning.baselines.standard_nas import train_candidate
from nas_pruning.cli.baselines import add_commands
from nas_pruning.experiments.standard_nas import standard_nas
from nas_pruning.models import SubNetwork, count_parameters, extract_subnetwork, get_adapter, load_tokenizer
from nas_pruning.models.importance import importance_scores
from nas_pruning.supernet import TrainingConfig
from nas_pruning.tasks import get_task


def random_batches(num_batches, seed, batch_size=8, length=10):
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(num_batches):
        input_ids = torch.randint(3, 60, (batch_size, length), generator=generator)
        attention_mask = torch.ones_like(input_ids)
        attention_mask[: batch_size // 2, length - 3 :] = 0
        labels = torch.randint(0, 3, (batch_size,), generator=generator)
        batches.append({"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels})
    return batches


@pytest.fixture
def data():
    return BaselineData(get_task("mnli"), random_batches(3, 0), random_batches(2, 1), random_batches(1, 2))


def single_examples(batches):
    return [{k: v[i : i + 1] for k, v in batch.items()} for batch in batches for i in range(len(batch["labels"]))]


def numel(model):
    return sum(p.numel() for p in model.parameters())


def parse_mask(text):
    return torch.tensor([[c == "1" for c in layer] for layer in text.split("|")])


# -- mask gradients ----------------------------------------------------------------


def test_mask_gradients_are_per_example_gradients(family, data):
    model = tiny_model(family)
    sample = data.sample(10)
    grads = mask_gradients(model, sample)
    heads, units = importance_scores(model, single_examples(sample))  # one example per batch
    assert torch.allclose(grads.heads.abs().sum(0), heads, atol=1e-6)
    assert torch.allclose(grads.units.abs().sum(0), units, atol=1e-6)
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


def test_mask_gradients_of_a_subnetwork_are_those_of_the_extracted_model(data):
    model = tiny_model("bert")
    dims = get_adapter(model).dims(model.config)
    sub = SubNetwork.from_counts(dims, [4, 0, 4], [12, 0, 12])  # layer 1 dropped
    sample = data.sample(10)
    grads = mask_gradients(model, sample, sub)
    two_layers = copy.deepcopy(model)  # the same network built by hand: layer 1 removed
    two_layers.bert.encoder.layer = torch.nn.ModuleList([two_layers.bert.encoder.layer[i] for i in (0, 2)])
    two_layers.config.num_hidden_layers = 2
    heads, units = importance_scores(two_layers, single_examples(sample))
    assert torch.allclose(grads.heads.abs().sum(0)[[0, 2]], heads, atol=1e-6)
    assert torch.allclose(grads.units.abs().sum(0)[[0, 2]], units, atol=1e-6)
    assert not grads.heads[:, 1].any() and not grads.units[:, 1].any()


# -- head pruning -----------------------------------------------------------------


def test_head_pruning_removes_heads_in_importance_order(data):
    model = tiny_model("bert")
    dims = get_adapter(model).dims(model.config)
    results = head_pruning(model, data, heads_per_step=3, num_examples=12, progress=False)
    assert list(results.columns[: len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    assert results["step"].tolist() == [0, 1, 2, 3, 4]
    assert results["num_heads"].tolist() == [12, 9, 6, 3, 0]
    masks = [parse_mask(text) for text in results["head_mask"]]
    sample = data.sample(12)
    # Step 1, checked against Michel et al.'s importance on single examples, normalised per layer.
    scores, _ = importance_scores(model, single_examples(sample))
    scores = scores / scores.norm(dim=1, keepdim=True)
    removed = set(torch.nonzero(~masks[1].flatten()).flatten().tolist())
    assert removed == set(torch.argsort(scores.flatten())[:3].tolist())
    # Later steps: the removed heads are the least important of the network pruned so far.
    for before, after in zip(masks[1:-2], masks[2:-1]):  # the last step removes all that is left
        importance = head_importance(model, sample, SubNetwork(before, torch.ones(3, 12, dtype=torch.bool)))
        removed = importance[before & ~after]
        assert removed.max() <= importance[after].min()
    for row, mask in zip(results.itertuples(), masks):
        sub = SubNetwork(mask, torch.ones(dims.num_layers, dims.intermediate_size, dtype=torch.bool))
        assert row.params == numel(extract_subnetwork(model, sub)) / numel(model)


def test_head_pruning_resumes_from_its_table(tmp_path, data):
    model = tiny_model("roberta")
    path = tmp_path / "heads.csv"
    full = head_pruning(model, data, heads_per_step=4, num_examples=16, results_path=path, progress=False)
    pd.read_csv(path).iloc[:2].to_csv(path, index=False)  # as if stopped after step 1
    resumed = head_pruning(model, data, heads_per_step=4, num_examples=16, results_path=path, progress=False)
    assert resumed["head_mask"].tolist() == full["head_mask"].tolist()
    assert resumed["wall_time"].is_monotonic_increasing
    assert len(pd.read_csv(path)) == 4


# -- layer dropping -------------------------------------------------------------


def test_layer_drop_rows_shrink_monotonically(data):
    model = tiny_model("bert")
    results = layer_drop(model, data, progress=False)
    assert results["k"].tolist() == [0, 1, 2]
    assert results["params"].is_monotonic_decreasing and results["params"].is_unique
    dims = get_adapter(model).dims(model.config)
    for row in results.itertuples():
        assert row.params == numel(extract_subnetwork(model, top_layers_dropped(dims, row.k))) / numel(model)
    assert results["error"].iloc[0] == data.score(model)["error"]  # k = 0 is the model itself
    with pytest.raises(ValueError, match="can drop 0 to 2"):
        top_layers_dropped(dims, 3)


def test_layer_drop_with_refinetuning(tmp_path, data):
    model = tiny_model("bert")
    before = copy.deepcopy(model.state_dict())
    config = TrainingConfig(epochs=1, learning_rate=1e-3, num_threads=1)
    results = layer_drop(model, data, finetune=config, models_dir=tmp_path, progress=False)
    assert set(results["method"]) == {"layer_drop+finetune"}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the source is untouched
    dropped = extract_subnetwork(model, top_layers_dropped(get_adapter(model).dims(model.config), 2))
    path = results["model_path"].iloc[2]
    finetuned = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True)
    assert results["params"].iloc[2] == numel(finetuned) / numel(model) == numel(dropped) / numel(model)
    assert any(not torch.equal(a, b) for a, b in zip(finetuned.state_dict().values(), dropped.state_dict().values()))


# -- retraining-free pruning ---------------------------------------------------


def test_mask_search_is_the_best_selection_within_the_budget():
    torch.manual_seed(0)
    head_fisher, unit_fisher = torch.rand(2, 2), torch.rand(2, 3)
    costs = MaskCosts(head=3.0, unit=1.0)
    total = 4 * 3.0 + 6 * 1.0
    for budget in (0.2, 0.35, 0.5, 0.8, 1.0):
        sub = search_masks(head_fisher, unit_fisher, costs, budget)
        assert costs.of_subnetwork(sub) <= budget * total + 1e-9
        best = 0.0
        for heads in itertools.product([False, True], repeat=4):
            for units in itertools.product([False, True], repeat=6):
                h, u = torch.tensor(heads), torch.tensor(units)
                if 3.0 * h.sum() + u.sum() <= budget * total:
                    best = max(best, float(head_fisher.flatten()[h].sum() + unit_fisher.flatten()[u].sum()))
        kept = float(head_fisher[sub.head_mask].sum() + unit_fisher[sub.ffn_mask].sum())
        assert kept == pytest.approx(best)
    with pytest.raises(ValueError, match="budget"):
        search_masks(head_fisher, unit_fisher, costs, 1.5)


def test_mask_rearrangement_uses_the_layer_fisher_block():
    # Units 0 and 1 have large, opposite gradients: pruning both costs nothing,
    # though each alone looks expensive on the diagonal.
    g = torch.randn(50, 1)
    units = torch.cat([g, -g, 0.3 * torch.randn(50, 1), 2 * torch.randn(50, 1)], dim=1)[:, None, :]  # [N, 1, 4]
    heads = torch.randn(50, 1, 2)
    fisher = FisherInformation.from_gradients(MaskGradients(heads, units))
    searched = SubNetwork(torch.tensor([[True, True]]), torch.tensor([[True, True, False, False]]))  # prunes 2, 3
    rearranged = rearrange_masks(searched, fisher)
    assert rearranged.ffn_mask.tolist() == [[False, False, True, True]]
    assert rearranged.head_mask.tolist() == [[True, True]]
    assert pruning_loss(~rearranged.ffn_mask[0], fisher.units[0]) < pruning_loss(~searched.ffn_mask[0], fisher.units[0])


def _pre_layernorm_sums(model, batches):
    """The first layer's attention sum before its LayerNorm, on real tokens."""
    layer = model.base_model.encoder.layer[0]
    sums = []
    hook = layer.attention.output.LayerNorm.register_forward_pre_hook(lambda m, args: sums.append(args[0]))
    with torch.no_grad():
        for batch in batches:
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    hook.remove()
    return torch.cat([s[b["attention_mask"].bool()] for s, b in zip(sums, batches)])


def test_mask_tuning_lowers_the_reconstruction_error(family, data):
    model = tiny_model(family)
    dims = get_adapter(model).dims(model.config)
    sub = SubNetwork.from_counts(dims, [2, 3, 1], [6, 9, 3])
    tuned = copy.deepcopy(model)
    fits = tune_masks(tuned, sub, data.train)
    assert [(f.layer, f.block) for f in fits] == [(i, b) for i in range(3) for b in ("attention", "ffn")]
    assert all(f.error_after <= f.error_before for f in fits) and any(f.error_after < f.error_before for f in fits)
    # Measured independently on the first layer, whose input is the same in all three models.
    target = _pre_layernorm_sums(model, data.train)
    untuned_error = (_pre_layernorm_sums(extract_subnetwork(model, sub), data.train) - target).pow(2).sum()
    tuned_error = (_pre_layernorm_sums(extract_subnetwork(tuned, sub), data.train) - target).pow(2).sum()
    assert float(untuned_error) == pytest.approx(fits[0].error_before, rel=1e-3)
    assert float(tuned_error) == pytest.approx(fits[0].error_after, rel=1e-3, abs=1e-6)
    assert tuned_error < untuned_error


def test_full_budget_keeps_the_model(data):
    model = tiny_model("bert")
    result = prune_retraining_free(model, 1.0, data.train)
    assert bool(result.sub.head_mask.all()) and bool(result.sub.ffn_mask.all())
    assert all(torch.allclose(f.scales, torch.ones_like(f.scales), atol=1e-3) for f in result.fits)
    with torch.no_grad():
        batch = {k: v for k, v in data.validation[0].items() if k != "labels"}
        assert torch.allclose(result.model(**batch).logits, model(**batch).logits, atol=1e-4)


def test_retraining_free_rows_respect_budgets_and_export(tmp_path, data):
    model = tiny_model("roberta")
    dims = get_adapter(model).dims(model.config)
    results = retraining_free(model, data, budgets=(0.3, 0.6), num_examples=20, models_dir=tmp_path, progress=False)
    assert results["budget"].tolist() == [0.3, 0.6]
    assert (results["cost_ratio"] <= results["budget"] + 1e-9).all()
    costs = MaskCosts.of(dims)
    for row in results.itertuples():
        reloaded = AutoModelForSequenceClassification.from_pretrained(row.model_path, trust_remote_code=True)
        assert row.params == numel(reloaded) / count_parameters(model)
        heads, units = json.loads(row.heads), json.loads(row.units)
        assert (sum(heads) * costs.head + sum(units) * costs.unit) / costs.total(dims) == pytest.approx(row.cost_ratio)
        assert row.error == pytest.approx(data.score(reloaded)["error"])
    flops = retraining_free(model, data, budgets=(0.5,), cost="flops", seq_len=10, num_examples=20, progress=False)
    assert flops["cost_ratio"].iloc[0] <= 0.5
    with pytest.raises(ValueError, match="unknown cost"):
        retraining_free(model, data, cost="latency")


# -- standard NAS -------------------------------------------------------------------


@pytest.fixture
def pretrained_folder(tmp_path):
    """A tiny BERT with MiniLM's tokenizer, saved like a pre-trained checkpoint."""
    tokenizer = load_tokenizer(None)
    model = tiny_model("bert", vocab_size=tokenizer.vocab_size, max_position_embeddings=64, num_labels=2)
    folder = tmp_path / "pretrained"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_glue(tmp_path):
    """An RTE folder with a few dozen made-up rows."""
    folder = tmp_path / "glue" / "RTE"
    folder.mkdir(parents=True)
    words = ["the cat sat", "a dog ran", "it rained today", "birds can fly", "the sun is hot", "fish swim"]
    for name, rows in (("train.tsv", 40), ("dev.tsv", 12)):
        lines = ["index\tsentence1\tsentence2\tlabel"]
        for i in range(rows):
            label = "entailment" if i % 2 else "not_entailment"
            lines.append(f"{i}\t{words[i % 6]} here\t{words[(i * 5) % 6]}\t{label}")
        (folder / name).write_text("\n".join(lines) + "\n")
    return folder.parent


def test_standard_nas_trial_reports_every_epoch(pretrained_folder, tiny_glue, capsys):
    config = dict(
        num_layers=2, num_heads=3, num_units=5, task="rte", model=str(pretrained_folder), epochs=2, seed=0,
        data_dir=str(tiny_glue), batch_size=8, learning_rate=1e-3, max_train_examples=None, max_length=32,
        num_threads=1,
    )
    train_candidate(config)
    reports = [json.loads(line) for line in re.findall(r"\[tune-metric\]: (\{.*\})", capsys.readouterr().out)]
    assert [r["epoch"] for r in reports] == [1, 2]
    model = tiny_model("bert", vocab_size=load_tokenizer(None).vocab_size, max_position_embeddings=64, num_labels=2)
    dims = get_adapter(model).dims(model.config)
    sub = SubNetwork.from_counts(dims, [3, 3, 0], [5, 5, 0])
    assert reports[0]["params"] == numel(extract_subnetwork(model, sub)) / numel(model)
    assert all(0.0 <= r["error"] <= 1.0 and 0.0 <= r["test_error"] <= 1.0 for r in reports)


def test_standard_nas_trial_keeps_the_given_split(monkeypatch, pretrained_folder, tiny_glue):
    """Standard NAS at another seed is scored on the validation examples of the split it is given."""
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return load_baseline_data(*args, **kwargs)

    monkeypatch.setattr(standard_nas_module, "load_baseline_data", spy)
    config = dict(
        num_layers=1, num_heads=1, num_units=1, task="rte", model=str(pretrained_folder), epochs=1, seed=1,
        split_seed=0, data_dir=str(tiny_glue), batch_size=8, learning_rate=1e-3, max_length=32, num_threads=1,
    )
    train_candidate(config)
    assert [(call["seed"], call["split_seed"]) for call in calls] == [(1, 0)]


@pytest.mark.integration
def test_standard_nas_runs_under_moasha(tmp_path, pretrained_folder, tiny_glue):
    results = standard_nas(
        "rte", model=str(pretrained_folder), optimizer="moasha", epochs=2, max_trials=2, n_workers=2,
        data_dir=tiny_glue, batch_size=8, learning_rate=1e-3, max_length=32, num_threads=1,
        output_dir=tmp_path / "nas", seed=1, split_seed=0,
    )
    assert (results["config_split_seed"] == 0).all() and (results["config_seed"] == 1).all()
    assert list(results.columns[: len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    assert results["trial_id"].nunique() >= 2
    assert set(results["method"]) == {"standard_nas"}
    assert results["epoch"].between(1, 2).all()
    largest = results[results["trial_id"] == 0]
    assert (largest["params"] == 1.0).all() and largest["config_num_layers"].iloc[0] == 3
    assert (results["params"] > 0).all() and results["wall_time"].is_monotonic_increasing
    assert pd.read_csv(tmp_path / "nas" / "results.csv").shape == results.shape


def test_a_method_seed_keeps_the_models_split(tmp_path):
    """Seeds of a pruning method vary its samples, not which examples are validation."""
    folder = tmp_path / "RTE"
    folder.mkdir()
    labels = ("not_entailment", "entailment")
    rows = [f"{i}\tsentence number {i}\tanother one {i}\t{labels[i % 2]}" for i in range(60)]
    for name in ("train.tsv", "dev.tsv"):
        (folder / name).write_text("\n".join(["index\tsentence1\tsentence2\tlabel", *rows]) + "\n")
    tokenizer = load_tokenizer(None)

    def data(seed, split_seed):
        return load_baseline_data(
            "rte", tokenizer, tmp_path, seed=seed, split_seed=split_seed, max_validation_examples=10, max_length=32
        )

    def ids(batches):
        return sorted(map(tuple, torch.cat([b["input_ids"] for b in batches]).tolist()))

    base, reseeded, resplit = data(0, 0), data(1, 0), data(1, None)
    assert ids(reseeded.validation) == ids(base.validation)
    assert ids(reseeded.train) == ids(base.train)
    assert ids(reseeded.sample(8)) != ids(base.sample(8))
    assert ids(resplit.validation) != ids(base.validation)


# -- command line -------------------------------------------------------------------


def _parse(argv):
    parser = argparse.ArgumentParser(prog="nas-pruning")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_baseline_commands_write_the_results_table(tmp_path, pretrained_folder, tiny_glue, capsys):
    for method, extra in (("layer-drop", []), ("retraining-free", ["--budgets", "0.5", "--num-examples", "16"])):
        output = tmp_path / method
        args = _parse(
            ["baseline", method, "--task", "rte", "--model", str(pretrained_folder), "--data-dir", str(tiny_glue),
             "--max-length", "32", "--batch-size", "8", "--threads", "1", "--output-dir", str(output), *extra]
        )
        args.func(args)
        table = pd.read_csv(output / "results.csv")
        assert list(table.columns[: len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
        assert str(output / "results.csv") in capsys.readouterr().out
    with pytest.raises(SystemExit):
        _parse(["baseline", "head-pruning", "--task", "rte"])  # a fine-tuned model is required
    args = _parse(["baseline", "layer-drop", "--task", "mnli", "--model", str(pretrained_folder)])
    with pytest.raises(ValueError, match="has 2 outputs but task 'mnli' needs 3"):
        args.func(args)


def test_a_registered_method_is_a_baseline_command(tmp_path, pretrained_folder, tiny_glue, capsys, monkeypatch):
    """One function plus one registry entry make `nas-pruning baseline <name>`: its own options reach the
    function by name, re-fine-tuning options become a TrainingConfig, the results table is written and shown."""
    seen = {}

    def keep_all(model, data, keep, finetune, results_path, models_dir):
        seen.update(keep=keep, finetune=finetune)
        table = ResultsTable("keep_all", results_path, models_dir)
        table.add_model(model, count_parameters(model), data, name="all", keep=keep)
        return table.frame

    entry = PruningBaseline(keep_all, "keep every weight", (option("--keep", type=ratio, default=1.0),), True)
    monkeypatch.setitem(BASELINES, "keep-all", entry)
    output = tmp_path / "keep"
    args = _parse(
        ["baseline", "keep-all", "--task", "rte", "--model", str(pretrained_folder), "--data-dir", str(tiny_glue),
         "--max-length", "32", "--batch-size", "8", "--threads", "1", "--keep", "0.5", "--finetune-epochs", "2",
         "--output-dir", str(output), "--save-models"]
    )
    args.func(args)
    assert seen["keep"] == 0.5 and seen["finetune"].epochs == 2 and seen["finetune"].batch_size == 8
    table = pd.read_csv(output / "results.csv")
    assert table["method"].tolist() == ["keep_all"] and table["params"].tolist() == [1.0]
    assert (output / "models" / "all" / "config.json").is_file()
    assert f"results: {output / 'results.csv'}" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown baseline 'nope'; registered: head-pruning, layer-drop"):
        get_baseline("nope")

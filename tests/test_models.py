import numpy as np
import pytest
import torch
from conftest import tiny_model
from transformers import AutoModelForSequenceClassification

from nas_pruning.models import SubNetwork, count_parameters, extract_subnetwork, get_adapter, select_subnetwork
from nas_pruning.models.importance import importance_scores, reorder_by_importance
from nas_pruning.search_spaces import SEARCH_SPACES, get_search_space


def logits(model, batch):
    with torch.no_grad():
        return model(**batch).logits


@pytest.mark.parametrize("space_name", sorted(SEARCH_SPACES))
def test_random_configs_count_extract_and_select_agree(family, pooling, space_name, tiny_batch):
    model = tiny_model(family, pooling=pooling)
    space = get_search_space(space_name, model.config)
    rng = np.random.RandomState(0)
    configs = space.initial_design() + [space.sample(rng) for _ in range(50 if pooling == "cls" else 20)]
    for config in configs:
        sub = space.to_subnetwork(config)
        small = extract_subnetwork(model, sub)
        assert count_parameters(model, sub) == sum(p.numel() for p in small.parameters()), config
        assert count_parameters(model.config, sub) == count_parameters(model, sub)
        with select_subnetwork(model, sub):
            shared = logits(model, tiny_batch)
        torch.testing.assert_close(logits(small, tiny_batch), shared, atol=1e-5, rtol=0)


def test_selection_restores_the_full_model(family, tiny_batch):
    model = tiny_model(family)
    before = logits(model, tiny_batch)
    sub = SubNetwork.from_counts(get_adapter(model).dims(model.config), [1, 0, 2], [3, 0, 0])
    with select_subnetwork(model, sub):
        during = logits(model, tiny_batch)
    assert not torch.allclose(before, during)
    torch.testing.assert_close(logits(model, tiny_batch), before)


def test_partial_head_masks_change_the_output(family, tiny_batch):
    model = tiny_model(family)
    dims = get_adapter(model).dims(model.config)
    full = SubNetwork.full(dims)
    heads = full.head_mask.clone()
    heads[1, 2] = False  # one head of one layer
    with select_subnetwork(model, SubNetwork(heads, full.ffn_mask)):
        partial = logits(model, tiny_batch)
    assert not torch.allclose(partial, logits(model, tiny_batch))


def test_layer_with_nothing_kept_is_identity(tiny_batch):
    model = tiny_model("bert")
    dims = get_adapter(model).dims(model.config)
    sub = SubNetwork.from_counts(dims, [4, 0, 4], [12, 0, 12])
    # The same network built from two layers only.
    two = tiny_model("bert", num_hidden_layers=2)
    two.load_state_dict(
        {k.replace("layer.2.", "layer.1."): v for k, v in model.state_dict().items() if "layer.1." not in k}
    )
    with select_subnetwork(model, sub):
        torch.testing.assert_close(logits(model, tiny_batch), logits(two.eval(), tiny_batch))
    assert extract_subnetwork(model, sub).config.num_hidden_layers == 2


def test_gradients_reach_shared_weights(tiny_batch):
    model = tiny_model("bert").train()
    sub = SubNetwork.from_counts(get_adapter(model).dims(model.config), [2, 2, 0], [5, 5, 0])
    with select_subnetwork(model, sub):
        model(**tiny_batch, labels=torch.tensor([0, 1, 2])).loss.backward()
    query = model.bert.encoder.layer[0].attention.self.query.weight.grad
    assert query[:8].abs().sum() > 0 and query[8:].abs().sum() == 0  # 2 heads x 4 dims used
    assert model.bert.encoder.layer[2].intermediate.dense.weight.grad is None


def test_extracted_model_round_trips_with_plain_transformers(family, pooling, tiny_batch, tmp_path):
    model = tiny_model(family, pooling=pooling)
    dims = get_adapter(model).dims(model.config)
    heads = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    units = torch.zeros(3, 12, dtype=torch.bool)
    units[0, [1, 5]] = True
    units[1, :4] = True
    small = extract_subnetwork(model, SubNetwork(heads, units))
    small.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path, trust_remote_code=True).eval()
    assert sum(p.numel() for p in loaded.parameters()) == count_parameters(model, SubNetwork(heads, units))
    assert loaded.config.layer_heads == [2, 0, 4] and loaded.config.layer_units == [2, 4, 0]
    assert getattr(loaded.config, "classifier_pooling", "cls") == pooling
    torch.testing.assert_close(logits(loaded, tiny_batch), logits(small, tiny_batch), atol=1e-6, rtol=0)
    assert dims.num_layers == 3


def test_hidden_dimension_extraction_counts_exactly(family):
    model = tiny_model(family)
    dims = get_adapter(model).dims(model.config)
    full = SubNetwork.full(dims)
    hidden = torch.ones(dims.hidden_size, dtype=torch.bool)
    hidden[[0, 3, 9]] = False
    sub = SubNetwork(full.head_mask, full.ffn_mask, hidden_mask=hidden)
    small = extract_subnetwork(model, sub)
    assert small.config.hidden_size == 13
    assert sum(p.numel() for p in small.parameters()) == count_parameters(model, sub)
    with pytest.raises(ValueError, match="hidden"):
        with select_subnetwork(model, sub):
            pass


def test_importance_reordering_keeps_the_function(family, tiny_batch):
    model = tiny_model(family)
    batches = [{**tiny_batch, "labels": torch.tensor([0, 1, 2])}] * 2
    head_scores, unit_scores = importance_scores(model, batches)
    assert head_scores.shape == (3, 4) and unit_scores.shape == (3, 12) and head_scores.sum() > 0
    before = logits(model, tiny_batch)
    reorder_by_importance(model, head_scores, unit_scores)
    torch.testing.assert_close(logits(model, tiny_batch), before, atol=1e-5, rtol=0)
    new_heads, new_units = importance_scores(model, batches)
    torch.testing.assert_close(new_heads, head_scores.sort(dim=1, descending=True).values, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(new_units, unit_scores.sort(dim=1, descending=True).values, atol=1e-5, rtol=1e-4)


def test_mean_pooling_reads_the_masked_mean_and_has_no_pooler(family, tiny_batch):
    cls_model, mean_model = tiny_model(family), tiny_model(family, pooling="mean")
    base = getattr(mean_model, mean_model.base_model_prefix)
    assert base.pooler is None
    missing = {n for n, _ in cls_model.named_parameters()} - {n for n, _ in mean_model.named_parameters()}
    assert missing == ({"bert.pooler.dense.weight", "bert.pooler.dense.bias"} if family == "bert" else set())
    with torch.no_grad():
        states = base(**tiny_batch).last_hidden_state
        mask = tiny_batch["attention_mask"].unsqueeze(-1).float()
        mean = (states * mask).sum(1) / mask.sum(1)
        expected = mean_model.classify(mean)
    torch.testing.assert_close(logits(mean_model, tiny_batch), expected)
    # Padding does not move the mean: row 1 with its padding cut off scores the same.
    short = {k: v[1:2, :7] for k, v in tiny_batch.items()}
    torch.testing.assert_close(logits(mean_model, short), expected[1:2], atol=1e-5, rtol=0)
    loss = mean_model(**tiny_batch, labels=torch.tensor([0, 1, 2])).loss
    assert loss is not None and loss.ndim == 0


def test_pooling_detection_reads_the_sentence_transformers_files(tmp_path):
    from nas_pruning.models.loading import declared_pooling, resolve_pooling

    tiny_model("bert").save_pretrained(tmp_path / "plain")
    assert declared_pooling(str(tmp_path / "plain")) is None
    folder = tmp_path / "sentence"
    tiny_model("bert").save_pretrained(folder)
    (folder / "modules.json").write_text(
        '[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},'
        ' {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]'
    )
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    assert declared_pooling(str(folder)) == "mean"
    config = tiny_model("bert").config
    assert resolve_pooling("auto", str(folder), config) == "mean"
    assert resolve_pooling("auto", str(tmp_path / "plain"), config) == "cls"
    assert resolve_pooling("cls", str(folder), config) == "cls"
    (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')
    assert declared_pooling(str(folder)) == "cls"
    with pytest.raises(ValueError, match="unknown pooling 'max'.*auto, cls, mean"):
        resolve_pooling("max", str(folder), config)


def test_load_model_keeps_the_pooling_through_save_and_load(tmp_path, tiny_batch):
    from nas_pruning.models import load_model
    from nas_pruning.supernet import SupernetRecord, load_supernet, save_supernet

    folder = tmp_path / "sentence"
    tiny_model("bert").save_pretrained(folder)
    (folder / "modules.json").write_text('[{"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]')
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    model = load_model(str(folder), num_labels=2).eval()
    assert model.config.classifier_pooling == "mean" and model.bert.pooler is None
    assert load_model(str(folder), num_labels=2, pooling="cls").bert.pooler is not None
    save_supernet(tmp_path / "sn", model, SupernetRecord(task="rte"))
    loaded, _ = load_supernet(tmp_path / "sn")
    assert loaded.config.classifier_pooling == "mean" and loaded.bert.pooler is None
    torch.testing.assert_close(logits(loaded, tiny_batch), logits(model, tiny_batch))


def test_bad_inputs_get_clear_errors():
    model = tiny_model("bert")
    with pytest.raises(ValueError, match="shape"):
        count_parameters(model, SubNetwork(torch.ones(2, 4, dtype=torch.bool), torch.ones(2, 12, dtype=torch.bool)))
    with pytest.raises(ValueError, match="unsupported architecture 'gpt2'.*bert"):
        from transformers import GPT2Config

        get_adapter(GPT2Config())
    dims = get_adapter(model).dims(model.config)
    with pytest.raises(ValueError, match="keeps no layer"):
        extract_subnetwork(model, SubNetwork.from_counts(dims, [0, 0, 0], [0, 0, 0]))


@pytest.mark.integration
def test_minilm_loads_offline_classifies_glue_rows_and_extracts_exactly(glue_path, capsys):
    from nas_pruning.cli import main
    from nas_pruning.models import load_model, load_tokenizer
    from nas_pruning.tasks import encode, load_task, make_loader

    assert count_parameters(load_model(num_labels=2, pooling="cls")) == 22_713_986  # MiniLM + 2-class [CLS] head
    model = load_model(num_labels=2).eval()  # auto: MiniLM declares mean pooling, so no pooler
    assert model.config.classifier_pooling == "mean"
    assert count_parameters(model) == 22_713_986 - (384 * 384 + 384)
    tokenizer = load_tokenizer()
    data = load_task("rte", glue_path, splits=("test",))
    data = type(data)(data.task, test=data.test.select(range(8)))
    batch = next(iter(make_loader(encode(data, tokenizer).test, tokenizer, batch_size=8)))
    labels = batch.pop("labels")
    dims = get_adapter(model).dims(model.config)
    sub = SubNetwork.from_counts(dims, [6, 12, 0, 3, 12, 1], [768, 0, 0, 100, 1536, 5])
    with torch.no_grad():
        full = model(**batch).logits
        with select_subnetwork(model, sub):
            shared = model(**batch).logits
        small = extract_subnetwork(model, sub)
        torch.testing.assert_close(small(**batch).logits, shared, atol=1e-4, rtol=0)
    assert full.shape == (8, 2) and labels.shape == (8,)
    assert count_parameters(model, sub) == sum(p.numel() for p in small.parameters())
    assert main(["space", "--search-space", "small"]) == 0
    out = capsys.readouterr().out
    assert "num_layers" in out and "smallest  parameter ratio 0.5305" in out  # mean pooling: no pooler
    assert main(["space", "--search-space", "small", "--pooling", "cls"]) == 0
    assert "smallest  parameter ratio 0.5336" in capsys.readouterr().out

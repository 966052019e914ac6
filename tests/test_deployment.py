"""Deployable front members: ONNX export, `export --all`, latency as an objective, bad input."""

import builtins
import importlib.util
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import save_tiny_supernet, tiny_model
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from nas_pruning import runtimes
from nas_pruning.cli import main
from nas_pruning.models import SubNetwork, extract_subnetwork
from nas_pruning.pareto import pareto_front

HAS_ORT = all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript"))
needs_onnx = pytest.mark.skipif(not HAS_ORT, reason="the onnx extra is not installed: pip install 'nas_pruning[onnx]'")


@needs_onnx
def test_onnx_logits_equal_pytorch_with_dynamic_batch_and_length(family, pooling, tmp_path):
    import onnx

    heads, units = torch.ones(3, 4, dtype=torch.bool), torch.ones(3, 12, dtype=torch.bool)
    heads[0, 2:] = False
    heads[1] = False  # a layer with 0 heads
    units[0, 5:] = False
    units[2] = False  # a layer with 0 units
    small = extract_subnetwork(tiny_model(family, pooling=pooling), SubNetwork(heads, units))
    path = runtimes.export_onnx(small, tmp_path / "model.onnx")
    session = runtimes.OnnxClassifier(path)
    # One fused attention node per layer with heads, with that layer's head count; no SkipLayerNormalization.
    nodes = onnx.load(path).graph.node
    fused = [node for node in nodes if node.op_type in ("Attention", "MultiHeadAttention")]
    assert [onnx.helper.get_attribute_value(a) for n in fused for a in n.attribute if a.name == "num_heads"] == [2, 4]
    assert not [node for node in nodes if node.op_type == "SkipLayerNormalization"]
    for batch_size, length in ((1, 5), (4, 17)):
        inputs = runtimes.dummy_inputs(small.config, batch_size, length, seed=batch_size)
        inputs["attention_mask"][-1, 3:] = 0
        with torch.no_grad():
            expected = small(**inputs).logits.numpy()
        assert np.abs(session(inputs) - expected).max() < 1e-4


def search(supernet, output_dir, *extra):
    argv = ["search", "--supernet", str(supernet), "--output-dir", str(output_dir), "--optimizer", "random",
            "--num-evaluations", "8", "--max-validation-examples", "32", "--threads", "1", *extra]
    assert main(argv) == 0
    return pd.read_csv(output_dir / "pareto.csv")


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_export_all_writes_every_member_and_the_index(pooling, glue_path, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path / "st"))
    supernet = save_tiny_supernet(tmp_path / "supernet", glue_path, pooling)
    front = search(supernet, tmp_path / "search")
    out = tmp_path / "front"
    argv = ["export", "--search-dir", str(tmp_path / "search"), "--output-dir", str(out), "--all",
            "--latency-batch-size", "1", "2", "--latency-length", "16", "--latency-repeats", "2"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 2 and "is not empty" in capsys.readouterr().err  # --all protects the folder too
    # An earlier export's member that this front does not have goes; the rest is rewritten.
    (out / "member_99").mkdir()
    earlier = pd.read_csv(out / "index.csv")
    pd.concat([earlier, earlier.tail(1).assign(folder="member_99")]).to_csv(out / "index.csv", index=False)
    assert main([*argv, "--overwrite"]) == 0
    assert not (out / "member_99").exists() and len(pd.read_csv(out / "index.csv")) == len(earlier)
    index = pd.read_csv(out / "index.csv")
    assert len(index) == len(front) and index["params"].is_monotonic_increasing
    assert (index[["latency_torch_bs1", "latency_torch_bs2"]] > 0).all().all()
    assert sorted(index["params"]) == pytest.approx(sorted(front["params"]))
    prompts = []
    monkeypatch.setattr(builtins, "input", lambda *a: prompts.append(a) or "n")  # "run the custom code? [y/N]"
    for row in index.itertuples():
        folder = out / row.folder
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
        full = sum(p.numel() for p in tiny_model("bert", pooling=pooling, vocab_size=30522,
                                                max_position_embeddings=128, num_labels=2).parameters())
        assert getattr(model.config, "classifier_pooling", "cls") == pooling
        assert sum(p.numel() for p in model.parameters()) / full == pytest.approx(row.params)
        assert model(**tokenizer(["a test"], return_tensors="pt")).logits.shape == (1, 2)
        assert f"test accuracy {row.test_metric:.4f}" in (folder / "README.md").read_text()
    assert prompts == []


@needs_onnx
def test_onnx_member_with_int8_runs_from_its_model_card_alone(tiny_supernet, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path / "st"))
    search(tiny_supernet, tmp_path / "search")
    out = tmp_path / "member"
    argv = ["export", "--search-dir", str(tmp_path / "search"), "--output-dir", str(out), "--index", "0",
            "--format", "both", "--quantize", "int8", "--latency-length", "16", "--latency-repeats", "2"]
    assert main(argv) == 0
    card = (out / "README.md").read_text()
    assert "test accuracy of the int8 ONNX model" in card and (out / "model_int8.onnx").is_file()
    assert card.startswith("# tiny-bert pruned for rte by nas_pruning") and str(tmp_path) not in card
    snippet = card.split("## ONNX Runtime")[1].split("```python\n")[1].split("```")[0].replace("FOLDER", str(out))
    # The snippet runs where nas_pruning cannot be imported, and without remote code.
    blocked = "import sys; sys.modules['nas_pruning'] = None\n"
    done = subprocess.run([sys.executable, "-c", blocked + snippet], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    logits = np.array(json.loads(done.stdout))
    model = AutoModelForSequenceClassification.from_pretrained(out, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        expected = model(**tokenizer(["sentence1 text"], ["sentence2 text"], return_tensors="pt")).logits.numpy()
    assert np.abs(logits - expected).max() < 1e-4


def test_model_card_names_the_base_model_not_a_path(tmp_path):
    from nas_pruning.export import base_model_name
    from nas_pruning.supernet import SupernetRecord

    start, plain = tmp_path / "runs" / "start", tmp_path / "my-bert"
    start.mkdir(parents=True)
    plain.mkdir()
    (start / "supernet.json").write_text(json.dumps({"base_model": "sentence-transformers/all-MiniLM-L6-v2"}))
    supernet = tmp_path / "supernet"
    # a fine-tuned folder it started from names its own base model; a plain folder, its name
    assert base_model_name(supernet, SupernetRecord(base_model=str(start))) == "sentence-transformers/all-MiniLM-L6-v2"
    assert base_model_name(supernet, SupernetRecord(base_model=str(plain))) == "my-bert"
    assert base_model_name(supernet, SupernetRecord(base_model=str(tmp_path / "gone" / "old-bert"))) == "old-bert"
    assert base_model_name(supernet, SupernetRecord(base_model="bert-base-uncased")) == "bert-base-uncased"


def test_three_objective_search_has_a_front_non_dominated_in_all_three(tiny_supernet, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path / "st"))
    # fixed reference: a random tiny super-network beats no trivial predictor, which would zero the hypervolume
    front = search(tiny_supernet, tmp_path / "search", "--objectives", "error,params,latency",
                   "--latency-length", "16", "--latency-repeats", "3", "--hv-reference", "fixed")
    results = pd.read_csv(tmp_path / "search" / "results.csv")
    summary = json.loads((tmp_path / "search" / "summary.json").read_text())
    objectives = ["error", "params", "latency"]
    assert summary["hypervolume_objectives"] == objectives and 0 < summary["hypervolume"] <= 1
    assert summary["hypervolume_bounds"]["latency"] == [0.0, summary["latency"]["full_model_latency"]]
    assert summary["latency"]["runtime"] == "torch" and summary["latency"]["length"] == 16
    assert len(pareto_front(results, objectives)) == len(front)
    points = front[objectives].to_numpy()
    for i, point in enumerate(points):
        others = np.delete(points, i, axis=0)
        assert not ((others <= point).all(axis=1) & (others < point).any(axis=1)).any()


def test_a_resumed_latency_search_keeps_its_latencies_and_does_not_time_them_again(
    tiny_supernet, tmp_path, monkeypatch
):
    monkeypatch.setenv("SYNETUNE_FOLDER", str(tmp_path / "st"))
    timed = []
    of_model = runtimes.LatencySpec.of_model
    monkeypatch.setattr(runtimes.LatencySpec, "of_model", lambda self, model: timed.append(1) or of_model(self, model))
    latency = ["--objectives", "error,latency", "--latency-length", "16", "--latency-repeats", "2"]
    argv = ["search", "--supernet", str(tiny_supernet), "--output-dir", str(tmp_path / "s"), "--optimizer", "random",
            "--max-validation-examples", "32", "--threads", "1", *latency]
    assert main([*argv, "--num-evaluations", "4"]) == 0
    first = pd.read_csv(tmp_path / "s" / "results.csv")
    full = json.loads((tmp_path / "s" / "summary.json").read_text())["latency"]["full_model_latency"]
    timed.clear()
    assert main([*argv, "--num-evaluations", "6"]) == 0
    results = pd.read_csv(tmp_path / "s" / "results.csv")
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert len(results) == 6 and results["latency"].notna().all()
    pd.testing.assert_frame_equal(results[first.columns].iloc[:4], first)
    # The full model (the initial design's largest config) and the kept rows are not timed again.
    assert summary["latency"]["full_model_latency"] == full and len(timed) <= 2
    assert summary["hypervolume_objectives"] == ["error", "latency"]


def test_bad_input_gets_one_clear_line(tiny_supernet, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "summary.json").write_text(json.dumps({"supernet": str(tiny_supernet)}))
    (empty / "pareto.csv").write_text("error,params\n")
    cases = [
        (["export", "--search-dir", str(empty), "--output-dir", str(tmp_path / "o"), "--all"], "no Pareto front"),
        (["export", "--search-dir", str(empty), "--output-dir", str(tmp_path / "o"), "--format", "tflite"],
         "unknown export format 'tflite'; accepted: torch, onnx, both"),
        (["export", "--search-dir", str(empty), "--output-dir", str(tmp_path / "o"), "--quantize", "int8"],
         "use --format onnx or both"),
        (["search", "--supernet", str(tiny_supernet), "--output-dir", str(tmp_path / "s"),
          "--objectives", "error,speed"],
         "unknown objectives 'error,speed'; accepted: error,params | error,latency | error,params,latency"),
        (["search", "--supernet", str(tiny_supernet), "--output-dir", str(tmp_path / "s"),
          "--objectives", "error,latency", "--runtime", "tensorrt"], "unknown runtime 'tensorrt'"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    # Without the onnx extra: the latency objective in ONNX Runtime names the extra to install.
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    argv = ["search", "--supernet", str(tiny_supernet), "--output-dir", str(tmp_path / "s"),
            "--objectives", "error,latency", "--runtime", "onnxruntime"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "pip install 'nas_pruning[onnx]'" in err and len(err.strip().splitlines()) == 1


@needs_onnx
@pytest.mark.parametrize("bias", [False, True])
def test_skip_layer_normalization_is_unfused_with_the_same_outputs(bias):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {name: rng.standard_normal(8).astype(np.float32) for name in ("gamma", "beta", "bias")}
    inputs = ["x", "skip", "gamma", "beta", *(["bias"] if bias else [])]
    node = helper.make_node("SkipLayerNormalization", inputs, ["y", "mean", "inv_std", "sum"],
                            domain="com.microsoft", epsilon=1e-5, name="sln")
    after = helper.make_node("Mul", ["y", "sum"], ["out"])  # the residual sum is used too
    shape = [2, 3, 8]
    graph = helper.make_graph(
        [node, after], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("x", "skip")],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)],
        [numpy_helper.from_array(value, name) for name, value in weights.items()],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    fused = helper.make_model(graph, opset_imports=opsets)
    unfused = helper.make_model(graph, opset_imports=opsets)
    assert runtimes.unfuse_skip_layer_norm(unfused.graph) == 1
    assert [n.op_type for n in unfused.graph.node] == ["Add", *(["Add"] if bias else []), "LayerNormalization", "Mul"]
    ort = runtimes.import_onnxruntime()
    feed = {name: rng.standard_normal(shape).astype(np.float32) for name in ("x", "skip")}
    expected, got = (ort.InferenceSession(m.SerializeToString()).run(["out"], feed)[0] for m in (fused, unfused))
    assert np.abs(got - expected).max() < 1e-5
    # A node whose statistics are used stays.
    graph.node.append(helper.make_node("Identity", ["mean"], ["mean_out"]))
    assert runtimes.unfuse_skip_layer_norm(graph) == 0


@needs_onnx
def test_latency_in_onnx_runtime_is_measured_once_per_architecture():
    model = tiny_model("bert")
    meter = runtimes.LatencyMeter(runtimes.LatencySpec("onnxruntime", batch_size=2, length=8, warmup=1, repeats=3))
    heads, units = torch.ones(3, 4, dtype=torch.bool), torch.ones(3, 12, dtype=torch.bool)
    heads[:, 2:] = False
    first = meter(model, SubNetwork(heads, units))
    assert first > 0 and meter(model, SubNetwork(heads.clone(), units.clone())) == first
    assert meter.measurements == 1

"""Standalone models in a deployment runtime: PyTorch or ONNX Runtime.

- `export_onnx`: an extracted model as ONNX with dynamic batch and sequence axes, written by
  torch's default (torch.export-based) exporter and rewritten with onnxscript's ONNX Runtime
  fusions; `quantize_int8`: ONNX Runtime's dynamic int8 quantization of such a file.
- `OnnxClassifier`: an ONNX Runtime session that returns logits (for task metrics and timing).
- `LatencySpec`: how latency is measured (runtime, batch size, length, warm-up, repeats; the
  median of the timed runs), `LatencyMeter`: latency of sub-networks of a super-network,
  measured on the extracted model and cached per architecture.

What the exported graph gets, and why (measured with onnxruntime 1.32 and torch 2.13 on an AMD
EPYC with AVX-512, 1 thread; numbers in docs/deployment.md):

- Fused attention: onnxscript's fusions (`optimize_for_ort`) match what torch's exporter writes and
  give each layer one com.microsoft Attention (or MultiHeadAttention) node with that layer's own
  head count, so pruned layers with different head counts fuse too. ONNX Runtime's own transformer
  optimizer does not: its attention fusion takes one head count for the whole model and fuses
  nothing in this exporter's graphs, not even for an unpruned BERT.
- No SkipLayerNormalization: ONNX Runtime's fused residual + layer normalisation kernel took 5x
  the time of Add + LayerNormalization on this CPU (8 ms against 1.6 ms on [32, 128, 384]), which
  made ONNX Runtime slower than PyTorch at batch 32. The rewrite keeps Add + LayerNormalization
  (residual first, then the bias: ONNX Runtime 1.32's own SkipLayerNormFusion does not match that
  order when a session loads the file); `OnnxClassifier` and the model card's snippet also pass
  `disabled_optimizers=ORT_DISABLED_OPTIMIZERS`, so that no version fuses it again at load. The
  GELU fusions (BiasGelu) stay.

The TorchScript exporter is not used: torch 2.13 deprecates it ("The feature will be removed").

onnx, onnxscript and onnxruntime are the optional extra `nas_pruning[onnx]`.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nas_pruning.models import SubNetwork, extract_subnetwork
from nas_pruning.models.loading import max_sequence_length

RUNTIMES = ("torch", "onnxruntime")
ONNX_INSTALL_HINT = "ONNX export and ONNX Runtime need the optional extra: pip install 'nas_pruning[onnx]'"
#: Inputs an exported model takes, in this order; BERT-style models with token types also take token_type_ids.
BASE_INPUTS = ("input_ids", "attention_mask")
#: ONNX Runtime graph optimizers a session of an exported model should skip (see the module docstring).
ORT_DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)


def import_onnxruntime():
    """The `onnxruntime` module (after checking onnx and onnxscript), or an ImportError naming the extra."""
    try:
        import onnx  # noqa: F401  (the exporter writes it)
        import onnxruntime
        import onnxscript  # noqa: F401  (torch's default ONNX exporter needs it)
    except ImportError as error:
        raise ImportError(f"{ONNX_INSTALL_HINT} ({error})") from error
    return onnxruntime


def check_runtime(runtime: str) -> str:
    """`runtime` if it is known and installed; else a ValueError / ImportError saying what is accepted."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; accepted: {', '.join(RUNTIMES)}")
    if runtime == "onnxruntime":
        import_onnxruntime()
    return runtime


def input_names(config) -> list[str]:
    """The inputs of a model with this config: token_type_ids only where there is more than one type."""
    return [*BASE_INPUTS, *(["token_type_ids"] if getattr(config, "type_vocab_size", 1) > 1 else [])]


def dummy_inputs(config, batch_size: int, length: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random token ids of shape [batch_size, length], no padding, for export and timing."""
    limit = max_sequence_length(config)
    if length > limit:
        raise ValueError(f"sequence length {length} is longer than the model's {limit} positions")
    ids = torch.randint(3, config.vocab_size, (batch_size, length), generator=torch.Generator().manual_seed(seed))
    values = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    return {name: values[name] for name in input_names(config)}


def export_onnx(model: nn.Module, path: str | os.PathLike, optimize: bool = True) -> Path:
    """Write `model` (a sequence classifier) as one ONNX file with output `logits`.

    Inputs are `input_names(model.config)`, int64 [batch, sequence], both axes dynamic.
    The model is put on the CPU in float32 and eval mode (in place: pass an extracted copy).
    optimize: fuse attention for ONNX Runtime, keep layer normalisation unfused (see the module docstring).
    """
    import_onnxruntime()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().float().eval()
    example = dummy_inputs(model.config, batch_size=2, length=min(8, max_sequence_length(model.config)))
    axes = {name: {0: "batch", 1: "sequence"} for name in example}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notices about torch internals
        torch.onnx.export(
            model, (), str(path), kwargs=example, input_names=list(example), output_names=["logits"],
            dynamic_shapes=axes, dynamo=True, external_data=False, verbose=False,
        )
    if optimize:
        import onnx
        import onnx_ir
        from onnxscript.rewriter.ort_fusions import optimize_for_ort

        fused, _ = optimize_for_ort(onnx_ir.load(path))
        proto = onnx_ir.to_proto(fused)
        unfuse_skip_layer_norm(proto.graph)
        onnx.save(proto, path)
    return path


def unfuse_skip_layer_norm(graph) -> int:
    """Replace each com.microsoft SkipLayerNormalization node of `graph` (an onnx GraphProto, in
    place) by Add nodes and a LayerNormalization with the same output names; the number replaced.
    A node whose mean or inverse-deviation outputs are used is kept (no standard op gives them)."""
    from onnx import helper

    used = {name for node in graph.node for name in node.input} | {output.name for output in graph.output}
    used.discard("")  # an omitted optional input
    nodes, replaced = [], 0
    for node in graph.node:
        outputs = [*node.output, "", "", ""][:4]
        statistics_used = any(name in used for name in outputs[1:3])
        if node.op_type != "SkipLayerNormalization" or node.domain != "com.microsoft" or statistics_used:
            nodes.append(node)
            continue
        x, skip, gamma, beta, bias = [*node.input, "", ""][:5]
        name = node.name or f"skip_layer_norm_{replaced}"
        total = outputs[3] or f"{name}/sum"
        epsilon = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-12)  # the op's default
        if bias:
            nodes.append(helper.make_node("Add", [x, skip], [f"{name}/residual"], name=f"{name}/add"))
            nodes.append(helper.make_node("Add", [f"{name}/residual", bias], [total], name=f"{name}/add_bias"))
        else:
            nodes.append(helper.make_node("Add", [x, skip], [total], name=f"{name}/add"))
        nodes.append(helper.make_node(
            "LayerNormalization", [total, gamma, beta], [outputs[0]], name=name, axis=-1, epsilon=epsilon
        ))
        replaced += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return replaced


def quantize_int8(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """ONNX Runtime's dynamic quantization of `source`: int8 weights, activations quantized at run time."""
    import_onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    return Path(target)


class OnnxClassifier:
    """An ONNX Runtime CPU session of an exported classifier.

    path: the .onnx file. num_threads: intra-op threads (default: torch's thread count, so that
    both runtimes are timed with the same number of cores).
    """

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None) -> None:
        ort = import_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or torch.get_num_threads()
        self.session = ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=list(ORT_DISABLED_OPTIMIZERS)
        )
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, inputs: dict) -> np.ndarray:
        """Logits of one batch (a dict of tensors or arrays; keys the model does not take are ignored)."""
        feed = {name: np.asarray(_numpy(inputs[name]), dtype=np.int64) for name in self.input_names}
        return self.session.run(["logits"], feed)[0]

    def predict(self, batches: Iterable[dict]) -> tuple[np.ndarray, np.ndarray]:
        """Logits [N, C] and labels [N] over labelled batches."""
        batches = list(batches)
        logits = [self(batch) for batch in batches]
        return np.concatenate(logits), np.concatenate([_numpy(batch["labels"]) for batch in batches])


def _numpy(value) -> np.ndarray:
    return value.cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def median_seconds(call: Callable[[], object], warmup: int, repeats: int) -> float:
    """Median wall-clock seconds of `repeats` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@dataclass(frozen=True)
class LatencySpec:
    """How latency is measured: seconds per forward pass of a batch, the median of `repeats` timed
    passes after `warmup` untimed ones, on random tokens of shape [batch_size, length] (no padding).

    runtime: "torch" (the model as is, on its device) or "onnxruntime" (exported with
        `export_onnx`, run on CPU with torch's thread count).
    """

    runtime: str = "torch"
    batch_size: int = 1
    length: int = 128
    warmup: int = 2
    repeats: int = 10

    def __post_init__(self) -> None:
        check_runtime(self.runtime)
        for name in ("batch_size", "length", "repeats"):
            if getattr(self, name) < 1:
                raise ValueError(f"latency {name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"latency warmup must be >= 0, got {self.warmup}")

    def as_dict(self) -> dict:
        return asdict(self)

    def of_model(self, model: nn.Module) -> float:
        """Latency of a standalone model in this spec's runtime."""
        if self.runtime == "onnxruntime":
            with tempfile.TemporaryDirectory() as folder:
                return self.of_onnx(export_onnx(model, Path(folder) / "model.onnx"), model.config)
        inputs = {k: v.to(next(model.parameters()).device) for k, v in self._inputs(model.config).items()}
        synchronize = torch.cuda.synchronize if inputs["input_ids"].is_cuda else (lambda: None)

        @torch.inference_mode()
        def call():
            model(**inputs)
            synchronize()

        model.eval()
        return median_seconds(call, self.warmup, self.repeats)

    def of_onnx(self, path: str | os.PathLike, config) -> float:
        """Latency of an exported ONNX file (whatever this spec's runtime) in ONNX Runtime."""
        session, inputs = OnnxClassifier(path), self._inputs(config)
        return median_seconds(lambda: session(inputs), self.warmup, self.repeats)

    def _inputs(self, config) -> dict[str, torch.Tensor]:
        return dummy_inputs(config, self.batch_size, self.length)


def architecture_key(sub: SubNetwork) -> tuple:
    """What the speed of a sub-network of one super-network depends on: the sizes its extracted
    model keeps (layers with neither heads nor units are dropped), not which heads or weights."""
    heads, units = sub.heads_per_layer(), sub.units_per_layer()
    hidden = None if sub.hidden_mask is None else int(sub.hidden_mask.sum())
    return hidden, tuple(heads[i] for i in sub.kept_layers()), tuple(units[i] for i in sub.kept_layers())


class LatencyMeter:
    """Latency of sub-networks of one super-network, measured on the extracted model per `spec`.

    Cached per architecture (same extracted sizes -> one measurement; nothing is extracted for a
    known one). Copies made with `copy.copy` share the cache; measurements are serialised so that
    two never overlap.
    """

    def __init__(self, spec: LatencySpec) -> None:
        self.spec = spec
        self._cache: dict[tuple, float] = {}
        self._lock = threading.Lock()

    def __call__(self, model: nn.Module, sub: SubNetwork) -> float:
        key = architecture_key(sub)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = self.spec.of_model(extract_subnetwork(model, sub).eval())
            return self._cache[key]

    def remember(self, sub: SubNetwork, latency: float) -> None:
        """Take `latency` as `sub`'s, measured earlier with this spec (a resumed search's rows)."""
        with self._lock:
            self._cache.setdefault(architecture_key(sub), float(latency))

    @property
    def measurements(self) -> int:
        """Distinct architectures whose latency is known (measured, or remembered)."""
        return len(self._cache)

    def __getstate__(self) -> dict:
        # Ray copies the meter into its actors: a lock cannot be pickled.
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

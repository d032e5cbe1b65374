"""What a family gives the export stage, as plain data: the ``ExportPlan`` (``ModelSpec.export``), the
tolerances validation holds a graph to, and the weight quantization asked for."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_OPSET = 17


# above this the weights go to model.onnx.data, which onnxruntime maps from the file instead of copying
# them out of a parsed graph (docs/export.md, "Weights in model.onnx.data"); protobuf stops at 2 GB anyway
EXTERNAL_DATA_BYTES = 16_000_000


Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


TRACED = "traced"  # the graph PyTorch's exporter traces from ExportPlan.module


@dataclass
class ExportPlan:
    """What a family tells the export stage (see docs/onnx-contract.md for the built-in ones)."""

    module: Any  # torch.nn.Module; forward takes the inputs positionally, in order
    inputs: list[dict]  # {"name", "dtype", "shape": [axis name or int, ...]}
    outputs: list[dict]
    example: dict[str, np.ndarray]  # inputs used for tracing
    cases: list[tuple[str, Callable[[Runner], list[dict[str, np.ndarray]]]]]  # validation: drive a runner
    runtime: dict[str, Any]  # the manifest's "runtime" section
    sampler_defaults: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str | bytes] = field(default_factory=dict)  # extra files to write beside the model
    # e.g. validation loss through a runner; its attribute ``measured_on`` (if any) names what it measures
    # ("export check on 8 windows of the validation split"), beside the numbers in the log and the manifest
    quality: Callable[[Runner], dict[str, float]] | None = None
    # the same report on a file the user names (``gentool export --eval-data``): the path in, a quality out
    quality_on: Callable[[Path], Callable[[Runner], dict[str, float]]] | None = None
    manifest: dict[str, Any] = field(default_factory=dict)  # the family's own manifest entries (a tokenizer file)
    # node-name prefixes (module scopes, "/name/") that --dtype fp16 keeps in float32, reading the float32
    # graph inputs themselves: arithmetic that needs float32's precision
    fp32_scopes: tuple[str, ...] = ()
    # graphs the family writes itself instead of tracing ``module`` (``gentool export --graph NAME``):
    # name -> function(opset) -> onnx.ModelProto with the same inputs, outputs and meaning; validated
    # against ``module`` like the traced one
    graphs: dict[str, Callable[[int], Any]] = field(default_factory=dict)
    default_graph: str = TRACED  # the graph an export writes unless told otherwise
    # blocks someone else quantized (a GGUF file's), used as they are by --dtype int4/int8 instead of
    # quantizing those weights again: MatMul initializer name (its weight (in, out)) -> {"q": uint8 codes
    # (out, in), "scale" and "zero": float32 (out, in / block_size), "bits", "block_size", "source"},
    # weight == scale * (q - zero) block by block (gentoolkit.export.quantization); a Mapping may load lazily
    prequantized: Mapping[str, dict] = field(default_factory=dict)
    # the oldest onnxruntime release that runs each graph the family writes (its own ops), e.g.
    # {"fused": "1.22"}; the manifest's ``onnxruntime`` is the newest of this, :data:`ONNXRUNTIME_FLOOR`
    # and what the export stage's own ops need (:data:`OP_FLOORS`), measured by benchmarks/ort_compat.py
    onnxruntime: dict[str, str] = field(default_factory=dict)
    # the output holding next-token logits (last axis over the vocabulary), if any: validation then also
    # compares the distributions (KL divergence) and the greedy tokens, not only the numbers
    logits: str | None = None
    # folder layouts besides gentoolkit's own (``gentool export --layout NAME``): name -> the files that
    # layout adds or replaces at the top of the folder (transformers.js: its ``config.json``)
    layouts: dict[str, dict[str, str | bytes]] = field(default_factory=dict)


def dynamic_axes(specs: list[dict]) -> dict[str, dict[int, str]]:
    return {s["name"]: {i: d for i, d in enumerate(s["shape"]) if isinstance(d, str)} for s in specs}


@dataclass(frozen=True)
class WeightQuant:
    """Weight-only quantization of the MatMul (and optionally Gather) weights to ``bits`` (onnxruntime's
    ``MatMulNBits``, see :mod:`gentoolkit.export.quantization`): ``block_size`` weights share a scale,
    ``symmetric`` or with a whole-number zero point per block, and ``accuracy_level`` the arithmetic
    onnxruntime may use (0: as the inputs, 4: int8 activations, the fastest on CPUs). ``search``: each
    block's scale (and zero) chosen among candidates for the smallest squared error, as llama.cpp's
    ``make_qx_quants`` does, rather than plain rounding. ``head``: the output projection too, in
    ``head_bits`` (None: ``bits``); ``embedding``: the token embedding too (a tied table stored once, the
    head's). The defaults are the ones measured best on a real model (docs/export.md, "int4 on a real
    model"): zero points, the search, and an 8-bit head."""

    bits: int = 4
    block_size: int = 32
    symmetric: bool = False
    accuracy_level: int = 4
    head: bool = True
    embedding: bool = False
    head_bits: int | None = 8
    search: bool = True

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Tolerance:
    """When an export agrees with PyTorch, per weight format (:data:`TOLERANCES`).

    ``rtol``: every output's largest difference relative to the output's largest magnitude (a
    trained model's logits are tens of units, a random one's tenths: an absolute bound fits neither).
    ``atol`` (``--atol``) replaces it with an absolute bound. For the family's logits output
    (``ExportPlan.logits``), computed in float64 at every position of every case: ``max_kl``, the
    largest KL divergence of the export's next-token distribution from PyTorch's, and ``greedy``,
    the share of positions whose most likely token is the same (a position where PyTorch's top two
    are within :data:`TIE` of the logits' largest magnitude is a tie that float rounding alone may
    turn either way, and is not counted)."""

    rtol: float
    max_kl: float
    greedy: float
    atol: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


TIE = 1e-4


# fp32 differs from PyTorch by float rounding alone (about 1e-4 of the logits' scale at 135M and 8k
# tokens); a wrong weight or a swapped head moves them by 1e-1 and more (tests/test_export.py). The
# quantized formats change the model itself: their bounds catch a broken graph, not the quantization's
# cost, which the quality report (perplexity against PyTorch's) states. docs/export.md has the figures.
TOLERANCES = {
    "fp32": Tolerance(rtol=1e-3, max_kl=1e-4, greedy=1.0),
    "fp16": Tolerance(rtol=3e-2, max_kl=2e-2, greedy=0.95),
    "int8": Tolerance(rtol=0.25, max_kl=0.5, greedy=0.7),  # dynamic: activations too
    "int8-weights": Tolerance(rtol=0.1, max_kl=0.1, greedy=0.85),
    "int4": Tolerance(rtol=0.5, max_kl=1.0, greedy=0.6),
}

"""The export stage: a training run -> a validated, self-describing ONNX folder.

Each family describes its own graph through ``ModelSpec.export``: a function
``plan(run) -> ExportPlan`` giving the module to trace, the input and output
names with their dynamic axes (plain data, as optimum declares them), the
validation cases, and the family's manifest entries and extra files. This stage
does the rest for every family alike: ONNX conversion, fp16 or int8, graph
optimization, ``onnx.checker``, parity against PyTorch in onnxruntime, the
manifest (also written into the ONNX ``metadata_props``), and an atomic folder.

The folder format is :mod:`gentoolkit.contract` (documented in docs/onnx-contract.md).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .contract import FORMAT_VERSION, MANIFEST, MODEL, PENDING, own_files, version_tuple
from .errors import ExportError
from .registry import resolve
from .run import WEIGHTS, Run

DEFAULT_OPSET = 17
# above this the weights go to model.onnx.data, which onnxruntime maps from the file instead of copying
# them out of a parsed graph (docs/export.md, "Weights in model.onnx.data"); protobuf stops at 2 GB anyway
EXTERNAL_DATA_BYTES = 16_000_000

# The oldest onnxruntime a plain ONNX graph of the default opset is tested on (benchmarks/ort_compat.py;
# releases before 1.19 have no wheels for numpy 2), and the ops the export stage itself writes that need
# a newer one: GatherBlockQuantized (--quantize-embedding) is refused by 1.22.
ONNXRUNTIME_FLOOR = "1.19"
OP_FLOORS = {("com.microsoft", "GatherBlockQuantized"): "1.23"}

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
    # weight == scale * (q - zero) block by block (gentoolkit.quantization); a Mapping may load lazily
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


def torch_runner(plan: ExportPlan) -> Runner:
    import torch

    names_in = [s["name"] for s in plan.inputs]
    names_out = [s["name"] for s in plan.outputs]

    def run(feeds):
        with torch.no_grad():
            outs = plan.module(*[torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in names_in])
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        return {n: o.float().numpy() for n, o in zip(names_out, outs)}

    return run


def ort_runner(path: Path, providers=None) -> Runner:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own error, on one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"onnxruntime cannot load the exported graph: {first}") from None
    names_out = [o.name for o in sess.get_outputs()]
    names_in = {i.name for i in sess.get_inputs()}

    def run(feeds):
        return dict(zip(names_out, sess.run(None, {k: v for k, v in feeds.items() if k in names_in})))

    return run


def _plugin_version(plugin: str) -> str | None:
    from .plugins import plugin_records

    for r in plugin_records():
        if r.name == plugin:
            return r.version
    return None


def _convert(plan: ExportPlan, path: Path, opset: int, graph: str = TRACED) -> None:
    import warnings

    import torch

    if graph != TRACED:
        import onnx

        onnx.save(plan.graphs[graph](opset), str(path))
        return

    names_in = [s["name"] for s in plan.inputs]
    args = tuple(torch.from_numpy(np.ascontiguousarray(plan.example[n])) for n in names_in)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The TorchScript exporter handles a KV cache of length 0 and symbolic
        # "total = past + sequence" axes, which torch.export's dynamic shapes cannot express.
        torch.onnx.export(
            plan.module, args, str(path), input_names=names_in,
            output_names=[s["name"] for s in plan.outputs], dynamic_axes=dynamic_axes(plan.inputs + plan.outputs),
            opset_version=opset, do_constant_folding=True, dynamo=False,
        )


def _opset_range() -> tuple[int, int]:
    try:
        from torch.onnx import _constants as c

        return max(c.ONNX_MIN_OPSET, 9), getattr(c, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", c.ONNX_MAX_OPSET)
    except (ImportError, AttributeError):
        return 9, 17


def _optimize(path: Path, enable: bool = True) -> None:
    """onnxruntime's basic (portable) graph optimizations: constant folding, redundant nodes.

    With ``enable=False`` it only re-saves the graph, topologically sorted. A weight read through a
    ``Transpose`` (a tied table, read both ways) is not folded: the folder would hold it twice, where
    onnxruntime folds it at load anyway.
    """
    import onnx
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_BASIC if enable else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {t.name for t in graph.initializer}
    read_twice = any(n.op_type == "Transpose" and n.input[0] in weights for n in graph.node)
    # the attributes of onnxruntime's own ops as written: saving, onnxruntime adds every attribute its
    # release knows at its default (an attention op's newest ones), which older releases refuse
    written = {n.name: {a.name for a in n.attribute} for n in graph.node if n.domain not in ("", "ai.onnx")}
    del graph
    out = path.with_name("optimized.onnx")
    opts.optimized_model_filepath = str(out)
    opts.log_severity_level = 3  # its notes on the graph are not the user's business
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"],
                         disabled_optimizers=["ConstantFolding"] if read_twice else None)
    if written:
        model = onnx.load(str(out))
        for node in model.graph.node:
            if node.name in written:
                for attr in [a for a in node.attribute if a.name not in written[node.name]]:
                    node.attribute.remove(attr)
        onnx.save(model, str(out))
    out.replace(path)


def _to_fp16(path: Path, fp32_scopes: tuple[str, ...] = ()) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(path))
    keep = {n.name for n in model.graph.node if n.name.startswith(tuple(fp32_scopes))} if fp32_scopes else set()
    model = convert_float_to_float16(model, keep_io_types=True, node_block_list=sorted(keep))
    if keep:
        _read_inputs_in_fp32(model.graph, keep)
    onnx.save(model, str(path))


def _read_inputs_in_fp32(graph, keep: set[str]) -> None:
    """The converter passes every value a kept node reads (a graph input, another kept node's output)
    through float16 and back (Cast, Cast): the precision is gone. Point kept nodes past those casts,
    at the float32 value itself, and drop the casts nobody reads any more."""
    made_by = {o: n for n in graph.node for o in n.output}
    inputs = {i.name for i in graph.input}

    def origin(name: str) -> str:
        src = name
        while src in made_by and made_by[src].op_type == "Cast" and made_by[src].name not in keep:
            src = made_by[src].input[0]  # a cast the converter inserted
        return src if src in inputs or (src in made_by and made_by[src].name in keep) else name

    for node in graph.node:
        if node.name in keep:
            for i, name in enumerate(node.input):
                node.input[i] = origin(name)
    while True:
        read = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if n.op_type == "Cast" and not any(o in read for o in n.output)]
        if not dead:
            return
        for n in dead:
            graph.node.remove(n)


def _quantize_int8(path: Path) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = path.with_name("quantized.onnx")
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process is for vision models
    try:
        # contrib ops (a family's own graph) have no ONNX shape inference: their outputs are float32
        import onnx

        quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        logging.getLogger().setLevel(level)
    out.replace(path)


@dataclass(frozen=True)
class WeightQuant:
    """Weight-only quantization of the MatMul (and optionally Gather) weights to ``bits`` (onnxruntime's
    ``MatMulNBits``, see :mod:`gentoolkit.quantization`): ``block_size`` weights share a scale,
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


def _quantize_weights(path: Path, q: WeightQuant, outputs: list[str], prequantized=None) -> dict[str, Any]:
    """Quantize the weights in place. Every ``MatMul`` with a constant 2-D weight becomes ``MatMulNBits``
    (the head, the ``MatMul`` that makes ``outputs[0]``, in ``q.head_bits``, or left alone without
    ``q.head``): from ``prequantized`` (``ExportPlan.prequantized``: initializer name -> blocks) where
    it holds blocks of that weight with at most those bits, as they are, else quantized here
    (:func:`gentoolkit.quantization.quantize_blocks`). Returns the manifest's record: ``nodes`` (how many
    of each op), ``from_file`` (the blocks used as given, by their source), ``quantized`` (weights
    quantized here, by bits) and ``requantized`` (weights ``prequantized`` held but that were quantized
    here all the same, and why)."""
    import logging

    import onnx
    from onnx import numpy_helper

    from .quantization import quantize_blocks, usable, write_matmul

    head_bits = q.head_bits or q.bits
    if head_bits not in (4, 8):
        raise ExportError(f"the head's bits must be 4 or 8, got {head_bits}")
    model = onnx.load(str(path))
    _gemm_to_matmul(model)
    tied = _tied_embedding(model) if q.embedding and q.head else None
    if q.embedding and tied is None:
        _fold_table_transposes(model)  # the quantizer takes a Gather over a table of its own
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if q.embedding and opset < 21 and tied is None:  # GatherBlockQuantized's int4 tables need opset 21; convert, not relabel
        from onnx import version_converter

        try:
            model = version_converter.convert_version(model, 21)
        except Exception as exc:  # noqa: BLE001
            raise ExportError(f"--quantize-embedding needs opset 21 and the graph does not convert: {exc}; "
                              "export without it or with --opset 21") from None
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    made_by = {o: n for n in model.graph.node for o in n.output}
    name = outputs[0]  # the head: the MatMul that makes the first output (through reshapes)
    while name in made_by and made_by[name].op_type != "MatMul":
        name = made_by[name].input[0]
    head = made_by[name].name if name in made_by else None
    inits = {t.name: t for t in model.graph.initializer}
    record: dict[str, Any] = {"nodes": {}, "from_file": {}, "quantized": {}, "requantized": {}}
    written, block_sums, done = {}, {}, {}
    for node in [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in inits]:
        weight = inits[node.input[1]]
        if len(weight.dims) != 2 or (node.name == head and not q.head):
            continue
        bits = head_bits if node.name == head else q.bits
        w = numpy_helper.to_array(weight)
        blocks = done.get((node.input[1], bits))
        if blocks is None:
            blocks, why = usable(prequantized, node.input[1], w, bits)
            if blocks is not None:
                record["from_file"][blocks.source] = record["from_file"].get(blocks.source, 0) + 1
            else:
                if why:
                    record["requantized"][node.input[1]] = why
                blocks = quantize_blocks(w.T, bits, q.block_size, q.symmetric, q.search)
                record["quantized"][f"int{bits}"] = record["quantized"].get(f"int{bits}", 0) + 1
            done[(node.input[1], bits)] = blocks
        written[node.output[0]] = write_matmul(model, node, blocks, q.accuracy_level, block_sums)
    used = {i for n in model.graph.node for i in n.input}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    if q.embedding and tied is None:  # a table of its own: onnxruntime's quantizer, GatherBlockQuantized
        from onnxruntime.quantization.matmul_nbits_quantizer import (
            DefaultWeightOnlyQuantConfig,
            MatMulNBitsQuantizer,
        )

        level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)
        try:
            config = DefaultWeightOnlyQuantConfig(block_size=q.block_size, is_symmetric=q.symmetric,
                                                  accuracy_level=q.accuracy_level, bits=q.bits,
                                                  op_types_to_quantize=("Gather",))
            quantizer = MatMulNBitsQuantizer(model, bits=q.bits, block_size=q.block_size, is_symmetric=q.symmetric,
                                             accuracy_level=q.accuracy_level, op_types_to_quantize=("Gather",),
                                             algo_config=config)
            quantizer.process()
        finally:
            logging.getLogger().setLevel(level)
        model = quantizer.model.model
    if tied is not None:
        _share_tied_table(model, tied[0], written.get(tied[1]))
    onnx.save(model, str(path))
    for n in model.graph.node:
        if n.op_type in ("MatMulNBits", "GatherBlockQuantized"):
            record["nodes"][n.op_type] = record["nodes"].get(n.op_type, 0) + 1
    return {k: v for k, v in record.items() if v or k in ("nodes", "quantized")}


def _opset_of(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _tied_embedding(model) -> tuple[str, str] | None:
    """``(the embedding Gather's name, the head's output)`` where the embedding ``Gather`` reads the head's
    ``MatMul`` weight through a ``Transpose`` (a tied head as the fused graph writes it), else None."""
    from onnx import helper

    inits = {t.name for t in model.graph.initializer}
    made_by = {o: n for n in model.graph.node for o in n.output}
    for gather in (n for n in model.graph.node if n.op_type == "Gather" and n.input[0] in made_by):
        t = made_by[gather.input[0]]
        perm = next((helper.get_attribute_value(a) for a in t.attribute if a.name == "perm"), None)
        if t.op_type != "Transpose" or t.input[0] not in inits or list(perm or []) != [1, 0]:
            continue
        head = next((n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] == t.input[0]), None)
        if head is not None:
            return gather.name, head.output[0]
    return None


def _fold_table_transposes(model) -> None:
    """Each embedding ``Gather`` that reads a weight through a ``Transpose`` reads a transposed copy instead."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    made_by = {o: n for n in model.graph.node for o in n.output}
    for gather in [n for n in model.graph.node if n.op_type == "Gather" and n.input[0] in made_by]:
        t = made_by[gather.input[0]]
        if t.op_type == "Transpose" and t.input[0] in inits:
            name = t.input[0] + "_table"
            model.graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(inits[t.input[0]]).T.copy(), name))
            gather.input[0] = name
            if not any(t.output[0] in n.input for n in model.graph.node):
                model.graph.node.remove(t)


def _share_tied_table(model, gather_name: str, head) -> None:
    """The embedding of a tied model read from the head's quantized table, as the model builder does:
    ``GatherBlockQuantized`` over the head's ``MatMulNBits`` weights and scales (the same blocks along
    the embedding width, the same zero points), so the table is stored once, quantized. ``head``: what
    :func:`gentoolkit.quantization.write_matmul` wrote for it. Left as it is where the blocks do not
    tile the width exactly or the zero points are fractions (a float term after the head)."""
    from onnx import helper, numpy_helper

    nodes = list(model.graph.node)
    gather = next(n for n in nodes if n.name == gather_name)
    if head is None or head.corrected:
        return
    attrs = {a.name: helper.get_attribute_value(a) for a in head.node.attribute}
    K, N, bits, block = attrs["K"], attrs["N"], attrs["bits"], attrs["block_size"]
    if K % block:  # padded blocks
        return
    transpose, n = gather.input[0], gather_name
    # the head's blocks as they are, (N, K / block, block * bits / 8): one block per row of the last axis,
    # its scale (and zero point, one byte each) broadcast over it; each token's (K / block, block) comes
    # back as one row of K
    model.graph.initializer.extend([numpy_helper.from_array(np.array([N, K // block, 1], np.int64), n + "/scale_shape"),
                                    numpy_helper.from_array(np.array([0, 0, K], np.int64), n + "/row_shape")])
    scales = helper.make_node("Reshape", [head.node.input[2], n + "/scale_shape"], [n + "/scales"], name=n + "/scales")
    inputs = [head.node.input[1], gather.input[1], scales.output[0]]
    if head.zero is not None:
        model.graph.initializer.append(numpy_helper.from_array(head.zero.reshape(N, K // block, 1), n + "/zero_points"))
        inputs.append(n + "/zero_points")
    blocks = helper.make_node("GatherBlockQuantized", inputs, [n + "/blocks"],
                              name=n, domain="com.microsoft", bits=bits, block_size=block, gather_axis=0, quantize_axis=2)
    rows = helper.make_node("Reshape", [blocks.output[0], n + "/row_shape"], list(gather.output), name=n + "/rows")
    at = nodes.index(gather)
    nodes[at : at + 1] = [scales, blocks, rows]
    if not any(transpose in x.input for x in nodes):  # the float table's Transpose, and the table, go
        made = next(x for x in nodes if transpose in x.output)
        nodes.remove(made)
        if not any(made.input[0] in x.input for x in nodes):
            keep = [t for t in model.graph.initializer if t.name != made.input[0]]
            del model.graph.initializer[:]
            model.graph.initializer.extend(keep)
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _gemm_to_matmul(model) -> None:
    """Each ``Gemm`` with a constant weight (a Linear on a 2-D input) as ``MatMul`` and ``Add``, which the
    weight-only quantizer takes (it leaves ``Gemm`` alone)."""
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (node.op_type != "Gemm" or node.input[1] not in inits or attrs.get("transA", 0)
                or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0):
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        name = node.input[1] + "_matmul"
        model.graph.initializer.append(numpy_helper.from_array(weight.T.copy() if attrs.get("transB", 0) else weight,
                                                               name))
        if len(node.input) > 2 and node.input[2]:
            mid = node.output[0] + "_matmul"
            nodes.append(helper.make_node("MatMul", [node.input[0], name], [mid], name=node.name + "_matmul"))
            nodes.append(helper.make_node("Add", [mid, node.input[2]], list(node.output), name=node.name + "_bias"))
        else:
            nodes.append(helper.make_node("MatMul", [node.input[0], name], list(node.output), name=node.name))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {i for n in model.graph.node for i in n.input}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def _finalize(path: Path, manifest: dict, external: bool, family_floor: str | None = None) -> None:
    """Write the manifest into the graph's ``metadata_props`` (with ``onnxruntime``, the oldest release
    that runs it, set in ``manifest`` too) and save it at the lowest IR version that holds it."""
    import onnx

    model = onnx.load(str(path))
    _portable(model)
    manifest["onnxruntime"] = onnxruntime_floor(model, family_floor)
    del model.metadata_props[:]
    for key, value in manifest.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value)
    if external:
        from .files import new_file_mode

        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=MODEL + ".data")
        new_file_mode(path.with_name(MODEL + ".data"))
    else:
        onnx.save(model, str(path))


def onnxruntime_floor(model, family_floor: str | None = None) -> str:
    """The oldest onnxruntime release that runs ``model``: the newest of :data:`ONNXRUNTIME_FLOOR`, the
    family's floor for its graph and :data:`OP_FLOORS` of the ops the graph holds."""
    floors = [ONNXRUNTIME_FLOOR, *([family_floor] if family_floor else [])]
    floors += [OP_FLOORS[(n.domain, n.op_type)] for n in model.graph.node if (n.domain, n.op_type) in OP_FLOORS]
    return max(floors, key=version_tuple)


def _portable(model) -> None:
    """What an older onnxruntime needs to load the graph: the lowest IR version that holds it, and no
    opset imports that no node uses (onnxruntime writes every domain it registers into a graph it
    optimizes)."""
    used = {n.domain or "" for n in model.graph.node} | {""}
    keep = [o for o in model.opset_import if (o.domain or "") in used or o.domain == "ai.onnx"]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    model.ir_version = lowest_ir_version(model)


def lowest_ir_version(model) -> int:
    """The lowest ONNX IR version that holds ``model``: its opset's, or 10 for 4-bit tensors, 9 for 8-bit
    floats. The onnx package saves every graph at its own newest IR version (14 in onnx 1.23), which an
    onnxruntime one release behind refuses although nothing in the graph needs it."""
    from onnx import TensorProto, helper

    ir = helper.find_min_ir_version_for([o for o in model.opset_import if o.domain in ("", "ai.onnx")],
                                        ignore_unknown=True)
    types = {t.data_type for t in model.graph.initializer}
    types |= {v.type.tensor_type.elem_type for v in (*model.graph.input, *model.graph.output, *model.graph.value_info)}
    if types & {TensorProto.INT4, TensorProto.UINT4}:
        ir = max(ir, 10)
    if types & {TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E4M3FNUZ, TensorProto.FLOAT8E5M2, TensorProto.FLOAT8E5M2FNUZ}:
        ir = max(ir, 9)
    return min(ir, model.ir_version)


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


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def validate(plan: ExportPlan, path: Path, tol: Tolerance, log=print, opened: list | None = None) -> dict[str, Any]:
    """onnx.checker (full), then every case in PyTorch and onnxruntime. Returns, per output, the largest
    absolute and relative difference, and for the logits the largest and mean KL divergence and the
    greedy agreement; raises at the first case that breaks ``tol``, naming it. The onnxruntime runner it
    opens is appended to ``opened`` for a caller that runs more (a model takes seconds to load)."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"the exported graph fails onnx.checker: {exc}") from None
    ort_run, pt_run = ort_runner(path), torch_runner(plan)
    if opened is not None:
        opened.append(ort_run)
    worst: dict[str, dict[str, float]] = {}
    kl_sum, positions, agree, ties = 0.0, 0, 0, 0
    max_kl = 0.0
    hint = "; export fp32 to check the graph, or see docs/export.md (Validation) for what each bound means"

    def fail(what: str, name: str, step: int) -> ExportError:
        return ExportError(f"validation failed: {what} in case {name!r}, step {step}{hint}")

    for name, case in plan.cases:
        for step, (a, b) in enumerate(zip(case(pt_run), case(ort_run))):
            for out_name in a:
                ref, got = a[out_name], b[out_name]
                diff = float(np.max(np.abs(ref - got))) if ref.size else 0.0
                scale = float(np.max(np.abs(ref))) if ref.size else 0.0
                rel = diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))
                key = re.sub(r"\.\d+(\..*)?$", ".*", out_name)  # one line for every layer's present.{i}.key
                w = worst.setdefault(key, {"max_abs_diff": 0.0, "max_rel_diff": 0.0})
                w["max_abs_diff"], w["max_rel_diff"] = max(w["max_abs_diff"], diff), max(w["max_rel_diff"], rel)
                if not np.isfinite(diff):
                    raise fail(f"output {out_name!r} is not finite", name, step)
                if tol.atol is not None and diff > tol.atol:
                    raise fail(f"output {out_name!r} differs from PyTorch by {diff:.3g} (> --atol {tol.atol:g})",
                               name, step)
                if tol.atol is None and rel > tol.rtol:
                    raise fail(f"output {out_name!r} differs from PyTorch by {diff:.3g}, {rel:.2g} of its largest "
                               f"magnitude {scale:.3g} (> rtol {tol.rtol:g})", name, step)
                if out_name != plan.logits or not ref.size:
                    continue
                ref2, got2 = ref.reshape(-1, ref.shape[-1]), got.reshape(-1, got.shape[-1])
                lp, lq = _log_softmax(ref2), _log_softmax(got2)
                kl = (np.exp(lp) * (lp - lq)).sum(-1)
                top2 = np.sort(ref2, -1)[:, -2:] if ref2.shape[-1] > 1 else np.concatenate([ref2, ref2 - 1], -1)
                tie = (top2[:, 1] - top2[:, 0]) <= TIE * scale
                same = ref2.argmax(-1) == got2.argmax(-1)
                positions += len(kl)
                ties += int(tie.sum())
                agree += int((same & ~tie).sum())
                kl_sum += float(kl.sum())
                max_kl = max(max_kl, float(kl.max()))
                if float(kl.max()) > tol.max_kl:
                    raise fail(f"the next-token distribution differs from PyTorch's by KL {float(kl.max()):.3g} "
                               f"(> max_kl {tol.max_kl:g})", name, step)
    report: dict[str, Any] = {"tolerance": tol.as_dict(), "outputs": worst}
    if positions:
        decided = positions - ties
        share = agree / decided if decided else 1.0
        report["logits"] = {"positions": positions, "ties": ties, "greedy_agreement": share,
                            "max_kl": max_kl, "mean_kl": kl_sum / positions}
        if share < tol.greedy:
            raise ExportError(f"validation failed: the greedy token agrees with PyTorch's at {agree} of {decided} "
                              f"positions ({share:.1%} < {tol.greedy:.0%}){hint}")
    bound = f"atol {tol.atol:g}" if tol.atol is not None else f"rtol {tol.rtol:g}"
    for key, w in worst.items():
        log(f"  {key:<24} max abs diff {w['max_abs_diff']:.3g}, relative {w['max_rel_diff']:.2g}  ({bound})")
    if positions:
        r = report["logits"]
        log(f"  {'greedy token':<24} agrees at {agree} of {positions - ties} positions"
            + (f" ({ties} ties)" if ties else "") + f"  (at least {tol.greedy:.0%})")
        log(f"  {'KL divergence':<24} max {r['max_kl']:.3g}, mean {r['mean_kl']:.3g}  (max_kl {tol.max_kl:g})")
    return report


def check_target(out: Path, run_path: Path, overwrite: bool) -> str:
    """How an export may go to ``out``: ``"new"`` (missing or empty), ``"replace"`` (a previous export,
    only its own files) or ``"beside"`` (``--overwrite`` next to files that are not an export's)."""
    from . import checkpoint
    from .files import is_temp

    if out.is_symlink():
        raise ExportError(f"-o {str(out)!r} is a symbolic link; give the folder itself")
    if out.exists() and not out.is_dir():
        raise ExportError(f"-o {str(out)!r} is a file; give a folder for the export")
    run_real, out_real = run_path.resolve(), out.resolve()
    if out_real == run_real:
        raise ExportError("-o must be a new folder, not the run folder itself")
    if out_real in run_real.parents:
        raise ExportError(f"-o {str(out)!r} holds the run being exported; give a new folder for the export")
    if not out.exists():
        return "new"
    own = {name.split("/")[0] for name in own_files(out) or ()}  # a layout's onnx/ folder is its own
    if ((out / "config.json").is_file() and "config.json" not in own) or checkpoint.exists(out):
        raise ExportError(f"-o {str(out)!r} is a training run; give a new folder for the export")
    entries = sorted(p.name for p in out.iterdir() if not is_temp(p.name))
    if not entries:
        return "new"
    foreign = [e for e in entries if e not in own]
    if not foreign:
        return "replace"
    if not overwrite:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        what = "a previous export and other files" if own else "files that are not an export"
        raise ExportError(f"-o {str(out)!r} holds {what} ({shown}); pick a new folder, or pass --overwrite "
                          "to write the export beside them (they are kept)")
    return "beside"


def _place_beside(tmp: Path, out: Path) -> None:
    """``--overwrite`` into a folder with files that are not the export's: move the new files in one
    by one (each rename is atomic), the manifest last, and remove only the previous export's files.
    A file of the same name as a new one that no export wrote is never replaced."""
    from . import faults
    from .files import write_json

    new = sorted(p.name for p in tmp.iterdir())
    old = own_files(out) or set()
    clash = [n for n in new if (out / n).exists() and n not in old]
    if clash:
        raise ExportError(f"-o {str(out)!r} holds {', '.join(clash[:5])}, which no export wrote; "
                          "move it away or pick another -o")
    write_json(out / PENDING, sorted(set(new) | (old - {PENDING})))
    if (out / MANIFEST).exists():
        (out / MANIFEST).unlink()  # the folder is not an export until the new manifest is in place
    for name in [n for n in new if n != MANIFEST] + [MANIFEST]:
        os.replace(tmp / name, out / name)
        faults.point("export.beside")
    for name in sorted(old - set(new) - {PENDING}):
        target = out / name
        if target.is_file() and not target.is_symlink():
            target.unlink()
    (out / PENDING).unlink()


def export(
    run_path: str | Path,
    out: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    atol: float | None = None,
    rtol: float | None = None,
    max_kl: float | None = None,
    dtype: str = "fp32",
    quantize: str | None = None,
    optimize: bool = True,
    check: bool = True,
    overwrite: bool = False,
    external_data_bytes: int = EXTERNAL_DATA_BYTES,
    weights: WeightQuant | None = None,
    eval_data: str | Path | None = None,
    graph: str | None = None,
    log=print,
    plan: ExportPlan | None = None,
) -> dict:
    """Export a run folder to ``out``; returns the manifest. The Python API of ``gentool export``.

    A graph larger than ``external_data_bytes`` (16 MB) keeps its weights in one ``model.onnx.data`` file
    beside ``model.onnx``: onnxruntime maps that file rather than parsing the weights into memory and
    copying them (and protobuf cannot hold 2 GB); 0 makes every export do so.

    ``out`` may be missing, an empty folder or a previous export (replaced in one step); a folder
    with other files needs ``overwrite=True``, and even then only the export's own files change.
    ``graph`` names one of the family's graphs (``ExportPlan.graphs``, or ``"traced"``); default the
    family's ``default_graph``. ``plan``: the family's ``ExportPlan`` when the caller has built it
    already (one per run, whatever the dtype).
    """
    import shutil

    from . import faults
    from .files import inside, new_temp_dir, publish_dir, remove_stale_temps, write_json
    from .plugins import get_model

    run = Run.open(run_path)
    spec = get_model(run.model_name)
    run.require(WEIGHTS)
    if spec.export is None:
        raise ExportError(f"model {spec.name!r} (plugin {spec.plugin!r}) does not describe an ONNX export")
    if dtype not in ("fp32", "fp16", "int8", "int4"):
        raise ExportError(f"--dtype must be fp32, fp16, int8 or int4, got {dtype!r}")
    if quantize not in (None, "int8"):
        raise ExportError(f"--quantize supports int8 only, got {quantize!r}")
    if quantize and dtype != "fp32":
        raise ExportError(f"choose --dtype {dtype} or --quantize int8 (dynamic), not both")
    if dtype in ("int8", "int4"):
        weights = dataclasses.replace(weights or WeightQuant(), bits=8 if dtype == "int8" else 4)
        if weights.block_size < 16 or weights.block_size & (weights.block_size - 1):
            raise ExportError(f"--block-size must be a power of two, 16 or more, got {weights.block_size}")
        if weights.accuracy_level not in (0, 1, 2, 3, 4):
            raise ExportError(f"--accuracy-level must be 0 to 4, got {weights.accuracy_level}")
    elif weights is not None:
        raise ExportError("--block-size, --asymmetric, --accuracy-level and the head and embedding options are for "
                          "--dtype int4 or int8")
    import torch.onnx

    lo, hi = _opset_range()
    if not lo <= opset <= hi:
        raise ExportError(f"the installed PyTorch exports opsets {lo} to {hi}, not {opset}; try --opset {DEFAULT_OPSET}")
    kind = "int8" if quantize else "int8-weights" if dtype == "int8" else dtype
    tol = TOLERANCES[kind]
    for key, value in (("atol", atol), ("rtol", rtol), ("max_kl", max_kl)):
        if value is not None:
            if not (isinstance(value, (int, float)) and value > 0 and np.isfinite(value)):
                raise ExportError(f"--{key.replace('_', '-')} must be a positive number, got {value!r}")
            tol = dataclasses.replace(tol, **{key: float(value)})
    out = Path(out)
    mode = check_target(out, Path(run_path), overwrite)
    if eval_data is not None and not Path(eval_data).is_file():
        raise ExportError(f"--eval-data {eval_data} is not a file; name a text file to measure the export's quality on")
    if eval_data is not None and not check:
        raise ExportError("--eval-data measures quality during validation; drop --no-validate")
    remove_stale_temps(out.parent, stem=out.name)
    plan = plan or resolve(spec.export)(run)  # export_layout builds it once for all its variants
    if eval_data is not None and plan.quality_on is None:
        raise ExportError(f"model {spec.name!r} (plugin {spec.plugin!r}) cannot measure quality on a named file; "
                          "drop --eval-data")
    graph = graph or plan.default_graph
    choices = [TRACED, *plan.graphs]
    if graph not in choices:
        raise ExportError(f"model {spec.name!r} has no graph {graph!r}; choose --graph {' or '.join(choices)}")
    tmp = new_temp_dir(out)
    try:
        path = tmp / MODEL
        _convert(plan, path, opset, graph)
        faults.point("export.converted")
        quantized = None
        if weights is not None:  # before the optimizer fuses MatMul and Add into Gemm, which it leaves alone
            quantized = _quantize_weights(path, weights, [s["name"] for s in plan.outputs], plan.prequantized)
            if not quantized["nodes"]:
                raise ExportError(f"--dtype {dtype} found no MatMul weights to quantize in {spec.name}'s graph")
            if weights.embedding and _opset_of(path) >= 21:  # the quantizer's own GatherBlockQuantized
                opset = max(opset, 21)
        if dtype == "fp16":
            _to_fp16(path, plan.fp32_scopes)
        # a graph the family writes itself is written as onnxruntime's basic pass would leave it; what it
        # could still fold, onnxruntime folds at load (saving the pass costs 5 s at 135M). A graph that a
        # conversion or the quantizer changed goes through it (it also restores their topological order)
        as_written = graph != TRACED and dtype == "fp32" and quantize is None
        if (optimize and not as_written) or dtype == "fp16":
            _optimize(path, enable=optimize)
        if quantize == "int8":
            _quantize_int8(path)
        for name, content in plan.files.items():
            if name in (MANIFEST, MODEL, MODEL + ".data", PENDING) or "/" in name or "\\" in name:
                raise ExportError(f"the {spec.plugin} plugin's export names a file {name!r} it may not write")
            inside(tmp, name, "an export file").write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        manifest = {
            "format_version": FORMAT_VERSION,
            "family": spec.family,
            "model": spec.name,
            "plugin": spec.plugin,
            "plugin_version": _plugin_version(spec.plugin),
            "gentoolkit_version": __version__,
            "torch_version": torch.__version__,
            "opset": opset,
            "dtype": dtype,
            "quantize": quantize,
            "graph": graph,
            "weights": None if weights is None else {**weights.as_dict(), **quantized},
            "model_file": MODEL,
            "config": run.config,
            "io": {"inputs": plan.inputs, "outputs": plan.outputs},
            "runtime": plan.runtime,
            "sampler_defaults": plan.sampler_defaults,
        }
        taken = sorted(set(plan.manifest) & (set(manifest) | {"validation", "files"}))
        if taken:
            raise ExportError(f"the {spec.plugin} plugin's export sets manifest keys the export stage owns: {taken}")
        manifest.update(plan.manifest)
        if check:
            log(f"validating {spec.name} in onnxruntime against PyTorch ({kind}):")
            ort_run: list[Runner] = []  # the session validation opens, which the quality report reuses
            report = validate(plan, path, tol, log, opened=ort_run)
            manifest["validation"] = {**report, "max_abs_diff": {k: v["max_abs_diff"] for k, v in report["outputs"].items()},
                                      "cases": [name for name, _ in plan.cases]}
            # fp32 differs from PyTorch by rounding alone, which the cases measured: the report of what an
            # export cost (minutes at 135M) is for the formats that change the model, or a text the user names
            quality = plan.quality if kind != "fp32" else None
            if eval_data is not None:
                quality = plan.quality_on(Path(eval_data))
            if quality is not None:
                q_ort = quality(ort_run[0])
                q_pt = quality(torch_runner(plan))
                manifest["validation"]["quality"] = {"onnxruntime": q_ort, "pytorch": q_pt}
                measured_on = getattr(quality, "measured_on", None)
                if measured_on:
                    manifest["validation"]["quality"]["measured_on"] = measured_on
                    log(f"  quality, {measured_on}:")
                for k in q_ort:
                    log(f"  {k:<24} onnxruntime {q_ort[k]:.4f}  pytorch {q_pt[k]:.4f}  change {q_ort[k] - q_pt[k]:+.4f}")
        faults.point("export.validated")
        external = path.stat().st_size > external_data_bytes
        manifest["files"] = sorted({MANIFEST, MODEL, *plan.files} | ({MODEL + ".data"} if external else set()))
        _finalize(path, manifest, external=external, family_floor=plan.onnxruntime.get(graph))
        write_json(tmp / MANIFEST, manifest)
        if mode == "beside":
            _place_beside(tmp, out)
        else:
            publish_dir(tmp, out)  # a previous export is exchanged for the new one in one step
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the build folder, or the previous export after the exchange
    size = sum(f.stat().st_size for f in out.iterdir() if f.name.startswith(MODEL))
    log(f"exported {out} ({size / 1e6:.2f} MB)")
    return manifest


# transformers.js names a model file by its dtype (``dtype`` in its from_pretrained options): the variant,
# the file's suffix, and how gentoolkit's export makes it
TRANSFORMERS_JS = "transformers.js"
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "fp32": ("", {"dtype": "fp32"}),
    "fp16": ("_fp16", {"dtype": "fp16"}),
    "q8": ("_quantized", {"quantize": "int8"}),  # dynamic int8, what transformers.js's own conversion writes
    "q4": ("_q4", {"dtype": "int4"}),  # MatMulNBits, 4 bits, blocks of 32
}
DEFAULT_VARIANTS = ("fp32", "q8", "q4")


def _move_model(src: Path, dest: Path) -> None:
    """Move an export's ``model.onnx`` (and its external data, renamed as transformers.js looks for it:
    ``NAME.onnx_data``) to ``dest``."""
    data = src.with_name(src.name + ".data")
    if not data.exists():
        os.replace(src, dest)
        return
    import onnx

    from .files import new_file_mode

    model = onnx.load(str(src))
    onnx.save(model, str(dest), save_as_external_data=True, all_tensors_to_one_file=True,
              location=dest.name + "_data")
    new_file_mode(dest.with_name(dest.name + "_data"))


def export_layout(run_path: str | Path, out: str | Path, *, layout: str = TRANSFORMERS_JS,
                  variants: tuple[str, ...] = DEFAULT_VARIANTS, overwrite: bool = False, log=print, **kw) -> dict:
    """Export a run in another runtime's folder layout; returns the manifest. ``transformers.js``: the
    folder ``pipeline('text-generation', folder)`` loads (``config.json``, the tokenizer files,
    ``onnx/model.onnx`` and one file per variant in its naming), which gentoolkit.runtime also loads.
    Each variant is a whole validated export; the keyword arguments are :func:`export`'s."""
    import shutil

    from .files import new_temp_dir, publish_dir, remove_stale_temps, write_json
    from .plugins import get_model

    if layout != TRANSFORMERS_JS:
        raise ExportError(f"--layout must be onnx or {TRANSFORMERS_JS}, got {layout!r}")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants or len(set(variants)) != len(variants):
        raise ExportError(f"--variants takes a comma-separated list of {', '.join(VARIANTS)} (each once), "
                          f"got {','.join(variants)!r}")
    for key in ("dtype", "quantize"):
        if kw.get(key) not in (None, "fp32"):
            raise ExportError(f"--layout {layout} writes one file per variant: choose them with --variants, not --{key}")
    graph = kw.get("graph") or TRACED  # the traced graph unless --graph says otherwise (docs/javascript.md)
    weights = kw.pop("weights", None)
    if weights is not None and "q4" not in variants:
        raise ExportError("--block-size, --asymmetric, --accuracy-level and the head and embedding options shape the q4 "
                          "variant; add q4 to --variants")
    for key in ("dtype", "quantize", "graph"):
        kw.pop(key, None)
    run = Run.open(run_path)
    spec = get_model(run.model_name)
    run.require(WEIGHTS)
    if spec.export is None:
        raise ExportError(f"model {spec.name!r} (plugin {spec.plugin!r}) does not describe an ONNX export")
    plan = resolve(spec.export)(run)
    extra = plan.layouts.get(layout)
    if extra is None:
        raise ExportError(f"model {spec.name!r} (plugin {spec.plugin!r}) has no {layout} layout; "
                          "export it without --layout")
    out = Path(out)
    if check_target(out, Path(run_path), overwrite) == "beside":
        raise ExportError(f"--layout {layout} goes to a new or empty folder, or replaces a previous export; "
                          f"-o {str(out)!r} holds other files")
    remove_stale_temps(out.parent, stem=out.name)
    tmp = new_temp_dir(out)
    try:
        (tmp / "onnx").mkdir()
        manifest: dict[str, Any] | None = None
        made: dict[str, Any] = {}
        external: dict[str, int] = {}
        for name in variants:
            suffix, how = VARIANTS[name]
            build = tmp / f"build-{name}"
            log(f"{layout} variant {name}:")
            m = export(run_path, build, graph=graph, log=lambda line: line.startswith("exported ") or log(line), **how, **kw,
                       **({"weights": weights} if name == "q4" and weights is not None else {}), plan=plan)
            file = f"onnx/model{suffix}.onnx"
            _move_model(build / MODEL, tmp / file)
            if (tmp / (file + "_data")).exists():
                external[Path(file).name] = 1
            made[name] = {"file": file, "dtype": m["dtype"], "quantize": m["quantize"], "weights": m["weights"],
                          "validation": m.get("validation")}
            if manifest is None:
                manifest = m
                for f in m["files"]:
                    if f not in (MANIFEST, MODEL, MODEL + ".data"):
                        os.replace(build / f, tmp / f)
            shutil.rmtree(build)
        assert manifest is not None
        for name, content in extra.items():
            (tmp / name).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        if external and (tmp / "config.json").is_file():  # transformers.js reads NAME.onnx_data only when told
            config = json.loads((tmp / "config.json").read_text(encoding="utf-8"))
            config.setdefault("transformers.js_config", {})["use_external_data_format"] = external
            write_json(tmp / "config.json", config)
        first = made[variants[0]]
        manifest.update(model_file=first["file"], dtype=first["dtype"], quantize=first["quantize"],
                        weights=first["weights"], layout=layout, variants=made)
        if first["validation"] is not None:
            manifest["validation"] = first["validation"]
        manifest["files"] = sorted({MANIFEST, *(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())})
        write_json(tmp / MANIFEST, manifest)
        publish_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    size = sum(f.stat().st_size for f in (out / "onnx").iterdir())
    log(f"exported {out} ({layout}: {', '.join(variants)}; {size / 1e6:.2f} MB)")
    return manifest


def main_cli(run, out, fmt: str = "onnx", layout: str = "onnx", variants: str | None = None, **kw) -> None:
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    if fmt == "hf":
        from .plugins import get_model

        if layout != "onnx" or variants:
            raise ExportError("--layout and --variants are for ONNX exports, not --format hf")

        r = Run.open(run)
        spec = get_model(r.model_name)
        if spec.interop.hf_export is None:
            raise ExportError(f"model {spec.name!r} (plugin {spec.plugin!r}) has no Hugging Face export; "
                              "export it to ONNX")
        others = [k for k in ("opset", "atol", "rtol", "max_kl", "dtype", "quantize", "weights", "eval_data", "graph")
                  if kw.get(k) not in (None, DEFAULT_OPSET, "fp32")]
        if others:
            flag = {"weights": "block-size", "eval_data": "eval-data", "max_kl": "max-kl"}.get(others[0], others[0])
            raise ExportError(f"--{flag} is for ONNX exports, not --format hf")
        resolve(spec.interop.hf_export)(r, out, overwrite=kw.get("overwrite", False), log=log)
        return
    if layout != "onnx":
        names = tuple(v.strip() for v in variants.split(",")) if variants else DEFAULT_VARIANTS
        export_layout(run, out, layout=layout, variants=names, log=log, **kw)
        return
    if variants:
        raise ExportError(f"--variants names the files of --layout {TRANSFORMERS_JS}; add --layout {TRANSFORMERS_JS}")
    export(run, out, log=log, **kw)

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .contract import FORMAT_VERSION, MANIFEST, MODEL, PENDING, own_files
from .errors import ExportError
from .registry import resolve
from .run import WEIGHTS, Run

DEFAULT_ATOL = {"fp32": 1e-4, "fp16": 5e-2, "int8": 1.0, "int8-weights": 1.0, "int4": 2.0}
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
    out = path.with_name("optimized.onnx")
    opts.optimized_model_filepath = str(out)
    opts.log_severity_level = 3  # its notes on the graph are not the user's business
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"],
                         disabled_optimizers=["ConstantFolding"] if read_twice else None)
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
    ``MatMulNBits``): ``block_size`` weights share a scale, ``symmetric`` or with a zero point, and
    ``accuracy_level`` the arithmetic onnxruntime may use (0: as the inputs, 4: int8, the fastest on
    CPUs). ``head``: the output projection too; ``embedding``: the token embedding too."""

    bits: int = 4
    block_size: int = 32
    symmetric: bool = True
    accuracy_level: int = 4
    head: bool = True
    embedding: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _quantize_weights(path: Path, q: WeightQuant, outputs: list[str]) -> dict[str, int]:
    """Quantize the weights in place; returns how many nodes of each kind were quantized."""
    import logging

    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    model = onnx.load(str(path))
    _gemm_to_matmul(model)
    tied = _tied_embedding(model) if q.embedding and q.head and q.symmetric else None
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
    made_by = {o: n for n in model.graph.node for o in n.output}
    exclude = []
    if not q.head:  # the MatMul that makes the first output (through reshapes)
        name = outputs[0]
        while name in made_by and made_by[name].op_type != "MatMul":
            name = made_by[name].input[0]
        if name in made_by:
            exclude.append(made_by[name].name)
    ops = ("MatMul", "Gather") if q.embedding and tied is None else ("MatMul",)
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        config = DefaultWeightOnlyQuantConfig(block_size=q.block_size, is_symmetric=q.symmetric,
                                              accuracy_level=q.accuracy_level, bits=q.bits, op_types_to_quantize=ops)
        quantizer = MatMulNBitsQuantizer(model, bits=q.bits, block_size=q.block_size, is_symmetric=q.symmetric,
                                         accuracy_level=q.accuracy_level, nodes_to_exclude=exclude,
                                         op_types_to_quantize=ops, algo_config=config)
        quantizer.process()
    finally:
        logging.getLogger().setLevel(level)
    out = quantizer.model.model
    if tied is not None:
        _share_tied_table(out, *tied, q)
    onnx.save(out, str(path))
    counts: dict[str, int] = {}
    for n in out.graph.node:
        if n.op_type in ("MatMulNBits", "GatherBlockQuantized"):
            counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts


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


def _share_tied_table(model, gather_name: str, head_output: str, q: WeightQuant) -> None:
    """The embedding of a tied model read from the head's quantized table, as the model builder does:
    ``GatherBlockQuantized`` over the head's ``MatMulNBits`` weights and scales (the same blocks along
    the embedding width, the same implied zero point), so the table is stored once, quantized. Left
    as it is where the blocks do not tile the width exactly."""
    from onnx import helper, numpy_helper

    nodes = list(model.graph.node)
    head = next((n for n in nodes if n.op_type == "MatMulNBits" and head_output in n.output), None)
    gather = next(n for n in nodes if n.name == gather_name)
    if head is None:
        return
    attrs = {a.name: helper.get_attribute_value(a) for a in head.attribute}
    K, N, bits, block = attrs["K"], attrs["N"], attrs["bits"], attrs["block_size"]
    if K % block or len(head.input) > 3 and head.input[3]:  # padded blocks, or zero points
        return
    transpose, n = gather.input[0], gather_name
    # the head's blocks as they are, (N, K / block, block * bits / 8): one block per row of the last axis,
    # its scale broadcast over it; each token's (K / block, block) comes back as one row of K
    model.graph.initializer.extend([numpy_helper.from_array(np.array([N, K // block, 1], np.int64), n + "/scale_shape"),
                                    numpy_helper.from_array(np.array([0, 0, K], np.int64), n + "/row_shape")])
    scales = helper.make_node("Reshape", [head.input[2], n + "/scale_shape"], [n + "/scales"], name=n + "/scales")
    blocks = helper.make_node("GatherBlockQuantized", [head.input[1], gather.input[1], scales.output[0]], [n + "/blocks"],
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


def _finalize(path: Path, manifest: dict, external: bool) -> None:
    import onnx

    model = onnx.load(str(path))
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


def validate(plan: ExportPlan, path: Path, atol: float, log=print) -> dict[str, float]:
    """onnx.checker (full), then every case in PyTorch and onnxruntime; the largest difference per output."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"the exported graph fails onnx.checker: {exc}") from None
    ort_run, pt_run = ort_runner(path), torch_runner(plan)
    worst: dict[str, float] = {}
    for name, case in plan.cases:
        for step, (a, b) in enumerate(zip(case(pt_run), case(ort_run))):
            for out_name in a:
                diff = float(np.max(np.abs(a[out_name] - b[out_name]))) if a[out_name].size else 0.0
                key = re.sub(r"\.\d+(\..*)?$", ".*", out_name)  # one line for every layer's present.{i}.key
                worst[key] = max(worst.get(key, 0.0), diff)
                if diff > atol or not np.isfinite(diff):
                    raise ExportError(
                        f"validation failed: output {out_name!r} differs from PyTorch by {diff:.3g} "
                        f"(> atol {atol:g}) in case {name!r}, step {step}; raise --atol or export fp32"
                    )
    for key, diff in worst.items():
        log(f"  {key:<24} max abs diff {diff:.3g}  (atol {atol:g})")
    return worst


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
    atol = DEFAULT_ATOL[kind] if atol is None else atol
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
            quantized = _quantize_weights(path, weights, [s["name"] for s in plan.outputs])
            if not quantized:
                raise ExportError(f"--dtype {dtype} found no MatMul weights to quantize in {spec.name}'s graph")
            if weights.embedding and _opset_of(path) >= 21:  # the quantizer's own GatherBlockQuantized
                opset = max(opset, 21)
        if dtype == "fp16":
            _to_fp16(path, plan.fp32_scopes)
        if optimize or dtype == "fp16":
            _optimize(path, enable=optimize)  # also restores the topological order fp16 conversion breaks
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
            "weights": None if weights is None else {**weights.as_dict(), "nodes": quantized},
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
            manifest["validation"] = {"atol": atol, "max_abs_diff": validate(plan, path, atol, log),
                                      "cases": [name for name, _ in plan.cases]}
            quality = plan.quality
            if eval_data is not None:
                quality = plan.quality_on(Path(eval_data))
            if quality is not None:
                q_ort = quality(ort_runner(path))
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
        _finalize(path, manifest, external=external)
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
    if kw.get("graph") not in (None, TRACED):
        raise ExportError(f"--layout {layout} writes the traced graph: transformers.js's onnxruntime (onnxruntime-node "
                          "and -web 1.30) cannot run the fused graph's GroupQueryAttention; drop --graph")
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
            m = export(run_path, build, graph=TRACED, log=lambda line: line.startswith("exported ") or log(line), **how, **kw,
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
        if spec.hf_export is None:
            raise ExportError(f"model {spec.name!r} (plugin {spec.plugin!r}) has no Hugging Face export; "
                              "export it to ONNX")
        others = [k for k in ("opset", "atol", "dtype", "quantize", "weights", "eval_data", "graph")
                  if kw.get(k) not in (None, DEFAULT_OPSET, "fp32")]
        if others:
            flag = {"weights": "block-size", "eval_data": "eval-data"}.get(others[0], others[0])
            raise ExportError(f"--{flag} is for ONNX exports, not --format hf")
        resolve(spec.hf_export)(r, out, overwrite=kw.get("overwrite", False), log=log)
        return
    if layout != "onnx":
        names = tuple(v.strip() for v in variants.split(",")) if variants else DEFAULT_VARIANTS
        export_layout(run, out, layout=layout, variants=names, log=log, **kw)
        return
    if variants:
        raise ExportError(f"--variants names the files of --layout {TRANSFORMERS_JS}; add --layout {TRANSFORMERS_JS}")
    export(run, out, log=log, **kw)

"""The ONNX graph edits of the export stage: conversion from PyTorch, graph optimization, fp16, int8 and
int4 weights, tied tables, and saving at the lowest IR version and opset with the onnxruntime floor it needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from gentoolkit.errors import ExportError
from gentoolkit.export.plan import TRACED, ExportPlan, WeightQuant, dynamic_axes
from gentoolkit.runtime.folder import MODEL, version_tuple

# The oldest onnxruntime a plain ONNX graph of the default opset is tested on (benchmarks/ort_compat.py;
# releases before 1.19 have no wheels for numpy 2), and the ops the export stage itself writes that need
# a newer one: GatherBlockQuantized (--quantize-embedding) is refused by 1.22.
ONNXRUNTIME_FLOOR = "1.19"


OP_FLOORS = {("com.microsoft", "GatherBlockQuantized"): "1.23"}


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


def _quantize_weights(path: Path, q: WeightQuant, outputs: list[str], prequantized=None) -> dict[str, Any]:
    """Quantize the weights in place. Every ``MatMul`` with a constant 2-D weight becomes ``MatMulNBits``
    (the head, the ``MatMul`` that makes ``outputs[0]``, in ``q.head_bits``, or left alone without
    ``q.head``): from ``prequantized`` (``ExportPlan.prequantized``: initializer name -> blocks) where
    it holds blocks of that weight with at most those bits, as they are, else quantized here
    (:func:`gentoolkit.export.quantization.quantize_blocks`). Returns the manifest's record: ``nodes`` (how many
    of each op), ``from_file`` (the blocks used as given, by their source), ``quantized`` (weights
    quantized here, by bits) and ``requantized`` (weights ``prequantized`` held but that were quantized
    here all the same, and why)."""
    import logging

    import onnx
    from onnx import numpy_helper

    from gentoolkit.export.quantization import quantize_blocks, usable, write_matmul

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
    :func:`gentoolkit.export.quantization.write_matmul` wrote for it. Left as it is where the blocks do not
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
        from gentoolkit.files import new_file_mode

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

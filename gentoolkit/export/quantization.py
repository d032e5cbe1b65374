"""Block quantization of MatMul weights into onnxruntime's ``MatMulNBits`` (``gentool export --dtype int4|int8``).

A weight ``(in, out)`` becomes ``q`` (uint8 codes), ``scale`` and ``zero`` per block of ``block`` consecutive
inputs of one output, ``w == scale * (q - zero)``: the layout of ``MatMulNBits`` and of llama.cpp's
Q4_0, Q4_1 and Q8_0 alike. :func:`quantize_blocks` finds the blocks of a float weight; blocks someone
else made (a GGUF file's, ``ExportPlan.prequantized``) go into the graph as they are, no second rounding.

How a block's zero point reaches ``MatMulNBits`` (onnxruntime 1.32's CPU kernel, measured on small
matrices against ``x @ w`` in float64):

* ``2 ** (bits - 1)`` everywhere (symmetric, Q4_0, Q8_0): no zero-point input, the kernel's default;
* whole numbers (asymmetric): uint8 zero points, two to a byte at 4 bits;
* fractions (Q4_1's ``-min / d``): the kernel takes float zero points at 4 bits (not at 8), but then
  dequantizes the whole matrix on every call, about 90x slower for one token. So the zero is rounded to
  a whole ``z0`` for ``MatMulNBits``, and what that moves, ``c = scale * (z0 - zero)`` per block, a float
  ``(in / block, out)`` matrix, is added back from the activations summed block by block:
  ``y = MatMulNBits(x) + (x @ E) @ c``, ``E`` the ``(in, in / block)`` ones that sum a block (one
  ``MatMul`` per activation, shared by the weights that read it, any rank). That is the same weight to
  float32 rounding, for about 2 ms a token over SmolLM2's 150 Q4_1 matrices (docs/export.md).

``accuracy_level`` 4 (int8 activations) keeps the weights as they are but rounds the activations
(about 2e-3 of the output at 4 bits, 5e-3 at 8 on random matrices); levels 0 and 1 compute in float32
and match ``x @ w`` to 1e-6.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

# blocks quantized at a time (about 1 MB of weights): pieces whose temporaries stay small, one per core at a time
_CHUNK = 8192


@dataclass
class Blocks:
    """``w (out, in) == scale[:, b] * (q[:, k] - zero[:, b])`` with ``b = k // block``."""

    q: np.ndarray  # uint8 (out, in), codes in [0, 2 ** bits)
    scale: np.ndarray  # float32 (out, ceil(in / block))
    zero: np.ndarray  # float32 (out, ceil(in / block))
    bits: int
    block: int
    source: str = ""  # where they came from ("Q4_1" for a GGUF file's), empty for quantize_blocks'

    def dequantize(self) -> np.ndarray:
        n, k = self.q.shape
        kb = self.scale.shape[1]
        q = np.zeros((n, kb * self.block), np.float32)
        q[:, :k] = self.q
        w = self.scale[..., None] * (q.reshape(n, kb, self.block) - self.zero[..., None])
        return w.reshape(n, kb * self.block)[:, :k]


def quantize_blocks(w: np.ndarray, bits: int, block: int, symmetric: bool, search: bool = True) -> Blocks:
    """The blocks of ``w`` (out, in), each block of ``block`` inputs with its own scale (and, unless
    ``symmetric``, a whole-number zero point).

    ``search=False`` rounds to the nearest code, the scale set by the block's largest magnitude
    (symmetric: llama.cpp's Q4_0, onnxruntime's default) or by its range (asymmetric). ``search=True``
    tries scales around that one, as llama.cpp's ``make_qx_quants`` does (symmetric; with zero points
    also each scale's nearest zero), rounds the block with each, refits the scale by least squares for
    those codes, and keeps the block's smallest squared error. The plain rounding is one of the
    candidates, so the error is never larger than its error (a test checks it).
    """
    w = np.asarray(w, np.float32)
    n, k = w.shape
    kb = -(-k // block)
    padded = np.zeros((n, kb * block), np.float32)
    padded[:, :k] = w
    rows = max(1, _CHUNK // kb)

    def part(r: int):
        x = padded[r : r + rows].reshape(-1, kb, block)
        q, s, z = (_symmetric if symmetric else _asymmetric)(x, bits, search)
        return q.reshape(len(x), -1)[:, :k].astype(np.uint8), s, z

    starts = range(0, n, rows)
    if len(starts) > 1:  # numpy lets go of the GIL in its loops: the pieces run on every core
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(len(starts), os.cpu_count() or 1)) as pool:
            parts = list(pool.map(part, starts))
    else:
        parts = [part(0)]
    return Blocks(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]).astype(np.float32),
                  np.concatenate([p[2] for p in parts]).astype(np.float32), bits, block)


def _best_of(x: np.ndarray, candidates, codes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each candidate (an inverse scale and a zero per block) rounds the blocks ``x`` to codes
    (``codes(inverse, zero)``, centred: code - zero); the least-squares scale for those codes gives
    the block's squared error. Returns the codes, scale and zero of each block's best candidate (the
    first of the candidates: plain rounding, kept where refitting its scale does not help)."""
    def error(scale, c):  # summed directly: |x|^2 - 2 s x.c + s^2 |c|^2 cancels away at 8 bits in float32
        d = x - scale[..., None] * c
        return np.einsum("...i,...i->...", d, d)

    best = None
    for inv, zero in candidates:
        c = codes(inv, zero)
        sumcx = np.einsum("...i,...i->...", c, x)
        sumc2 = np.einsum("...i,...i->...", c, c)
        scale = np.where(sumc2 > 0, sumcx / np.where(sumc2 > 0, sumc2, 1), 1 / inv)
        err = error(scale, c)
        if best is None:  # plain rounding: its own scale (1 / inv) where the refit is no better
            plain = error(1 / inv, c)
            scale, err = np.where(err < plain, scale, 1 / inv), np.minimum(err, plain)
            best = [err, inv, zero, scale]
        else:
            better = err < best[0]
            best = [np.minimum(err, best[0])] + [np.where(better, a, b) for a, b in zip((inv, zero, scale), best[1:])]
    _, inv, zero, scale = best
    return codes(inv, zero) + zero[..., None], scale.astype(np.float32), zero.astype(np.float32)


def _symmetric(x: np.ndarray, bits: int, search: bool):
    nmax = 2 ** (bits - 1)
    big = np.take_along_axis(x, np.abs(x).argmax(-1)[..., None], -1)[..., 0]  # the signed largest magnitude
    big = np.where(big == 0, np.float32(1e-30), big)
    zero = np.full(big.shape, nmax, np.float32)

    def codes(inv, _):
        return np.clip(np.rint(x * inv[..., None]), -nmax, nmax - 1)

    if not search:  # Q4_0's rounding: the largest magnitude is code -nmax
        inv = np.float32(-nmax) / big
        return codes(inv, zero) + nmax, (1 / inv).astype(np.float32), zero
    # make_qx_quants' candidates: inverse scales -(nmax + 0.1 i) / big, i = -9..9, plain rounding first
    steps = [0] + [i for i in range(-9, 10) if i]
    return _best_of(x, [(np.float32(-(nmax + 0.1 * i)) / big, zero) for i in steps], codes)


def _asymmetric(x: np.ndarray, bits: int, search: bool):
    qmax = 2**bits - 1
    lo = np.minimum(x.min(-1), 0)  # the range holds 0, so a zero weight stays exactly zero
    span = np.maximum(x.max(-1), 0) - lo
    span = np.where(span == 0, np.float32(1e-30), span)

    def codes(inv, zero):
        c = np.rint(x * inv[..., None])
        c += zero[..., None]
        np.clip(c, 0, qmax, out=c)
        c -= zero[..., None]
        return c

    def candidate(steps: float):  # the range over qmax + steps codes; its nearest whole zero point
        inv = np.float32(qmax + steps) / span
        return inv, np.clip(np.rint(-lo * inv), 0, qmax)

    if not search:
        inv, zero = candidate(0)
        return codes(inv, zero) + zero[..., None], (1 / inv).astype(np.float32), zero.astype(np.float32)
    # plain rounding first, then ranges over 12.5 to 16 codes (at 4 bits) in halves: as good as 21
    # steps of 0.1 on SmolLM2's weights and on random ones, in less than half the time
    return _best_of(x, [candidate(s) for s in (0, -2.5, -2, -1.5, -1, -0.5, 0.5, 1)], codes)


def _pack(q: np.ndarray, bits: int, block: int) -> np.ndarray:
    """Codes (out, in) as ``MatMulNBits`` stores them: (out, blocks, block * bits / 8), low nibble first."""
    n, k = q.shape
    kb = -(-k // block)
    full = np.zeros((n, kb * block), np.uint8)
    full[:, :k] = q
    full = full.reshape(n, kb, block)
    return full if bits == 8 else (full[..., 0::2] | (full[..., 1::2] << 4)).astype(np.uint8)


def _pack_zero(z: np.ndarray, bits: int) -> np.ndarray:
    z = z.astype(np.uint8)
    if bits == 8:
        return z
    if z.shape[1] % 2:
        z = np.concatenate([z, np.zeros((len(z), 1), np.uint8)], 1)
    return (z[:, 0::2] | (z[:, 1::2] << 4)).astype(np.uint8)


@dataclass
class Written:
    """What :func:`write_matmul` put in the graph for one weight."""

    node: object  # the MatMulNBits NodeProto
    zero: np.ndarray | None  # whole zero points (out, blocks) uint8 where the node has a zero-point input
    corrected: bool  # fractional zeros: a float term is added after the node


def write_matmul(model, node, blocks: Blocks, accuracy_level: int, block_sums: dict[str, str]) -> Written:
    """Replace the ``MatMul`` ``node`` (its weight an initializer, (in, out)) with ``MatMulNBits`` over
    ``blocks`` (see the module's docstring for the zero points). ``block_sums``: activation name -> its
    per-block sums, shared by the weights that read the same activation."""
    from onnx import helper, numpy_helper

    n, k = blocks.q.shape
    bits, block = blocks.bits, blocks.block
    kb = blocks.scale.shape[1]
    base = node.input[1]
    default = 2 ** (bits - 1)
    zero = blocks.zero
    whole = np.clip(np.rint(zero), 0, 2**bits - 1)
    corrected = not np.array_equal(whole, zero)
    inits = [numpy_helper.from_array(_pack(blocks.q, bits, block), f"{base}_Q{bits}"),
             numpy_helper.from_array(np.ascontiguousarray(blocks.scale, np.float32), f"{base}_scales")]
    inputs = [node.input[0], inits[0].name, inits[1].name]
    zp = None
    if not np.all(whole == default):
        zp = whole.astype(np.uint8)
        inits.append(numpy_helper.from_array(_pack_zero(zp, bits), f"{base}_zero_points"))
        inputs.append(inits[-1].name)
    attrs = {"K": k, "N": n, "bits": bits, "block_size": block}
    if accuracy_level:
        attrs["accuracy_level"] = accuracy_level
    out = node.output[0]
    name = node.name or base
    nodes = []
    nbits = helper.make_node("MatMulNBits", inputs, [out + "/nbits" if corrected else out], name=name + f"_Q{bits}",
                             domain="com.microsoft", **attrs)
    nodes.append(nbits)
    if corrected:  # y = MatMulNBits(x; q, scale, z0) + blocksum(x) @ (scale * (z0 - zero)).T
        if k != kb * block:
            raise ValueError(f"{base}: fractional zero points need whole blocks ({k} inputs, blocks of {block})")
        corr = (blocks.scale * (whole - zero)).T.astype(np.float32)  # (blocks, out)
        correction = numpy_helper.from_array(np.ascontiguousarray(corr), f"{base}_zero_correction")
        inits.append(correction)
        x = node.input[0]
        key = f"{x}|{block}|{k}"
        if key not in block_sums:  # x @ E, E (k, k / block) ones where input k lies in block b: any rank, one node
            s, ones = f"{x}/block_sums_{block}", f"/block_sum_matrix_{k}_{block}"
            if ones not in {t.name for t in model.graph.initializer}:
                inits.append(numpy_helper.from_array(np.kron(np.eye(kb, dtype=np.float32), np.ones((block, 1), np.float32)),
                                                     ones))
            nodes[:0] = [helper.make_node("MatMul", [x, ones], [s], name=s)]
            block_sums[key] = s
        fix = helper.make_node("MatMul", [block_sums[key], correction.name], [out + "/zero_correction"],
                               name=name + "/zero_correction")
        nodes += [fix, helper.make_node("Add", [nbits.output[0], fix.output[0]], [out], name=name + "/corrected")]
    have = {t.name for t in model.graph.initializer}  # a weight two MatMuls read is written once
    model.graph.initializer.extend(t for t in inits if t.name not in have)
    graph_nodes = list(model.graph.node)
    at = graph_nodes.index(node)
    graph_nodes[at : at + 1] = nodes
    del model.graph.node[:]
    model.graph.node.extend(graph_nodes)
    return Written(nbits, zp, corrected)


def usable(pre: Mapping | None, name: str, weight: np.ndarray, bits: int) -> tuple[Blocks | None, str]:
    """``(blocks, "")`` where ``pre`` (``ExportPlan.prequantized``) holds blocks for the weight ``name``
    ``(in, out)`` that reproduce it and have at most ``bits`` bits, else ``(None, why not)``. The blocks
    keep their own block size (a GGUF's 32, whatever ``--block-size`` says): they are the model."""
    if not pre or name not in pre:
        return None, ""
    e = pre[name]
    b = Blocks(np.asarray(e["q"], np.uint8), np.asarray(e["scale"], np.float32), np.asarray(e["zero"], np.float32),
               int(e["bits"]), int(e["block_size"]), str(e.get("source", "")))
    if b.bits > bits:
        return None, f"the file's {b.bits}-bit blocks are more than the {bits} bits asked for"
    if b.q.shape != weight.shape[::-1] or b.scale.shape != (b.q.shape[0], -(-b.q.shape[1] // b.block)):
        return None, "the file's blocks have another shape"
    if b.bits not in (4, 8):
        return None, f"MatMulNBits takes 4 or 8 bits, not {b.bits}"
    # blocks that do not reproduce the weight (the run trained on after its import) are not the model
    w = weight.T
    err = np.abs(b.dequantize() - w)
    if not (err <= 1e-5 * (np.abs(w) + np.abs(np.repeat(b.scale * b.zero, b.block, 1)[:, : w.shape[1]]) + 1e-30)).all():
        return None, "the file's blocks are not the run's weights (trained since?)"
    return b, ""

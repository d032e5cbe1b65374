"""The fused CPU graph of a decoder (``gentool export --graph fused``), written node by node from the weights.

The same inputs, outputs and meaning as the traced graph (docs/onnx-contract.md): ``position_ids``
and ``attention_mask`` say where every token is and which slots it may see, and ``present`` is the
past with the new tokens appended. Only the nodes differ, onnxruntime's contrib ops in place of
chains of plain ones:

* ``GroupQueryAttention`` over the cache in the form onnxruntime has run since 1.22 (11 inputs, as the
  model builder writes it but for rotary): its mask the additive one the traced graph builds (left
  padding and unfilled slots of a fixed-size cache stay masked), every row's length the whole cache;
* rotary (Llama) in ``RotaryEmbedding`` nodes at ``position_ids``, before attention. Inside
  ``GroupQueryAttention`` (``do_rotary``) the kernel derives each token's position from its row's
  length, which is wrong for left-padded rows; only onnxruntime 1.32's ``query_seqlens`` input lets
  it read ``position_ids`` there, and no runtime before 1.32 loads a graph that names it;
* ``SkipSimplifiedLayerNormalization`` / ``SkipLayerNormalization``: each norm after the first adds the
  residual and normalizes in one node;
* one packed QKV ``MatMul``, ``QuickGelu`` (SiLU) or ``FastGelu`` / ``Gelu`` in the MLP;
* an optional input ``logits_to_keep`` (a scalar; its initializer 0 is the default: every position), as
  transformers names it: the head runs on the last ``logits_to_keep`` positions only;
* a tied head as the model builder stores it: one ``(n_embd, vocab)`` weight that the head's ``MatMul``
  reads and the embedding ``Gather`` reads through a ``Transpose`` (onnxruntime folds it at load), so
  the table is stored once and the head writes the logits straight into the output.

The weights are MatMul initializers laid out (in, out), so ``--dtype int4`` turns them into
``MatMulNBits`` as it does the traced graph's.
"""

from __future__ import annotations

import numpy as np

MS = "com.microsoft"
KEEP = "logits_to_keep"


class _Graph:
    def __init__(self):
        self.nodes, self.inits, self._n = [], [], 0

    def const(self, name: str, value) -> str:
        from onnx import numpy_helper

        value = np.asarray(value)
        self.inits.append(numpy_helper.from_array(value if value.flags.c_contiguous else value.copy(), name))
        return name

    def op(self, op: str, inputs: list[str], n_out: int = 1, *, name: str | None = None, outputs=None,
           domain: str = "", **attrs):
        from onnx import helper

        self._n += 1
        base = name or f"/{op}_{self._n}"
        outs = outputs or [f"{base}/out{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=base, domain=domain, **attrs))
        return outs[0] if len(outs) == 1 else outs


def fused_model(model, inputs: list[dict], outputs: list[dict], opset: int):
    """The ONNX model of ``model`` (a :class:`~.model.Transformer` in eval mode) with the given I/O specs."""
    from onnx import TensorProto, helper

    cfg, llama = model.config, model.is_llama
    L, H, Hkv, D, C = cfg.n_layer, cfg.n_head, model.n_kv_head, model.head_dim, cfg.n_embd
    sd = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    g = _Graph()
    f32 = np.float32

    def weight(key: str) -> str:  # a Linear's weight as a MatMul initializer, (in, out)
        return g.const(key, sd[key].T)

    def linear(x: str, prefix: str, name: str) -> str:
        y = g.op("MatMul", [x, weight(prefix + ".weight")], name=name)
        if prefix + ".bias" in sd:
            y = g.op("Add", [y, g.const(prefix + ".bias", sd[prefix + ".bias"])], name=name + "/bias")
        return y

    # shapes, the additive mask (the traced graph's), and GroupQueryAttention's lengths
    ids_shape = g.op("Shape", ["input_ids"])
    mask_shape = g.op("Shape", ["attention_mask"])
    one = g.const("/c/one", np.array([1], np.int64))
    zero = g.const("/c/zero", np.array([0], np.int64))
    seq = g.op("Slice", [ids_shape, one, g.const("/c/two", np.array([2], np.int64))])
    total = g.op("Slice", [mask_shape, one, g.const("/c/two2", np.array([2], np.int64))])
    scalar = lambda t: g.op("Squeeze", [t, zero])  # noqa: E731
    past_len = g.op("Sub", [total, seq])
    q_pos = g.op("Unsqueeze", [g.op("Range", [scalar(past_len), scalar(total), scalar(one)]), one])  # (T, 1)
    k_pos = g.op("Unsqueeze", [g.op("Range", [scalar(zero), scalar(total), scalar(one)]), zero])  # (1, S)
    causal = g.op("Or", [g.op("Less", [k_pos, q_pos]), g.op("Equal", [k_pos, q_pos])])  # (T, S)
    visible = g.op("Unsqueeze", [g.op("Cast", ["attention_mask"], to=TensorProto.BOOL),
                                 g.const("/c/axes12", np.array([1, 2], np.int64))])  # (B, 1, 1, S)
    keep = g.op("Or", [g.op("And", [visible, causal]), g.op("Equal", [k_pos, q_pos])])  # a pad row sees itself
    bias = g.op("Where", [keep, g.const("/c/zero_f", np.array(0.0, f32)),
                          g.const("/c/min_f", np.array(np.finfo(f32).min, f32))], name="/attention_bias")
    # each row's last slot with a 1: total - 1 when the mask ends with the new tokens (the traced graph's
    # convention), the new token's own slot when past and present share one buffer (a runtime's choice)
    slots = g.op("Range", [scalar(zero), scalar(total), scalar(one)])
    seqlens_k = g.op("Cast", [g.op("ReduceMax", [g.op("Mul", ["attention_mask", slots])], axes=[1], keepdims=0)
                              if opset < 18 else g.op("ReduceMax", [g.op("Mul", ["attention_mask", slots]), one],
                                                      keepdims=0)], to=TensorProto.INT32)
    total_i32 = g.op("Cast", [scalar(total)], to=TensorProto.INT32)

    tied = "lm_head.weight" in model.tied_keys
    if tied:  # one table, stored as the head's (n_embd, vocab) weight; the embedding reads it transposed
        head_w = weight("lm_head.weight")
        table = g.op("Transpose", [head_w], name="/wte/table", perm=[1, 0])
    else:
        table = g.const("transformer.wte.weight", sd["transformer.wte.weight"])
    x = g.op("Gather", [table, "input_ids"], name="/wte")
    if not llama:
        x = g.op("Add", [x, g.op("Gather", [g.const("transformer.wpe.weight", sd["transformer.wpe.weight"]),
                                            "position_ids"], name="/wpe")])
    if llama:
        half = D // 2
        cos = g.const("/rope/cos", sd_buffer(model, "rope_cos")[:, :half])
        sin = g.const("/rope/sin", sd_buffer(model, "rope_sin")[:, :half])

    def bare(x_in: str, prefix: str, name: str) -> tuple[str, list[str]]:
        """A Linear without its bias Add, and the bias (empty if none) for the next fused node to add."""
        y = g.op("MatMul", [x_in, weight(prefix + ".weight")], name=name)
        return y, [g.const(prefix + ".bias", sd[prefix + ".bias"])] if prefix + ".bias" in sd else []

    def norm(x_in: str, prefix: str, skip: str | None, name: str, skip_bias: list[str] = ()):
        """(normed, residual sum): the first norm alone, every later one fused with its residual add
        (and the bias of the Linear before it)."""
        gamma = g.const(prefix + ".weight", sd[prefix + ".weight"])
        eps = float(cfg.norm_eps)
        if skip is None:
            if llama:  # SimplifiedLayerNormalization is onnxruntime's, outside the ONNX domain: plain ops
                ms = g.op("ReduceMean", [g.op("Mul", [x_in, x_in])], axes=[-1], keepdims=1) if opset < 18 else \
                    g.op("ReduceMean", [g.op("Mul", [x_in, x_in]), g.const(name + "/axes", np.array([-1], np.int64))],
                         keepdims=1)
                inv = g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", [ms, g.const(name + "/eps", np.array(eps, f32))])])])
                return g.op("Mul", [g.op("Mul", [x_in, inv]), gamma], name=name), x_in
            beta = g.const(prefix + ".bias", sd[prefix + ".bias"]) if prefix + ".bias" in sd else \
                g.const(prefix + ".zero_bias", np.zeros(C, f32))
            return g.op("LayerNormalization", [x_in, gamma, beta], name=name, axis=-1, epsilon=eps), x_in
        if llama:
            y, _, _, s = g.op("SkipSimplifiedLayerNormalization", [x_in, skip, gamma, *skip_bias], name=name, domain=MS,
                              outputs=[name + "/out", "", "", name + "/sum"], epsilon=eps)
        else:
            beta = g.const(prefix + ".bias", sd[prefix + ".bias"]) if prefix + ".bias" in sd else \
                g.const(prefix + ".zero_bias", np.zeros(C, f32))
            y, _, _, s = g.op("SkipLayerNormalization", [x_in, skip, gamma, beta, *skip_bias], name=name, domain=MS,
                              outputs=[name + "/out", "", "", name + "/sum"], epsilon=eps)
        return y, s

    # the last sublayer's output and bias, not yet added to the residual stream
    pending, pending_bias, residual = None, [], x
    for i in range(L):
        p = f"transformer.h.{i}"
        h, residual = norm(residual if pending is None else pending, f"{p}.ln_1", None if pending is None else residual,
                           f"/h.{i}/ln_1", pending_bias)
        qkv = linear(h, f"{p}.attn.c_attn", f"/h.{i}/attn/qkv")
        if llama:  # queries and keys rotated at position_ids, then attention
            q, k, v = g.op("Split", [qkv, g.const(f"/h.{i}/split", np.array([H * D, Hkv * D, Hkv * D], np.int64))],
                           3, axis=-1)
            q = g.op("RotaryEmbedding", [q, "position_ids", cos, sin], name=f"/h.{i}/attn/rotary_q", domain=MS,
                     num_heads=H, interleaved=0)
            k = g.op("RotaryEmbedding", [k, "position_ids", cos, sin], name=f"/h.{i}/attn/rotary_k", domain=MS,
                     num_heads=Hkv, interleaved=0)
            qkv_in = [q, k, v]
        else:  # packed: GroupQueryAttention splits it
            qkv_in = [qkv, "", ""]
        # inputs 7-9 (cos_cache, sin_cache, position_ids) are for rotary inside, unused here
        y = g.op("GroupQueryAttention",
                 [*qkv_in, f"past_key_values.{i}.key", f"past_key_values.{i}.value", seqlens_k, total_i32,
                  "", "", "", bias],
                 name=f"/h.{i}/attn/gqa", domain=MS, outputs=[f"/h.{i}/attn/out", f"present.{i}.key",
                                                              f"present.{i}.value"],
                 num_heads=H, kv_num_heads=Hkv, scale=float(1.0 / np.sqrt(D)))[0]
        a, a_bias = bare(y, f"{p}.attn.c_proj", f"/h.{i}/attn/o")
        h2, residual = norm(a, f"{p}.ln_2", residual, f"/h.{i}/ln_2", a_bias)
        if llama:
            gate = linear(h2, f"{p}.mlp.gate_proj", f"/h.{i}/mlp/gate")
            up = linear(h2, f"{p}.mlp.up_proj", f"/h.{i}/mlp/up")
            act = g.op("Mul", [g.op("QuickGelu", [gate], domain=MS, alpha=1.0), up])
        else:
            fc, fc_bias = bare(h2, f"{p}.mlp.c_fc", f"/h.{i}/mlp/fc")
            if getattr(cfg, "activation", "gelu") == "gelu_tanh":
                act = g.op("FastGelu", [fc, *fc_bias], domain=MS)
            else:
                act = g.op("BiasGelu", [fc, *fc_bias], domain=MS) if fc_bias else g.op("Gelu", [fc], domain=MS)
        pending, pending_bias = bare(act, f"{p}.mlp.c_proj", f"/h.{i}/mlp/down")
    final, _ = norm(pending, "transformer.ln_f", residual, "/ln_f", pending_bias)
    # logits_to_keep (transformers' argument of that name): the last k positions only, 0 (the default) all of
    # them; a runtime's prefill asks for 1 and skips the head for every other prompt token
    g.const(KEEP, np.array(0, np.int64))
    k = g.op("Unsqueeze", [KEEP, zero])
    start = g.op("Where", [g.op("Greater", [k, zero]), g.op("Max", [g.op("Sub", [seq, k]), zero]), zero])
    kept = g.op("Slice", [final, start, g.const("/c/end", np.array([np.iinfo(np.int64).max], np.int64)), one],
                name="/logits_to_keep")
    # the head writes the logits output itself (no reshape to copy them through)
    g.op("MatMul", [kept, head_w if tied else weight("lm_head.weight")], name="/lm_head", outputs=["logits"])

    def info(spec: dict):
        elem = TensorProto.INT64 if spec["dtype"] == "int64" else TensorProto.FLOAT
        return helper.make_tensor_value_info(spec["name"], elem, spec["shape"])

    keep_input = helper.make_tensor_value_info(KEEP, TensorProto.INT64, [])  # optional: its initializer is the default
    graph = helper.make_graph(g.nodes, "gentoolkit_fused_decoder", [info(s) for s in inputs] + [keep_input],
                              [info(s) for s in outputs], initializer=g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(MS, 1)],
                             producer_name="gentoolkit")


def sd_buffer(model, name: str) -> np.ndarray:
    return getattr(model, name).detach().float().cpu().numpy()

"""Validation: an export's outputs against PyTorch's, case by case, in onnxruntime (``Tolerance``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from gentoolkit.errors import ExportError
from gentoolkit.export.plan import TIE, ExportPlan, Runner, Tolerance


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

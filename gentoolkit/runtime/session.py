"""onnxruntime sessions as the runtime opens them: threads, providers, and onnxruntime's errors as ours."""

from __future__ import annotations

from pathlib import Path

from gentoolkit.errors import GentoolError

LARGE_MODEL_BYTES = 50_000_000


def default_threads(model_file: Path) -> int:
    """1 for a small model (a step is too short to share out), 0 (onnxruntime's own choice: one per
    physical core) for one whose weights pass ``LARGE_MODEL_BYTES``, where a step streams them from
    memory on every core."""
    p = Path(model_file)
    size = sum(f.stat().st_size for f in (p, p.with_name(p.name + ".data")) if f.is_file())
    return 0 if size > LARGE_MODEL_BYTES else 1


def make_session(model_file: Path, providers=None, threads: int | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads if threads else default_threads(model_file)  # docs/runtime.md: threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    available = ort.get_available_providers()
    wanted = providers or ["CPUExecutionProvider"]
    unknown = [p if isinstance(p, str) else p[0] for p in wanted]
    unknown = [p for p in unknown if p not in available]
    if unknown:
        raise GentoolError(f"onnxruntime here has no {', '.join(unknown)} (available: {', '.join(available)})")
    import contextlib
    import io

    # onnxruntime retries a failed session with its fallback providers and says so with print(): on the
    # standard output of whatever app embeds the runtime. Its words go nowhere; its last error is ours.
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return ort.InferenceSession(str(model_file), opts, providers=wanted)
    except UnicodeDecodeError:  # onnxruntime's message quotes bytes of the file that are not text
        raise GentoolError(f"onnxruntime cannot load {model_file}: the file is damaged (its error quotes bytes that "
                           "are not text); export the run again") from None
    except Exception as exc:  # noqa: BLE001 - onnxruntime's errors derive from Exception alone
        if not is_onnxruntime_error(exc):
            raise
        detail = " ".join(str(exc).split())
        raise GentoolError(f"onnxruntime cannot load {model_file} ({detail[:200]}); export the run again") from None


def is_onnxruntime_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of onnxruntime's own errors (a bad graph, a failed run)."""
    return type(exc).__module__.startswith("onnxruntime")

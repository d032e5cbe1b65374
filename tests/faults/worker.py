"""A worker process for fuzz cases on export folders: one JSON request per line in, one answer out.

An export folder is what an app receives, and a damaged graph goes through onnxruntime's C++,
so each case runs here, apart from pytest: a crash or a hang costs this process, not the suite
(``Worker`` in test_fuzz.py restarts it). Torch is blocked, as in an app.

Request: ``{"call": "load", "path": ...}`` (``runtime.load`` and a short generation or sample) or
``{"call": "cli", "args": [...]}`` (``gentool ARGS`` through click's runner). Answer:
``{"outcome": "ok" | "error" | "traceback", "text": ...}``.
"""

from __future__ import annotations

import json
import sys
import traceback

from gentoolkit.testing import BLOCK_TORCH

exec(BLOCK_TORCH)  # noqa: S102 - the test's own blocker: any import of torch fails from here on


def run_load(path: str) -> str:
    from gentoolkit.runtime import load

    model = load(path)
    if hasattr(model, "generate"):
        return repr(model.generate(["Th", ""], max_new_tokens=4, seed=1) + [model.generate("a", greedy=True,
                                                                                           max_new_tokens=4)])
    return repr(model.sample(3, seed=1).shape)


def run_cli(args: list[str]) -> tuple[str, str]:
    from click.testing import CliRunner

    from gentoolkit.cli.main import cli

    r = CliRunner().invoke(cli, args)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        return "traceback", "".join(traceback.format_exception(r.exception))[-2000:]
    if r.exit_code == 0:
        return "ok", r.output[-200:]
    lines = r.output.splitlines()
    errors = [line for line in lines if line.startswith("Error:")]
    if len(errors) != 1 or "Traceback" in r.output:
        return "traceback", r.output[-2000:]
    return "error", errors[0]


def main() -> None:
    from gentoolkit.errors import GentoolError

    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["call"] == "load":
                outcome, text = "ok", run_load(req["path"])
            else:
                outcome, text = run_cli(req["args"])
        except GentoolError as exc:
            outcome, text = "error", str(exc)
        except Exception:  # noqa: BLE001 - the finding this worker exists to report
            outcome, text = "traceback", traceback.format_exc()[-2000:]
        sys.stdout.write(json.dumps({"outcome": outcome, "text": text}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

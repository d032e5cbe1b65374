"""``gentool serve``'s metrics, in Prometheus' text format (``/metrics``)."""

from __future__ import annotations

import threading
from typing import Any


# --- metrics (Prometheus text) ------------------------------------------------------------------------------
class Histogram:
    BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

    def __init__(self):
        self.counts = [0] * (len(self.BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.sum += value
        for i, b in enumerate(self.BUCKETS):
            if value <= b:
                self.counts[i] += 1
                return
        self.counts[-1] += 1

    def lines(self, name: str) -> list[str]:
        out, total = [], 0
        for b, c in zip((*self.BUCKETS, "+Inf"), self.counts):
            total += c
            out.append(f'{name}_bucket{{le="{b}"}} {total}')
        return out + [f"{name}_sum {self.sum:.6f}", f"{name}_count {total}"]


class Metrics:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.ttft = Histogram()
        self.latency = Histogram()
        self.inter_token = Histogram()

    def request(self, path: str, status: int) -> None:
        with self.lock:
            self.requests[(path, status)] = self.requests.get((path, status), 0) + 1

    def text(self, engines: dict[str, Any]) -> str:
        with self.lock:
            lines = ["# HELP gentool_requests_total Requests answered, by path and status.",
                     "# TYPE gentool_requests_total counter"]
            lines += [f'gentool_requests_total{{path="{p}",status="{s}"}} {n}' for (p, s), n in sorted(self.requests.items())]
            lines += ["# TYPE gentool_prompt_tokens_total counter", f"gentool_prompt_tokens_total {self.prompt_tokens}",
                      "# TYPE gentool_completion_tokens_total counter",
                      f"gentool_completion_tokens_total {self.completion_tokens}"]
            lines += ["# HELP gentool_queue_depth Choices waiting for a row of the running batch.",
                      "# TYPE gentool_queue_depth gauge"]
            lines += [f'gentool_queue_depth{{model="{m}"}} {e.queued()}' for m, e in engines.items()]
            lines += ["# TYPE gentool_active_rows gauge"]
            lines += [f'gentool_active_rows{{model="{m}"}} {e.active()}' for m, e in engines.items()]
            for name, h, what in (("gentool_time_to_first_token_seconds", self.ttft, "Request to first token."),
                                  ("gentool_request_latency_seconds", self.latency, "Request to its last byte."),
                                  ("gentool_inter_token_latency_seconds", self.inter_token,
                                   "Between a stream's pieces.")):
                lines += [f"# HELP {name} {what}", f"# TYPE {name} histogram", *h.lines(name)]
        return "\n".join(lines) + "\n"

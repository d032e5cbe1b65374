"""A bounded load test of ``gentool serve`` on loopback: 1, 4, 8 and 16 concurrent streaming clients.

Usage: python benchmarks/serve_load.py EXPORT [--clients 1,4,8,16] [--seconds 20] [--max-batch 16] [--threads 2]

It starts ``gentool serve EXPORT`` on a free port of 127.0.0.1 and, for each level, runs that
many clients at once for ``--seconds``. Each client sends streaming completions one after the
other until the window closes, with mixed prompt lengths (8 to 96 tokens of documentation text)
and output lengths (32 to 128 tokens, ``temperature`` 0.8, ``top_p`` 1, a seed per request),
reading every server-sent event (one per token). Every level so keeps its clients busy for the
whole window (a fixed number of requests per client would end each level with fewer streams
than it names, as the longest client finishes alone).
Per level it reports the aggregate tokens/s (the tokens that arrived inside the window, over its length),
the time to the first token and the inter-token latency (p50 and p99, over every request's
pieces) and the requests that failed. Without EXPORT it imports a random-init Llama in
SmolLM2-135M's shape (``benchmarks/real_size.py``'s, built in ``--work``) and exports it in int4.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


async def one_request(client, url: str, model: str, prompt: str, max_tokens: int, seed: int) -> dict:
    # top_p 1 (OpenAI's default) over the export's stored 0.95: random weights give nearly flat logits, where
    # top-p 0.95 keeps most of a 49k vocabulary and costs 13 ms a token to sort, a cost trained models do not have
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.8, "top_p": 1, "seed": seed,
            "stream": True, "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    times, failed = [], False
    try:
        async with client.stream("POST", url + "/v1/completions", json=body, timeout=600) as r:
            if r.status_code != 200:
                return {"failed": True, "status": r.status_code}
            async for line in r.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    failed = True
                    continue
                if event["choices"]:  # one event per token (its text may still be held back)
                    times.append(time.perf_counter())
    except Exception:  # noqa: BLE001 - a failed request is counted, not raised
        return {"failed": True}
    gaps = [b - a for a, b in zip(times, times[1:])]
    return {"failed": failed or not times, "ttft": times[0] - start if times else None, "gaps": gaps, "times": times}


async def level(url: str, model: str, clients: int, seconds: float, texts: list[str]) -> dict:
    import httpx2 as httpx

    rng = random.Random(clients)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=clients + 4)) as client:
        start = time.perf_counter()
        deadline = start + seconds

        async def run_client(c: int) -> list[dict]:
            out, k = [], 0
            while time.perf_counter() < deadline:
                prompt = rng.choice(texts)
                out.append(await one_request(client, url, model, prompt, rng.choice([32, 64, 96, 128]), 1000 * c + k))
                k += 1
            return out

        results = [r for rs in await asyncio.gather(*(run_client(c) for c in range(clients))) for r in rs]
    ok = [r for r in results if not r["failed"]]
    # what arrived inside the window; a request still running at its end finishes but counts only to there
    gaps = [b - a for r in ok for a, b in zip(r["times"], r["times"][1:]) if b <= deadline]
    ttft = [r["ttft"] for r in ok]
    tokens = sum(1 for r in ok for t in r["times"] if t <= deadline)
    return {"clients": clients, "requests": len(results), "failed": len(results) - len(ok), "tokens": tokens,
            "wall_s": seconds, "tokens_per_s": tokens / seconds, "ttft_p50": percentile(ttft, 50),
            "ttft_p99": percentile(ttft, 99), "itl_p50": percentile(gaps, 50), "itl_p99": percentile(gaps, 99)}


def default_export(work: Path) -> Path:
    from benchmarks.real_size import prepare

    return prepare(work, "llama")["fused-int4-emb"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("export", nargs="?")
    ap.add_argument("--work", default="/tmp/real-size", help="where the default model is built and kept")
    ap.add_argument("--clients", default="1,4,8,16")
    ap.add_argument("--seconds", type=float, default=20.0, help="each level's window: its clients keep sending until it closes")
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    folder = Path(args.export) if args.export else default_export(Path(args.work))
    from pydoc_data.topics import topics

    words = " ".join(topics[k] for k in sorted(topics)[:40]).split()
    texts = [" ".join(words[i : i + n]) for i, n in zip(range(0, 4000, 97), [6, 20, 40, 70] * 20)]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "gentoolkit", "serve", str(folder), "--port", str(port),
                               "--max-batch", str(args.max_batch), "--threads", str(args.threads),
                               "--max-queue", "1000"], stderr=subprocess.DEVNULL)
    try:
        import httpx2 as httpx

        for _ in range(600):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        model = folder.name
        asyncio.run(level(url, model, 1, 2.0, texts))  # warm up
        rows = [asyncio.run(level(url, model, int(c), args.seconds, texts)) for c in args.clients.split(",")]
    finally:
        server.terminate()
        server.wait(60)
    base = rows[0]
    print(f"{folder}, --max-batch {args.max_batch}, {args.threads} threads, {args.seconds:g} s a level, "
          "mixed prompts (6 to 70 words) and outputs (32 to 128 tokens)")
    print("| clients | requests | failed | tokens/s, all streams | against one stream | time to first token p50 / p99, "
          "ms | inter-token latency p50 / p99, ms | p50 against one stream |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['clients']} | {r['requests']} | {r['failed']} | {r['tokens_per_s']:.1f} | "
              f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x | {1000 * r['ttft_p50']:.0f} / {1000 * r['ttft_p99']:.0f} | "
              f"{1000 * r['itl_p50']:.1f} / {1000 * r['itl_p99']:.1f} | {r['itl_p50'] / base['itl_p50']:.2f}x |")


if __name__ == "__main__":
    main()

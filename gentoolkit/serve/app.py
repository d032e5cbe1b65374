"""``gentool serve``: the Starlette application over the loaded exports, and the server that runs it."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gentoolkit.errors import GentoolError
from gentoolkit.serve.metrics import Metrics
from gentoolkit.serve.schemas import (
    SAMPLES,
    RequestError,
    _declared,
    _messages,
    check,
    openapi_document,
    samples_schema,
    text_schema,
)

LOG = logging.getLogger("gentoolkit.serve")


# --- the server ---------------------------------------------------------------------------------------------
@dataclass
class Limits:
    max_batch: int = 8
    max_queue: int = 64
    max_tokens: int = 4096
    max_n: int = 8
    max_samples: int = 10_000
    max_body_bytes: int = 1_000_000
    timeout: float = 600.0
    api_key: str | None = None


@dataclass
class Served:
    """One served export: its id, its driver, and (text) its engine."""

    name: str
    driver: Any
    engine: Any = None
    created: int = 0


def load_models(paths: Sequence[str], limits: Limits, threads: int | None = None) -> dict[str, Served]:
    """Every folder loaded through the runtime (its id: the folder's name); text ones get their engine."""
    from gentoolkit.plugin.manager import get_registries
    from gentoolkit.plugin.specs import resolve
    from gentoolkit.runtime import load

    runtimes = get_registries(commands=False).runtimes
    served: dict[str, Served] = {}
    for path in paths:
        p = Path(path)
        name = p.name if p.is_dir() else p.parent.name
        if name in served:
            raise GentoolError(f"two folders are named {name!r}; the model id is the folder's name: rename one")
        driver = load(p, threads=threads)
        spec = runtimes.get(driver.manifest["family"])
        engine = resolve(spec.serve)(driver, max_batch=limits.max_batch) if spec.serve else None
        served[name] = Served(name, driver, engine, int(os.stat(p).st_mtime))
    return served


def build_app(served: dict[str, Served], limits: Limits):
    """The Starlette application over the loaded exports."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
    from starlette.routing import Route

    metrics = Metrics()
    engines = {n: s.engine for n, s in served.items() if s.engine is not None}
    state = {"draining": False}

    def error(exc: RequestError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    async def read_json(request: Request) -> dict:
        size = int(request.headers.get("content-length") or 0)
        if size > limits.max_body_bytes:
            raise RequestError(f"the body is {size} bytes; the limit is {limits.max_body_bytes}", 413,
                               code="request_too_large")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > limits.max_body_bytes:
                raise RequestError(f"the body passes the limit of {limits.max_body_bytes} bytes", 413,
                                   code="request_too_large")
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RequestError(f"the body is not valid JSON ({exc}); send a JSON object") from None
        if not isinstance(data, dict):
            raise RequestError("the body must be a JSON object")
        return data

    def model_of(data: dict, kind: str) -> Served:
        name = data.get("model")
        if name not in served:
            raise RequestError(f"the model {name!r} does not exist; served here: {', '.join(served)}", 404,
                               param="model", code="model_not_found")
        s = served[name]
        if (kind == "text") != (s.engine is not None):
            other = "/v1/samples" if s.engine is None else "/v1/completions or /v1/chat/completions"
            raise RequestError(f"the model {name!r} is an export of the {s.driver.manifest['family']} family: use "
                               f"{other}", param="model", code="wrong_endpoint")
        return s

    def authorized(request: Request) -> None:
        if limits.api_key is None:
            return
        given = request.headers.get("authorization", "")
        token = given[7:] if given.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(token.encode(), limits.api_key.encode()):
            raise RequestError("a valid API key is required: send 'Authorization: Bearer KEY'", 401,
                               code="invalid_api_key")

    async def generate(request: Request, chat: bool) -> Response:
        data = await read_json(request)
        asked = served.get(data.get("model")) if isinstance(data.get("model"), str) else None
        declared = _declared(asked.driver) if asked is not None and asked.engine is not None else ()
        check(data, text_schema(declared, chat), "")
        s = model_of(data, "text")
        n = data.get("n", 1)
        if n > limits.max_n:
            raise RequestError(f"n is {n}; this server allows at most {limits.max_n}", param="n")
        options = {}
        for o in declared:
            if o.api in data:
                value = data[o.api]
                options[o.name] = ([value] if isinstance(value, str) else list(value or ())) if o.multiple else value
        # the length: OpenAI's max_tokens (a chat's max_completion_tokens), 16 for a completion by OpenAI's
        # default; a chat reply runs to its end (here: the export's stored default, else the family's)
        length = next((o for o in declared if o.api == "max_tokens"), None)
        if length is not None:
            default = int(s.driver.defaults.get(length.name, length.default)) if chat else 16
            max_tokens = data.get("max_completion_tokens", data.get("max_tokens", min(default, limits.max_tokens)))
            if max_tokens > limits.max_tokens:
                raise RequestError(f"max_tokens is {max_tokens}; this server allows at most {limits.max_tokens}",
                                   param="max_tokens")
            options[length.name] = max_tokens
        engine = s.engine
        ctx = engine.context_length
        if chat:
            prompts = [_messages(data["messages"])]
        else:
            p = data["prompt"]
            prompts = [p] if isinstance(p, str) or (p and isinstance(p[0], int)) else list(p)
        encoded = []
        for p in prompts:
            try:
                ids = engine.encode_prompt(p)
            except GentoolError as exc:
                raise RequestError(str(exc), param="messages" if chat else "prompt") from None
            if not ids and chat:
                raise RequestError("the messages render to no tokens", param="messages")
            if len(ids) > ctx:
                raise RequestError(f"the prompt is {len(ids)} tokens; this model's context is {ctx}",
                                   param="messages" if chat else "prompt", code="context_length_exceeded")
            encoded.append(ids)
        if engine.queued() + engine.active() + n * len(encoded) > limits.max_batch + limits.max_queue:
            raise RequestError("the server is busy (its queue is full); retry later", 429, code="rate_limit_exceeded",
                               kind="rate_limit_error")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        jobs = []
        for k, ids in enumerate(encoded):
            try:
                job = engine.new_job(ids, n=n, seed=data.get("seed"), options=options,
                                       emit=lambda c, piece, finish, err, k=k: loop.call_soon_threadsafe(
                                           queue.put_nowait, (k * n + c, piece, finish, err)))
            except GentoolError as exc:
                raise RequestError(str(exc)) from None
            jobs.append(job)
        for job in jobs:
            engine.submit(job)
        started = time.perf_counter()
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        created = int(time.time())
        total = n * len(encoded)
        prompt_tokens = sum(len(ids) for ids in encoded) * n
        meta = {"id": rid, "created": created, "model": s.name}

        def usage() -> dict:
            done = sum(sum(j.tokens_out) for j in jobs)
            return {"prompt_tokens": prompt_tokens, "completion_tokens": done, "total_tokens": prompt_tokens + done}

        def cancel() -> None:
            for job in jobs:
                job.cancel()

        def account() -> None:
            u = usage()
            with metrics.lock:
                metrics.prompt_tokens += u["prompt_tokens"]
                metrics.completion_tokens += u["completion_tokens"]
                metrics.latency.observe(time.perf_counter() - started)

        async def events():
            """(choice, piece, finish) until every choice finished; RequestError on a failure."""
            finished, first, last = 0, True, None
            deadline = started + limits.timeout
            late = RequestError(f"the request ran past the server's timeout of {limits.timeout:g} s", 504,
                                code="timeout", kind="timeout_error")
            while finished < total:
                try:
                    c, piece, finish, err = await asyncio.wait_for(queue.get(), max(0.0, deadline - time.perf_counter()))
                except asyncio.TimeoutError:
                    cancel()
                    raise late from None
                now = time.perf_counter()
                if now > deadline:
                    cancel()
                    raise late
                if first:
                    metrics.ttft.observe(now - started)
                    first = False
                elif last is not None:
                    metrics.inter_token.observe(now - last)
                last = now
                if err is not None:
                    cancel()
                    raise RequestError(f"generation failed: {err}", 500, kind="server_error")
                if finish is not None:
                    finished += 1
                yield c, piece, finish

        if not data.get("stream"):
            texts, reasons = [""] * total, [None] * total
            waiter = asyncio.ensure_future(_collect(events(), texts, reasons))
            try:
                while not waiter.done():
                    await asyncio.wait([waiter], timeout=0.25)
                    if not waiter.done() and await request.is_disconnected():
                        cancel()
                        waiter.cancel()
                        return Response(status_code=499)
                waiter.result()
            finally:
                cancel()
            account()
            if chat:
                choices = [{"index": i, "message": {"role": "assistant", "content": t}, "logprobs": None,
                            "finish_reason": r} for i, (t, r) in enumerate(zip(texts, reasons))]
                return JSONResponse({**meta, "object": "chat.completion", "choices": choices, "usage": usage()})
            choices = [{"index": i, "text": t, "logprobs": None, "finish_reason": r}
                       for i, (t, r) in enumerate(zip(texts, reasons))]
            return JSONResponse({**meta, "object": "text_completion", "choices": choices, "usage": usage()})

        include_usage = bool((data.get("stream_options") or {}).get("include_usage"))
        kind = "chat.completion.chunk" if chat else "text_completion"

        def chunk(choices, **extra) -> bytes:
            return f"data: {json.dumps({**meta, 'object': kind, 'choices': choices, **extra})}\n\n".encode()

        async def sse():
            try:
                if chat:
                    yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                  "finish_reason": None} for i in range(total)])
                async for c, piece, finish in events():
                    if chat:
                        delta = {"content": piece} if piece else {}
                        yield chunk([{"index": c, "delta": delta, "logprobs": None, "finish_reason": finish}])
                    else:
                        yield chunk([{"index": c, "text": piece, "logprobs": None, "finish_reason": finish}])
                if include_usage:
                    yield chunk([], usage=usage())
            except RequestError as exc:
                yield f"data: {json.dumps(exc.body())}\n\n".encode()
            finally:
                cancel()  # a client that went away cancels its rows
                account()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Request-Id": rid})

    async def completions(request: Request):
        return await generate(request, chat=False)

    async def chat_completions(request: Request):
        return await generate(request, chat=True)

    async def samples(request: Request):
        from starlette.concurrency import run_in_threadpool

        data = await read_json(request)
        s = served.get(data.get("model")) if isinstance(data.get("model"), str) else None
        check(data, samples_schema(s.driver) if s is not None else SAMPLES, "")
        s = model_of(data, "samples")
        n = data.get("n", 1)
        if n > limits.max_samples:
            raise RequestError(f"n is {n}; this server allows at most {limits.max_samples}", param="n")
        options = {k: v for k, v in data.items() if k not in ("model", "n", "seed", "format")}
        try:
            x = await run_in_threadpool(lambda: s.driver.sample(n, data.get("seed"), **options))
        except GentoolError as exc:
            raise RequestError(str(exc)) from None
        if data.get("format", "json") == "png":
            return Response(await run_in_threadpool(_png, s.driver, x), media_type="image/png")
        return JSONResponse({"object": "list", "model": s.name, "shape": list(x.shape), "data": x.tolist()})

    async def models(request: Request):
        return JSONResponse({"object": "list", "data": [
            {"id": n, "object": "model", "created": s.created, "owned_by": "gentoolkit",
             "family": s.driver.manifest["family"], "endpoints": _endpoints(s)} for n, s in served.items()]})

    async def health(request: Request):
        return JSONResponse({"status": "draining" if state["draining"] else "ok", "models": list(served)})

    async def metrics_text(request: Request):
        return PlainTextResponse(metrics.text(engines), media_type="text/plain; version=0.0.4")

    async def openapi(request: Request):
        return JSONResponse(openapi_document(served))

    def handled(endpoint):
        """Every refusal as the OpenAI error object; anything else as a 500 one, never a traceback."""
        async def run(request: Request):
            try:
                return await endpoint(request)
            except RequestError as exc:
                return error(exc)
            except Exception as exc:  # noqa: BLE001
                LOG.error("internal error on %s: %s: %s", request.url.path, type(exc).__name__,
                          " ".join(str(exc).split())[:300])
                return error(RequestError("internal server error", 500, kind="server_error"))
        return run

    routes = [Route("/v1/completions", handled(completions), methods=["POST"]),
              Route("/v1/chat/completions", handled(chat_completions), methods=["POST"]),
              Route("/v1/samples", handled(samples), methods=["POST"]),
              Route("/v1/models", handled(models), methods=["GET"]),
              Route("/health", handled(health), methods=["GET"]),
              Route("/metrics", handled(metrics_text), methods=["GET"]),
              Route("/openapi.json", handled(openapi), methods=["GET"])]

    async def app_layer(scope, receive, send):
        """Auth, draining, OpenAI error objects for every refusal, and one access-log line per request."""
        if scope["type"] != "http":
            return await inner(scope, receive, send)
        request = Request(scope, receive)
        path, started, status = scope["path"], time.perf_counter(), [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            refusal = None
            try:
                if path != "/health":
                    authorized(request)
                if state["draining"] and path.startswith("/v1/") and request.method == "POST":
                    raise RequestError("the server is shutting down; retry on another instance", 503,
                                       code="shutting_down", kind="server_error")
            except RequestError as exc:
                refusal = exc
            if refusal is not None:
                await error(refusal)(scope, receive, send_status)
            else:
                await inner(scope, receive, send_status)
        finally:
            metrics.request(path if path in {r.path for r in routes} else "other", status[0])
            LOG.info(json.dumps({"ts": round(time.time(), 3), "method": request.method, "path": path,
                                 "status": status[0], "ms": round(1000 * (time.perf_counter() - started), 1),
                                 "client": (scope.get("client") or ("", 0))[0]}))

    async def not_found(request: Request, exc):
        status = getattr(exc, "status_code", 404)
        message = "no such endpoint" if status == 404 else f"{request.method} is not allowed here"
        return error(RequestError(f"{message}: {request.method} {request.url.path}", status,
                                  code="not_found" if status == 404 else "method_not_allowed"))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        for e in engines.values():
            e.start()
        yield

    inner = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found}, lifespan=lifespan)
    app_layer.state = state
    app_layer.engines = engines
    return app_layer


async def _collect(events, texts: list[str], reasons: list) -> None:
    async for c, piece, finish in events:
        texts[c] += piece
        if finish is not None:
            reasons[c] = finish


def _endpoints(s: Served) -> list[str]:
    """What /v1/models lists for an export: /v1/samples, or /v1/completions and, where its tokenizer has a
    chat template to render messages with, /v1/chat/completions."""
    if s.engine is None:
        return ["/v1/samples"]
    tokenizer = getattr(s.engine, "tokenizer", None) or getattr(s.driver, "tokenizer", None)
    return ["/v1/completions"] + (["/v1/chat/completions"] if getattr(tokenizer, "chat_template", None) else [])


def _png(driver, x) -> bytes:
    import tempfile

    from gentoolkit.samples.io import save_samples

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "samples.png"
        save_samples(x, str(path), low=getattr(driver, "low", None), high=getattr(driver, "high", None), quiet=True)
        return path.read_bytes()


def serve(paths: Sequence[str], *, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None,
          threads: int | None = None, grace: float = 30.0, ready=None) -> None:
    """Load ``paths`` and serve them until SIGTERM or Ctrl-C: then stop admitting, let the requests in
    flight finish for up to ``grace`` seconds, and exit."""
    try:
        import uvicorn
    except ImportError:
        raise GentoolError("gentool serve needs Starlette and uvicorn: pip install 'gentoolkit[serve]'") from None
    limits = limits or Limits()
    served = load_models(paths, limits, threads)
    app = build_app(served, limits)
    handler = logging.StreamHandler(sys.stderr)
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    LOG.propagate = False

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):  # stop admitting at once; uvicorn then waits for the requests in flight
            app.state["draining"] = True
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=grace, lifespan="on")
    server = Server(config)
    # uvicorn raises the signal again once it has shut down; handled here, the process then exits 0
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    print(f"serving {', '.join(served)} on http://{host}:{port} (OpenAPI: /openapi.json)", file=sys.stderr, flush=True)
    try:
        server.run()
    finally:
        for e in app.engines.values():
            e.stop(timeout=grace)
        LOG.removeHandler(handler)  # a second serve in this process (a test) logs to its own stderr only

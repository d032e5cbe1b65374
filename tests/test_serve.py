"""``gentool serve`` as a client meets it: a live server on 127.0.0.1, started by the test, driven by the
official ``openai`` client and by plain HTTP (every bad request, auth, cancellation, shutdown, batching)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from . import hf_models
from .conftest import run_cli

openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx2")  # what the openai client brings
KEY = "test-key-0123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``gentool serve`` in a subprocess; ``log`` is its stderr once stopped."""

    def __init__(self, folders, *args: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "gentoolkit", "serve", *map(str, folders), "--port",
                                      str(self.port), *args], stderr=subprocess.PIPE, text=True,
                                     env={**(env or os.environ), "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True).start()
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
            assert self.proc.poll() is None, "".join(self.lines)
        raise AssertionError("the server did not come up: " + "".join(self.lines))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(60)
        time.sleep(0.1)
        return rc

    @property
    def log(self) -> str:
        return "".join(self.lines)


@pytest.fixture(scope="module")
def chat_export(tmp_path_factory, corpus) -> Path:
    """An imported Hugging Face Llama with a ChatML template, exported (the template travels with it)."""
    base = tmp_path_factory.mktemp("chat")
    hf = hf_models.llama(base / "hf", corpus.read_text())
    assert run_cli("import", str(hf), "-o", str(base / "run")).exit_code == 0
    from gentoolkit.export import export

    export(base / "run", base / "chat", check=False, log=lambda m: None)
    return base / "chat"


@pytest.fixture(scope="module")
def char_export(tmp_path_factory, corpus) -> Path:
    """A model whose tokenizer knows only the characters of its training text."""
    from gentoolkit.export import export

    from .conftest import train_tiny

    base = tmp_path_factory.mktemp("char")
    run = train_tiny("gpt", base / "run", corpus, steps=4, extra=["data.tokenizer=char"])
    export(run, base / "char", check=False, log=lambda m: None)
    return base / "char"


@pytest.fixture(scope="module")
def server(exports, chat_export, char_export):
    s = Server([exports["gpt"], exports["gan"], chat_export, char_export], "--api-key", KEY, "--max-batch", "4")
    yield s
    assert s.stop() == 0
    assert "Traceback" not in s.log, s.log


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)


def test_completions_and_chat_through_the_openai_client(server, exports, chat_export):
    from gentoolkit.runtime import load

    c = client(server)
    assert sorted(m.id for m in c.models.list().data) == sorted([exports["gpt"].name, "gan", "chat", "char"])
    lm = load(exports["gpt"])
    want = lm.generate("The ", greedy=True, max_new_tokens=20)
    r = c.completions.create(model="gpt", prompt="The ", max_tokens=20, temperature=0)
    assert r.choices[0].text == want and r.choices[0].finish_reason == "length"
    assert r.usage.prompt_tokens == len(lm.tokenizer.encode("The ")) and r.usage.completion_tokens == 20
    pieces = [ch.choices[0].text for ch in c.completions.create(model="gpt", prompt="The ", max_tokens=20,
                                                                temperature=0, stream=True)]
    assert "".join(pieces) == want and len(pieces) > 3
    # seeded sampling with n: the same text as the runtime's rows (gentool sample -n 3 --seed 7)
    r = c.completions.create(model="gpt", prompt="a", n=3, seed=7, temperature=0.9, top_p=0.95, max_tokens=15,
                             extra_body={"top_k": 40})
    assert [ch.text for ch in r.choices] == lm.generate(["a"] * 3, seed=7, temperature=0.9, top_p=0.95, top_k=40,
                                                         max_new_tokens=15)
    # chat, through the export's template; the reply ends at the end of the turn or at max_tokens
    chat = load(chat_export)
    messages = [{"role": "user", "content": "What is a list?"}]
    r = c.chat.completions.create(model="chat", messages=messages, max_tokens=12, temperature=0)
    assert r.choices[0].message.content == chat.chat(messages, greedy=True, max_new_tokens=12)
    assert r.choices[0].message.role == "assistant" and r.object == "chat.completion"
    stream = c.chat.completions.create(model="chat", messages=messages, max_tokens=12, temperature=0, stream=True,
                                       stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == r.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == r.usage.completion_tokens


def test_models_list_chat_only_for_a_model_with_a_chat_template(server):
    h = {"Authorization": f"Bearer {KEY}"}
    listed = {m["id"]: m["endpoints"] for m in httpx.get(server.url + "/v1/models", headers=h).json()["data"]}
    assert listed == {"gpt": ["/v1/completions"], "char": ["/v1/completions"], "gan": ["/v1/samples"],
                      "chat": ["/v1/completions", "/v1/chat/completions"]}
    # what the list leaves out is refused with the reason
    r = httpx.post(server.url + "/v1/chat/completions", headers=h,
                   json={"model": "gpt", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and "no chat template" in r.json()["error"]["message"], r.text


def test_samples_for_a_gan_export(server, exports):
    from gentoolkit.runtime import load

    h = {"Authorization": f"Bearer {KEY}"}
    r = httpx.post(server.url + "/v1/samples", json={"model": "gan", "n": 50, "seed": 3, "truncation": 1.5}, headers=h)
    assert r.status_code == 200, r.text
    got = np.array(r.json()["data"])
    np.testing.assert_allclose(got, load(exports["gan"]).sample(50, seed=3, truncation=1.5), atol=1e-6)
    png = httpx.post(server.url + "/v1/samples", json={"model": "gan", "n": 200, "format": "png"}, headers=h)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    wrong = httpx.post(server.url + "/v1/completions", json={"model": "gan", "prompt": "x"}, headers=h)
    assert wrong.status_code == 400 and "/v1/samples" in wrong.json()["error"]["message"]


def test_auth_health_metrics_and_openapi(server):
    assert httpx.get(server.url + "/health").json()["status"] == "ok"  # no key needed
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": KEY}):
        r = httpx.get(server.url + "/v1/models", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    h = {"Authorization": f"Bearer {KEY}"}
    doc = httpx.get(server.url + "/openapi.json", headers=h).json()
    assert {"/v1/completions", "/v1/chat/completions", "/v1/samples", "/v1/models"} <= set(doc["paths"])
    assert "truncation" in doc["components"]["schemas"]["SamplesRequest"]["properties"]
    text = httpx.get(server.url + "/metrics", headers=h).text
    for name in ("gentool_requests_total", "gentool_queue_depth", "gentool_time_to_first_token_seconds_bucket",
                 "gentool_request_latency_seconds_count", "gentool_completion_tokens_total"):
        assert name in text, name


C, CHAT, S = "/v1/completions", "/v1/chat/completions", "/v1/samples"
BAD = [  # (path, body, status, what the message says)
    (C, b"{not json", 400, "not valid JSON"),
    (C, b"[1, 2]", 400, "JSON object"),
    (C, {"prompt": "a"}, 400, "model is required"),
    (C, {"model": "nope", "prompt": "a"}, 404, "does not exist"),
    (C, {"model": "gpt"}, 400, "prompt is required"),
    (C, {"model": "gpt", "prompt": ""}, 200, None),  # an empty prompt starts from the start token, as generate("")
    (C, {"model": "gpt", "prompt": []}, 400, "must not be empty"),
    (C, {"model": "gpt", "prompt": 5}, 400, "prompt"),
    (C, {"model": "gpt", "prompt": "a", "temperature": 2.5}, 400, "temperature must be at most 2"),
    (C, {"model": "gpt", "prompt": "a", "temperature": -1}, 400, "temperature must be at least 0"),
    (C, {"model": "gpt", "prompt": "a", "temperature": "hot"}, 400, "temperature must be a number"),
    (C, {"model": "gpt", "prompt": "a", "top_p": 0}, 400, "top_p must be more than 0"),
    (C, {"model": "gpt", "prompt": "a", "n": 0}, 400, "n must be at least 1"),
    (C, {"model": "gpt", "prompt": "a", "n": 9}, 400, "at most 8"),
    (C, {"model": "gpt", "prompt": "a", "n": True}, 400, "n must be an integer"),
    (C, {"model": "gpt", "prompt": "a", "max_tokens": 0}, 400, "max_tokens must be at least 1"),
    (C, {"model": "gpt", "prompt": "a", "max_tokens": 10**6}, 400, "at most 4096"),
    (C, {"model": "gpt", "prompt": "a", "stop": ["a", "b", "c", "d", "e"]}, 400, "at most 4"),
    (C, {"model": "gpt", "prompt": "a", "seed": 1.5}, 400, "seed must be an integer"),
    (C, {"model": "gpt", "prompt": "a", "seed": -1}, 400, "seed must be at least 0"),
    (C, {"model": "gpt", "prompt": "a", "logprobs": 3}, 400, "logprobs"),
    (C, {"model": "gpt", "prompt": "a", "presence_penalty": 1}, 400, "presence_penalty"),
    (C, {"model": "gpt", "prompt": "a", "frobnicate": 1}, 400, "unrecognized request argument supplied: frobnicate"),
    (C, {"model": "gpt", "prompt": [10**9]}, 400, "outside the vocabulary"),
    (C, {"model": "gpt", "prompt": "x" * 100}, 400, "context"),
    (C, {"model": "gan", "prompt": "x"}, 400, "use /v1/samples"),
    (C, {"model": "char", "prompt": "snow ☃"}, 400, "does not know: '☃'"),
    (CHAT, {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}, 400, "no chat template"),
    (CHAT, {"model": "chat", "messages": []}, 400, "must not be empty"),
    (CHAT, {"model": "chat", "messages": [{"role": "wizard", "content": "hi"}]}, 400, "role"),
    (CHAT, {"model": "chat", "messages": [{"role": "user"}]}, 400, "content is required"),
    (CHAT, {"model": "chat", "messages": "hi"}, 400, "messages must be an array"),
    (S, {"model": "gan", "n": 0}, 400, "n must be at least 1"),
    (S, {"model": "gan", "n": 10**6}, 400, "at most 10000"),
    (S, {"model": "gan", "truncation": "far"}, 400, "truncation must be a number"),
    (S, {"model": "gan", "format": "gif"}, 400, "format must be one of"),
    (S, {"model": "gan", "seed": -1}, 400, "seed must be at least 0"),
    (S, {"model": "gpt", "n": 2}, 400, "use /v1/completions"),
]


@pytest.mark.parametrize(("path", "body", "status", "says"), BAD)
def test_bad_requests_get_the_openai_error_object(server, path, body, status, says):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = httpx.post(server.url + path, content=data, headers={"Authorization": f"Bearer {KEY}",
                                                             "Content-Type": "application/json"})
    assert r.status_code == status, (body, r.text)
    if says is not None:
        e = r.json()["error"]
        assert says in e["message"] and set(e) == {"message", "type", "param", "code"}, (body, e)


def test_body_size_limit(server):
    r = httpx.post(server.url + "/v1/completions", content=b"{" + b" " * 2_000_000 + b"}",
                   headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_continuous_batching_rows_do_not_depend_on_each_other(server, exports):
    """Eight requests at once (more than the four rows): each one's text is what it gets alone."""
    from gentoolkit.runtime import load

    lm = load(exports["gpt"])
    asks = [dict(prompt=p, seed=s, temperature=t, max_tokens=m) for p, s, t, m in
            [("The ", 1, 0, 30), ("a", 2, 0.8, 7), ("def ", 3, 1.0, 25), ("", 4, 0, 12),
             ("x = ", 5, 0.7, 18), ("In ", 6, 0, 3), ("The ", 7, 1.2, 28), ("if ", 8, 0.5, 16)]]
    results: dict[int, str] = {}

    def ask(i):
        results[i] = client(server).completions.create(model="gpt", **asks[i]).choices[0].text

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(asks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, a in enumerate(asks):
        alone = lm.generate(a["prompt"], seed=a["seed"], temperature=a["temperature"], max_new_tokens=a["max_tokens"])
        assert results[i] == alone, (a, results[i], alone)


def test_a_client_that_goes_away_cancels_its_row(server):
    h = {"Authorization": f"Bearer {KEY}"}
    body = {"model": "gpt", "prompt": "The ", "max_tokens": 4000, "temperature": 0.9, "stream": True}
    with httpx.stream("POST", server.url + "/v1/completions", json=body, headers=h) as r:
        next(r.iter_lines())  # the first piece has come: the row is running
    deadline = time.time() + 10
    while time.time() < deadline:
        if 'gentool_active_rows{model="gpt"} 0' in httpx.get(server.url + "/metrics", headers=h).text:
            return
        time.sleep(0.05)
    raise AssertionError("the row kept running after its client left")


def test_queue_limit_timeout_and_graceful_shutdown(exports):
    s = Server([exports["gpt"]], "--max-batch", "1", "--max-queue", "0", "--timeout", "30")
    try:
        body = {"model": "gpt", "prompt": "The ", "max_tokens": 1500, "temperature": 0.9, "stream": True}
        lines: list[str] = []
        with httpx.stream("POST", s.url + "/v1/completions", json=body, timeout=60) as r:
            it = r.iter_lines()
            lines.append(next(it))
            busy = httpx.post(s.url + "/v1/completions", json={"model": "gpt", "prompt": "a"})
            assert busy.status_code == 429 and busy.json()["error"]["type"] == "rate_limit_error"
            s.proc.send_signal(signal.SIGTERM)  # stop admitting; the stream in flight finishes
            time.sleep(0.3)
            try:  # a new connection is refused; a kept-alive one would get 503
                late = httpx.post(s.url + "/v1/completions", json={"model": "gpt", "prompt": "a"}, timeout=5)
                assert late.status_code == 503, late.text
            except httpx.ConnectError:
                pass
            lines.extend(it)
        events = [json.loads(x[6:]) for x in lines if x.startswith("data: {")]
        assert lines[-1] == "data: [DONE]" or lines[-2] == "data: [DONE]"
        assert events[-1]["choices"][0]["finish_reason"] == "length"
        assert s.proc.wait(30) == 0
    finally:
        s.stop()
    assert "Traceback" not in s.log, s.log
    t = Server([exports["gpt"]], "--timeout", "0.05")
    try:
        r = httpx.post(t.url + "/v1/completions", json={"model": "gpt", "prompt": "The ", "max_tokens": 4000})
        assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
    finally:
        assert t.stop() == 0
    assert all(json.loads(line)["status"] for line in t.log.splitlines() if line.startswith("{"))  # JSON access logs


def test_a_traced_export_is_served_one_request_at_a_time(gpt_run, exports, tmp_path):
    """Without shared buffers (--graph traced) the engine is the driver's own loop: the same texts."""
    from gentoolkit.export import export
    from gentoolkit.runtime import load

    export(gpt_run, tmp_path / "traced", graph="traced", check=False, log=lambda m: None)
    lm = load(exports["gpt"])
    s = Server([tmp_path / "traced"])
    try:
        c = openai.OpenAI(base_url=s.url + "/v1", api_key="-", max_retries=0)
        r = c.completions.create(model="traced", prompt=["The ", "a"], n=2, seed=3, temperature=0.8, max_tokens=9)
        want = lm.generate(["The ", "The "], seed=3, temperature=0.8, max_new_tokens=9)[:2] + \
            lm.generate(["a", "a"], seed=3, temperature=0.8, max_new_tokens=9)
        assert [ch.text for ch in r.choices] == want and r.usage.completion_tokens == 36
    finally:
        assert s.stop() == 0


def test_fuzzed_requests_get_an_answer_or_an_error_object_never_a_500(exports):
    """Property-based: bodies drawn from the server's own OpenAPI document (each field left out, valid, or
    of a wrong type or range, plus unknown fields): every answer is a 200 or a 4xx with the error object."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    s = Server([exports["gpt"], exports["gan"]], "--max-tokens", "6", "--max-n", "2")
    try:
        doc = httpx.get(s.url + "/openapi.json").json()
        junk = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                         st.text(max_size=20), st.lists(st.integers(-5, 300), max_size=4),
                         st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))

        def valid(schema):
            if "enum" in schema:
                return st.sampled_from(schema["enum"])
            if "oneOf" in schema:
                return st.one_of(*(valid(o) for o in schema["oneOf"]))
            kind = schema.get("type")
            low = schema.get("minimum", schema.get("exclusiveMinimum", -100))
            high = schema.get("maximum", 100)
            if kind == "integer":
                return st.integers(int(math_ceil(low)), int(high) if high < 100 else 12)
            if kind == "number":
                return st.floats(low, high, allow_nan=False)
            if kind == "string":
                return st.text(max_size=12)
            if kind == "boolean":
                return st.booleans()
            if kind == "array":
                return st.lists(valid(schema.get("items", {})), min_size=schema.get("minItems", 0), max_size=3)
            if kind == "object":
                return body(schema)
            return junk

        def body(schema):
            fields = {k: st.one_of(valid(v), junk) for k, v in schema.get("properties", {}).items()}
            return st.fixed_dictionaries({}, optional=fields).flatmap(
                lambda d: st.dictionaries(st.sampled_from(["frob", "x"]), junk, max_size=1).map(lambda extra: {**d, **extra}))

        schemas = doc["components"]["schemas"]
        requests = st.one_of(
            st.tuples(st.just("/v1/completions"), body(schemas["CompletionRequest"]), st.sampled_from(["gpt", "gan"])),
            st.tuples(st.just("/v1/chat/completions"), body(schemas["ChatRequest"]), st.just("gpt")),
            st.tuples(st.just("/v1/samples"), body(schemas["SamplesRequest"]), st.sampled_from(["gan", "gpt"])))

        @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(requests, st.booleans())
        def fuzz(request, keep_model):
            path, data, model = request
            if keep_model:
                data = {**data, "model": model}
            data.pop("stream", None)  # a stream answers 200 and reports its errors in events
            r = httpx.post(s.url + path, content=json.dumps(data).encode(), timeout=30,  # NaN as JSON's NaN
                           headers={"Content-Type": "application/json"})
            assert r.status_code == 200 or 400 <= r.status_code < 500, (path, data, r.status_code, r.text)
            if r.status_code != 200:
                assert set(r.json()["error"]) == {"message", "type", "param", "code"}

        fuzz()
    finally:
        assert s.stop() == 0
    assert "Traceback" not in s.log and "internal error" not in s.log, s.log


def math_ceil(x: float) -> int:
    import math

    return math.ceil(x)


# A changed declaration of the text family's decode options, installed in every new interpreter of the
# test by a sitecustomize module: top_p at most a half, min_p gone.
NARROWER = """
import dataclasses, typing
import gentoolkit_autoregressive.options as o
from gentoolkit.plugin.options import option, sample_options
hints = typing.get_type_hints(o.TextOptions)
fields = []
for f in dataclasses.fields(o.TextOptions):
    if f.name == "min_p":
        continue
    if f.name == "top_p":
        made = option("Nucleus mass, at most a half.", default=1.0, low=0, high=0.5, low_open=True, api="top_p")
    else:
        made = dataclasses.field(default=f.default, metadata=f.metadata)
    fields.append((f.name, hints[f.name], made))
o.TextOptions = dataclasses.make_dataclass("TextOptions", fields, frozen=True)
o.TEXT_OPTIONS = sample_options(o.TextOptions)
"""


@pytest.mark.parametrize("changed", [False, True])
def test_the_cli_the_server_and_the_samplers_follow_the_one_declaration(changed, exports, tmp_path):
    """The decode options are declared once (gentoolkit_autoregressive.options.TextOptions): change the
    declaration and gentool sample's flags, the server's request schema and the samplers all follow."""
    env = dict(os.environ)
    if changed:
        (tmp_path / "sitecustomize.py").write_text(NARROWER)
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)

    def gentool(*args):
        return subprocess.run([sys.executable, "-m", "gentoolkit", *args], capture_output=True, text=True, env=env,
                              timeout=120)

    export = exports["gpt"]
    # the CLI: its flags and their ranges
    helped = gentool("sample", "--help").stdout
    assert ("--min-p" in helped) is not changed and "--top-p" in helped
    r = gentool("sample", str(export), "-p", "a", "--max-new-tokens", "3", "--seed", "1", "--top-p", "0.7")
    if changed:
        assert "0.5" in r.stderr and r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    else:
        assert r.returncode == 0, r.stderr
    # the samplers: their arguments and their checks
    code = ("from gentoolkit.plugin.options import make_sampler\n"
            "from gentoolkit.errors import GentoolError\n"
            "for opts in ({'top_p': 0.7}, {'min_p': 0.1}):\n"
            "    try:\n"
            "        make_sampler('logits', options=opts, choose={'': 'sample'}); print('ok')\n"
            "    except (GentoolError, ValueError) as exc:\n"
            "        print('refused:', exc)\n")
    said = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    lines = said.stdout.splitlines()
    assert said.returncode == 0, said.stderr
    if changed:
        assert "top_p must be in (0, 0.5]" in lines[0] and "has no option 'min_p'" in lines[1], lines
    else:
        assert lines == ["ok", "ok"], lines
    # the server: its request schema
    server = Server([export], env=env)
    try:
        for field, value in (("top_p", 0.7), ("min_p", 0.1)):
            r = httpx.post(server.url + "/v1/completions", json={"model": export.name, "prompt": "a", "max_tokens": 2,
                                                                 field: value}, timeout=60)
            assert r.status_code == (400 if changed else 200), r.text
            if changed:
                assert field in r.json()["error"]["message"], r.text
    finally:
        server.stop()

"""``gentool serve``'s request schemas, as plain data (JSON Schema): the same tables validate a request and
make the OpenAPI document (``/openapi.json``). OpenAI's own fields are here; a family's decode options
join them where the family declares the request field that carries one (``SampleOption.api``)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

# --- the request schemas, as plain data (JSON Schema) ------------------------------------------------------
# OpenAI's own fields; a family's decode options join them where it declares the field that carries one
# (SampleOption.api; see text_schema)
_SAMPLING = {
    "n": {"type": "integer", "minimum": 1},
    "stream": {"type": "boolean"},
    "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}},
                       "additionalProperties": False},
    "seed": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},  # as gentool sample --seed
    "user": {"type": "string"},
    # OpenAI's, accepted at the values that change nothing
    "presence_penalty": {"type": "number", "enum": [0]},
    "frequency_penalty": {"type": "number", "enum": [0]},
    "logprobs": {"enum": [None, False]},
    "echo": {"enum": [False]},
    "best_of": {"enum": [None, 1]},
    "suffix": {"enum": [None]},
    "logit_bias": {"enum": [None, {}]},
}
_MESSAGE = {
    "type": "object",
    "properties": {
        "role": {"type": "string", "enum": ["system", "user", "assistant", "developer"]},
        "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": {
            "type": "object", "properties": {"type": {"type": "string", "enum": ["text"]}, "text": {"type": "string"}},
            "required": ["type", "text"], "additionalProperties": False}}]},
        "name": {"type": "string"},
    },
    "required": ["role", "content"],
    "additionalProperties": False,
}
COMPLETION = {
    "type": "object",
    "properties": {
        "model": {"type": "string"},
        "prompt": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1},
                             {"type": "array", "items": {"type": "integer"}, "minItems": 1}]},
        **_SAMPLING,
    },
    "required": ["model", "prompt"],
    "additionalProperties": False,
}
CHAT = {
    "type": "object",
    "properties": {
        "model": {"type": "string"},
        "messages": {"type": "array", "items": _MESSAGE, "minItems": 1},
        "max_completion_tokens": {"type": "integer", "minimum": 1},
        **_SAMPLING,
    },
    "required": ["model", "messages"],
    "additionalProperties": False,
}
SAMPLES = {
    "type": "object",
    "properties": {
        "model": {"type": "string"},
        "n": {"type": "integer", "minimum": 1},
        "seed": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
        "format": {"type": "string", "enum": ["json", "png"]},
        # the family's own sample options join these (truncation for GANs): see schema_for
    },
    "required": ["model"],
    "additionalProperties": False,
}
_JSON_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict}


class RequestError(Exception):
    """A request the server refuses: the OpenAI error object, and its HTTP status."""

    def __init__(self, message: str, status: int = 400, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.param, self.code, self.kind = status, param, code, kind

    def body(self) -> dict:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}}


def _type_ok(value, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    if kind == "number" and isinstance(value, float) and not math.isfinite(value):
        return False
    return isinstance(value, _JSON_TYPES[kind])


def check(value, schema: dict, where: str) -> None:
    """Raise :class:`RequestError` naming ``where`` unless ``value`` fits ``schema`` (the JSON Schema subset above)."""
    if "oneOf" in schema:
        errors = []
        for option in schema["oneOf"]:
            try:
                check(value, option, where)
                return
            except RequestError as exc:
                errors.append(str(exc))
        raise RequestError(errors[0] if len(errors) == 1 else f"{where}: not any of the accepted forms ({errors[-1]})",
                           param=where)
    if "enum" in schema and value not in schema["enum"]:
        shown = ", ".join(json.dumps(v) for v in schema["enum"])
        raise RequestError(f"{where} must be one of {shown}; got {json.dumps(value)[:80]}", param=where)
    kind = schema.get("type")
    if kind is not None and not _type_ok(value, kind):
        raise RequestError(f"{where} must be {'an' if kind[0] in 'aeiou' else 'a'} {kind}; got {json.dumps(value)[:80]}",
                           param=where)
    for bound, ok, word in (("minimum", lambda v, b: v >= b, "at least"), ("maximum", lambda v, b: v <= b, "at most"),
                            ("exclusiveMinimum", lambda v, b: v > b, "more than")):
        if bound in schema and not ok(value, schema[bound]):
            raise RequestError(f"{where} must be {word} {schema[bound]}; got {value}", param=where)
    if kind == "array":
        if len(value) < schema.get("minItems", 0):
            raise RequestError(f"{where} must not be empty", param=where)
        if len(value) > schema.get("maxItems", math.inf):
            raise RequestError(f"{where} takes at most {schema['maxItems']} items", param=where)
        for i, item in enumerate(value):
            check(item, schema.get("items", {}), f"{where}[{i}]")
    if kind == "object":
        props = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key not in value:
                raise RequestError(f"{where + '.' if where else ''}{key} is required", param=key)
        for key, item in value.items():
            name = f"{where}.{key}" if where else key
            if key not in props:
                if schema.get("additionalProperties", True) is False:
                    raise RequestError(f"unrecognized request argument supplied: {name}", param=name)
                continue
            check(item, props[key], name)


def _messages(messages: list[dict]) -> list[dict]:
    """Chat messages with their content as one string (a list of text parts joined)."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = "".join(part["text"] for part in content)
        out.append({"role": m["role"], "content": content})
    return out


def _declared(driver) -> tuple:
    """The decode options the family of ``driver`` declares (its ``RuntimeSpec.sample_options``)."""
    from gentoolkit.plugin.manager import get_registries

    return tuple(get_registries(commands=False).runtimes.get(driver.manifest["family"]).sample_options)


def option_schema(o) -> dict:
    """The JSON schema of a declared option's value (a :class:`~gentoolkit.plugin.specs.SampleOption`)."""
    s: dict[str, Any] = {"type": {int: "integer", float: "number", str: "string", bool: "boolean"}[o.type]}
    if o.low is not None:
        s["exclusiveMinimum" if o.low_open else "minimum"] = o.low
    if o.high is not None:
        s["maximum"] = o.high
    if o.multiple:
        return {"oneOf": [s, {"type": "array", "items": s, **(o.api_schema or {})}]}
    return {**s, **(o.api_schema or {})}


def text_schema(declared: Sequence, chat: bool) -> dict:
    """The request schema of /v1/chat/completions (``chat``) or /v1/completions: OpenAI's fields and the
    family's decode options that it declares a request field for."""
    base = CHAT if chat else COMPLETION
    props = dict(base["properties"])
    props.update({o.api: option_schema(o) for o in declared if o.api})
    return {**base, "properties": props}


def samples_schema(driver) -> dict:
    """/v1/samples' schema for one export: the common fields and the family's declared sample options."""
    props = dict(SAMPLES["properties"])
    props.update({o.name: option_schema(o) for o in _declared(driver) if not o.multiple})
    return {**SAMPLES, "properties": props}


def openapi_document(served: dict[str, Any]) -> dict:
    """The OpenAPI 3.1 document of the endpoints, from the schemas above (``served``: id -> :class:`.app.Served`)."""
    from gentoolkit import __version__

    def error_response(what: str) -> dict:
        return {"description": what, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}

    def post(schema: str, summary: str, ok: dict) -> dict:
        return {"post": {"summary": summary, "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}},
            "responses": {"200": ok, "400": error_response("a bad request"), "401": error_response("no valid API key"),
                          "404": error_response("no such model"), "413": error_response("the body is too large"),
                          "429": error_response("the queue is full")}}}

    sample = next((s for s in served.values() if s.engine is None), None)
    text = next((s for s in served.values() if s.engine is not None), None)
    declared = _declared(text.driver) if text is not None else ()
    json_ok = {"description": "the result", "content": {"application/json": {"schema": {"type": "object"}}}}
    stream_ok = {"description": "the result, or server-sent events with stream", "content": {
        "application/json": {"schema": {"type": "object"}}, "text/event-stream": {"schema": {"type": "string"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "gentool serve", "version": __version__},
        "paths": {
            "/v1/completions": post("CompletionRequest", "Complete a prompt", stream_ok),
            "/v1/chat/completions": post("ChatRequest", "Answer a chat through the model's template", stream_ok),
            "/v1/samples": post("SamplesRequest", "Draw samples from a GAN or diffusion export", {
                "description": "the samples", "content": {"application/json": {"schema": {"type": "object"}},
                                                          "image/png": {"schema": {"type": "string"}}}}),
            "/v1/models": {"get": {"summary": "The served exports", "responses": {"200": json_ok}}},
            "/health": {"get": {"summary": "Liveness (no API key needed)", "responses": {"200": json_ok}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
                "description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        },
        "components": {"schemas": {
            "CompletionRequest": text_schema(declared, False), "ChatRequest": text_schema(declared, True),
            "SamplesRequest": samples_schema(sample.driver) if sample is not None else SAMPLES,
            "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                "message": {"type": "string"}, "type": {"type": "string"}, "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]}}, "required": ["message", "type"]}}, "required": ["error"]},
        }},
    }

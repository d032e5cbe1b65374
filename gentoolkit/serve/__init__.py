"""``gentool serve``: exports behind the OpenAI API (Starlette and uvicorn, torch-free).

Text exports get ``/v1/completions`` and ``/v1/chat/completions`` (with ``stream``), served by
the family's engine (``RuntimeSpec.serve``: continuous batching for the autoregressive family).
Every other export gets ``/v1/samples``, through its driver's ``sample(n, seed, **options)``.
The request schemas (:mod:`.schemas`) are plain data: the same tables validate a request and make the
OpenAPI document (``/openapi.json``). docs/serving.md describes it all.
"""

from __future__ import annotations

from gentoolkit.serve.app import Limits, serve

__all__ = ["Limits", "serve"]

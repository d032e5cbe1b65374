"""Torch-free driver for exported autoregressive models (numpy + onnxruntime + tokenizers)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gentoolkit.errors import GentoolError
from gentoolkit.runtime.generation import stream_text
from gentoolkit.runtime.tokenizer import TextTokenizer


class OrtDecoder:
    """The exported graph as a decoder for the shared generation loop."""

    def __init__(self, session, runtime: dict[str, Any]):
        self.session = session
        self.context_length = int(runtime["context_length"])
        n = int(runtime["n_layer"])
        self.past_names = [f"past_key_values.{i}.{k}" for i in range(n) for k in ("key", "value")]
        self.present_names = [f"present.{i}.{k}" for i in range(n) for k in ("key", "value")]
        self.output_names = ["logits"] + self.present_names
        self.kv_shape = (int(runtime["n_kv_head"]), int(runtime["head_dim"]))
        self.device = "cuda" if "CUDAExecutionProvider" in session.get_providers() else "cpu"
        self._empty: dict[int, np.ndarray] = {}
        # InferenceSession.run checks the feed names in Python on every call (measured: 4% of a
        # decode step here); the loop always feeds exactly the graph's inputs, so call the binding
        # under it when this onnxruntime has one
        inner = getattr(session, "_sess", None)
        self._run = inner.run if hasattr(inner, "run") else session.run  # both: (names, feeds, run_options)
        self._feeds: dict[str, Any] = {}  # reused from call to call: the loop always feeds every input

    def empty_past(self, batch: int):
        if batch not in self._empty:
            self._empty[batch] = np.zeros((batch, self.kv_shape[0], 0, self.kv_shape[1]), np.float32)
        return [self._empty[batch]] * len(self.past_names)

    def __call__(self, input_ids, attention_mask, position_ids, past):
        if self.device == "cpu":  # measured: plain run beats IO binding on the CPU for these sizes
            feeds = self._feeds
            feeds.update(zip(self.past_names, past))
            feeds["input_ids"] = input_ids
            feeds["attention_mask"] = attention_mask
            feeds["position_ids"] = position_ids
            out = self._run(self.output_names, feeds, None)
            return out[0][:, -1], out[1:]
        # on a GPU, IO binding keeps the cache in device memory (OrtValues) from step to step;
        # only the logits come back to numpy
        binding = self.session.io_binding()
        binding.bind_cpu_input("input_ids", np.ascontiguousarray(input_ids))
        binding.bind_cpu_input("attention_mask", np.ascontiguousarray(attention_mask))
        binding.bind_cpu_input("position_ids", np.ascontiguousarray(position_ids))
        for name, value in zip(self.past_names, past):
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(name, value)
            else:
                binding.bind_ortvalue_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, self.device)
        self.session.run_with_iobinding(binding)
        logits, *present = binding.get_outputs()
        return logits.numpy()[:, -1], present


class TextModel:
    """An exported language model: ``generate`` returns text, ``stream`` yields pieces as they come."""

    family = "autoregressive"

    def __init__(self, folder: Path, manifest: dict[str, Any], session):
        self.folder = Path(folder)
        self.manifest = manifest
        rt = manifest["runtime"]
        tok_file = self.folder / (manifest.get("tokenizer") or "tokenizer.json")
        if not tok_file.is_file():
            raise GentoolError(f"{str(self.folder)!r} lacks its tokenizer file {tok_file.name!r}")
        self.tokenizer = TextTokenizer.from_file(tok_file, rt.get("tokenizer_kind", ""))
        self.decoder = OrtDecoder(session, rt)
        self.defaults = dict(manifest.get("sampler_defaults") or {})

    def _sampler(self, greedy, sampler, sampler_opts, options):
        from gentoolkit.sampling import make_sampler

        return make_sampler("logits", name=sampler, defaults=self.defaults, options=options, sampler_opts=sampler_opts,
                            greedy=greedy)

    def stream_rows(self, prompts: Sequence[str], *, max_new_tokens: int | None = None, seed: int | None = None,
                    stop: Sequence[str] = (), greedy: bool = False, sampler: str | None = None,
                    sampler_opts: Sequence[str] = (), **options) -> Iterator[tuple[int, str]]:
        """``(row, piece)`` for a batch of prompts (left-padded and decoded together)."""
        s = self._sampler(greedy, sampler, sampler_opts, options)
        n = max_new_tokens if max_new_tokens is not None else int(self.defaults.get("max_new_tokens", 200))
        return stream_text(self.decoder, self.tokenizer, list(prompts), sampler=s, max_new_tokens=n, seed=seed,
                           stop=stop)

    def stream(self, prompt: str = "", **kw) -> Iterator[str]:
        """Text pieces of one continuation, as they are generated."""
        for _, piece in self.stream_rows([prompt], **kw):
            yield piece

    def generate(self, prompt: str | Sequence[str] = "", **kw) -> str | list[str]:
        """The continuation of a prompt (or a list of continuations for a list of prompts)."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        out = [""] * len(prompts)
        for i, piece in self.stream_rows(prompts, **kw):
            out[i] += piece
        return out[0] if isinstance(prompt, str) else out

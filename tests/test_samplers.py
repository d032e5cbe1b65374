"""Samplers: property tests over random logits, defined edge cases, latent samplers, and a plugin sampler."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gentoolkit import SamplerSpec, hookimpl
from gentoolkit.plugin.manager import get_plugin_manager
from gentoolkit.plugin.options import make_sampler
from gentoolkit_autoregressive.samplers import LogitsSampler, apply_top_p, process_logits, softmax
from gentoolkit_gan.latent import LatentSampler, lerp, slerp

from .conftest import one_error_line, run_cli

# multiples of 1/8: exact in float32 and float64, so adding a shift cannot create ties by rounding
finite = st.integers(-240, 240).map(lambda i: i / 8)


@st.composite
def logits_rows(draw):
    v = draw(st.integers(1, 40))
    x = draw(arrays(np.float32, (v,), elements=finite))
    holes = draw(arrays(np.bool_, (v,)))  # some -inf entries, never all of them
    holes[0] = False
    return np.where(holes, -np.inf, x).astype(np.float32)


options = st.fixed_dictionaries(
    {
        "temperature": st.floats(0.05, 5),
        "top_k": st.integers(0, 50),
        "top_p": st.floats(1e-4, 1.0),
        "min_p": st.floats(0, 1),
    }
)


@settings(max_examples=200, deadline=None)
@given(logits_rows(), options, st.integers(-800, 800).map(lambda i: i / 8))
def test_processors_properties(x, opts, shift):
    out = process_logits(x, **opts)
    assert not np.isnan(out).any()
    p = softmax(out)
    kept = p > 0
    assert kept.any()  # at least one token survives
    assert np.isneginf(out[np.isneginf(x)]).all()  # excluded stays excluded
    assert kept[x.argmax()]  # the most likely token is never removed
    if opts["top_k"] > 0:
        kth = np.sort(x)[-min(opts["top_k"], len(x))]
        assert not (kept & (x < kth)).any()  # nothing below the k-th largest
    pmax = softmax(x / opts["temperature"]).max()
    assert not (kept & (softmax(x / opts["temperature"]) < opts["min_p"] * pmax * (1 - 1e-9))).any()
    shifted = softmax(process_logits(x.astype(np.float64) + shift, **opts))
    np.testing.assert_allclose(shifted, p, atol=1e-9)  # invariant to adding a constant


@settings(max_examples=100, deadline=None)
@given(logits_rows())
def test_greedy_is_argmax_and_temperature_zero_is_greedy(x):
    rng = np.random.default_rng(0)
    assert LogitsSampler(temperature=0)(x, None, rng) == x.argmax()
    assert LogitsSampler(greedy=True)(x) == x.argmax()
    assert LogitsSampler(greedy=True).argmax_only and not LogitsSampler(greedy=True, repetition_penalty=1.2).argmax_only
    assert LogitsSampler(repetition_penalty=1.2).needs_history and not LogitsSampler().needs_history


@settings(max_examples=100, deadline=None)
@given(logits_rows(), options, st.integers(0, 2**31))
def test_draws_only_kept_tokens_and_are_seeded(x, opts, seed):
    s = LogitsSampler(**opts)
    a = s(x, None, np.random.default_rng(seed))
    b = s(x, None, np.random.default_rng(seed))
    assert a == b and isinstance(a, int)
    assert s.probs(x)[a] > 0


@settings(max_examples=200, deadline=None)
@given(logits_rows(), st.floats(1e-4, 0.999))
def test_top_p_keeps_the_same_tokens_sorting_a_short_row_whole_or_partitioning_a_long_one(x, p):
    x = x.astype(np.float64)
    # over 256 tokens top-p partitions the finite ones; excluded tokens do not change which are kept
    padded = np.concatenate([x, np.full(300, -np.inf)])
    ps = np.sort(softmax(x))[::-1]  # the sums of the two can differ in the last bit: no mass exactly at p
    assume(np.abs(np.cumsum(ps) - ps - p).min() > 1e-9)
    np.testing.assert_array_equal(apply_top_p(padded.copy(), p)[: len(x)], apply_top_p(x.copy(), p))


def test_edge_cases():
    x = np.array([1.0, 3.0, 2.0, 3.0])
    assert np.isfinite(process_logits(x, top_k=100)).all()  # k larger than the vocabulary
    assert np.isfinite(process_logits(x, top_k=0)).all()
    assert np.isfinite(process_logits(x, top_p=1.0)).all()
    tiny = process_logits(x, top_p=1e-9)
    assert np.isfinite(tiny).sum() == 1 and np.isfinite(tiny[1])  # only the first of the tied best
    assert np.isfinite(process_logits(x, top_k=1)).sum() == 2  # ties with the k-th are kept
    eq = np.zeros(5)
    np.testing.assert_allclose(softmax(process_logits(eq, top_k=2)), 0.2)  # all equal: all tied with the k-th
    # top-p breaks ties by token id: the lowest ids until the mass is reached
    np.testing.assert_allclose(softmax(process_logits(eq, top_p=0.5)), [1 / 3, 1 / 3, 1 / 3, 0, 0])
    assert LogitsSampler(greedy=True)(eq) == 0  # greedy ties: lowest id
    pen = process_logits(np.array([1.0, 2.0, -1.0]), repetition_penalty=2.0, history=np.array([1]))
    assert pen[1] == 1.0
    assert process_logits(np.array([1.0, -2.0]), repetition_penalty=2.0, history=np.array([1, 1]))[1] == -4.0
    with pytest.raises(ValueError, match="NaN"):
        process_logits(np.array([np.nan, 1.0]))
    with pytest.raises(ValueError, match="finite"):
        process_logits(np.array([-np.inf, -np.inf]))
    with pytest.raises(ValueError, match="top_p"):
        LogitsSampler(top_p=0)


def test_same_seed_same_draws_on_float32_or_float64_logits():
    x = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    s = LogitsSampler(temperature=0.9, top_p=0.9)
    a = [s(x, None, np.random.default_rng(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2] == s(x.astype(np.float64), None, np.random.default_rng(7))


def test_latent_samplers():
    rng = lambda: np.random.default_rng(5)  # noqa: E731
    z = LatentSampler("normal")(1000, 8, rng())
    assert z.shape == (1000, 8) and z.dtype == np.float32 and abs(z.std() - 1) < 0.05
    u = LatentSampler("uniform")(1000, 8, rng())
    assert u.min() >= -1 and u.max() <= 1
    t = LatentSampler("truncated", 0.5)(1000, 8, rng())
    assert np.abs(t).max() <= 0.5
    assert (LatentSampler("truncated", 0.5)(10, 3, rng()) == LatentSampler("truncated", 0.5)(10, 3, rng())).all()
    a, b = np.ones(4, np.float32), -np.ones(4, np.float32)
    np.testing.assert_allclose(lerp(a, b, [0, 0.5, 1]), [a, np.zeros(4), b], atol=1e-7)
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    mid = slerp(a, b, [0.5])[0]
    np.testing.assert_allclose(np.linalg.norm(mid), 1.0, atol=1e-6)  # stays on the sphere
    np.testing.assert_allclose(slerp(a, a, [0.3])[0], a, atol=1e-7)


def test_make_sampler_uses_defaults_flags_and_plugin_options():
    from gentoolkit_autoregressive.options import CHOOSE as TEXT
    from gentoolkit_gan.options import CHOOSE as LATENT

    s = make_sampler("logits", defaults={"temperature": 0.8, "top_p": 0.95}, options={"top_k": 5, "temperature": None},
                     choose=TEXT)
    assert s == LogitsSampler(temperature=0.8, top_p=0.95, top_k=5)
    assert make_sampler("logits", options={"greedy": True}, defaults={"temperature": 0.8}, choose=TEXT).is_greedy
    assert make_sampler("latent", options={"truncation": 0.7}, choose=LATENT) == LatentSampler("truncated", 0.7)
    # a stored default picks the sampler as a given option would
    assert make_sampler("latent", defaults={"truncation": 0.5}, choose=LATENT) == LatentSampler("truncated", 0.5)
    from gentoolkit.errors import ConfigError

    with pytest.raises(ConfigError, match="latent sampler"):
        make_sampler("logits", name="normal")
    with pytest.raises(ConfigError, match="no option 'bogus'"):
        make_sampler("logits", sampler_opts=["bogus=1"], choose=TEXT)
    with pytest.raises(ConfigError, match="choose a logits sampler"):
        make_sampler("logits")
    # an option the chosen sampler does not take is an error, never dropped
    with pytest.raises(ConfigError, match="sampler 'greedy' has no option 'temperature'"):
        make_sampler("logits", options={"greedy": True, "temperature": 0.5}, choose=TEXT)
    with pytest.raises(ConfigError, match="sampler 'normal' has no option 'truncation'"):
        make_sampler("latent", name="normal", options={"truncation": 0.5}, choose=LATENT)


class ConstantSampler:
    """Always emits one fixed token id (a real, if silly, decoding strategy)."""

    argmax_only = False
    needs_history = False

    def __init__(self, token: int = 0):
        self.token = token

    def __call__(self, logits, history, rng):
        return self.token


class NoContract:
    """A sampler that forgot the contract's attributes."""

    def __call__(self, logits, history, rng):
        return 0


class ThrowawaySamplerPlugin:
    @hookimpl
    def register_samplers(self, register):
        register(SamplerSpec(name="constant", kind="logits", description="Always one token.",
                             factory=ConstantSampler, options={"token": int}))
        register(SamplerSpec(name="no-contract", kind="logits", description="x", factory=NoContract))


def test_plugin_sampler_through_gentool_sample(gpt_run):
    pm = get_plugin_manager()
    pm.register(ThrowawaySamplerPlugin(), name="throwaway-sampler")
    try:
        r = run_cli("sample", str(gpt_run), "-p", "go", "--sampler", "constant", "--sampler-opt", "token=120",
                    "--max-new-tokens", "7")
        assert r.exit_code == 0, r.output
        assert r.output == "go" + "x" * 7 + "\n"  # byte tokenizer: id 120 is 'x'
        one_error_line(run_cli("sample", str(gpt_run), "--sampler", "constant", "--sampler-opt", "token=abc"))
        assert "does not keep the sampler contract" in one_error_line(run_cli("sample", str(gpt_run), "--sampler",
                                                                              "no-contract"))
    finally:
        pm.unregister(name="throwaway-sampler")
    one_error_line(run_cli("sample", str(gpt_run), "--sampler", "constant"))


@pytest.mark.parametrize("family, args, part", [
    ("gpt", ["--truncation", "0.5"], "--truncation does not apply to autoregressive models; their sample options:"),
    ("gan", ["--top-p", "0.5"], "--top-p does not apply to gan models"),
    ("gan", ["-p", "hello"], "--prompt does not apply to gan models"),
    ("gpt", ["--greedy", "--temperature", "0.5"], "sampler 'greedy' has no option 'temperature'"),
    ("gpt", ["--out", "x.png"], "--out is for families that write files"),
])
def test_an_option_is_the_same_clear_error_on_a_run_its_export_and_in_python(family, args, part, exports, gpt_run,
                                                                               gan_run):
    from gentoolkit.errors import ConfigError, GentoolError
    from gentoolkit.runtime import load

    run = {"gpt": gpt_run, "gan": gan_run}[family]
    lines = [one_error_line(run_cli("sample", str(p), *args)) for p in (run, exports[family])]
    assert lines[0] == lines[1] and part in lines[0], lines
    model = load(exports[family])
    kwargs = {a.lstrip("-").replace("-", "_"): v for a, v in zip(args[::2], args[1::2])} if "--greedy" not in args \
        else {"greedy": True, "temperature": 0.5}
    if "out" in kwargs or "p" in kwargs:
        return
    with pytest.raises((ConfigError, GentoolError), match=part.replace("(", r"\(")):
        (model.generate("a", **{k: float(v) for k, v in kwargs.items()}) if family == "gpt"
         else model.sample(2, **{k: float(v) for k, v in kwargs.items()}))

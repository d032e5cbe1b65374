"""The offline picture metrics (FD, KID, precision, recall, density, coverage in the toolkit's own emoji-cnn
features) against answers known in advance: the data against itself, blur and noise of growing strength,
a collapsed generator."""

from __future__ import annotations

import numpy as np
import pytest

from .test_data import _emoji_here


@pytest.fixture(scope="module")
def halves():
    if not _emoji_here():
        pytest.skip("fonts-noto-color-emoji or unicode-data is not installed (CI installs both)")
    from gentoolkit.samples.emoji import load

    x = load(size=32).x
    order = np.random.default_rng(1).permutation(len(x))
    return x[order[:1500]], x[order[1500:3000]]


def test_the_data_against_itself_is_near_zero_and_near_one(halves):
    from gentoolkit.samples.features import feature_net, picture_metrics

    a, b = halves
    m = picture_metrics(a, b)
    assert m["fd"] < 3 and abs(m["kid"]) < 0.05, m
    assert min(m["precision"], m["recall"]) > 0.9 and 0.85 < m["density"] < 1.15 and m["coverage"] > 0.9, m
    _, info = feature_net()
    assert info["classes"] > 90 and info["held_out_accuracy"] > 0.5, info  # features that tell pictures apart


@pytest.mark.parametrize("damage", ["blur", "noise"])
def test_the_scores_rise_with_the_damage(halves, damage):
    from gentoolkit.samples.features import blurred, features, kid
    from gentoolkit.samples.metrics import frechet_distance

    a, b = halves
    fa = features(a)
    rng = np.random.default_rng(0)
    strengths = (0.5, 1.0, 1.5, 2.0) if damage == "blur" else (0.05, 0.1, 0.2, 0.3)
    fds, kids = [], []
    for s in strengths:
        x = blurred(b, s) if damage == "blur" else np.clip(b + s * rng.standard_normal(b.shape), 0, 1).astype(np.float32)
        fb = features(x)
        fds.append(frechet_distance(fa, fb))
        kids.append(kid(fa, fb))
    assert all(p < q for p, q in zip(fds, fds[1:])), fds
    assert all(p < q for p, q in zip(kids, kids[1:])), kids
    assert fds[0] > frechet_distance(fa, features(b)), fds


def test_a_collapsed_generator_is_caught(halves):
    from gentoolkit.samples.features import picture_metrics

    a, b = halves
    same = picture_metrics(a, b)
    collapsed = picture_metrics(a, np.repeat(b[:1], len(b), axis=0))
    assert collapsed["fd"] > 20 * same["fd"] and collapsed["kid"] > 20 * max(same["kid"], 0.01), collapsed
    assert collapsed["recall"] < 0.05 and collapsed["coverage"] < 0.05, collapsed


def test_grayscale_and_other_sizes_are_taken_as_the_network_sees_them():
    from gentoolkit.samples.features import to_network

    gray = np.linspace(0, 16, 2 * 8 * 8, dtype=np.float32).reshape(2, 1, 8, 8)
    x = to_network(gray, low=0.0, high=16.0)
    assert x.shape == (2, 3, 32, 32) and 0.0 <= x.min() and x.max() <= 1.0
    assert np.allclose(x[:, 0], x[:, 1]) and np.allclose(x[:, 1], x[:, 2])
    with pytest.raises(ValueError, match="1 or 3 channels"):
        to_network(np.zeros((1, 2, 8, 8), np.float32))

"""Schedules and samplers against answers known in closed form (an exact denoiser)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gentoolkit_diffusion.losses import eps_mse
from gentoolkit_diffusion.samplers import DiffusionSampler, make_ddim, make_ddpm
from gentoolkit_diffusion.schedule import alphas_cumprod, spaced


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_schedules_fall_from_signal_to_noise(schedule):
    ac = alphas_cumprod(schedule, 1000)
    assert ac.shape == (1000,) and np.all(np.diff(ac) < 0)
    assert 0.999 < ac[0] < 1 and ac[-1] < 1e-3


def test_linear_schedule_values():
    ac = alphas_cumprod("linear", 1000, 1e-4, 0.02)
    assert ac[0] == pytest.approx(1 - 1e-4)
    assert ac[1] == pytest.approx((1 - 1e-4) * (1 - (1e-4 + (0.02 - 1e-4) / 999)))


def test_spaced_timesteps():
    assert list(spaced(5, None)) == [4, 3, 2, 1, 0]
    ts = spaced(1000, 10)
    assert len(ts) == 10 and ts[0] == 999 and ts[-1] == 0 and np.all(np.diff(ts) < 0)


def exact_gaussian_denoiser(mu: np.ndarray, s: float, ac: np.ndarray):
    """The exact noise prediction E[eps | x_t] for data ~ N(mu, s^2 I)."""
    def denoise(x, t):
        a = ac[t][:, None]
        return (np.sqrt(1 - a) * (x - np.sqrt(a) * mu) / (a * s**2 + 1 - a)).astype(np.float32)
    return denoise


@pytest.mark.parametrize("sampler", [make_ddpm(), make_ddpm(steps=100), make_ddim(steps=20), make_ddim(steps=50, eta=0.5)])
def test_a_point_mass_is_recovered_exactly(sampler):
    ac = alphas_cumprod("linear", 1000)
    mu = np.array([0.3, -1.2], dtype=np.float32)
    x = sampler(exact_gaussian_denoiser(mu, 0.0, ac), (64, 2), ac, np.random.default_rng(0))
    np.testing.assert_allclose(x, np.broadcast_to(mu, x.shape), atol=1e-4)


@pytest.mark.parametrize("sampler", [make_ddpm(), make_ddim(steps=1000)])
def test_a_gaussian_is_sampled_with_its_mean_and_spread(sampler):
    ac = alphas_cumprod("cosine", 1000)
    mu, s = np.array([1.0, -2.0]), 0.5
    x = sampler(exact_gaussian_denoiser(mu, s, ac), (20_000, 2), ac, np.random.default_rng(1))
    np.testing.assert_allclose(x.mean(0), mu, atol=0.02)
    np.testing.assert_allclose(x.std(0), [s, s], rtol=0.03)


def test_fewer_ddim_steps_shrink_the_spread():
    """DDIM's known discretization error: with few steps the samples come out too narrow."""
    ac = alphas_cumprod("linear", 1000)
    den = exact_gaussian_denoiser(np.zeros(2), 1.0, ac)
    spread = [make_ddim(steps)(den, (20_000, 2), ac, np.random.default_rng(2)).std() for steps in (10, 50, 1000)]
    assert spread[0] < spread[1] < spread[2] and spread[2] == pytest.approx(1.0, rel=0.02)


def test_ddim_is_deterministic_and_ddpm_is_not():
    ac = alphas_cumprod("linear", 100)
    den = exact_gaussian_denoiser(np.zeros(2), 1.0, ac)
    start = np.random.default_rng(3).standard_normal((4, 2), dtype=np.float32)

    def from_start(sampler, seed):
        rng = np.random.default_rng(seed)
        first = [True]

        class R:  # the same x_T, then the seed's own noise
            def standard_normal(self, shape, dtype):
                if first[0]:
                    first[0] = False
                    return start.copy()
                return rng.standard_normal(shape, dtype=dtype)
        return sampler(den, (4, 2), ac, R())

    np.testing.assert_array_equal(from_start(make_ddim(10), 0), from_start(make_ddim(10), 1))
    assert not np.allclose(from_start(make_ddpm(), 0), from_start(make_ddpm(), 1))


def test_bad_sampler_options():
    with pytest.raises(ValueError):
        DiffusionSampler(eta=2.0)
    with pytest.raises(ValueError):
        make_ddim(steps=0)


def test_eps_mse():
    assert eps_mse(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 1.0])).item() == pytest.approx(2.5)

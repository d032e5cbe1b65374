"""GAN objectives as pairs of pure functions (mimicry's style).

``dis(real_scores, fake_scores) -> loss`` and ``gen(fake_scores) -> loss``, on the
raw scores (logits) of the discriminator. Penalties that need the discriminator
itself (wgan-gp's gradient penalty, R1) are applied by the trainer when the
objective asks for them (``gradient_penalty``) or ``loss.r1 > 0``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class GANLoss:
    gen: Callable
    dis: Callable
    gradient_penalty: bool = False


def minimax_dis(real, fake):
    """-E[log D(x)] - E[log(1 - D(G(z)))]."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def minimax_gen(fake):
    """E[log(1 - D(G(z)))]: the saturating generator loss of the original minimax game."""
    return -F.softplus(fake).mean()


def ns_gen(fake):
    """-E[log D(G(z))]: the non-saturating generator loss."""
    return F.softplus(-fake).mean()


def wgan_dis(real, fake):
    return fake.mean() - real.mean()


def wgan_gen(fake):
    return -fake.mean()


def hinge_dis(real, fake):
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def hinge_gen(fake):
    return -fake.mean()


def lsgan_dis(real, fake):
    return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean()


def lsgan_gen(fake):
    return 0.5 * ((fake - 1) ** 2).mean()


MINIMAX = GANLoss(minimax_gen, minimax_dis)
NON_SATURATING = GANLoss(ns_gen, minimax_dis)
WGAN_GP = GANLoss(wgan_gen, wgan_dis, gradient_penalty=True)
HINGE = GANLoss(hinge_gen, hinge_dis)
LSGAN = GANLoss(lsgan_gen, lsgan_dis)


def gradient_penalty(D, real, fake):
    """WGAN-GP: E[(||grad D(x_hat)|| - 1)^2] on random interpolates of real and fake samples."""
    eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device)
    x = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    return ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()


def r1_penalty(D, real):
    """R1: E[||grad D(x)||^2] on real samples."""
    x = real.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    return g.flatten(1).pow(2).sum(dim=1).mean()

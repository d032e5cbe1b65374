"""The diffusion objective, registered through ``register_losses``."""

from __future__ import annotations

from torch.nn import functional as F


def eps_mse(predicted, noise):
    """Ho et al.'s simple loss: mean squared error between the predicted and the true noise."""
    return F.mse_loss(predicted, noise)

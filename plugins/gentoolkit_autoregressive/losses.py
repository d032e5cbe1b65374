"""Language-model objectives: pure functions of logits (N, vocab) and targets (N,)."""

from __future__ import annotations

import torch.nn.functional as F


def cross_entropy(logits, targets):
    """Mean next-token negative log-likelihood (nats)."""
    return F.cross_entropy(logits, targets)


def label_smoothed_cross_entropy(logits, targets, label_smoothing: float = 0.1):
    """Cross-entropy against targets mixed with the uniform distribution."""
    return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)

"""Evaluating a task that draws samples: the metrics that fit the data, the coverage alarm, the pictures.

A sample family's training task holds a :class:`SampleEvaluator` (composition: the task keeps
its own class) and forwards its ``evaluate`` and ``on_eval`` to it. The GAN and diffusion
families use it alike; so can a third-party family whose data is points or images.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gentoolkit.samples.data import Samples
from gentoolkit.samples.metrics import PRDC_K, digits_metrics, diversity, fidelity_diversity, mixture_metrics


class Alarm:
    """An alarm with hysteresis: raised when a value falls below ``low``, cleared only once it is back at
    ``high`` or above. A value that hovers at the threshold raises one alarm, not one per check, and the
    recovery is reported as a recovery. A noisy value can also be debounced: ``raise_after`` checks in a
    row below ``low`` raise it, ``clear_after`` in a row at ``high`` or above clear it. ``state`` (the
    state and both counts) goes into its task's checkpoint, so a resumed run alarms as an uninterrupted one."""

    def __init__(self, low: float, high: float, *, raise_after: int = 1, clear_after: int = 1):
        self.low, self.high, self.raised = low, max(low, high), False
        self.raise_after, self.clear_after = max(1, raise_after), max(1, clear_after)
        self.below = self.above = 0

    def update(self, value: float) -> str | None:
        """"raised" when the value has been below ``low`` ``raise_after`` checks in a row, "cleared" when it
        has been at ``high`` or above ``clear_after`` checks in a row, else None."""
        self.below = self.below + 1 if value < self.low else 0
        self.above = self.above + 1 if value >= self.high else 0
        if not self.raised and self.below >= self.raise_after:
            self.raised = True
            return "raised"
        if self.raised and self.above >= self.clear_after:
            self.raised = False
            return "cleared"
        return None

    @property
    def state(self) -> dict:
        return {"raised": self.raised, "below": self.below, "above": self.above}

    def restore(self, state) -> None:
        """Back to a :attr:`state`; a bare bool (a checkpoint written before the counts were kept) sets ``raised``."""
        if isinstance(state, dict):
            self.raised = bool(state.get("raised", False))
            self.below, self.above = int(state.get("below", 0)), int(state.get("above", 0))
        else:
            self.raised, self.below, self.above = bool(state), 0, 0


def report_alarm(ctx, alarm: Alarm, step: int, value: float, raised: str, cleared: str) -> None:
    """Say what :meth:`Alarm.update` found: an ALARM line when raised, a recovery line when cleared."""
    change = alarm.update(value)
    if change == "raised":
        ctx.alarm(step, raised)
    elif change == "cleared":
        ctx.recovered(step, cleared)


class SampleEvaluator:
    """``evaluate`` and ``draw`` for a task that draws samples of ``data`` with ``generate(n, seed)``:
    ``count`` samples each evaluation, an alarm when the share of modes or classes captured falls
    below ``coverage_alarm`` (the family's config names both)."""

    def __init__(self, ctx, data: Samples, generate: Callable[[int, int], np.ndarray], *, count: int,
                 coverage_alarm: float):
        self.ctx, self.data, self.generate, self.count = ctx, data, generate, count
        self._last: np.ndarray | None = None
        self.coverage_alarm = Alarm(coverage_alarm, (1 + coverage_alarm) / 2)  # cleared halfway back to every mode

    def _samples(self) -> np.ndarray:
        return self.generate(self.count, self.ctx.config["train"].seed + 3)

    def evaluate(self, step: int) -> dict[str, float]:
        """The metrics of ``count`` samples (seeded: the same latents every time), with an alarm when the
        share of modes or classes captured falls below ``coverage_alarm`` (cleared once it is back
        halfway to all of them)."""
        samples = self._samples()
        metrics = measure(self.data, samples)
        frac = metric_coverage(metrics)
        if frac is not None:
            report_alarm(self.ctx, self.coverage_alarm, step, frac,
                         f"mode collapse: only {frac:.0%} of the modes/classes captured",
                         f"{frac:.0%} of the modes/classes captured again")
        self._last = samples
        return reported(metrics)

    def draw(self, step: int) -> None:
        """``samples.png`` in the run folder: the last evaluation's samples over the real data."""
        samples = self._last if self._last is not None else self._samples()
        draw(self.data, samples, self.ctx.run.file("samples.png"), title=f"{self.ctx.spec.name}, step {step}")


def measure(data: Samples, samples: np.ndarray) -> dict:
    """The metrics that fit the data: PacGAN for mixtures, the classifier for digits (with precision, recall,
    density and coverage on its features), FD, KID and those four in the toolkit's picture features for any
    other pictures (:mod:`.features`, where the emoji font they are trained on is here), those four on the
    points for any other vectors, diversity always."""
    out: dict = {}
    if data.modes is not None:
        out.update(mixture_metrics(samples, data.modes, data.mode_std))
    elif data.name == "digits":
        out.update(digits_metrics(samples))
    enough = min(len(samples), len(data.x)) > PRDC_K  # k-nearest-neighbour balls need more than k on each side
    if data.modes is None and data.name != "digits" and data.kind == "images" and data.x.shape[1] in (1, 3) \
            and enough:
        from gentoolkit.errors import DataError
        from gentoolkit.samples.features import picture_metrics

        try:
            out.update(picture_metrics(data.x, samples, low=data.low or 0.0,
                                       high=data.high if data.high is not None else 1.0))
        except DataError:
            pass  # the features' training set (fonts-noto-color-emoji) is not on this machine: diversity alone
    if data.kind != "images" and enough:
        out.update(fidelity_diversity(data.x, samples))
    out["diversity"] = diversity(samples, data.x)
    return out


def reported(metrics: dict) -> dict[str, float]:
    """The numbers worth logging: no ``*_total`` counts, no classifier accuracy (a property of the probe)."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not k.endswith("_total")
            and k != "classifier_accuracy"}


def metric_coverage(m: dict) -> float | None:
    if "modes" in m:
        return m["modes"] / m["modes_total"]
    if "classes" in m:
        return m["classes"] / m["classes_total"]
    return None


def draw(data: Samples, samples: np.ndarray, path, title: str = "") -> None:
    from gentoolkit.plots import image_grid, scatter

    if data.kind == "images":
        image_grid(samples[:64], path, low=data.low, high=data.high, title=title)
    elif samples.shape[1] >= 2:
        real = data.x[np.random.default_rng(0).choice(len(data.x), size=min(2500, len(data.x)), replace=False)]
        scatter(real, samples, path, title=title, modes=data.modes, mode_std=data.mode_std)

"""Training task of ``ddpm``, driven by gentoolkit's loop (run folder, resume, progress, metrics, pictures).

The data, the mode metrics, the alarm and the pictures are the host's sample toolkit
(:mod:`gentoolkit.samples`: ``evaluate`` and ``on_eval`` go to its ``SampleEvaluator``), as
for the GAN family, so the two are measured the same way.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch

from gentoolkit import get_loss
from gentoolkit.errors import ConfigError
from gentoolkit.plugin.specs import resolve
from gentoolkit.samples.data import Samples, fit_images, load
from gentoolkit.samples.evaluation import SampleEvaluator
from gentoolkit.train.loop import Context, cosine_lr

from .config import DATA_DEFAULTS
from .models import build
from .schedule import alphas_cumprod
from .torch_sampling import draw_samples


def prepare(config: dict) -> Samples:
    """Load the data and fill the model keys it decides (data_dim, or image_size and channels)."""
    mcfg = config["model"]
    data = load(config["data"].path, n_samples=config["data"].n_samples, image_size=mcfg.image_size,
                channels=mcfg.channels)
    if data.kind == "images":
        size, channels = fit_images(data, mcfg.image_size, mcfg.channels)
        config["model"] = dataclasses.replace(mcfg, image_size=size, channels=channels, data_dim=None)
    else:
        if mcfg.image_size is not None:
            raise ConfigError(f"model.image_size is set but {data.name!r} holds vectors")
        config["model"] = dataclasses.replace(mcfg, data_dim=int(data.x.shape[1]))
    return data


def fill_data_defaults(config: dict, kind: str) -> None:
    """The keys the config leaves to the data (``None``), as the data decides them: ``sampler.name`` "auto"
    (ddpm for vectors, ddim for images) and ``train.steps``, ``batch_size``, ``eval_samples``."""
    if config["sampler"].name == "auto":  # written into the run's config.json
        config["sampler"] = dataclasses.replace(config["sampler"], name="ddim" if kind == "images" else "ddpm")
    defaults = DATA_DEFAULTS[kind]
    config["train"] = dataclasses.replace(config["train"], **{k: v for k, v in defaults.items()
                                                               if getattr(config["train"], k) is None})


def resolve_config(tree: dict) -> dict:
    """Registered as ``resolve_config``: the values training will use, for ``--print-config`` (the data is
    loaded to decide them, as training does)."""
    config = dict(tree)
    fill_data_defaults(config, prepare(config).kind)
    return config


def normalization(data: Samples) -> tuple[np.ndarray, np.ndarray]:
    """(shift, scale) that map the data to the network's range: standardized vectors, images in [-1, 1]."""
    if data.kind == "images":
        low, high = data.low or 0.0, data.high or 1.0
        return np.float32((low + high) / 2), np.float32((high - low) / 2)
    return data.x.mean(0).astype(np.float32), np.maximum(data.x.std(0), 1e-6).astype(np.float32)


def diffusion_loss(config):
    return resolve(get_loss(config["loss"].name, family="diffusion").impl)


class DiffusionTask:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        cfg = ctx.config
        self.data = prepare(cfg)
        fill_data_defaults(cfg, self.data.kind)
        mcfg, train = cfg["model"], cfg["train"]
        self.cfg = mcfg
        self.model = build(mcfg).to(ctx.device)
        shift, scale = normalization(self.data)
        self.model.shift.copy_(torch.from_numpy(np.asarray(shift)))
        self.model.scale.copy_(torch.from_numpy(np.asarray(scale)))
        x = (self.data.x - shift) / scale
        if self.data.kind == "vectors":  # the data's range, with a margin of 10% of its width
            lo, hi = x.min(0), x.max(0)
            self.model.low.copy_(torch.from_numpy(lo - 0.1 * (hi - lo)))
            self.model.high.copy_(torch.from_numpy(hi + 0.1 * (hi - lo)))
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.train_model = ctx.wrap(self.model)  # DDP under torchrun
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
        self.loss = diffusion_loss(cfg)
        self.ac = alphas_cumprod(mcfg.schedule, mcfg.timesteps, mcfg.beta_start, mcfg.beta_end)
        self.sqrt_ac = torch.tensor(np.sqrt(self.ac), dtype=torch.float32, device=ctx.device)
        self.sqrt_1m_ac = torch.tensor(np.sqrt(1 - self.ac), dtype=torch.float32, device=ctx.device)
        self.rng = np.random.default_rng(train.seed)
        self.x = torch.from_numpy(x).float()
        self.evaluator = SampleEvaluator(ctx, self.data, self.generate,
                                         count=train.eval_samples or (2500 if self.data.kind == "vectors" else 500),
                                         coverage_alarm=train.alarm_coverage)

    # Task protocol -------------------------------------------------------------
    def weights(self):
        return {"ema": self.ema, "model": self.model}

    def evaluate(self, step: int) -> dict[str, float]:
        return self.evaluator.evaluate(step)

    def on_eval(self, step: int) -> None:
        self.evaluator.draw(step)

    def state_dict(self):
        return {"opt": self.opt.state_dict(), "data_rng": self.rng.bit_generator.state,
                "coverage_alarm": self.evaluator.coverage_alarm.state}

    def load_state_dict(self, state):
        self.opt.load_state_dict(state["opt"])
        self.rng.bit_generator.state = state["data_rng"]
        self.evaluator.coverage_alarm.restore(state.get("coverage_alarm", False))

    def train_step(self, step: int) -> dict[str, float]:
        train = self.ctx.config["train"]
        for group in self.opt.param_groups:
            group["lr"] = cosine_lr(step, lr=train.lr, min_lr=train.min_lr, warmup=train.warmup_steps, total=train.steps)
        n, rank, world = train.batch_size, self.ctx.rank, self.ctx.world_size
        ix = self.rng.integers(0, len(self.x), size=n)[rank::world]
        t = self.rng.integers(0, self.cfg.timesteps, size=n)[rank::world]
        x0 = self.x[torch.from_numpy(ix)].to(self.ctx.device)
        t = torch.from_numpy(t).to(self.ctx.device)
        noise = torch.randn_like(x0)
        shape = (-1,) + (1,) * (x0.dim() - 1)
        x_t = self.sqrt_ac[t].view(shape) * x0 + self.sqrt_1m_ac[t].view(shape) * noise
        self.model.train()
        with self.ctx.autocast():
            loss = self.loss(self.train_model(x_t, t).float(), noise)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), train.grad_clip)
        self.opt.step()
        self._update_ema()
        return {"loss": loss.item()}

    @torch.no_grad()
    def _update_ema(self):
        if self.cfg.ema == 0:
            self.ema.load_state_dict(self.model.state_dict())
            return
        for pe, p in zip(self.ema.parameters(), self.model.parameters()):
            pe.lerp_(p, 1 - self.cfg.ema)

    def generate(self, n: int, seed: int) -> np.ndarray:
        from .samplers import evaluation_sampler

        sampler = evaluation_sampler(self.ctx.config["train"])
        return draw_samples(self.ema, self.cfg, sampler, n, seed, device=self.ctx.device)

"""Training task of the GAN family, driven by the host's loop (gentoolkit.train.loop)."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch

from gentoolkit import get_loss
from gentoolkit.errors import ConfigError, DataError
from gentoolkit.plugin.specs import resolve
from gentoolkit.samples.data import Samples, fit_images, load
from gentoolkit.samples.evaluation import Alarm, SampleEvaluator, report_alarm
from gentoolkit.samples.metrics import diversity
from gentoolkit.train.loop import Context, cosine_lr

from .config import DCGANConfig
from .losses import gradient_penalty, r1_penalty
from .models import build


def prepare(config: dict, *, resume_model=None) -> tuple[object, Samples]:
    """Load the data and fill the model keys the data decides (data_dim, image_size, channels)."""
    mcfg = config["model"]
    is_conv = isinstance(mcfg, DCGANConfig)
    data = load(config["data"].path, n_samples=config["data"].n_samples,
                image_size=getattr(mcfg, "image_size", None), channels=getattr(mcfg, "channels", None))
    if is_conv and data.kind != "images":
        raise DataError(f"dcgan needs images, but {data.name!r} holds vectors; use 'gan' for vectors")
    if not is_conv and data.kind != "vectors":
        raise DataError(f"gan needs vectors, but {data.name!r} holds images; use 'dcgan' for images")
    if is_conv:
        size, channels = fit_images(data, mcfg.image_size, mcfg.channels)
        mcfg = dataclasses.replace(mcfg, image_size=size, channels=channels)
    else:
        mcfg = dataclasses.replace(mcfg, data_dim=int(data.x.shape[1]))
    config["model"] = mcfg
    return mcfg, data


def gan_loss(config):
    return resolve(get_loss(config["loss"].name, family="gan").impl)


class GANTask:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        cfg = ctx.config
        train = cfg["train"]
        mcfg, self.data = prepare(cfg)
        if train.batch_size % (mcfg.pack * ctx.world_size):
            raise ConfigError(f"train.batch_size ({train.batch_size}) must be a multiple of model.pack ({mcfg.pack})"
                              + (f" times the number of workers ({ctx.world_size})" if ctx.distributed else ""))
        self.cfg = mcfg
        low, high = self.data.low or 0.0, self.data.high or 1.0
        G, D = build(mcfg, low, high)
        if self.data.kind == "vectors":
            mean = torch.from_numpy(self.data.x.mean(0))
            std = torch.from_numpy(self.data.x.std(0)).clamp_min(1e-6)
            for m in (G, D):
                m.mean.copy_(mean)
                m.std.copy_(std)
        dev = ctx.device
        self.G, self.D = G.to(dev), D.to(dev)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.G_train, self.D_train = ctx.wrap(self.G), ctx.wrap(self.D)  # DDP under torchrun
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=train.lr_g, betas=(train.beta1, train.beta2))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=train.lr_d, betas=(train.beta1, train.beta2))
        self.loss = gan_loss(cfg)
        self.rng = np.random.default_rng(train.seed)
        self.x = torch.from_numpy(self.data.x)
        # raised after 3 log steps in a row below train.alarm_diversity, cleared after 5 in a row at 1.5 times
        # it: a generator that has collapsed onto a point that wanders (the classic recipe) swings between
        # 0.1 and 0.8 from one log step to the next, and a fresh generator starts near 0 for a few steps
        self.diversity_alarm = Alarm(train.alarm_diversity, 1.5 * train.alarm_diversity, raise_after=3, clear_after=5)
        probe = np.random.default_rng(train.seed + 2)
        self.z_probe = torch.from_numpy(probe.standard_normal((256, mcfg.z_dim)).astype(np.float32)).to(dev)
        self.real_probe = self.data.x[probe.choice(len(self.data.x), size=min(256, len(self.data.x)), replace=False)]
        self.evaluator = SampleEvaluator(ctx, self.data, self.generate, count=train.eval_samples,
                                         coverage_alarm=train.alarm_coverage)

    def batch(self) -> torch.Tensor:
        n = self.ctx.config["train"].batch_size
        ix = self.rng.integers(0, len(self.x), size=n)[self.ctx.rank :: self.ctx.world_size]
        return self.x[torch.from_numpy(ix)].to(self.ctx.device)

    def z(self) -> torch.Tensor:
        """This worker's share of a global batch of latents (the same stream as in one process)."""
        n = self.ctx.config["train"].batch_size
        z = torch.randn(n, self.cfg.z_dim, device=self.ctx.device)
        return z[self.ctx.rank :: self.ctx.world_size]

    # Task protocol -------------------------------------------------------------
    def weights(self):
        return {"G_ema": self.G_ema, "G": self.G, "D": self.D}

    def state_dict(self):
        return {"opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "data_rng": self.rng.bit_generator.state, "collapsed": self.diversity_alarm.state,
                "coverage_alarm": self.evaluator.coverage_alarm.state}

    def evaluate(self, step: int) -> dict[str, float]:
        return self.evaluator.evaluate(step)

    def on_eval(self, step: int) -> None:
        self.evaluator.draw(step)

    def load_state_dict(self, state):
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.rng.bit_generator.state = state["data_rng"]
        self.diversity_alarm.restore(state.get("collapsed", False))
        self.evaluator.coverage_alarm.restore(state.get("coverage_alarm", False))

    def train_step(self, step: int) -> dict[str, float]:
        cfg = self.ctx.config
        train, lcfg = cfg["train"], cfg["loss"]
        self.G.train()
        self.D.train()
        if train.lr_decay:
            for opt, lr in ((self.opt_g, train.lr_g), (self.opt_d, train.lr_d)):
                for group in opt.param_groups:
                    group["lr"] = cosine_lr(step, lr=lr, min_lr=0.1 * lr, warmup=0, total=train.steps)
        for _ in range(train.n_critic):
            real = self.batch()
            with torch.no_grad():
                fake = self.G(self.z())
            # one forward of D over real and fake together (one DDP forward per backward)
            scores = self.D_train(torch.cat([real, fake]))
            d_real, d_fake = scores.chunk(2)
            loss_d = self.loss.dis(d_real, d_fake)
            if self.loss.gradient_penalty:
                loss_d = loss_d + lcfg.gp_weight * gradient_penalty(self.D, real, fake)
            if lcfg.r1 > 0:
                loss_d = loss_d + 0.5 * lcfg.r1 * r1_penalty(self.D, real)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
        fake = self.G_train(self.z())
        loss_g = self.loss.gen(self.D_train(fake))
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self._update_ema()
        out = {"d_loss": loss_d.item(), "g_loss": loss_g.item()}
        if (step + 1) % train.log_interval == 0:
            out["diversity"] = self._check_diversity(step + 1)
        return out

    @torch.no_grad()
    def _update_ema(self):
        decay = self.cfg.ema
        if decay == 0:
            self.G_ema.load_state_dict(self.G.state_dict())
            return
        for pe, p in zip(self.G_ema.parameters(), self.G.parameters()):
            pe.lerp_(p, 1 - decay)
        for be, b in zip(self.G_ema.buffers(), self.G.buffers()):
            be.copy_(b)

    @torch.no_grad()
    def _check_diversity(self, step: int) -> float:
        div = diversity(self.G_ema(self.z_probe).cpu().numpy(), self.real_probe, n=256)
        threshold = self.diversity_alarm.low
        report_alarm(self.ctx, self.diversity_alarm, step, div,
                     f"mode collapse suspected: diversity {div:.3f} < {threshold} (generated spread / real spread)",
                     f"diversity back to {div:.3f} (at least {self.diversity_alarm.high:.3g})")
        return div

    @torch.no_grad()
    def generate(self, n: int, seed: int) -> np.ndarray:
        g = torch.Generator(device="cpu").manual_seed(seed)
        z = torch.randn(n, self.cfg.z_dim, generator=g).to(self.ctx.device)
        return torch.cat([self.G_ema(z[i : i + 1000]) for i in range(0, n, 1000)]).cpu().numpy()

"""GAN training of SR networks (SRGAN, ESRGAN): manual optimization of a generator and a
discriminator, with pixel, perceptual and adversarial losses."""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import nn

from srlab.errors import ConfigError
from srlab.losses.adversarial import AdversarialLoss
from srlab.models.channels import training_channels
from srlab.tasks.base import SRTask
from srlab.tasks.optim import build_optimizer

__all__ = ["GANPhase", "SRGANTask"]

LOSS_TERMS = ("pixel", "perceptual", "adversarial")

# torch warns when a scheduler steps before its optimizer ever has; here that is deliberate
# (schedules count iterations, also those where one network does not train).
_SCHEDULER_BEFORE_OPTIMIZER = r"Detected call of `lr_scheduler\.step\(\)` before"


@dataclass(frozen=True)
class GANPhase:
    """What one training iteration does, from its index (see :meth:`SRGANTask.phase`).

    Attributes:
        train_g: the generator is updated.
        train_d: the discriminator is updated.
        adversarial: the generator's loss includes the adversarial term.
    """

    train_g: bool
    train_d: bool
    adversarial: bool


class SRGANTask(SRTask):
    """Adversarial training of an SR network (the generator, ``self.net``) against a
    discriminator (``self.discriminator``), with manual optimization.

    SRGAN: Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative
    Adversarial Network", CVPR 2017. ESRGAN: Wang et al., "ESRGAN: Enhanced Super-Resolution
    Generative Adversarial Networks", ECCV Workshops 2018 (the defaults of ``model=esrgan``).

    Each iteration (:meth:`training_step`):

    1. **Generator step**, with the discriminator frozen (``toggle_optimizer``: its parameters
       get no gradient): ``g_loss = w_pixel * pixel(sr, hr) + w_perceptual * perceptual(sr, hr)
       + w_adversarial * adversarial_G(D(sr), D(hr))``, ``manual_backward``, step.
    2. **Discriminator step**, with the generator frozen, on the HR batch and the *detached*
       SR batch of step 1: ``d_loss = adversarial_D(D(hr), D(sr))`` (+ the gradient penalty of
       ``wgan-gp``), ``manual_backward``, step.
    3. Both LR schedulers step once: schedules count iterations, as the papers do.

    A step whose loss is NaN or infinite is skipped (no backward, no update, not logged);
    :meth:`SRTask.is_finite_step` counts such iterations and stops training after
    ``max_nonfinite_steps`` in a row. An iteration in which no optimizer stepped does not
    advance ``global_step`` nor the schedulers.

    Buffers are not parameters: the discriminator's batch-norm statistics (and spectral-norm
    power iterations) also advance during the generator step, which runs it in training mode,
    as BasicSR's ESRGAN model does.

    Phases (:meth:`phase`): the first ``g_steps_before_d`` iterations train the generator
    alone on its pixel and perceptual losses (no discriminator runs); the next
    ``d_warmup_steps`` train the discriminator alone on the (frozen) generator's output (BasicSR
    ``net_d_init_iters``); then both train, with the adversarial term. (Lightning re-logs a
    metric's last value at steps that do not log it, until the epoch ends, so the idle
    network's curves are flat during a warm-up.)

    ``trainer.global_step`` counts *iterations*: Lightning would count every optimizer step
    (two per iteration, Lightning issue #17958), which would halve ``trainer.max_steps`` and
    shift checkpoint and EMA step counts. The second step of an iteration therefore runs
    through the strategy directly (same precision plugin, scaler and hooks, no step count).

    Gradient accumulation: ``trainer.accumulate_grad_batches=N`` sums the gradients of ``N``
    batches (each loss divided by ``N``) before each network's update, so ``N`` batches of
    ``B`` patches train as one batch of ``N x B`` would (exactly so where no layer uses batch
    statistics and every loss is a mean over the batch: batch norm in the VGG-style
    discriminator and RaGAN's batch-mean term see ``B`` patches at a time, as they would on
    ``N`` devices). Lightning refuses that option with manual optimization and leaves
    accumulation to the module, so the task takes it from the trainer when attached to it (and
    sets the trainer's own value to 1). ``global_step``, the schedulers, the warm-up phases and
    ``trainer.max_steps`` then count updates, every ``N`` batches, as with automatic
    optimization; ``trainer.val_check_interval`` counts batches. The last update of an epoch
    takes the batches that are left. Under ``16-mixed`` the loss scale can change between two
    batches of a window (the generator's update comes first and may move it): gradients
    accumulated at the old scale are rescaled to the new one before the next backward and
    before the update, so the unscaled sum is exact.

    Gradient clipping (``grad_clip``, ``grad_clip_d``: max global L2 norm per network) runs in
    :meth:`on_before_optimizer_step`, which Lightning's precision plugin calls *after*
    unscaling the gradients under ``16-mixed`` (``GradScaler.unscale_``) and just before the
    optimizer step; with ``bf16-mixed`` and ``32-true`` gradients are never scaled. Clipping
    scaled gradients would clip at ``max_norm * scale``, i.e. not at all. ``trainer.gradient_
    clip_val`` is not allowed with manual optimization (Lightning refuses it). With
    accumulation it clips the accumulated (summed) gradients, once per update.

    Generator EMA: Lightning's ``EMAWeightAveraging`` callback works with this task as is:
    ``+callbacks.ema._target_=lightning.pytorch.callbacks.EMAWeightAveraging
    +callbacks.ema.decay=0.999`` (BasicSR's ESRGAN setting). It has no option to select a
    submodule, so it averages every parameter and buffer of the task: the generator, and also
    the discriminator and the VGG of the perceptual loss (frozen, so its average is itself),
    at the cost of a second copy of all of them and an update per step. Validation swaps the
    averages in, and training ends with them in place (the discriminator's too), so the test,
    the checkpoints' ``state_dict`` (the live weights go to ``current_model_state``, and a
    resume restores both) and :func:`srlab.weights.load_pretrained` (``net.*``) all see the
    averaged generator.

    Checkpoints hold both networks, both optimizers and both schedulers (Lightning's), the
    step counters and the AMP scaler; the VGG of the perceptual loss only when its weights are
    random (see :class:`srlab.losses.PerceptualLoss`).

    Logged: ``train/g_loss``, ``train/g_pixel``, ``train/g_perceptual``, ``train/g_adv``
    (unweighted terms), ``train/d_loss``, ``train/d_real`` and ``train/d_fake`` (mean
    discriminator output on real and generated images), ``train/d_gp`` (``wgan-gp``), and the
    learning rates ``train/g_lr``, ``train/d_lr``. Validation, test, metrics and images are
    :class:`SRTask`'s. Under DDP use ``strategy=ddp_find_unused_parameters_true``: the frozen
    network of each step has parameters without gradients.

    Args:
        net: the generator (``model.net``), e.g. RRDBNet.
        discriminator: the discriminator (``model.discriminator``).
        loss: ``{"pixel": module or None, "perceptual": module or None, "adversarial":
            AdversarialLoss}`` (``model.loss``).
        optimizer: partial optimizer of the generator (``model.optimizer``, ``_partial_``).
        optimizer_d: partial optimizer of the discriminator.
        loss_weights: ``{"pixel": w, "perceptual": w, "adversarial": w}``; a term with weight
            0 (or missing) is not computed. ESRGAN: 1e-2, 1.0, 5e-3.
        scheduler: partial LR scheduler of the generator, stepped every iteration, or None.
        scheduler_d: the same for the discriminator.
        grad_clip: max L2 norm of the generator's gradients, or None.
        grad_clip_d: max L2 norm of the discriminator's gradients, or None.
        g_steps_before_d: iterations that train the generator alone, before any discriminator.
        d_warmup_steps: iterations (after those) that train the discriminator alone.
        generator_init: weights of a PSNR-oriented generator to start from (stage 2 of ESRGAN):
            an srlab ``.ckpt`` of ``experiment=rrdb_x4_div2k`` or any file
            :func:`srlab.weights.load_pretrained` reads. Same as ``pretrained``; set one.
        num_log_images: comparison images per evaluation set at each validation.
        **task_kwargs: the other arguments of :class:`SRTask`: ``pretrained``,
            ``pretrained_ignore``, ``pretrained_strict``, ``pretrained_sha256`` (generator
            weights to start from), ``max_nonfinite_steps``, and the speed settings
            ``channels_last`` (every network), ``compile`` and ``compile_mode`` (the
            generator).

    Raises:
        ConfigError: For unknown loss terms or weights, a weighted term without its loss
            module, a missing adversarial loss, negative phase lengths, or both
            ``generator_init`` and ``pretrained``.
    """

    def __init__(
        self,
        net: nn.Module,
        discriminator: nn.Module,
        loss: Mapping[str, nn.Module | None],
        optimizer: Callable[..., torch.optim.Optimizer],
        optimizer_d: Callable[..., torch.optim.Optimizer],
        loss_weights: Mapping[str, float] | None = None,
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        scheduler_d: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        grad_clip: float | None = None,
        grad_clip_d: float | None = None,
        g_steps_before_d: int = 0,
        d_warmup_steps: int = 0,
        generator_init: str | None = None,
        num_log_images: int = 3,
        **task_kwargs: Any,
    ) -> None:
        if generator_init:
            if task_kwargs.get("pretrained"):
                raise ConfigError(
                    "model.generator_init and model.pretrained both name generator weights "
                    f"({generator_init!r}, {task_kwargs['pretrained']!r}): set only one"
                )
            # One loading path for both names: SRTask's (strict, ignore patterns, sha256).
            task_kwargs = {**task_kwargs, "pretrained": generator_init}
        super().__init__(net, num_log_images=num_log_images, **task_kwargs)
        self._iteration_counted = False
        # Gradient accumulation (see the class docstring): per optimizer (0: generator,
        # 1: discriminator) whether gradients of the current window wait for their update,
        # and the loss scale they were made at (16-mixed).
        self._pending = [False, False]
        self._grad_scale: list[float | None] = [None, None]
        self.automatic_optimization = False
        self.discriminator = discriminator

        self.loss_weights = _check_loss_weights(loss, loss_weights or {})
        self.pixel_loss = loss.get("pixel") if self.loss_weights["pixel"] else None
        self.perceptual_loss = loss.get("perceptual") if self.loss_weights["perceptual"] else None
        self.adversarial_loss: AdversarialLoss = loss["adversarial"]

        if g_steps_before_d < 0 or d_warmup_steps < 0:
            raise ConfigError(
                f"model.g_steps_before_d ({g_steps_before_d}) and model.d_warmup_steps "
                f"({d_warmup_steps}) must be >= 0"
            )
        self.g_steps_before_d = int(g_steps_before_d)
        self.d_warmup_steps = int(d_warmup_steps)
        self.grad_clip = grad_clip
        self.grad_clip_d = grad_clip_d
        self.optimizer_factory = optimizer
        self.optimizer_d_factory = optimizer_d
        self.scheduler_factory = scheduler
        self.scheduler_d_factory = scheduler_d

    #: Batches whose gradients are summed before each update (``trainer.accumulate_grad_batches``).
    accumulate_grad_batches: int = 1
    _accumulation_source: weakref.ref | None = None

    @SRTask.trainer.setter
    def trainer(self, trainer: L.Trainer | None) -> None:
        """Attach ``trainer``, taking over its ``accumulate_grad_batches`` (see the class
        docstring): Lightning checks that the value is 1 under manual optimization."""
        source = self._accumulation_source
        if trainer is not None and (source is None or source() is not trainer):
            self.accumulate_grad_batches = int(trainer.accumulate_grad_batches)
            self._accumulation_source = weakref.ref(trainer)
            trainer.accumulate_grad_batches = 1
        L.LightningModule.trainer.fset(self, trainer)

    # -- optimizers ------------------------------------------------------------------------

    def configure_optimizers(self) -> tuple[list[torch.optim.Optimizer], list[dict]]:
        """The generator's and the discriminator's optimizers (in that order) and schedulers.

        Lightning saves and restores the schedulers; the task steps them (manual optimization).
        """
        # "name" is the key LearningRateMonitor logs each rate under.
        g_opt, g_sched = build_optimizer(
            self.net, self.optimizer_factory, self.scheduler_factory, name="lr-generator"
        )
        d_opt, d_sched = build_optimizer(
            self.discriminator,
            self.optimizer_d_factory,
            self.scheduler_d_factory,
            name="lr-discriminator",
        )
        return [g_opt, d_opt], [s for s in (g_sched, d_sched) if s is not None]

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Clip the gradients of the network that ``optimizer`` updates, if configured.

        Lightning's precision plugin calls this hook after ``GradScaler.unscale_`` (16-mixed)
        and right before ``optimizer.step``, so the norm is that of the true gradients.
        """
        generator_optimizer = self.trainer.optimizers[0]
        max_norm = self.grad_clip if optimizer is generator_optimizer else self.grad_clip_d
        if max_norm:
            self.clip_gradients(
                optimizer, gradient_clip_val=max_norm, gradient_clip_algorithm="norm"
            )

    # -- training --------------------------------------------------------------------------

    def phase(self, iteration: int) -> GANPhase:
        """Which networks train at ``iteration`` (0-based), from the two warm-up lengths."""
        g_only_end = self.g_steps_before_d
        d_only_end = g_only_end + self.d_warmup_steps
        return GANPhase(
            train_g=iteration < g_only_end or iteration >= d_only_end,
            train_d=iteration >= g_only_end,
            adversarial=iteration >= d_only_end,
        )

    def training_step(self, batch: dict, batch_idx: int) -> None:
        """One iteration: generator step, discriminator step, both schedulers (see class)."""
        g_opt, d_opt = self.optimizers()
        lr, hr = training_channels(self.net, batch["lr"], batch["hr"])
        phase = self.phase(self.global_step)
        self._iteration_counted = False
        # The last batch of an accumulation window (or of the epoch) updates the networks.
        window_end = (batch_idx + 1) % self.accumulate_grad_batches == 0
        window_end = window_end or self.trainer.is_last_batch
        # The learning rates used in this iteration, before the schedulers move them.
        self._log("g_lr", g_opt.param_groups[0]["lr"], lr.shape[0])
        self._log("d_lr", d_opt.param_groups[0]["lr"], lr.shape[0])
        losses = []
        if phase.train_g:
            sr, g_loss = self._generator_step(g_opt, lr, hr, phase.adversarial, window_end)
            losses.append(g_loss)
        else:
            with torch.no_grad():
                sr = self(lr)
        if phase.train_d:
            losses.append(self._discriminator_step(d_opt, hr, sr, window_end))
        # One count per iteration for SRTask's non-finite guard (a step with a NaN or infinite
        # loss was skipped above; too many such iterations in a row stop training).
        self.is_finite_step(torch.stack(losses))
        if self._iteration_counted:  # schedules follow global_step: skipped iterations wait
            self._step_schedulers()

    def _generator_step(
        self,
        optimizer: LightningOptimizer,
        lr: torch.Tensor,
        hr: torch.Tensor,
        adversarial: bool,
        window_end: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Backpropagate the generator's loss (and update it at ``window_end``); return its
        detached output and its (detached) loss."""
        with self.toggled_optimizer(optimizer):
            sr = self(lr)
            terms: dict[str, torch.Tensor] = {}
            if self.pixel_loss is not None:
                terms["pixel"] = self.pixel_loss(sr, hr)
            if self.perceptual_loss is not None:
                terms["perceptual"] = self.perceptual_loss(sr, hr)
            if adversarial and self.loss_weights["adversarial"]:
                fake_pred = self.discriminator(sr)
                real_pred = None
                if self.adversarial_loss.relativistic:
                    with torch.no_grad():  # a constant for the generator
                        real_pred = self.discriminator(hr)
                terms["adversarial"] = self.adversarial_loss.generator_loss(fake_pred, real_pred)
            if not terms:
                raise ConfigError(
                    "the generator has no loss at this step: give model.loss_weights.pixel or "
                    "model.loss_weights.perceptual a weight > 0 (needed while only the "
                    "generator trains, model.g_steps_before_d)"
                )
            g_loss = sum(self.loss_weights[name] * value for name, value in terms.items())
            updated = self._update(optimizer, 0, g_loss, window_end)
        if updated:
            batch_size = lr.shape[0]
            self._log("g_loss", g_loss, batch_size, prog_bar=True)
            for name, value in terms.items():
                self._log("g_adv" if name == "adversarial" else f"g_{name}", value, batch_size)
        return sr.detach(), g_loss.detach()

    def _discriminator_step(
        self,
        optimizer: LightningOptimizer,
        hr: torch.Tensor,
        sr: torch.Tensor,
        window_end: bool = True,
    ) -> torch.Tensor:
        """Backpropagate the discriminator's loss on real ``hr`` and generated ``sr`` (already
        detached), updating it at ``window_end``; return its (detached) loss."""
        with self.toggled_optimizer(optimizer):
            # Two passes, as BasicSR and the ESRGAN code do: batch norm normalizes real and
            # fake images with their own batch statistics.
            real_pred = self.discriminator(hr)
            fake_pred = self.discriminator(sr)
            d_loss = self.adversarial_loss.discriminator_loss(real_pred, fake_pred)
            penalty = self.adversarial_loss.penalty(self.discriminator, hr, sr)
            if penalty is not None:
                d_loss = d_loss + penalty
            updated = self._update(optimizer, 1, d_loss, window_end)
        if updated:
            batch_size = hr.shape[0]
            self._log("d_loss", d_loss, batch_size, prog_bar=True)
            self._log("d_real", real_pred.detach().float().mean(), batch_size)
            self._log("d_fake", fake_pred.detach().float().mean(), batch_size)
            if penalty is not None:
                self._log("d_gp", penalty, batch_size)
        return d_loss.detach()

    def _update(
        self, optimizer: LightningOptimizer, index: int, loss: torch.Tensor, window_end: bool
    ) -> bool:
        """Backpropagate ``loss`` (divided by the accumulation count) into the gradients of
        optimizer ``index``'s window, and at ``window_end`` step it; returns whether ``loss``
        was backpropagated: not when it is not finite (on any DDP rank), and then the window
        updates with the gradients of its other batches, if any."""
        finite = self.all_finite(loss)
        if finite:
            if self._pending[index]:
                self._match_grad_scale(optimizer, index)
            else:  # the window's first gradients
                optimizer.zero_grad()
                self._pending[index] = True
            self.manual_backward(loss / self.accumulate_grad_batches)
            self._grad_scale[index] = self._loss_scale()
        if window_end and self._pending[index]:
            self._match_grad_scale(optimizer, index)
            self._optimizer_step(optimizer)
            self._pending[index] = False
        return finite

    def _loss_scale(self) -> float | None:
        """The current 16-mixed loss scale (None without a GradScaler, or without
        accumulation, where gradients never outlive a scale)."""
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if self.accumulate_grad_batches == 1 or scaler is None or not scaler.is_enabled():
            return None
        return float(scaler.get_scale())

    def _match_grad_scale(self, optimizer: LightningOptimizer, index: int) -> None:
        """Rescale optimizer ``index``'s accumulated gradients to the current loss scale (the
        other network's update may have moved it since they were made)."""
        made_at, now = self._grad_scale[index], self._loss_scale()
        if made_at is None or now is None or made_at == now:
            return
        with torch.no_grad():
            for group in optimizer.param_groups:
                for param in group["params"]:
                    if param.grad is not None:
                        param.grad.mul_(now / made_at)
        self._grad_scale[index] = now

    def _optimizer_step(self, optimizer: LightningOptimizer) -> None:
        """Step ``optimizer``; only the iteration's first step counts as a global step."""
        if not self._iteration_counted:
            self._iteration_counted = True
            optimizer.step()
            return
        # LightningOptimizer.step() = progress hooks (the global-step count) around exactly
        # this call; the precision plugin inside still unscales, calls
        # on_before_optimizer_step (clipping), steps through the GradScaler and updates it.
        self.trainer.strategy.optimizer_step(optimizer.optimizer, closure=_no_closure)

    def _step_schedulers(self) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_SCHEDULER_BEFORE_OPTIMIZER)
            for config in self.trainer.lr_scheduler_configs:
                config.scheduler.step()

    def _log(self, name: str, value: Any, batch_size: int, prog_bar: bool = False) -> None:
        self.log(f"train/{name}", value, prog_bar=prog_bar, batch_size=batch_size)


def _no_closure() -> None:
    """The closure of a manual optimizer step: backward already ran."""
    return None


def _check_loss_weights(
    loss: Mapping[str, nn.Module | None], weights: Mapping[str, float]
) -> dict[str, float]:
    unknown = sorted((set(loss) | set(weights)) - set(LOSS_TERMS))
    if unknown:
        raise ConfigError(
            f"model.loss / model.loss_weights: unknown terms {unknown}; the GAN task knows "
            f"{', '.join(LOSS_TERMS)}"
        )
    if not isinstance(loss.get("adversarial"), AdversarialLoss):
        raise ConfigError(
            "model.loss.adversarial must be an srlab.losses.AdversarialLoss (the GAN losses of "
            f"both networks); got {type(loss.get('adversarial')).__name__}"
        )
    out = {name: float(weights.get(name) or 0.0) for name in LOSS_TERMS}
    for name, weight in out.items():
        if weight < 0:
            raise ConfigError(f"model.loss_weights.{name}={weight} must be >= 0")
        if weight and loss.get(name) is None:
            raise ConfigError(
                f"model.loss_weights.{name}={weight} but model.loss.{name} is null: configure "
                f"the loss or set its weight to 0"
            )
    return out

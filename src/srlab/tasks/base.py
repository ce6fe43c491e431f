"""What every SR task shares: the forward pass (with its speed settings: channels-last
layout, ``torch.compile``), whole-image validation and test, metrics per evaluation set, the
bicubic baseline, comparison images, and the FLOPs per batch that throughput logging reads.

The regression and GAN tasks subclass :class:`SRTask` and add only their training step and
optimizers, so both score and log exactly alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torchmetrics import MetricCollection

from srlab.errors import ConfigError, NonFiniteLossError, NonFiniteWeightsError
from srlab.imaging.imresize import imresize
from srlab.imaging.io import write_image
from srlab.metrics import PSNRY, SSIMY, quantize
from srlab.metrics.perceptual import PerceptualMetrics
from srlab.models.channels import super_resolve
from srlab.models.complexity import summary
from srlab.runtime.checkpoints import DIVERGENCE_CAUSES, describe_newest, nonfinite_values
from srlab.tasks.evaluation import EvalOptions, save_image, y_channel_pair
from srlab.tracking.dashboard import STEP_METRIC, use_inputs
from srlab.tracking.image_table import ImageResults, wants_tables
from srlab.tracking.images import log_images
from srlab.tracking.throughput import slow_precision_warning
from srlab.weights import load_pretrained

STAGES = ("val", "test")
MAX_PANEL_SIDE = 480  # comparison images are centre crops of at most this many HR pixels
#: ``model.compile_mode`` values: the modes of ``torch.compile``.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class SRTask(L.LightningModule):
    """Base LightningModule of the SR tasks: everything but training.

    Validation and test super-resolve whole images of each evaluation set (one dataloader
    per set), score them with the literature's protocol (Y-channel PSNR/SSIM of 8-bit
    levels, ``scale`` pixels shaved; :mod:`srlab.metrics`) and log ``<stage>/<Set>/psnr``,
    ``<stage>/<Set>/ssim`` and ``<stage>/psnr`` (the first set's PSNR). The MATLAB-bicubic
    baseline of every set is scored at the first validation and at every test and logged as
    ``<stage>/<Set>/psnr_bicubic`` and ``.../ssim_bicubic``.

    Args:
        net: the SR network, mapping LR [B, C, h, w] to SR [B, C, s*h, s*w]; it declares its
            scale as ``net.upscale`` (and its channels as ``net.num_in_ch``, default 3).
        name: the model's name (``model.name``: the config's), which names runs and finds the
            model's published numbers (:mod:`srlab.metrics.published`).
        num_log_images: LR (bicubic-upscaled) | SR | HR comparisons logged per evaluation set
            at each validation, and written as PNGs under ``<output_dir>/images/``.
        pretrained: weights to start from: a path or URL of an srlab checkpoint (``.ckpt``,
            EMA weights preferred) or state dict (``.pth``), or an author's release in a
            layout srlab maps (EDSR-PyTorch, ESRGAN, BasicSR); see
            :func:`srlab.weights.load_pretrained`.
        pretrained_ignore: glob patterns of parameters not to load (``["upsample.*"]`` to start
            an x4 EDSR from an x2 one).
        pretrained_strict: fail on any missing, unexpected or wrong-shaped key.
        pretrained_sha256: expected checksum of a downloaded file.
        max_nonfinite_steps: a step whose loss is NaN or infinite is skipped (no update) and
            counted in ``train/nonfinite_steps``; this many in a row stop training with
            :class:`~srlab.errors.NonFiniteLossError` (and the exception checkpoint holds
            the last good weights).
        channels_last: keep every 4-D weight of the task (network, discriminator, perceptual
            VGG) and the network's input in the channels-last (NHWC) layout, which CPU
            (oneDNN) and tensor-core convolutions run faster. Checkpoints hold the same values.
        compile: run the SR network through ``torch.compile`` (compiled in place with
            ``nn.Module.compile``, so checkpoints keep the plain parameter names). The first
            steps, and the first evaluation image of each new size, pay the compilation.
        compile_mode: the ``torch.compile`` mode, one of :data:`COMPILE_MODES`.

    Precision is the trainer's (``trainer.precision``): Lightning runs every step under
    autocast; evaluation casts the network's output to float32 and scores it, and makes the
    bicubic baseline, in full precision.

    Raises:
        ConfigError: an unknown ``compile_mode``.
    """

    def __init__(
        self,
        net: nn.Module,
        name: str = "model",
        num_log_images: int = 3,
        pretrained: str | None = None,
        pretrained_ignore: Sequence[str] = (),
        pretrained_strict: bool = True,
        pretrained_sha256: str | None = None,
        max_nonfinite_steps: int = 20,
        channels_last: bool = False,
        compile: bool = False,  # noqa: A002 - the config key is model.compile
        compile_mode: str = "default",
    ) -> None:
        super().__init__()
        if compile_mode not in COMPILE_MODES:
            raise ConfigError(
                f"model.compile_mode={compile_mode!r} is not a torch.compile mode: use one of "
                f"{', '.join(COMPILE_MODES)}"
            )
        if pretrained:
            load_pretrained(
                net,
                pretrained,
                strict=pretrained_strict,
                ignore=pretrained_ignore,
                sha256=pretrained_sha256,
            )
        self.net = net
        self.name = name
        self.pretrained = pretrained
        self.scale = int(net.upscale)
        self.num_log_images = num_log_images
        self.max_nonfinite_steps = max_nonfinite_steps
        self._nonfinite_total = 0
        self._nonfinite_in_a_row = 0
        self.metrics = nn.ModuleDict()
        self.set_names: dict[str, list[str]] = {}
        self._bicubic_logged = False
        self._panels: list[tuple[str, str, np.ndarray]] = []
        self.channels_last = bool(channels_last)
        self.compile_mode = compile_mode if compile else None
        self._speed_applied = False
        # Compute of the network (from srlab.models.complexity), measured at the first setup.
        self.macs_per_lr_pixel: float | None = None
        self._batch_lr_pixels: int | None = None
        self.evaluation = EvalOptions()
        self.perceptual = PerceptualMetrics()
        self._scorers: dict[str, nn.Module] | None = None
        #: Per-image scores of the latest test: ``{set: {image: {"psnr": ..., "ssim": ...}}}``.
        self.image_scores: dict[str, dict[str, dict[str, float]]] = {}
        #: Per-image rows of the latest validation and test, for W&B tables.
        self.image_results = ImageResults()

    def describe(self, model_config: dict) -> None:
        """Keep ``model_config`` (the resolved ``model`` node) in every checkpoint, under
        ``hyper_parameters``, so that ``src/eval.py``, ``src/infer.py`` and ``src/export.py``
        rebuild the network from the checkpoint alone (:mod:`srlab.app.network`)."""
        self.save_hyperparameters({"model": model_config, "scale": self.scale}, logger=False)

    def configure_evaluation(self, options: EvalOptions) -> None:
        """Score validation and test with ``options`` (protocol, LR input, tiling, ensemble);
        call before the Trainer sets the task up."""
        self.evaluation = options

    def configure_metrics(self, perceptual: PerceptualMetrics) -> None:
        """Score validation and test with these perceptual metrics too (``metrics.*``: LPIPS,
        DISTS, NIQE), logged as ``<stage>/<Set>/<name>``; call before the Trainer sets the
        task up. Their networks are built (and their weights loaded) now, so a missing
        weights file fails before anything runs, and shared by every set."""
        self.perceptual = perceptual
        self._scorers = perceptual.scorers()

    def forward(self, lr: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        """Super-resolve an LR batch [B, C, h, w] in [0, 1] (C = 1 or 3), at ``scale``
        (default: the network's own; other scales only for ``any_scale`` networks)."""
        if self.channels_last:
            lr = lr.contiguous(memory_format=torch.channels_last)
        return super_resolve(self.net, lr, scale)

    @property
    def flops_per_batch(self) -> float | None:
        """Forward FLOPs of the SR network on the current batch, for Lightning's
        ``ThroughputMonitor``: 2 x MACs per LR pixel x LR pixels of the batch.

        Only the network's forward pass is counted: a training step also runs its backward
        (about twice the forward), and a GAN step the discriminator and the perceptual VGG.
        None until the first batch.
        """
        if self.macs_per_lr_pixel is None or self._batch_lr_pixels is None:
            return None
        return 2.0 * self.macs_per_lr_pixel * self._batch_lr_pixels

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        """Note the batch size in LR pixels (for :attr:`flops_per_batch`)."""
        self._batch_lr_pixels = _lr_pixels(batch)

    def on_validation_batch_start(
        self, batch: dict, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Note the batch size in LR pixels (for :attr:`flops_per_batch`)."""
        self._batch_lr_pixels = _lr_pixels(batch)

    def on_test_batch_start(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Note the batch size in LR pixels (for :attr:`flops_per_batch`)."""
        self._batch_lr_pixels = _lr_pixels(batch)

    def setup(self, stage: str) -> None:
        """Create one pair of metrics (and bicubic metrics) per evaluation set, measure the
        network's MACs, warn once if ``trainer.precision`` is slow here
        (:func:`srlab.tracking.throughput.slow_precision_warning`), then apply the speed settings
        (:meth:`apply_speed_settings`)."""
        datamodule = self.trainer.datamodule
        self.set_names = {"val": datamodule.val_set_names, "test": datamodule.test_set_names}
        if self._scorers is None:
            self._scorers = self.perceptual.scorers()
        for split, names in self.set_names.items():
            if split in self.metrics:
                continue
            options = self.evaluation
            protocol = {
                "shave": self.scale if options.shave is None else options.shave,
                "channel": options.channel,
                "round_y": options.round_y,
            }
            self.metrics[split] = nn.ModuleDict(
                {
                    # No compute groups: each metric keeps its own per-image scores.
                    key: MetricCollection(
                        {
                            "psnr": PSNRY(**protocol),
                            "ssim": SSIMY(**protocol),
                            **PerceptualMetrics.metrics(self._scorers),
                        },
                        compute_groups=False,
                    )
                    for name in names
                    for key in (name, f"{name}_bicubic")
                }
            )
        if self.macs_per_lr_pixel is None:
            # On the plain network, before compiling; its random probe input must not move
            # the seeded random stream that training draws from.
            with torch.random.fork_rng(devices=[]):
                net_summary = summary(self.net, scale=self.scale, lr_size=16)
            self.macs_per_lr_pixel = net_summary.macs_per_lr_pixel
            warning = slow_precision_warning(
                self.trainer.precision, self.trainer.strategy.root_device
            )
            if warning:
                rank_zero_warn(warning)
        self.apply_speed_settings()

    def apply_speed_settings(self) -> None:
        """Convert to channels-last and compile the network, as configured (once).

        Runs in :meth:`setup`, after callbacks' own set-up: ``EMAWeightAveraging`` has then
        copied the plain module, and Lightning creates the optimizers (whose state follows
        each parameter's layout) and moves the module to its device (keeping the layout)
        only afterwards. Only the SR network is compiled: the task's Python around it (loss
        terms, the GAN's two updates, metrics) stays eager.
        """
        if self._speed_applied:
            return
        self._speed_applied = True
        if self.channels_last:
            self.to(memory_format=torch.channels_last)
        if self.compile_mode is not None:
            # In place: parameter names stay "net.<...>" (torch.compile(net) would wrap them
            # as "net._orig_mod.<...>"), so checkpoints load into uncompiled networks.
            self.net.compile(mode=self.compile_mode)

    def all_finite(self, loss: torch.Tensor) -> bool:
        """Whether ``loss`` is finite here and, under DDP, on every other rank too.

        Ranks must take the same branch: one that skipped its backward alone would leave the
        others waiting in the gradient all-reduce, and the replicas would drift apart.
        """
        bad = (~torch.isfinite(loss.detach())).any().float()
        if self.world_size > 1:
            bad = self.trainer.strategy.reduce(bad, reduce_op="sum")
        return not bad

    @property
    def world_size(self) -> int:
        """The number of DDP processes (1 also outside a Trainer, e.g. a step called alone)."""
        return self._trainer.world_size if self._trainer is not None else 1

    def is_finite_step(self, loss: torch.Tensor) -> bool:
        """Whether ``loss`` is finite; counts and logs the steps that are not.

        Training steps return None for a non-finite loss, which makes Lightning skip the
        optimizer step, so one bad batch (or a mixed-precision overflow) costs one step. Under
        DDP a step is skipped on every rank when the loss of any is not finite
        (:meth:`all_finite`).

        Raises:
            NonFiniteLossError: after ``max_nonfinite_steps`` non-finite losses in a row.
        """
        if self.all_finite(loss):
            self._nonfinite_in_a_row = 0
            return True
        bad, total = nonfinite_values(self.state_dict())
        if bad:
            # The weights themselves diverged (an update made them NaN): no later step can
            # recover, so stop now rather than after max_nonfinite_steps skipped steps. No
            # checkpoint is written with them (AtomicCheckpointIO refuses).
            callback = self._trainer.checkpoint_callback if self._trainer is not None else None
            folder = getattr(callback, "dirpath", None)
            newest = describe_newest(Path(folder)) if folder else "none configured"
            raise NonFiniteWeightsError(
                f"training diverged: after step {self.global_step}, {bad:,} of {total:,} "
                "weights are NaN or infinite and the loss is too; training stopped. No "
                f"checkpoint holds these weights; the newest one with finite weights: {newest}. "
                f"{DIVERGENCE_CAUSES}"
            )
        self._nonfinite_total += 1
        self._nonfinite_in_a_row += 1
        self.log("train/nonfinite_steps", float(self._nonfinite_total))
        if self._nonfinite_in_a_row >= self.max_nonfinite_steps:
            raise NonFiniteLossError(
                f"the loss was NaN or infinite for {self._nonfinite_in_a_row} steps in a row, "
                f"up to step {self.global_step}: training stopped, and "
                "checkpoints/on_exception.ckpt holds the last good weights (skipped steps "
                f"change no weight). {DIVERGENCE_CAUSES}"
            )
        return False

    # -- evaluation -------------------------------------------------------------------------

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Score one whole image of validation set number ``dataloader_idx``."""
        self.evaluate_batch("val", batch, batch_idx, dataloader_idx)

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Score one whole image of test set number ``dataloader_idx``."""
        self.evaluate_batch("test", batch, batch_idx, dataloader_idx)

    def on_fit_start(self) -> None:
        """Link the W&B run to the datasets and weights this fit reads (its lineage)."""
        weights = [w for w in (self.pretrained, self.trainer.ckpt_path) if w]
        use_inputs(self.loggers, self.trainer.datamodule, weights)

    def on_validation_epoch_start(self) -> None:
        """Forget the per-image rows of the previous validation."""
        self.image_results.start("val")

    def on_test_epoch_start(self) -> None:
        """Forget the per-image scores of an earlier test."""
        self.image_scores = {name: {} for name in self.set_names["test"]}
        self.image_results.start("test")

    def on_validation_epoch_end(self) -> None:
        """Log the validation metrics of every set, then the comparison images."""
        self._log_metrics("val")
        if not self.trainer.sanity_checking:
            self._bicubic_logged = True
            self._flush_panels()
            self._log_degraded_batch()
        self._panels.clear()

    def on_train_end(self) -> None:
        """Log the per-image tables of the last validation (W&B)."""
        self._log_image_tables("val")

    def on_test_epoch_end(self) -> None:
        """Log the test metrics of every set and their per-image tables (W&B); gather the
        per-image scores of every rank."""
        self._log_metrics("test")
        self._log_image_tables("test")
        if self.world_size > 1:
            gathered: list = [None] * self.world_size
            torch.distributed.all_gather_object(gathered, self.image_scores)
            self.image_scores = {
                name: {k: v for part in gathered for k, v in part[name].items()}
                for name in self.set_names["test"]
            }

    def _log_image_tables(self, stage: str) -> None:
        if wants_tables(self.loggers):
            self.image_results.gather(stage, self.world_size)
            self.image_results.log(self.loggers, stage, self.global_step)

    def _scores_bicubic(self, stage: str) -> bool:
        return stage == "test" or not (self._bicubic_logged or self.trainer.sanity_checking)

    def evaluate_batch(self, stage: str, batch: dict, batch_idx: int, dataloader_idx: int) -> None:
        """Super-resolve and score one evaluation image (``stage`` val or test) by
        :attr:`evaluation`; the test records its per-image scores and saves it if asked."""
        set_name = self.set_names[stage][dataloader_idx]
        lr, hr = batch["lr"], batch["hr"]
        options = self.evaluation
        if options.lr_from == "y":
            hr, lr = y_channel_pair(hr, self.scale)
        # Under mixed precision the network runs in bf16/fp16; it is scored in float32.
        sr = options.predictor(self, self.scale)(lr).float().clamp(0, 1)
        metrics = self.metrics[stage]
        metrics[set_name].update(sr, hr)
        if stage == "test":
            scores = metrics[set_name]
            self.image_scores[set_name][batch["name"][0]] = {
                name: float(metric.last_scores[0]) for name, metric in scores.items()
            }
            if options.save_dir is not None:
                save_image(sr, Path(options.save_dir) / set_name / f"{batch['name'][0]}.png")
        wants_panel = (
            stage == "val"
            and batch_idx < self.num_log_images
            and self.global_rank == 0
            and not self.trainer.sanity_checking
        )
        if self._scores_bicubic(stage) or wants_panel:
            # The baseline in full precision whatever trainer.precision: its matmuls would
            # otherwise run under the step's autocast.
            with torch.autocast(lr.device.type, enabled=False):
                bicubic = imresize(lr, scale=self.scale).clamp(0, 1)
            if self._scores_bicubic(stage):
                metrics[f"{set_name}_bicubic"].update(bicubic, hr)
            if wants_panel:
                self._panels.append((set_name, batch["name"][0], _panel(bicubic, sr, hr)))
        if wants_tables(self.loggers) and not self.trainer.sanity_checking:
            scores = metrics[set_name]
            bicubic_psnr = None
            if self._scores_bicubic(stage):
                bicubic_psnr = float(metrics[f"{set_name}_bicubic"]["psnr"].last_scores[0])
            self.image_results.add(
                stage,
                set_name,
                batch["name"][0],
                psnr=scores["psnr"].last_scores[0],
                ssim=scores["ssim"].last_scores[0],
                sr=sr,
                psnr_bicubic=bicubic_psnr,
            )

    def _log_metrics(self, stage: str) -> None:
        # Metric.compute() already reduces the per-image sums over DDP ranks, so every rank
        # logs the same global value and no further sync_dist averaging is needed.
        for index, set_name in enumerate(self.set_names[stage]):
            for suffix, key in (("", set_name), ("_bicubic", f"{set_name}_bicubic")):
                collection = self.metrics[stage][key]
                if not any(metric.update_called for metric in collection.values()):
                    continue
                values = collection.compute()
                collection.reset()
                for name, value in values.items():
                    self.log(f"{stage}/{set_name}/{name}{suffix}", value, add_dataloader_idx=False)
                if index == 0 and not suffix:
                    self.log(f"{stage}/psnr", values["psnr"], add_dataloader_idx=False)
        if stage == "val" and wants_tables(self.loggers):
            # Lightning logs a validation at the step count before its last batch; this puts
            # it in W&B at the step it scored, as its images and checkpoint names are.
            self.log(STEP_METRIC, float(self.global_step), add_dataloader_idx=False)

    def _image_folder(self, step: int) -> Path:
        folder = Path(self.trainer.default_root_dir) / "images" / "val" / f"step_{step:07d}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _flush_panels(self) -> None:
        if not self._panels:
            return
        step = self.global_step
        folder = self._image_folder(step)
        for set_name, image_name, panel in self._panels:
            # One key per image, so that W&B shows each image's history on a step slider.
            key = f"val/{set_name}/images/{image_name}"
            self._log_picture(
                folder / f"{set_name}_{image_name}.png", key, panel, "bicubic | SR | HR"
            )

    def _log_picture(self, path: Path, key: str, picture: np.ndarray, caption: str) -> None:
        write_image(path, picture)
        log_images(self.loggers, key, [picture], [caption], self.global_step)

    def _log_degraded_batch(self) -> None:
        """With ``data.degradation``: the degraded LR of the first training batch since the
        previous validation beside its HR (``train/degraded``, PNG ``train_degraded.png``) and
        its drawn parameters (W&B table ``train/degradation_params``, ``train_degraded.csv``)."""
        take = getattr(self.trainer.datamodule, "take_degradation_preview", None)
        preview = take() if take is not None else None
        if preview is None or self.global_rank != 0:
            return
        folder = self._image_folder(self.global_step)
        self._log_picture(
            folder / "train_degraded.png", "train/degraded", preview.picture(), preview.caption
        )
        preview.write_csv(folder / "train_degraded.csv")
        preview.log_table(self.loggers, "train/degradation_params", self.global_step)


def _lr_pixels(batch: dict) -> int:
    """LR pixels of a batch (all images): batch x height x width of ``batch["lr"]``."""
    lr = batch["lr"]
    return int(lr.shape[0] * lr.shape[-2] * lr.shape[-1])


def _panel(bicubic: torch.Tensor, sr: torch.Tensor, hr: torch.Tensor) -> np.ndarray:
    """A uint8 [H, 3W, 3] picture: bicubic | SR | HR side by side, centre-cropped."""
    height, width = hr.shape[-2:]
    top = max(0, (height - MAX_PANEL_SIDE) // 2)
    left = max(0, (width - MAX_PANEL_SIDE) // 2)
    crops = [
        image[0, :, top : top + MAX_PANEL_SIDE, left : left + MAX_PANEL_SIDE]
        for image in (bicubic, sr, hr)
    ]
    row = quantize(torch.cat(crops, dim=-1)).to(torch.uint8).expand(3, -1, -1)
    return row.permute(1, 2, 0).cpu().numpy().copy()

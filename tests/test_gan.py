"""SRGANTask through the real configs (experiment=esrgan_smoke): which network each step
updates, clipping under mixed precision, schedulers, exact resume, EMA, and the W&B run of
``srlab.app.train.train``."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import OfflineRun, compose_config, offline_runs, read_offline_run
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, EMAWeightAveraging
from lightning.pytorch.plugins import MixedPrecision
from torch.utils.data import DataLoader

from srlab.app.train import train
from srlab.errors import ConfigError
from srlab.tasks import SRGANTask
from srlab.weights import load_pretrained, read_state_dict

SMOKE = ["experiment=esrgan_smoke"]
# Mechanics tests need some perceptual term, not a deep one: the VGG forward stops at conv1_1.
SHALLOW_VGG = "model.loss.perceptual.layers=[conv1_1]"
GAN_METRICS = (
    "train/g_loss",
    "train/d_loss",
    "train/g_pixel",
    "train/g_perceptual",
    "train/g_adv",
    "train/d_real",
    "train/d_fake",
    "train/g_lr",
    "train/d_lr",
)


class FixedData(L.LightningDataModule):
    """Two fixed 128x128 HR patches and their x4 LR, one batch per epoch: no randomness in the
    data, so two runs (or a run and its resumption) see identical batches."""

    val_set_names: list[str] = []
    test_set_names: list[str] = []

    def __init__(self, scale: int = 4, patch: int = 128) -> None:
        super().__init__()
        hr = torch.rand(2, 3, patch, patch, generator=torch.Generator().manual_seed(0))
        lr = F.avg_pool2d(hr, scale)
        self.items = [{"lr": lr[i], "hr": hr[i], "name": f"p{i}"} for i in range(2)]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.items, batch_size=2, shuffle=False)


def make_task(tmp_path: Path, overrides: list[str] = ()) -> SRGANTask:
    cfg = compose_config(tmp_path, [*SMOKE, SHALLOW_VGG, *overrides])
    torch.manual_seed(0)
    return instantiate(cfg.model, _convert_="all")


def fit(task: SRGANTask, steps: int, callbacks=(), ckpt_path=None, **trainer_kwargs) -> L.Trainer:
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        deterministic=True,
        callbacks=list(callbacks),
        **trainer_kwargs,
    )
    trainer.fit(task, datamodule=FixedData(), ckpt_path=ckpt_path)
    return trainer


def snapshot(module: torch.nn.Module) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    return {
        name: (p.detach().clone(), None if p.grad is None else p.grad.detach().clone())
        for name, p in module.named_parameters()
    }


def same(a: dict, b: dict) -> bool:
    """Identical parameters and identical gradients (both None, or equal)."""
    for name, (value, grad) in a.items():
        other_value, other_grad = b[name]
        if not torch.equal(value, other_value):
            return False
        if (grad is None) != (other_grad is None):
            return False
        if grad is not None and not torch.equal(grad, other_grad):
            return False
    return True


def weights_changed(a: dict, b: dict) -> bool:
    return any(not torch.equal(a[name][0], b[name][0]) for name in a)


class Recorder(Callback):
    """Per iteration: both networks at batch start and end, and the logged values."""

    def __init__(self) -> None:
        self.start: list[tuple[dict, dict]] = []
        self.end: list[tuple[dict, dict]] = []
        self.metrics: list[dict[str, float]] = []

    def on_train_batch_start(self, trainer, task, batch, batch_idx) -> None:
        self.start.append((snapshot(task.net), snapshot(task.discriminator)))

    def on_train_batch_end(self, trainer, task, outputs, batch, batch_idx) -> None:
        self.end.append((snapshot(task.net), snapshot(task.discriminator)))
        self.metrics.append({k: float(v) for k, v in trainer.callback_metrics.items()})


NO_WARMUP = ["model.g_steps_before_d=0", "model.d_warmup_steps=0"]


def test_one_step_trains_both_networks_and_vgg_stays_frozen(tmp_path: Path) -> None:
    task = make_task(tmp_path, NO_WARMUP)
    g0, d0 = snapshot(task.net), snapshot(task.discriminator)
    vgg0 = task.perceptual_loss.vgg.features[0].weight.detach().clone()
    trainer = fit(task, steps=1)
    assert weights_changed(g0, snapshot(task.net))
    assert weights_changed(d0, snapshot(task.discriminator))
    assert torch.equal(task.perceptual_loss.vgg.features[0].weight, vgg0)
    assert trainer.global_step == 1  # one iteration, two optimizer steps


def test_each_step_leaves_the_other_network_untouched(tmp_path: Path, monkeypatch) -> None:
    task = make_task(tmp_path, NO_WARMUP)
    recorder = Recorder()
    between: list[tuple[dict, dict]] = []
    d_step = task._discriminator_step

    def spy(*args, **kwargs):
        between.append((snapshot(task.net), snapshot(task.discriminator)))
        return d_step(*args, **kwargs)

    monkeypatch.setattr(task, "_discriminator_step", spy)
    fit(task, steps=2, callbacks=[recorder])
    for i in range(2):
        (g_start, d_start), (g_mid, d_mid), (g_end, d_end) = (
            recorder.start[i],
            between[i],
            recorder.end[i],
        )
        # Generator step: the discriminator's weights and gradients are as they were (from
        # iteration 2 on, its gradients are those of the previous discriminator step).
        assert same(d_start, d_mid), f"iteration {i}: the generator step touched D"
        assert weights_changed(g_start, g_mid)
        # Discriminator step: the generator's weights and its fresh gradients stay.
        assert same(g_mid, g_end), f"iteration {i}: the discriminator step touched G"
        assert weights_changed(d_mid, d_end)
        assert all(grad is not None for _, grad in g_mid.values())
    assert all(grad is not None for _, grad in recorder.end[1][1].values())


def test_phases_schedulers_and_global_step_count_iterations(tmp_path: Path) -> None:
    task = make_task(
        tmp_path,
        [
            "model.g_steps_before_d=1",
            "model.d_warmup_steps=1",
            "model.scheduler.milestones=[2,3]",
            "model.scheduler_d.milestones=[3]",
            "model.optimizer.lr=1e-3",
            "model.optimizer_d.lr=1e-3",
        ],
    )
    recorder = Recorder()
    trainer = fit(task, steps=4, callbacks=[recorder])

    changed = [
        (weights_changed(gs, ge), weights_changed(ds, de))
        for (gs, ds), (ge, de) in zip(recorder.start, recorder.end, strict=True)
    ]
    # iteration 0: generator alone; 1: discriminator warm-up alone; then both.
    assert changed == [(True, False), (False, True), (True, True), (True, True)]
    assert "train/g_adv" in recorder.metrics[2] and "train/g_adv" not in recorder.metrics[1]

    assert trainer.global_step == 4  # iterations, not optimizer steps (Lightning #17958)
    g_sched, d_sched = (c.scheduler for c in trainer.lr_scheduler_configs)
    assert g_sched.last_epoch == d_sched.last_epoch == 4
    g_lrs = [m["train/g_lr"] for m in recorder.metrics]
    d_lrs = [m["train/d_lr"] for m in recorder.metrics]
    assert g_lrs == pytest.approx([1e-3, 1e-3, 5e-4, 2.5e-4])
    assert d_lrs == pytest.approx([1e-3, 1e-3, 1e-3, 5e-4])


class StepNorms(Callback):
    """The global gradient norm of each optimizer's update (after any clipping)."""

    def __init__(self) -> None:
        self.norms: dict[int, list[float]] = {0: [], 1: []}

    def on_train_start(self, trainer, task) -> None:
        for index, optimizer in enumerate(trainer.optimizers):
            original = optimizer.step

            def step(closure=None, _original=original, _opt=optimizer, _index=index):
                # In 32-bit and bf16, Lightning hands the optimizer a closure that runs the
                # hooks (our clipping); under a GradScaler they ran before, without a closure.
                loss = closure() if closure is not None else None
                grads = [
                    p.grad for g in _opt.param_groups for p in g["params"] if p.grad is not None
                ]
                self.norms[_index].append(float(torch.nn.utils.get_total_norm(grads)))
                _original()
                return loss

            optimizer.step = step


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_clipping_acts_on_unscaled_gradients(tmp_path: Path, precision: str) -> None:
    clip = ["model.grad_clip=1e-3", "model.grad_clip_d=2e-3"]
    # (No perceptual term: VGG convolutions are slow in float16/bfloat16 on CPU.)
    task = make_task(tmp_path, [*NO_WARMUP, *clip, "model.loss_weights.perceptual=0"])
    norms = StepNorms()
    if precision == "16-mixed":
        # Lightning turns precision="16-mixed" into bf16 on CPU; the plugin itself runs here
        # (float16 autocast and a GradScaler on CPU). A moderate initial scale avoids skipped
        # (overflowing) first steps; any scale > 1 would show clipping before unscaling.
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
        trainer = fit(
            task, steps=1, callbacks=[norms], plugins=[MixedPrecision(precision, "cpu", scaler)]
        )
        assert trainer.precision_plugin.scaler is scaler
    else:
        trainer = fit(task, steps=1, callbacks=[norms], precision=precision)
    # Gradients of this size are far above the bounds, so a step sees exactly the bound;
    # clipping before unscaling would leave them 2^10 times smaller under 16-mixed.
    assert norms.norms[0] and norms.norms[1]
    assert norms.norms[0] == pytest.approx([1e-3] * len(norms.norms[0]), rel=1e-3)
    assert norms.norms[1] == pytest.approx([2e-3] * len(norms.norms[1]), rel=1e-3)


def test_resume_continues_exactly(tmp_path: Path) -> None:
    # Iteration 0 trains the generator alone, 1 the discriminator alone, 2-3 both: resuming
    # after iteration 0 crosses both phase changes.
    phases = ["model.g_steps_before_d=1", "model.d_warmup_steps=1"]
    full = Recorder()
    task = make_task(tmp_path, phases)
    fit(task, steps=4, callbacks=[full])

    first = make_task(tmp_path, phases)
    trainer = fit(first, steps=1)
    ckpt = tmp_path / "step1.ckpt"
    trainer.save_checkpoint(ckpt)

    resumed_rec = Recorder()
    resumed = make_task(tmp_path, phases)
    with torch.no_grad():  # a different start, which the checkpoint must overwrite entirely
        for p in [*resumed.net.parameters(), *resumed.discriminator.parameters()]:
            p.add_(1.0)
    trainer = fit(resumed, steps=4, callbacks=[resumed_rec], ckpt_path=ckpt)
    assert trainer.global_step == 4

    keys = ("train/g_loss", "train/g_perceptual", "train/g_adv", "train/d_loss", "train/d_fake")
    for offset, metrics in enumerate(resumed_rec.metrics):
        expected = full.metrics[1 + offset]
        # (Lightning keeps a metric's last value until the epoch ends; the resumed run has
        # only what it logged itself.)
        for key in (k for k in keys if k in metrics):
            assert metrics[key] == expected[key], f"iteration {1 + offset}: {key}"
    assert "train/d_loss" in resumed_rec.metrics[0] and "train/g_adv" in resumed_rec.metrics[-1]
    for a, b in zip(task.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # both networks, batch-norm statistics included

    saved = torch.load(ckpt, weights_only=True)
    assert len(saved["optimizer_states"]) == 2 and len(saved["lr_schedulers"]) == 2
    assert any(k.startswith("discriminator.") for k in saved["state_dict"])
    assert not any(".vgg." in k for k in saved["state_dict"])


class SaveAt(Callback):
    """Saves a checkpoint at the end of one training iteration (after the callbacks before it)."""

    def __init__(self, path: Path, step: int) -> None:
        self.path, self.step = path, step

    def on_train_batch_end(self, trainer, task, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            trainer.save_checkpoint(self.path)


def test_ema_callback_averages_the_generator_for_eval(tmp_path: Path) -> None:
    task = make_task(tmp_path, NO_WARMUP)
    ckpt = tmp_path / "ema.ckpt"
    # Saved during training: at its end the callback copies the averages into the task.
    fit(task, steps=2, callbacks=[EMAWeightAveraging(decay=0.5), SaveAt(ckpt, step=2)])
    saved = torch.load(ckpt, weights_only=True)
    # Lightning's layout: the averages in state_dict, the live weights beside them.
    assert "current_model_state" in saved and "averaging_state" in saved
    average, where = read_state_dict(ckpt)
    assert "averaged" in where
    live = {k[4:]: v for k, v in saved["current_model_state"].items() if k.startswith("net.")}
    assert average.keys() == live.keys()
    assert any(not torch.equal(average[k], live[k]) for k in live)
    # Evaluation code loads the averaged generator through load_pretrained.
    generator = make_task(tmp_path).net
    load_pretrained(generator, ckpt)
    assert all(torch.equal(generator.state_dict()[k], v) for k, v in average.items())


def test_generator_init_loads_a_psnr_checkpoint(tmp_path: Path) -> None:
    psnr = make_task(tmp_path).net
    with torch.no_grad():
        psnr.conv_last.weight.fill_(0.25)
    weights = tmp_path / "rrdb.pth"
    torch.save({"state_dict": {f"net.{k}": v for k, v in psnr.state_dict().items()}}, weights)
    task = make_task(tmp_path, [f"model.generator_init={weights}"])
    assert torch.equal(task.net.conv_last.weight, psnr.conv_last.weight)
    with pytest.raises(Exception, match="set only one"):
        make_task(tmp_path, [f"model.generator_init={weights}", f"model.pretrained={weights}"])


def read_finished_run(run_dir: Path, last_key: str, timeout: float = 30.0) -> OfflineRun:
    """The offline run once its last metric is on disk.

    ``wandb.finish()`` (0.31, offline) returns before the service has written the run when it
    is not the process's first run (as in a test session): the file is read until the last
    logged key shows up.
    """
    deadline = time.monotonic() + timeout
    while True:
        run = read_offline_run(run_dir)
        logged = run.keys()
        if last_key in logged or time.monotonic() > deadline:
            return run
        time.sleep(0.2)


@pytest.fixture
def offline_wandb(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-staging"))
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_smoke_experiment_logs_every_gan_metric(tmp_path: Path, offline_wandb) -> None:
    out = tmp_path / "run"
    overrides = [
        *SMOKE,
        "debug=fast",
        "data.patch_size=128",  # the VGG-style discriminator's input size
        "model.g_steps_before_d=1",
        "model.d_warmup_steps=1",
        "trainer.val_check_interval=4",  # one validation, one image, and a one-image test
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
    ]
    train(compose_config(out, overrides))
    run = read_finished_run(offline_runs(out)[0], last_key="test/psnr")
    keys = run.keys()
    for key in (*GAN_METRICS, "val/psnr", "test/psnr", "lr-generator", "lr-discriminator"):
        assert key in keys, f"{key} not logged; logged: {sorted(keys)}"
    assert run.name.startswith("esrgan-x4-sample")
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4


def test_training_without_vgg_weights_is_a_config_error(tmp_path: Path, offline_wandb) -> None:
    overrides = ["debug=fast", "data.patch_size=128"]
    cfg = compose_config(
        tmp_path, [*SMOKE, *overrides, "model.loss.perceptual.allow_random_weights=false"]
    )
    with pytest.raises(ConfigError, match="no VGG19 weights"):
        train(cfg)

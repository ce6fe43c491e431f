"""Training and inference throughput of one configuration, in one process and one table.

``python benchmarks/throughput.py [model=edsr_baseline] [scale=2] [key=value ...]`` takes Hydra
overrides over the real training config (``conf/train.yaml``) and measures, in order:

1. **Loader alone** (patches/s): the training ``DataLoader`` of ``cfg.data``, decoding every
   image at every sample (``data.cache=false``) and reading the decoded-image cache
   (``data.cache=true``), with the config's loader workers.
2. **Training step alone** (patches/s) on one synthetic batch of the configured size, for
   each setting of ``bench.settings`` (precision, channels-last layout, ``torch.compile``),
   through Lightning and the task's own ``training_step``: no data loading. The settings are
   timed in interleaved rounds (``bench.rounds``), so that load from other processes, which
   comes and goes on a shared machine, weighs on all of them alike. The first step
   (compilation, kernel selection) is timed separately.
3. **Full training loop** (patches/s): short ``Trainer.fit`` runs on the cached loader in the
   fastest setting of 2, alternating with runs of that setting's step alone; the ratio of the
   two is the share of the step's speed that the loop keeps.
4. **Task against a bare loop** (patches/s): the task's fp32 eager step (as in 2) and a plain
   PyTorch loop on the same network and batch (``zero_grad``, ``net(lr)``, L1, ``backward``,
   Adam ``step``: what BasicSR-style trainers run), alternating in ``bench.bare_rounds``
   rounds; the table prints the ratio task/bare of every round and their median.
5. **Inference** (SR megapixels/s, peak resident memory): ``srlab.imaging.predict.make_predictor``
   on a ``bench.infer_size`` square LR image, whole and tiled (``bench.tile``,
   ``bench.tile_overlap``), alternating in ``bench.infer_rounds`` rounds (medians, and the
   ratio tiled/whole per round), in the precision and layout of the fastest setting.
6. **Degradation pipeline** (patches/s): Real-ESRGAN's degradation model
   (:mod:`srlab.data.degradations`; ``data.degradation`` when set, else its defaults) on one
   synthetic HR batch of the configured size on the training device, alternating with the fp32
   eager training step in ``bench.degrade_rounds`` rounds; the table prints the degradation's
   cost as a share of a step (step time / degradation time inverted: the target is < 10 % of an
   RRDB x4 step, ``model=rrdb scale=4``). ``bench.degradation_only=true`` runs this section
   alone.

Defaults (each applies unless the command line names its key): EDSR-baseline x2, batch 16,
LR patch 48 (HR 96), no logger, and the training config's default data, the photos bundled
with scikit-image (``data=sample``, about 512x512 each), so that it runs on any machine. The
loader figures depend on the image size: for DIV2K's 2K images use ``data=div2k`` (DIV2K
under ``data.root``) or ``data=folder data.hr_dir=<folder of 2K PNGs>``.
Benchmark options live under ``bench.`` (``bench.steps=10``, ``bench.settings=[fp32_eager,
bf16_cl]``; see :data:`BENCH_DEFAULTS`).

Writes ``throughput.json`` and ``throughput.md`` to the run's output dir
(``outputs/throughput/runs/<date>_<time>_<id>/``) and prints the table. Numbers depend on
everything else the machine runs: the JSON records the load average before and after. The
network's weights are random (speed does not depend on them).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf, open_dict
from torch.utils.data import DataLoader, Dataset

from srlab.data.datamodule import usable_cpus
from srlab.data.degradations import RealESRGANDegradation, sample_seed, stack_params
from srlab.errors import ConfigError
from srlab.imaging.predict import autocast_dtype, make_predictor, resolve_device
from srlab.imaging.tiling import tile_work
from srlab.models.channels import training_channels
from srlab.runtime.config_check import check_targets
from srlab.runtime.hydra import configure_hydra, report_user_errors
from srlab.tracking.throughput import slow_precision_warning

REPO_ROOT = Path(__file__).resolve().parents[1]

#: Benchmark options (``bench.<key>=<value>`` on the command line).
BENCH_DEFAULTS: dict[str, Any] = {
    # Training-step settings: precision (fp32 | bf16 | fp16), then _cl (channels-last) and/or
    # _compile (torch.compile of the network); fp32_eager is the reference. auto: the bf16
    # settings where bf16 is fast (GPUs, AVX-512/AMX CPUs), else fp32 ones (AVX2 CPUs, where
    # bf16 steps are over 10x slower than fp32: srlab.tracking.throughput.slow_precision_warning).
    "settings": "auto",
    # Settings are timed in rounds, each fitting every setting again for warmup + steps steps,
    # so that other processes' load, which comes and goes, weighs on all settings alike.
    "rounds": 2,
    "warmup": 1,  # untimed steps per fit (the first fit of a setting compiles)
    "steps": 2,  # timed steps per fit
    "loader_batches": 40,  # timed batches of the cached loader
    "decode_batches": 3,  # timed batches of the decoding loader (slow: ~0.1 s per patch)
    "loop_warmup": 2,  # untimed steps per fit of the full loop (loader workers start)
    "loop_steps": 4,  # timed steps per fit of the full loop (and of the best step beside it)
    # The task's fp32 eager step against a plain PyTorch loop on the same network and batch,
    # alternating in this many rounds (warmup + steps steps each); their ratio's median.
    "bare_rounds": 7,
    "infer_size": 512,  # side of the square LR image of the inference section
    "infer_rounds": 3,  # rounds alternating tiled and whole inference
    "tile": 128,  # LR tile side of tiled inference
    "tile_overlap": 16,  # LR pixels of context per tile side
    # Rounds alternating the degradation pipeline (one batch) with the fp32 eager step; 0: skip.
    "degrade_rounds": 3,
    "degradation_only": False,  # true: only the degradation section (and its step rounds)
}

#: The training config's defaults for this benchmark, overridden by the command line.
CONFIG_DEFAULTS = {
    "model": "edsr_baseline",
    "scale": 2,
    "data.batch_size": 16,
    "data.patch_size": 96,
    # A small set (10 photos, or a few 2K images): each is visited many times per epoch, so
    # that no timed section runs into the end of an epoch.
    "data.repeat": 400,
    "logger": "none",
    "task_name": "throughput",
}

_PRECISIONS = {"fp32": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}
_FAST_BF16_SETTINGS = ["fp32_eager", "fp32_cl", "bf16", "bf16_cl", "bf16_cl_compile"]
_FP32_SETTINGS = ["fp32_eager", "fp32_cl", "fp32_compile", "fp32_cl_compile"]


def benchmark_overrides(argv: Sequence[str]) -> list[str]:
    """``argv`` (Hydra overrides) after this benchmark's defaults for every key it leaves out.

    ``bench.*`` keys are added to the training config first (``+bench.steps=6``), so that the
    command line sets them as plain ``bench.steps=10``.
    """
    named = {arg.split("=", 1)[0].lstrip("+~") for arg in argv if "=" in arg}
    added = {arg.split("=", 1)[0][1:] for arg in argv if arg.startswith("+") and "=" in arg}
    defaults = [f"{key}={value}" for key, value in CONFIG_DEFAULTS.items() if key not in named]
    for key, value in BENCH_DEFAULTS.items():
        if f"bench.{key}" not in added:
            text = f"[{','.join(value)}]" if isinstance(value, list) else value
            defaults.append(f"+bench.{key}={text}")
    return [*defaults, *argv]


# -- settings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StepSetting:
    """How the training step runs: ``trainer.precision``, ``model.channels_last`` and
    ``model.compile``, named as in ``bench.settings`` (``bf16_cl_compile``)."""

    name: str
    precision: str
    channels_last: bool
    compile: bool

    @classmethod
    def parse(cls, name: str) -> StepSetting:
        """``fp32_eager``, ``bf16``, ``bf16_cl``, ``fp16_cl_compile`` ... -> a setting.

        Raises:
            ConfigError: an unknown precision or option.
        """
        first, *options = name.split("_")
        unknown = set(options) - {"eager", "cl", "compile"}
        if first not in _PRECISIONS or unknown:
            raise ConfigError(
                f"bench.settings: {name!r} is not <precision>[_cl][_compile] with precision "
                f"in {', '.join(_PRECISIONS)} (e.g. fp32_eager, bf16_cl, bf16_cl_compile)"
            )
        return cls(name, _PRECISIONS[first], "cl" in options, "compile" in options)


def benchmark_device(cfg: DictConfig) -> torch.device:
    """The device ``cfg.trainer.accelerator`` trains on (``auto``: CUDA when available)."""
    accelerator = str(cfg.trainer.accelerator)
    return resolve_device({"gpu": "cuda", "cuda": "cuda", "cpu": "cpu"}.get(accelerator, "auto"))


def step_settings(cfg: DictConfig, device: torch.device) -> tuple[list[str], str]:
    """The names of ``bench.settings`` (``auto`` resolved for ``device``), and a note on what
    ``auto`` left out and why (empty when nothing)."""
    if cfg.bench.settings != "auto":
        return list(cfg.bench.settings), ""
    reason = slow_precision_warning("bf16-mixed", device)
    if reason:
        return list(_FP32_SETTINGS), f"bf16 settings left out: {reason}"
    return list(_FAST_BF16_SETTINGS), ""


def task_config(cfg: DictConfig, setting: StepSetting) -> DictConfig:
    """``cfg.model`` with the setting's layout and compile flags."""
    node = cfg.model.copy()
    with open_dict(node):
        node.channels_last = setting.channels_last
        node.compile = setting.compile
    return node


def make_trainer(
    cfg: DictConfig, setting: StepSetting, max_steps: int, callbacks: list[Callback]
) -> L.Trainer:
    """``cfg.trainer`` for a timed fit: one device, the setting's precision, no validation,
    logging, checkpoints or progress bar."""
    return instantiate(
        cfg.trainer,
        devices=1,
        num_nodes=1,
        precision=setting.precision,
        max_steps=max_steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


# -- timing -------------------------------------------------------------------------------


class StepClock(Callback):
    """Wall-clock time at the start of training and at the end of every training batch, so
    the time between two batch ends includes waiting for the next batch."""

    def __init__(self) -> None:
        super().__init__()
        self.start = 0.0
        self.ends: list[float] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start the clock."""
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        """Record the end of a batch (after its optimizer step)."""
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        self.ends.append(time.perf_counter())

    def timed(self, warmup: int) -> tuple[int, float]:
        """Steps and seconds after the first ``warmup`` steps (>= 1): from the end of the
        last untimed step to the end of the last step."""
        window = self.ends[warmup - 1 :]
        if warmup < 1 or len(window) < 2:
            raise ValueError(f"{len(self.ends)} steps ran with warmup={warmup}: need >= 1 each")
        return len(window) - 1, window[-1] - window[0]

    @property
    def first_step_s(self) -> float:
        """Seconds of the first step (with compilation and kernel selection)."""
        return self.ends[0] - self.start


@dataclass
class Timing:
    """Timed steps and their seconds, summed over the fits of one setting."""

    steps: int = 0
    seconds: float = 0.0
    first_step_s: float | None = None  # of the first fit

    def add(self, clock: StepClock, warmup: int) -> None:
        """Add the timed steps of one fit."""
        steps, seconds = clock.timed(warmup)
        self.steps += steps
        self.seconds += seconds
        if self.first_step_s is None:
            self.first_step_s = clock.first_step_s

    def patches_per_s(self, batch_size: int) -> float:
        """Patches per second over every timed step."""
        return batch_size * self.steps / self.seconds


class _SameBatch(Dataset):
    """``length`` times the same batch (a DataLoader with ``batch_size=None`` passes it on)."""

    def __init__(self, batch: dict, length: int) -> None:
        self.batch, self.length = batch, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        return self.batch


class SyntheticBatches(L.LightningDataModule):
    """One random batch of the configured size, repeated: the training step without loading.

    HR patches are uniform noise and LR their ``scale`` x ``scale`` box average (any values
    serve for timing). No evaluation sets.
    """

    val_set_names: list[str] = []
    test_set_names: list[str] = []

    def __init__(self, batch_size: int, patch_size: int, scale: int, length: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        hr = torch.rand(batch_size, 3, patch_size, patch_size, generator=generator)
        self.batch = {"lr": F.avg_pool2d(hr, scale), "hr": hr}
        self.length = length

    def train_dataloader(self) -> DataLoader:
        """The same batch ``length`` times, on the main process."""
        return DataLoader(_SameBatch(self.batch, self.length), batch_size=None)


@contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, float]]:
    """Peak resident memory of this process (MB) within the block, and peak CUDA memory.

    Linux resets the peak (``VmHWM``) when ``5`` is written to ``/proc/self/clear_refs``;
    elsewhere the peak is that of the whole process so far (``ru_maxrss``).
    """
    _release_free_memory()
    result: dict[str, float] = {"rss_before_mb": _rss_mb()}
    resettable = _reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    yield result
    result["peak_rss_mb"] = _peak_rss_mb() if resettable else _lifetime_peak_rss_mb()
    if device.type == "cuda":
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2**20


def _release_free_memory() -> None:
    """Return freed heap pages to the system (glibc ``malloc_trim``), so that memory an
    earlier section freed but the process kept does not hide the next section's peak."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    return _proc_status_mb("VmHWM:") or _lifetime_peak_rss_mb()


def _rss_mb() -> float:
    return _proc_status_mb("VmRSS:")


def _proc_status_mb(field: str) -> float:
    """A memory field of ``/proc/self/status`` in MB (0 where there is none)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0


def _lifetime_peak_rss_mb() -> float:
    # ru_maxrss is in kB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 1024)


# -- sections -----------------------------------------------------------------------------


def measure_loader(cfg: DictConfig, cache: bool, batches: int) -> dict[str, float]:
    """Patches per second of the training loader of ``cfg.data``, with the decoded-image
    cache or decoding every image at every sample (``in_memory`` off in both).

    The first batch (worker start-up, the cache's first reads) is not timed.
    """
    node = cfg.data.copy()
    with open_dict(node):
        node.cache = cache
        node.in_memory = False
    datamodule = instantiate(node, _convert_="all")
    datamodule.prepare_data()  # builds the cache (once: later runs find it)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    batch_iter = _endless(loader)
    next(batch_iter)
    patches, start = 0, time.perf_counter()
    for _ in range(batches):
        patches += next(batch_iter)["lr"].shape[0]
    elapsed = time.perf_counter() - start
    return {"patches_per_s": patches / elapsed, "workers": loader.num_workers}


def _endless(loader: DataLoader) -> Iterator[dict]:
    while True:
        yield from loader


def build_task(cfg: DictConfig, setting: StepSetting) -> L.LightningModule:
    """The task of ``cfg.model`` in ``setting`` (seeded: every setting starts alike)."""
    L.seed_everything(cfg.seed, verbose=False)
    return instantiate(task_config(cfg, setting), _convert_="all")


def timed_fit(
    cfg: DictConfig,
    setting: StepSetting,
    task: L.LightningModule,
    datamodule: L.LightningDataModule,
    warmup: int,
    steps: int,
    timing: Timing,
) -> None:
    """Fit ``task`` for ``warmup + steps`` steps with a new trainer; add the timed steps to
    ``timing``. A task fitted again keeps its compiled network (no second compilation)."""
    clock = StepClock()
    make_trainer(cfg, setting, warmup + steps, [clock]).fit(task, datamodule=datamodule)
    timing.add(clock, warmup)


def synthetic_data(cfg: DictConfig, length: int) -> SyntheticBatches:
    """Synthetic batches of the configured batch and patch size."""
    patch = cfg.data.patch_size - cfg.data.patch_size % cfg.scale
    return SyntheticBatches(cfg.data.batch_size, patch, cfg.scale, length)


def measure_steps(
    cfg: DictConfig, settings: Sequence[StepSetting], rounds: int, warmup: int, steps: int
) -> dict[str, Timing]:
    """The training step alone (one synthetic batch, repeated) in every setting, timed in
    ``rounds`` interleaved rounds; one task per setting, built and compiled once."""
    data = synthetic_data(cfg, warmup + steps)
    tasks = {setting.name: build_task(cfg, setting) for setting in settings}
    timings = {setting.name: Timing() for setting in settings}
    for _ in range(rounds):
        for setting in settings:
            task, timing = tasks[setting.name], timings[setting.name]
            timed_fit(cfg, setting, task, data, warmup, steps, timing)
    return timings


def measure_train_loop(
    cfg: DictConfig, setting: StepSetting, rounds: int, warmup: int, steps: int
) -> dict[str, Timing]:
    """The full loop (``Trainer.fit`` on the cached loader of ``cfg.data``) and, alternating
    with it in ``rounds`` rounds, the training step alone, both in ``setting``: their ratio
    is then measured under the same load."""
    node = cfg.data.copy()
    with open_dict(node):
        node.cache = True
    datamodule = instantiate(node, _convert_="all")
    datamodule.prepare_data()
    data = synthetic_data(cfg, 1 + steps)
    task = build_task(cfg, setting)
    timings = {"step": Timing(), "loop": Timing()}
    for _ in range(rounds):
        timed_fit(cfg, setting, task, data, 1, steps, timings["step"])
        timed_fit(cfg, setting, task, datamodule, warmup, steps, timings["loop"])
    return timings


class BareLoop:
    """The training step without the task or Lightning: ``zero_grad``, ``net(lr)``, L1,
    ``backward``, Adam ``step``, on the network of ``cfg.model.net`` (seeded as the task's)
    with the optimizer of ``cfg.model.optimizer``, on one fixed batch."""

    def __init__(self, cfg: DictConfig, batch: dict) -> None:
        L.seed_everything(cfg.seed, verbose=False)
        device = benchmark_device(cfg)
        self.net = instantiate(cfg.model.net, _convert_="all").to(device).train()
        self.optimizer = instantiate(cfg.model.optimizer)(self.net.parameters())
        # The batch in the network's channels, as the task trains it (Y for SRCNN/FSRCNN/VDSR).
        lr, hr = training_channels(self.net, batch["lr"].to(device), batch["hr"].to(device))
        self.lr, self.hr = lr, hr
        self.cuda = device.type == "cuda"

    def step(self) -> float:
        """One step; returns its seconds."""
        start = time.perf_counter()
        self.optimizer.zero_grad()
        loss = F.l1_loss(self.net(self.lr), self.hr)
        loss.backward()
        self.optimizer.step()
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    def timed(self, warmup: int, steps: int) -> Timing:
        """``warmup`` untimed steps, then ``steps`` timed ones."""
        for _ in range(warmup):
            self.step()
        return Timing(steps, sum(self.step() for _ in range(steps)))


def measure_task_vs_bare(
    cfg: DictConfig, rounds: int, warmup: int, steps: int
) -> dict[str, list[float]]:
    """Patches per second of the task's fp32 eager training step (``Trainer.fit`` on one
    synthetic batch) and of :class:`BareLoop` on that batch, alternating in ``rounds`` rounds
    (ABBA order, so that a trend in the machine's load weighs on both alike): one figure per
    round each, and their ratio per round."""
    setting = StepSetting.parse("fp32_eager")
    data = synthetic_data(cfg, warmup + steps)
    task = build_task(cfg, setting)
    bare = BareLoop(cfg, data.batch)
    batch = cfg.data.batch_size
    result: dict[str, list[float]] = {"task": [], "bare": [], "ratio": []}
    for index in range(rounds):
        rates = {}
        for name in ("task", "bare") if index % 2 == 0 else ("bare", "task"):
            if name == "task":
                timing = Timing()
                timed_fit(cfg, setting, task, data, warmup, steps, timing)
            else:
                timing = bare.timed(warmup, steps)
            rates[name] = timing.patches_per_s(batch)
        result["task"].append(rates["task"])
        result["bare"].append(rates["bare"])
        result["ratio"].append(rates["task"] / rates["bare"])
    return result


def measure_inference(
    cfg: DictConfig, setting: StepSetting, size: int, tile: int, overlap: int, rounds: int
) -> dict[str, dict[str, Any]]:
    """SR megapixels per second of one ``size`` x ``size`` RGB LR image, ``tiled`` and
    ``untiled`` (whole), alternating in ``rounds`` rounds, in the precision and layout of
    ``setting`` (eager); and each one's peak memory, from the first round.

    The first round runs the tiled pass first: the allocator keeps the whole pass's memory,
    which would hide the tiled pass's own peak. Later rounds alternate the order.
    """
    device = benchmark_device(cfg)
    precision = "32" if setting.precision == "32-true" else setting.precision
    dtype = autocast_dtype(precision, device)
    torch.manual_seed(cfg.seed)
    net = instantiate(cfg.model.net, _convert_="all").eval().to(device)
    if setting.channels_last:
        net = net.to(memory_format=torch.channels_last)
    predictors = {
        "tiled": make_predictor(net, cfg.scale, tile, overlap, dtype=dtype),
        "untiled": make_predictor(net, cfg.scale, None, overlap, dtype=dtype),
    }
    lr = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    results: dict[str, dict[str, Any]] = {name: {"rounds": []} for name in predictors}
    with torch.inference_mode():
        predictors["untiled"](lr[..., : min(size, 64), : min(size, 64)])  # kernel selection
        for index in range(rounds):
            order = ("tiled", "untiled") if index % 2 == 0 else ("untiled", "tiled")
            for name in order:
                with peak_memory(device) as memory:
                    start = time.perf_counter()
                    sr = predictors[name](lr)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    elapsed = time.perf_counter() - start
                del sr
                results[name]["rounds"].append(size * size * cfg.scale**2 / 1e6 / elapsed)
                if index == 0:
                    results[name].update(memory)
    for result in results.values():
        result["megapixels_per_s"] = statistics.median(result["rounds"])
    return results


def measure_degradation(
    cfg: DictConfig, rounds: int, warmup: int, steps: int
) -> dict[str, list[float]]:
    """Patches per second of the degradation pipeline on one synthetic HR batch (fresh
    parameters each round, drawn outside the timing, as loader workers draw them) and of the
    fp32 eager training step, alternating in ``rounds`` rounds (ABBA order); per round each,
    and the degradation's cost as a share of the step (step rate / degradation rate)."""
    device = benchmark_device(cfg)
    spec = OmegaConf.select(cfg, "data.degradation")
    degrade = RealESRGANDegradation(
        None if spec is None else OmegaConf.to_container(spec, resolve=True)
    )
    data = synthetic_data(cfg, warmup + steps)
    hr = data.batch["hr"].to(device)
    size = hr.shape[0]

    def params(round_index: int) -> dict[str, torch.Tensor]:
        seeds = range(round_index * size, (round_index + 1) * size)
        return stack_params([degrade.draw(sample_seed(seed)) for seed in seeds])

    degrade(hr, params(rounds), cfg.scale)  # untimed: first-call kernel selection
    setting = StepSetting.parse("fp32_eager")
    task = build_task(cfg, setting)
    result: dict[str, list[float]] = {"degrade": [], "step": [], "cost": []}
    for index in range(rounds):
        rates = {}
        for name in ("degrade", "step") if index % 2 == 0 else ("step", "degrade"):
            if name == "step":
                timing = Timing()
                timed_fit(cfg, setting, task, data, warmup, steps, timing)
                rates[name] = timing.patches_per_s(cfg.data.batch_size)
                continue
            drawn = params(index)
            start = time.perf_counter()
            degrade(hr, drawn, cfg.scale)
            if device.type == "cuda":
                torch.cuda.synchronize()
            rates[name] = size / (time.perf_counter() - start)
        result["degrade"].append(rates["degrade"])
        result["step"].append(rates["step"])
        result["cost"].append(rates["step"] / rates["degrade"])
    return result


def degradation_results(cfg: DictConfig) -> dict[str, Any]:
    """The degradation section's flat results (``degradation_*`` keys)."""
    bench = cfg.bench
    measured = measure_degradation(cfg, bench.degrade_rounds, bench.warmup, bench.steps)
    return {
        "degradation_patches_per_s_rounds": measured["degrade"],
        "degradation_step_patches_per_s_rounds": measured["step"],
        "degradation_cost_ratios": measured["cost"],
        "degradation_patches_per_s": statistics.median(measured["degrade"]),
        "degradation_step_patches_per_s": statistics.median(measured["step"]),
        "degradation_cost_ratio": statistics.median(measured["cost"]),
    }


def degradation_row(results: dict[str, Any]) -> tuple[str, str, str, str]:
    """The table row of the degradation section."""
    rounds = ", ".join(f"{r:.1%}" for r in results["degradation_cost_ratios"])
    return (
        "degradation pipeline (Real-ESRGAN, one batch)",
        "on the training device",
        f"{results['degradation_patches_per_s']:.1f} patches/s",
        f"{results['degradation_cost_ratio']:.1%} of an fp32 eager training step "
        f"({results['degradation_step_patches_per_s']:.2f} patches/s) timed alternately "
        f"(median; rounds: {rounds})",
    )


def _header(results: dict[str, Any]) -> str:
    return (
        f"Throughput of {results['model']} x{results['scale']}, batch {results['batch_size']}, "
        f"LR patch {results['lr_patch']}; {results['torch_threads']} torch threads, "
        f"{results['usable_cpus']} usable CPUs; load average "
        f"{results['loadavg_before'][0]:.2f} before, {results['loadavg_after'][0]:.2f} after."
    )


# -- the benchmark ------------------------------------------------------------------------


def run_benchmark(cfg: DictConfig) -> dict[str, Any]:
    """Every section of the benchmark on ``cfg`` (a training config with a ``bench`` node);
    returns the flat results that :func:`write_results` stores."""
    for group in ("data", "model", "trainer"):
        check_targets(cfg.get(group), group)
    bench = cfg.bench
    names, note = step_settings(cfg, benchmark_device(cfg))
    settings = [StepSetting.parse(name) for name in names]
    if "fp32_eager" not in [s.name for s in settings]:
        raise ConfigError("bench.settings must include fp32_eager, the reference setting")
    results: dict[str, Any] = {
        "model": OmegaConf.select(cfg, "model.net._target_"),
        "scale": cfg.scale,
        "batch_size": cfg.data.batch_size,
        "lr_patch": cfg.data.patch_size // cfg.scale,
        "torch_threads": torch.get_num_threads(),
        "usable_cpus": usable_cpus(),
        "loadavg_before": list(os.getloadavg()),
        "step_settings": names,
        "step_settings_note": note,
    }
    if bench.degradation_only:
        results.update(degradation_results(cfg))
        results["loadavg_after"] = list(os.getloadavg())
        return results

    decode = measure_loader(cfg, cache=False, batches=bench.decode_batches)
    cached = measure_loader(cfg, cache=True, batches=bench.loader_batches)
    results.update(
        loader_workers=cached["workers"],
        loader_decode_patches_per_s=decode["patches_per_s"],
        loader_cached_patches_per_s=cached["patches_per_s"],
    )

    batch = cfg.data.batch_size
    timings = measure_steps(cfg, settings, bench.rounds, bench.warmup, bench.steps)
    for name, timing in timings.items():
        results[f"step_{name}_patches_per_s"] = timing.patches_per_s(batch)
        results[f"step_{name}_first_step_s"] = timing.first_step_s
    best = max(settings, key=lambda s: results[f"step_{s.name}_patches_per_s"])
    results["step_best_setting"] = best.name
    results["step_best_patches_per_s"] = results[f"step_{best.name}_patches_per_s"]

    loop = measure_train_loop(cfg, best, bench.rounds, bench.loop_warmup, bench.loop_steps)
    results["train_loop_patches_per_s"] = loop["loop"].patches_per_s(batch)
    results["train_loop_step_patches_per_s"] = loop["step"].patches_per_s(batch)

    bare = measure_task_vs_bare(cfg, bench.bare_rounds, bench.warmup, bench.steps)
    results["task_vs_bare_task_patches_per_s"] = bare["task"]
    results["task_vs_bare_bare_patches_per_s"] = bare["bare"]
    results["task_vs_bare_ratios"] = bare["ratio"]
    results["task_vs_bare_ratio"] = statistics.median(bare["ratio"])

    infer = measure_inference(
        cfg, best, bench.infer_size, bench.tile, bench.tile_overlap, bench.infer_rounds
    )
    for name, values in infer.items():
        for key, value in values.items():
            results[f"infer_{name}_{key}"] = value
    results["infer_tiled_ratios"] = [
        tiled / whole
        for tiled, whole in zip(infer["tiled"]["rounds"], infer["untiled"]["rounds"], strict=True)
    ]
    results["infer_tiled_ratio"] = statistics.median(results["infer_tiled_ratios"])
    results["infer_tile"], results["infer_tile_overlap"] = bench.tile, bench.tile_overlap
    size = bench.infer_size
    results["infer_tile_work"] = tile_work(size, size, bench.tile, bench.tile_overlap)
    if bench.degrade_rounds > 0:
        results.update(degradation_results(cfg))
    results["loadavg_after"] = list(os.getloadavg())
    return results


def done_when(results: dict[str, Any]) -> list[tuple[str, float, float]]:
    """The issue's targets: (what, measured ratio, required ratio)."""
    degradation = []
    if "degradation_cost_ratio" in results:
        degradation = [
            (
                "training step time / degradation time (fp32 eager, median; >= 10: the "
                "degradation costs < 10 % of a step)",
                1.0 / results["degradation_cost_ratio"],
                10.0,
            )
        ]
    if "step_best_patches_per_s" not in results:  # bench.degradation_only
        return degradation
    return degradation + [
        (
            "cached loader / decoding loader",
            results["loader_cached_patches_per_s"] / results["loader_decode_patches_per_s"],
            20.0,
        ),
        (
            "best step / fp32 eager step",
            results["step_best_patches_per_s"] / results["step_fp32_eager_patches_per_s"],
            2.0,
        ),
        (
            "full loop / best step (timed alternately)",
            results["train_loop_patches_per_s"] / results["train_loop_step_patches_per_s"],
            0.8,
        ),
        (
            f"task step / bare PyTorch loop (median of {len(results['task_vs_bare_ratios'])} "
            "rounds)",
            results["task_vs_bare_ratio"],
            0.97,
        ),
        (
            f"tiled / whole inference (median of {len(results['infer_tiled_ratios'])} rounds; "
            f"{results['infer_tile_work']:.2f}x the pixels computed)",
            results["infer_tiled_ratio"],
            0.9,
        ),
    ]


def markdown_table(results: dict[str, Any]) -> str:
    """The results as a markdown table, then the targets and the conditions."""
    if "step_best_patches_per_s" not in results:  # bench.degradation_only
        return degradation_table(results)
    reference = results["step_fp32_eager_patches_per_s"]
    best = results["step_best_setting"]
    count = results["loader_workers"]
    workers = f"{count} loader worker{'' if count == 1 else 's'}"
    rows = [
        (
            "loader, decoding every sample",
            workers,
            f"{results['loader_decode_patches_per_s']:.1f} patches/s",
            "",
        ),
        (
            "loader, decoded-image cache",
            workers,
            f"{results['loader_cached_patches_per_s']:.1f} patches/s",
            "",
        ),
    ]
    for name in results["step_settings"]:
        rate = results[f"step_{name}_patches_per_s"]
        first = results[f"step_{name}_first_step_s"]
        rows.append(
            (
                "training step (synthetic batch)",
                name + (" (best)" if name == best else ""),
                f"{rate:.1f} patches/s",
                f"{rate / reference:.2f}x fp32 eager; first step {first:.1f} s",
            )
        )
    rows.append(
        (
            "full training loop (Trainer.fit)",
            f"{best}, cached loader",
            f"{results['train_loop_patches_per_s']:.1f} patches/s",
            f"{results['train_loop_patches_per_s'] / results['train_loop_step_patches_per_s']:.0%}"
            f" of the best step timed alternately with it "
            f"({results['train_loop_step_patches_per_s']:.1f} patches/s)",
        )
    )
    task, bare = (
        results["task_vs_bare_task_patches_per_s"],
        results["task_vs_bare_bare_patches_per_s"],
    )
    rows.append(
        (
            "bare PyTorch loop (zero_grad, net, L1, backward, Adam)",
            "fp32_eager, synthetic batch",
            f"{statistics.median(bare):.1f} patches/s",
            f"task step {statistics.median(task):.1f} patches/s in the same rounds; task/bare "
            f"{results['task_vs_bare_ratio']:.3f} (median; rounds: "
            f"{', '.join(f'{r:.3f}' for r in results['task_vs_bare_ratios'])})",
        )
    )
    for name in ("tiled", "untiled"):
        peak, before = results[f"infer_{name}_peak_rss_mb"], results[f"infer_{name}_rss_before_mb"]
        memory = f"peak RSS {peak:.0f} MB ({peak - before:+.0f} MB)"
        if f"infer_{name}_peak_cuda_mb" in results:
            memory += f", peak CUDA {results[f'infer_{name}_peak_cuda_mb']:.0f} MB"
        if name == "tiled":
            memory += (
                f"; tile {results['infer_tile']}, overlap {results['infer_tile_overlap']}; "
                f"tiled/whole {results['infer_tiled_ratio']:.2f} (median; rounds: "
                f"{', '.join(f'{r:.2f}' for r in results['infer_tiled_ratios'])})"
            )
        rows.append(
            (
                f"inference, {name}",
                best.replace("_compile", "").replace("_eager", "") + ", eager",
                f"{results[f'infer_{name}_megapixels_per_s']:.3f} SR MP/s",
                memory,
            )
        )
    if "degradation_cost_ratio" in results:
        rows.append(degradation_row(results))
    lines = [
        _header(results),
        "",
        "| section | setting | throughput | notes |",
        "|---|---|---:|---|",
        *(f"| {' | '.join(row)} |" for row in rows),
        "",
        "| target | measured | required | met |",
        "|---|---:|---:|---|",
        *(
            f"| {what} | {ratio:.2f} | >= {required:g} | {'yes' if ratio >= required else 'no'} |"
            for what, ratio, required in done_when(results)
        ),
    ]
    if results["step_settings_note"]:
        lines += ["", results["step_settings_note"]]
    return "\n".join(lines) + "\n"


def degradation_table(results: dict[str, Any]) -> str:
    """The table of ``bench.degradation_only``: the degradation row and its target."""
    lines = [
        _header(results),
        "",
        "| section | setting | throughput | notes |",
        "|---|---|---:|---|",
        f"| {' | '.join(degradation_row(results))} |",
        "",
        "| target | measured | required | met |",
        "|---|---:|---:|---|",
        *(
            f"| {what} | {ratio:.2f} | >= {required:g} | {'yes' if ratio >= required else 'no'} |"
            for what, ratio, required in done_when(results)
        ),
    ]
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, Any], output_dir: Path) -> str:
    """Write ``throughput.json`` and ``throughput.md`` to ``output_dir``; returns the table."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "throughput.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown_table(results)
    (output_dir / "throughput.md").write_text(table)
    return table


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    """Hydra entry point: run every section, write and print the table."""
    with report_user_errors():
        results = run_benchmark(cfg)
        table = write_results(results, Path(cfg.paths.output_dir))
    print(table)
    print(f"written to {cfg.paths.output_dir}/throughput.json and throughput.md")


if __name__ == "__main__":
    configure_hydra()
    sys.argv[1:] = benchmark_overrides(sys.argv[1:])
    main()

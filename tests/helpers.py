"""Test helpers: composing the real Hydra configs, and reading offline W&B runs."""

from __future__ import annotations

import runpy
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from srlab.runtime.hydra import configure_hydra

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"

_SWIN = ["model.net.embed_dim=12", "model.net.depths=[2]", "model.net.num_heads=[2]"]
_HAT = ["model.net.embed_dim=24", "model.net.depths=[2]", "model.net.num_heads=[2]"]
_HAT += ["model.net.compress_ratio=3", "model.net.squeeze_factor=4"]
_DAT = ["model.net.embed_dim=48", "model.net.depth=[2]", "model.net.num_heads=[2]"]
#: Overrides that make a model config's network tiny, keeping its architecture (the same
#: blocks, attention windows and upsampler), for tests that run it.
TINY_NETS: dict[str, list[str]] = {
    "edsr_baseline": ["model.net.num_block=1", "model.net.num_feat=16"],
    "edsr": ["model.net.num_block=1", "model.net.num_feat=16"],
    "vdsr": ["model.net.num_layers=3", "model.net.num_feat=8"],
    "rrdb": ["model.net.num_block=1", "model.net.num_feat=16", "model.net.num_grow_ch=8"],
    "rcan": [
        "model.net.n_resgroups=1",
        "model.net.n_resblocks=1",
        "model.net.n_feats=16",
        "model.net.reduction=4",
    ],
    "swinir": _SWIN,
    "swinir_light": _SWIN,
    "swinir_real": _SWIN,
    "swin2sr": _SWIN,
    "hat": _HAT,
    "hat_s": _HAT,
    "hat_l": _HAT,
    "dat": _DAT,
    "dat_light": _DAT,
    "span": ["model.net.feature_channels=8"],
    "omnisr": ["model.net.num_feat=16", "model.net.res_num=1"],
    "compact": ["model.net.num_feat=8", "model.net.num_conv=2"],
}


def compose_config(
    output_dir: Path,
    overrides: list[str] = (),
    config_name: str = "train",
    root_dir: Path = REPO_ROOT,
) -> DictConfig:
    """The config a ``python src/<config_name>.py <overrides>`` run launched from ``root_dir``
    would get, writing to ``output_dir``; also sets the HydraConfig singleton as
    ``@hydra.main`` does."""
    configure_hydra()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.root_dir = str(root_dir)
        cfg.paths.output_dir = str(output_dir)
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.runtime.cwd = str(root_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # @hydra.main hands the task the config without its hydra node
    return cfg


def run_script(argv: list[str]) -> int:
    """Run ``python <argv>`` in this process, as a new process would start: without the
    Hydra state an earlier command left (a sweeper that reads ``hydra.sweep.dir`` before Hydra
    sets its runtime config must fail here as it does in a shell); its exit status."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None
    saved = sys.argv
    sys.argv = list(argv)
    try:
        runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exit_:
        return 0 if exit_.code is None else exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = saved
    return 0


@dataclass
class OfflineRun:
    """What an offline W&B run recorded: its id and name, and its history rows."""

    run_id: str = ""
    name: str = ""
    history: list[dict] = field(default_factory=list)

    def keys(self) -> set[str]:
        """Every history key that was logged at least once."""
        return {key for row in self.history for key in row}

    def values(self, key: str) -> list:
        """The logged values of ``key``, in order."""
        return [row[key] for row in self.history if key in row]


def read_offline_run(run_dir: Path, timeout: float = 30.0) -> OfflineRun:
    """Parse ``run-<id>.wandb`` of an offline run folder (W&B's LevelDB-log of protobufs).

    W&B's service may still be writing after ``wandb.finish()`` returns (seen with wandb
    0.31 for the second run of a process): wait up to ``timeout`` s for the run's exit record.
    """
    import json
    import time

    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = Path(run_dir).glob("run-*.wandb")
    deadline = time.monotonic() + timeout
    while True:
        records = _leveldb_records(path.read_bytes())
        kinds = set()
        for data in records:
            record = pb.Record()
            record.ParseFromString(data)
            kinds.add(record.WhichOneof("record_type"))
        if "exit" in kinds or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    run = OfflineRun()
    for data in records:
        record = pb.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.name = record.run.run_id, record.run.display_name
        elif kind == "history":
            row = {}
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                row[key] = json.loads(item.value_json)
            run.history.append(row)
    return run


def _leveldb_records(raw: bytes, block: int = 32768) -> list[bytes]:
    # Format: a 7-byte file header, then 32 KiB blocks of records, each with a 7-byte header
    # (crc32c, length, type: 1 full, 2 first, 3 middle, 4 last); block tails < 7 bytes are padding.
    records, pending, pos = [], b"", 7
    while pos + 7 <= len(raw):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        data = raw[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            records.append(data)
        elif kind == 2:
            pending = data
        elif kind == 3:
            pending += data
        elif kind == 4:
            records.append(pending + data)
    return records


def offline_runs(output_dir: Path) -> list[Path]:
    """The offline W&B run folders of a run's output dir, oldest first."""
    return sorted(Path(output_dir, "wandb").glob("offline-run-*"))


class NaNLoss:
    """A loss that is NaN for the first ``bad_steps`` calls, then L1 (for reliability tests)."""

    def __init__(self, bad_steps: int = 1000) -> None:
        self.bad_steps = bad_steps
        self.calls = 0

    def __call__(self, sr, hr):
        import torch

        self.calls += 1
        loss = torch.nn.functional.l1_loss(sr, hr)
        return loss * float("nan") if self.calls <= self.bad_steps else loss


class NaNOnRank(NaNLoss):
    """NaN for the first ``bad_steps`` calls on DDP rank ``rank`` only, L1 elsewhere."""

    def __init__(self, rank: int = 1, bad_steps: int = 1) -> None:
        import os

        super().__init__(bad_steps if int(os.environ.get("LOCAL_RANK", 0)) == rank else 0)


class SigtermAtStep:
    """A callback that acts as if SIGTERM arrived during training step ``step``.

    It sets the flag Lightning's own SIGTERM handler sets (on its signal connector), so the run
    stops the way a pre-empted one does (``on_exception.ckpt``, exit 143), without signalling
    the test process.
    """

    def __new__(cls, step: int):
        from lightning.pytorch import Callback

        class _SigtermAtStep(Callback):
            def on_train_batch_end(self, trainer, *args) -> None:
                if trainer.global_step == step:
                    trainer._signal_connector.received_sigterm = True

        return _SigtermAtStep()


class RecordTrainingSamples:
    """A callback that writes the names of the patches this rank trained on, per epoch, to
    ``<dirpath>/samples_rank<rank>.json`` (for DDP tests: which rank saw what)."""

    def __new__(cls, dirpath: str):
        import json

        from lightning.pytorch import Callback

        class _Record(Callback):
            def __init__(self) -> None:
                self.names: dict[int, list[str]] = {}

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
                self.names.setdefault(trainer.current_epoch, []).extend(batch["name"])

            def on_train_end(self, trainer, module) -> None:
                path = Path(dirpath, f"samples_rank{trainer.global_rank}.json")
                path.write_text(json.dumps(self.names))

        return _Record()

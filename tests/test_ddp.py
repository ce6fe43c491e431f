"""DDP on CPU (gloo): every evaluation image is scored once, so Set5 under 2 ranks equals Set5
in one process. A subprocess: Lightning re-launches the script for the second rank."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO_ROOT, compose_config, offline_runs
from hydra.utils import instantiate

from srlab.data.catalog import SAMPLE_TRAIN_FILES
from srlab.metrics import PSNRY, SSIMY


def _last_values(metrics_csv: Path) -> dict[str, float]:
    values: dict[str, float] = {}
    with metrics_csv.open() as file:
        for row in csv.DictReader(file):
            values.update({k: float(v) for k, v in row.items() if v not in ("", None)})
    return values


def test_ddp_cpu_scores_every_image_once(tmp_path: Path, shared_data: Path) -> None:
    benchmarks = shared_data / "benchmarks"
    overrides = [
        "trainer=ddp_cpu", "trainer.devices=2", "debug=fast", "logger=[csv,wandb]",
        "trainer.limit_test_batches=null", "data.test_sets=[set5]",
        f"paths.data_dir={benchmarks}",
    ]  # fmt: skip
    run = tmp_path / "ddp"
    # One epoch: 10 training images, a global batch of 2 (1 per rank), 5 steps.
    record = [
        "trainer.max_steps=5",
        "+callbacks.record._target_=helpers.RecordTrainingSamples",
        f"+callbacks.record.dirpath={run}",
    ]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO_ROOT / "tests")}
    result = subprocess.run(
        [sys.executable, "src/train.py", *overrides, *record, f"hydra.run.dir={run}"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    logged = _last_values(run / "csv" / "version_0" / "metrics.csv")
    assert len(offline_runs(run)) == 1  # rank 1 writes no W&B run of its own

    # The two ranks split the epoch: every training image once, on one rank.
    seen = [json.loads((run / f"samples_rank{r}.json").read_text())["0"] for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == 5
    assert sorted(seen[0] + seen[1]) == sorted(Path(f).stem for f in SAMPLE_TRAIN_FILES)

    # The same best checkpoint scored in this one process, image by image.
    cfg = compose_config(tmp_path / "single", overrides[2:])
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.setup("test")
    task = instantiate(cfg.model, _convert_="all")
    (best,) = (run / "checkpoints").glob("best_*.ckpt")
    state = torch.load(best, weights_only=True)["state_dict"]
    task.load_state_dict(state, strict=False)
    psnr, ssim = PSNRY(shave=2), SSIMY(shave=2)
    (loader,) = datamodule.test_dataloader()
    with torch.no_grad():
        for batch in loader:
            sr = task(batch["lr"]).clamp(0, 1)
            psnr.update(sr, batch["hr"])
            ssim.update(sr, batch["hr"])
    assert logged["test/Set5/psnr"] == pytest.approx(psnr.compute().item(), abs=1e-6)
    assert logged["test/Set5/ssim"] == pytest.approx(ssim.compute().item(), abs=1e-6)
    assert int(psnr.count) == 5

"""Run records and `src/compare.py`: a two-job sweep trained in-process, then compared."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import REPO_ROOT, compose_config
from test_tracking import assert_git_state
from torch.utils.data import DataLoader, TensorDataset

from srlab.app.compare import compare, main
from srlab.app.train import train
from srlab.errors import SRLabError
from srlab.tracking import RunRecords
from srlab.tracking.records import read_run, summarize

# One whole image per validation and test: validation dominates the time of these runs.
FAST = [
    "debug=fast",
    "trainer.accelerator=cpu",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
]
# Two jobs that differ in learning rate and logger: records exist whatever the logger.
JOBS = [
    [*FAST, "model.optimizer.lr=1e-3", "logger=none"],
    [*FAST, "model.optimizer.lr=1e-2", "logger=csv", "test=false"],
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A sweep folder with two finished jobs, ``<sweep>/0`` and ``<sweep>/1``, as ``-m`` makes."""
    sweep = tmp_path_factory.mktemp("multiruns") / "2026-01-02_03-04-05"
    for number, overrides in enumerate(JOBS):
        job_overrides = [*overrides, "hydra.mode=MULTIRUN", f"hydra.sweep.dir={sweep}"]
        train(compose_config(sweep / str(number), job_overrides))
    return sweep


def test_run_records(sweep: Path) -> None:
    run = read_run(sweep / "0")
    summary = run.summary
    assert summary["status"] == "finished"
    assert summary["overrides"] == JOBS[0]
    assert_git_state(summary)
    assert summary["steps"] == 4 and summary["wall_time_s"] > 0
    assert summary["params"] == 121_987  # edsr_tiny at x2
    # debug=fast validates at steps 2 and 4; the bicubic baseline, logged once, is apart.
    assert [row["step"] for row in run.history] == [2, 4]
    for row in run.history:
        assert {"val/psnr", "val/Sample/psnr", "val/Sample/ssim"} <= set(row)
        assert not any(key.endswith("_bicubic") for key in row)
    assert set(summary["bicubic"]) == {"val/Sample/psnr_bicubic", "val/Sample/ssim_bicubic"}
    psnr = [row["val/Sample/psnr"] for row in run.history]
    assert summary["metrics"]["val/Sample/psnr"] == {
        "best": max(psnr),
        "best_step": run.history[psnr.index(max(psnr))]["step"],
        "final": psnr[-1],
    }
    assert "test/Sample/psnr" in summary["test"]  # job 0 tested its best checkpoint
    assert "test" not in read_run(sweep / "1").summary


class _TinyTask(L.LightningModule):
    """A two-parameter task whose validation logs ``val/A/psnr`` = 20 + step."""

    def __init__(self, fail_at_step: int | None = None) -> None:
        super().__init__()
        self.net = torch.nn.Linear(1, 1)
        self.fail_at_step = fail_at_step

    def training_step(self, batch, batch_idx):
        if self.global_step == self.fail_at_step:
            raise RuntimeError("boom")
        return self.net(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx) -> None:
        self.log("val/A/psnr", 20.0 + self.global_step)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.ones(8, 1)), batch_size=2)

    def val_dataloader(self):
        return DataLoader(TensorDataset(torch.ones(2, 1)), batch_size=2)


def test_records_of_a_failed_run_and_of_its_rerun_in_the_same_dir(tmp_path: Path) -> None:
    def fit(task: L.LightningModule) -> None:
        trainer = L.Trainer(
            max_steps=4,
            val_check_interval=2,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[RunRecords(tmp_path)],
        )
        trainer.fit(task)

    with pytest.raises(RuntimeError, match="boom"):
        fit(_TinyTask(fail_at_step=3))
    failed = read_run(tmp_path)
    assert failed.summary["status"] == "failed"
    assert failed.summary["error"] == "RuntimeError: boom"
    assert failed.summary["params"] == 2 and failed.summary["steps"] == 3
    assert [row["step"] for row in failed.history] == [2]

    fit(_TinyTask())  # a re-run in the same dir (without resuming: it starts at step 0)
    rerun = read_run(tmp_path)
    assert rerun.summary["status"] == "finished" and "error" not in rerun.summary
    # Started again at step 0, it trains steps 2 and 4 again: their new rows replace the old.
    assert [row["step"] for row in rerun.history] == [2, 4]
    assert rerun.summary["wall_time_s"] >= failed.summary["wall_time_s"]  # added up
    assert rerun.metrics["val/A/psnr"] == {"best": 24.0, "best_step": 4, "final": 24.0}


def test_summarize_best_is_max_for_psnr_ssim_and_min_otherwise() -> None:
    history = [
        {"step": 1, "val/A/psnr": 30.0, "val/loss": 0.5},
        {"step": 2, "val/A/psnr": 31.0, "val/loss": 0.3},
        {"step": 3, "val/A/psnr": 30.5, "val/loss": 0.4},
    ]
    summary = summarize(history)
    assert summary["val/A/psnr"] == {"best": 31.0, "best_step": 2, "final": 30.5}
    assert summary["val/loss"] == {"best": 0.3, "best_step": 2, "final": 0.4}


def test_compare_sweep_prints_sorted_table_and_writes_md_csv_and_plot(
    sweep: Path, tmp_path: Path, capsys
) -> None:
    assert main([str(sweep), "--sort", "val/Sample/psnr", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for text in ("model.optimizer.lr=1e-3", "model.optimizer.lr=1e-2", "Sample PSNR"):
        assert text in printed

    rows = list(csv.DictReader((tmp_path / "comparison.csv").open()))
    assert len(rows) == 2
    best = [float(row["val/Sample/psnr best"]) for row in rows]
    assert best == sorted(best, reverse=True)  # PSNR: best first
    assert {row["overrides"] for row in rows} == {
        "model.optimizer.lr=1e-3 logger=none",
        "model.optimizer.lr=1e-2 logger=csv test=false",
    }
    assert all(row["steps"] == "4" and row["params"] == "121987" for row in rows)
    markdown = (tmp_path / "comparison.md").read_text()
    assert (
        "Every run has: `debug=fast trainer.accelerator=cpu trainer.limit_val_batches=1" in markdown
    )
    first_in_md = markdown.index(rows[0]["overrides"]) < markdown.index(rows[1]["overrides"])
    assert first_in_md, "markdown rows are not in the sorted order"
    png = (tmp_path / "val_curves.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_compare_errors_say_which_dir_and_what_was_expected(sweep: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SRLabError, match=rf"{empty}: no run records: expected run\.json"):
        compare([empty])
    with pytest.raises(SRLabError, match=rf"{tmp_path / 'missing'}: no such folder"):
        compare([tmp_path / "missing"])
    with pytest.raises(
        SRLabError, match=r"--sort val/Set5/psnr: no compared run logged it; logged: val/Sample"
    ):
        compare([sweep], sort="val/Set5/psnr")


def test_compare_cli_on_job_dirs(sweep: Path, tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, str(REPO_ROOT / "src" / "compare.py"), *args]
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    result = run(str(sweep / "0"), str(sweep / "1"))
    assert result.returncode == 0, result.stderr
    assert "model.optimizer.lr=1e-2" in result.stdout
    assert "sorted by the best val/psnr" in result.stdout
    (out,) = (tmp_path / "outputs" / "compare").iterdir()  # the default output folder
    assert {p.name for p in out.iterdir()} == {"comparison.md", "comparison.csv", "val_curves.png"}

    result = run(str(tmp_path / "outputs"))
    assert result.returncode == 1
    assert f"srlab error: {tmp_path / 'outputs'}: no run records" in result.stderr

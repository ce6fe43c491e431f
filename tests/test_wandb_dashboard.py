"""What W&B dashboards show of a two-job sweep (`python src/train.py -m ...`, offline): best
values as summaries, per-image tables, the swept keys in the config, and the same ranking as
`src/compare.py`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import REPO_ROOT, _leveldb_records, offline_runs, read_offline_run, run_script

import srlab.tracking.wandb as wandb_module
from srlab.app.compare import compare
from srlab.tracking.dashboard import SRLabWandbLogger, summary_ops, use_inputs
from srlab.tracking.image_table import COLUMNS
from srlab.tracking.records import read_run

LRS = ("1e-3", "2e-2")
SWEEP = [
    "debug=fast",
    "trainer.accelerator=cpu",
    "trainer.limit_val_batches=2",  # two images: tables with two rows
    "trainer.limit_test_batches=2",
    f"model.optimizer.lr={','.join(LRS)}",
]


@dataclass
class WandbRecords:
    """What an offline run wrote: config, final summary, history and artifacts."""

    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    artifacts: list = field(default_factory=list)


def read_records(run_dir: Path) -> WandbRecords:
    """Parse ``run-<id>.wandb``: summary updates merged in order, as W&B's server does."""
    from wandb.proto import wandb_internal_pb2 as pb

    out = WandbRecords(history=read_offline_run(run_dir).history)  # waits for the exit record
    (path,) = run_dir.glob("run-*.wandb")
    for data in _leveldb_records(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "config":
            out.config.update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "summary":
            for item in record.summary.update:
                *parents, key = [item.key] if item.key else list(item.nested_key)
                node = out.summary
                for parent in parents:  # a table's summary: {"nrows": 2, "path": ...}
                    node = node.setdefault(parent, {})
                node[key] = json.loads(item.value_json)
        elif kind == "artifact":
            out.artifacts.append(record.artifact)
    return out


def staged_table(records: WandbRecords, key: str) -> dict:
    """The table logged under ``key``, from its run-table artifact staged in the run dir."""
    wanted = f"-{key.replace('/', '')}-"  # run-<id>-valSampleper_image-<suffix>
    (artifact,) = [a for a in records.artifacts if a.type == "run_table" and wanted in a.name]
    files = {entry.path: entry for entry in artifact.manifest.contents}
    table = json.loads(Path(files[f"{key}.table.json"].local_path).read_text())
    images = [p for p in files if p.startswith("media/images/")]
    return {"table": table, "images": images}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A finished two-job sweep (W&B offline, staging inside each job's dir)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("WANDB_MODE", "offline")
    patch.setenv("WANDB_SILENT", "true")
    patch.setenv("WANDB_DATA_DIR", "unset")  # restored after the module: srlab sets it
    patch.delenv("WANDB_DATA_DIR")
    patch.setattr(wandb_module, "_USER_DATA_DIR", None)
    patch.chdir(REPO_ROOT)
    sweep_dir = tmp_path_factory.mktemp("dashboard") / "sweep"
    try:
        status = run_script(["src/train.py", "-m", *SWEEP, f"hydra.sweep.dir={sweep_dir}"])
    finally:
        patch.undo()
    assert status == 0
    return sweep_dir


def jobs(sweep: Path) -> list[Path]:
    return [sweep / str(number) for number in range(len(LRS))]


def test_summaries_are_best_values_at_their_steps(sweep: Path) -> None:
    for job in jobs(sweep):
        (run_dir,) = offline_runs(job)
        records = read_records(run_dir)
        local = read_run(job).metrics  # what src/compare.py reads
        for key in ("val/psnr", "val/Sample/psnr", "val/Sample/ssim"):
            points = [(r["trainer/global_step"], r[key]) for r in records.history if key in r]
            assert [step for step, _ in points] == [2, 4]  # the steps the validations scored
            best_step, best = max(points, key=lambda point: point[1])
            assert records.summary[key] == {"max": best, "last": points[-1][1]}
            assert records.summary[f"best_step/{key}"] == best_step
            assert (best, best_step) == (local[key]["best"], local[key]["best_step"])
        losses = [r["train/loss"] for r in records.history if "train/loss" in r]
        assert records.summary["train/loss"] == {"min": min(losses)}


def test_per_image_tables_of_the_test_and_the_last_validation(sweep: Path) -> None:
    (run_dir,) = offline_runs(jobs(sweep)[0])
    records = read_records(run_dir)
    for stage in ("val", "test"):
        key = f"{stage}/Sample/per_image"
        assert records.summary[key]["nrows"] == 2
        staged = staged_table(records, key)
        table = staged["table"]
        assert table["columns"] == COLUMNS
        rows = [dict(zip(COLUMNS, row, strict=True)) for row in table["data"]]
        assert [row["image"] for row in rows] == ["astronaut", "chelsea"]
        for row in rows:
            assert row["gain_db"] == pytest.approx(row["psnr"] - row["psnr_bicubic"])
            assert row["sr"]["_type"] == "image-file" and row["sr"]["path"] in staged["images"]
        # The set's score is the mean over its images (the literature's protocol).
        mean = sum(row["psnr"] for row in rows) / len(rows)
        assert mean == pytest.approx(
            records.summary[f"{stage}/Sample/psnr"]["last"]
            if stage == "val"
            else records.summary["test/Sample/psnr"]
        )


def test_sweep_keys_in_the_config_and_the_same_ranking_as_compare(sweep: Path) -> None:
    configs, best = {}, {}
    for job in jobs(sweep):
        (run_dir,) = offline_runs(job)
        records = read_records(run_dir)
        configs[job.name] = {k: v for k, v in records.config.items() if k.startswith("sweep/")}
        best[job.name] = records.summary["val/psnr"]["max"]
    # Only the swept key, typed: W&B's parallel coordinates plot it as a number.
    assert configs == {
        "0": {"sweep/model.optimizer.lr": 1e-3},
        "1": {"sweep/model.optimizer.lr": 2e-2},
    }
    assert best["0"] != best["1"]
    wandb_ranking = sorted(best, key=best.get, reverse=True)
    local_ranking = [run.path.name for run in compare([sweep]).runs]
    assert wandb_ranking == local_ranking


def test_summary_ops_follow_compare_best_rule() -> None:
    assert summary_ops("val/Set5/psnr") == summary_ops("val/psnr") == "max,last"
    assert summary_ops("val/Set14/ssim") == "max,last"
    assert summary_ops("train/loss") == summary_ops("train/d_loss") == "min"
    assert summary_ops("test/Set5/psnr") is None  # logged once
    assert summary_ops("train/g_adv") is None


class _FakeRun:
    """An online W&B run, as far as :meth:`SRLabWandbLogger.use_inputs` touches one."""

    def __init__(self) -> None:
        self.offline = False
        self.settings = type("Settings", (), {"mode": "online"})()
        self.used: list = []

    def use_artifact(self, artifact) -> None:
        self.used.append(artifact)


def test_online_runs_use_dataset_and_weights_artifacts(tmp_path: Path) -> None:
    """Online, inputs are W&B artifacts by reference (offline W&B refuses use_artifact; the
    sweep above keeps them in the config instead, checked here too)."""
    from types import SimpleNamespace

    from srlab.data.sets import ImageSet

    weights = tmp_path / "rrdb.pth"
    weights.write_bytes(b"weights")
    (tmp_path / "Set5" / "HR").mkdir(parents=True)
    (tmp_path / "Set5" / "HR" / "baby.png").write_bytes(b"png")
    (tmp_path / "DIV2K").mkdir()
    logger = SRLabWandbLogger(save_dir=str(tmp_path), mode="offline")
    run = _FakeRun()
    logger._experiment = run
    data = SimpleNamespace(
        root=tmp_path,
        train_sets=[ImageSet(name="DIV2K", hr_dir=str(tmp_path / "DIV2K"))],
        val_sets=[ImageSet(name="Set5", hr_dir="Set5/HR")],
        test_sets=[ImageSet(name="Set5", hr_dir="Set5/HR")],
    )
    use_inputs([logger], data, [str(weights)])
    kinds = {(a.type, a.name) for a in run.used}
    assert kinds == {("dataset", "DIV2K"), ("dataset", "Set5"), ("model", "weights-rrdb.pth")}
    references = {a.name: a.manifest.entries for a in run.used}
    (baby,) = references["Set5"].values()  # one entry per file: path and size, no hashing
    assert (baby.path, baby.ref) == ("baby.png", (tmp_path / "Set5" / "HR" / "baby.png").as_uri())
    (entry,) = references["weights-rrdb.pth"].values()
    assert entry.ref == weights.as_uri() and entry.size == len(b"weights")


def test_offline_runs_keep_their_inputs_in_the_config(sweep: Path) -> None:
    (run_dir,) = offline_runs(jobs(sweep)[0])
    inputs = read_records(run_dir).config["inputs"]
    assert set(inputs["datasets"]) == {"SampleTrain", "Sample"}
    assert all(Path(path).is_dir() for path in inputs["datasets"].values())
    assert inputs["weights"] == []


class _ResumedRun:
    """A resumed W&B run, as far as :meth:`SRLabWandbLogger.log_metrics` touches one: W&B
    restored its summary (best 31.0 at step 200) from the server."""

    def __init__(self) -> None:
        self.summary = {"val/psnr": {"max": 31.0, "last": 30.5}, "best_step/val/psnr": 200}
        self.logged: list[dict] = []

    def define_metric(self, *args, **kwargs) -> None:
        pass

    def log(self, row: dict) -> None:
        self.logged.append(row)


def test_a_resumed_run_keeps_its_earlier_best_step(tmp_path: Path) -> None:
    logger = SRLabWandbLogger(save_dir=str(tmp_path), mode="offline")
    run = _ResumedRun()
    logger._experiment = run
    logger.log_metrics({"val/psnr": 30.8, "trainer/global_step": 300}, step=299)
    assert run.summary["best_step/val/psnr"] == 200  # 30.8 is not better than 31.0
    assert run.logged[-1]["trainer/global_step"] == 300  # the step the task logged
    logger.log_metrics({"val/psnr": 31.2, "trainer/global_step": 400}, step=399)
    assert run.summary["best_step/val/psnr"] == 400

"""W&B: mode choice (offline by default), and the runs of a sweep: group, name, tags,
overrides and git state in the config, the best checkpoint as an artifact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import _leveldb_records, compose_config, offline_runs, read_offline_run
from omegaconf import DictConfig

from srlab.app.train import train
from srlab.tracking import (
    git_state,
    has_api_key,
    job_overrides,
    resolve_mode,
    run_group,
    run_name,
)


@pytest.fixture
def clean_env(monkeypatch, tmp_path: Path) -> Path:
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    netrc = tmp_path / "netrc"
    monkeypatch.setenv("NETRC", str(netrc))
    return netrc


def test_offline_without_key(clean_env: Path) -> None:
    assert not has_api_key()
    assert resolve_mode() == "offline"


def test_online_with_key_in_env_or_netrc(clean_env: Path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode() == "online"
    monkeypatch.delenv("WANDB_API_KEY")
    clean_env.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    clean_env.chmod(0o600)
    assert has_api_key() and resolve_mode() == "online"


def test_env_mode_then_config_mode_win(clean_env: Path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode() == "disabled"
    assert resolve_mode("offline") == "offline"


# --- many runs: group, name, tags, overrides and git state; the model artifact ----------------

FAST = ["debug=fast", "trainer.accelerator=cpu", "test=false"]


def _multirun_job(tmp_path: Path, overrides: list[str]) -> tuple[Path, Path, DictConfig]:
    """The config of job 0 of a multirun, as `python src/train.py -m ...` gives it:
    (sweep dir, job dir, config)."""
    sweep = tmp_path / "multiruns" / "2026-01-02_03-04-05"
    job = sweep / "0"
    cfg = compose_config(job, [*overrides, "hydra.mode=MULTIRUN", f"hydra.sweep.dir={sweep}"])
    return sweep, job, cfg


def test_multirun_job_is_grouped_by_sweep_and_named_by_its_overrides(tmp_path: Path) -> None:
    sweep, _, cfg = _multirun_job(tmp_path, [*FAST, "model.optimizer.lr=2e-3"])
    assert run_group(cfg) == f"debug/{sweep.name}"
    assert run_name(cfg) == (
        "edsr_tiny-x2-sample debug=fast trainer.accelerator=cpu test=false model.optimizer.lr=2e-3"
    )
    assert job_overrides() == [*FAST, "model.optimizer.lr=2e-3"]  # no hydra.* overrides

    single = compose_config(tmp_path / "run", ["model=srcnn", "scale=3"])
    assert run_group(single) == "train"
    assert run_name(single) == "srcnn-x3-sample scale=3"


def test_git_state_in_and_outside_a_checkout(tmp_path: Path, monkeypatch) -> None:
    here = git_state()
    if here["git_commit"] is not None:  # the tests run from a git checkout
        assert len(here["git_commit"]) == 40 and isinstance(here["git_dirty"], bool)
    # Outside a checkout, and without git at all: no git state, and no error.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert git_state(tmp_path) == {"git_commit": None, "git_dirty": None}
    monkeypatch.setenv("PATH", str(tmp_path))
    assert git_state() == {"git_commit": None, "git_dirty": None}


def test_offline_wandb_run_of_a_multirun_job(tmp_path: Path, monkeypatch) -> None:
    """Group, name, tags, overrides and git commit in the run; log_model=true logs the best
    checkpoint as an artifact staged inside the run dir, all offline."""
    import srlab.tracking.wandb as wandb_module

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    # As for a user who set no staging dir (and restored after the test: srlab sets it).
    monkeypatch.setenv("WANDB_DATA_DIR", "unset")
    monkeypatch.delenv("WANDB_DATA_DIR")
    monkeypatch.setattr(wandb_module, "_USER_DATA_DIR", None)
    overrides = [
        *FAST,
        "model.optimizer.lr=2e-3",
        "tags=[sweep-test,lr]",
        "logger.wandb.log_model=true",
        "trainer.max_steps=2",  # one validation of one image is enough here
        "trainer.limit_val_batches=1",
    ]
    sweep, job, cfg = _multirun_job(tmp_path, overrides)
    train(cfg)

    (run_dir,) = offline_runs(job)
    read_offline_run(run_dir)  # waits until W&B has written the whole run
    records = _records(run_dir)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.run_group == f"debug/{sweep.name}"
    assert "model.optimizer.lr=2e-3" in run.display_name and "hydra." not in run.display_name
    assert list(run.tags) == ["sweep-test", "lr"]
    config = {
        item.key: json.loads(item.value_json)
        for r in records
        if r.WhichOneof("record_type") == "config"
        for item in r.config.update
    }
    assert config["run_info"]["overrides"] == overrides
    assert_git_state(config["run_info"])

    artifacts = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    (best,) = [a for a in artifacts if "best" in a.aliases]
    assert best.type == "model"
    best_ckpt = next((job / "checkpoints").glob("best_*.ckpt"))
    assert json.loads(best.metadata)["original_filename"] == best_ckpt.name
    (entry,) = best.manifest.contents
    staged = Path(entry.local_path)
    assert staged.is_relative_to(job / "wandb" / "data")  # not ~/.local/share/wandb
    assert staged.stat().st_size == best_ckpt.stat().st_size


def _records(run_dir: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = run_dir.glob("run-*.wandb")
    records = []
    for data in _leveldb_records(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(data)
        records.append(record)
    return records


def assert_git_state(info: dict) -> None:
    """``info`` holds the git state of this checkout (a commit, a dirty flag), or None for
    both when the tests do not run from a git checkout."""
    if git_state()["git_commit"] is None:
        assert info["git_commit"] is None and info["git_dirty"] is None
    else:
        # Others may commit or edit meanwhile: check the form, not the current values.
        assert len(info["git_commit"]) == 40 and isinstance(info["git_dirty"], bool)

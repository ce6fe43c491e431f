"""Sweeps: Hydra multirun with DDP jobs (basic and Optuna sweepers, submitit launcher), unique
sweep folders, and the W&B sweep specs of sweeps/.

The multirun tests are subprocesses: the process boundary is the point (Lightning starts the
second DDP rank as a process, submitit starts jobs as processes). Every rank of a multi-process
job logs ``rank R/W trains config <digest>`` (the hash of the resolved config it trains), so
each test checks that both ranks of every job trained that job's own config.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import REPO_ROOT, compose_config
from omegaconf import OmegaConf

from srlab.runtime.launch import RANK_CONFIG

SPECS = sorted((REPO_ROOT / "sweeps").glob("*.yaml"))
# Two optimizer steps, one validation on one image, no test: the least a job can do and still
# log val/psnr (the Optuna objective).
TINY = [
    "debug=fast", "logger=csv", "test=false", "trainer.max_steps=2",
    "trainer.val_check_interval=2", "trainer.limit_val_batches=1",
    "callbacks.rich_progress_bar=null", "callbacks.rich_model_summary=null",
]  # fmt: skip
RANK_LINE = re.compile(r"rank (\d+)/(\d+) trains config ([0-9a-f]{12})")


def _multirun(log_dir: Path, overrides: list[str]) -> Path:
    """Run ``python src/train.py -m <overrides>`` into ``log_dir``; its one sweep folder."""
    command = [sys.executable, "src/train.py", "-m", *overrides, *TINY, f"paths.log_dir={log_dir}"]
    env = {**os.environ, "WANDB_MODE": "offline"}
    result = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=420
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    # One sweep folder and nothing else: a DDP rank that ran a sweep of its own, or a single
    # run, would have made another (in another second, or with another random suffix).
    assert sorted(p.relative_to(log_dir).as_posix() for p in log_dir.glob("*/*")) == [
        "debug/multiruns"
    ]
    sweeps = sorted((log_dir / "debug" / "multiruns").iterdir())
    assert len(sweeps) == 1, f"more than one sweep folder (did a rank run a sweep?): {sweeps}"
    return sweeps[0]


def _jobs(sweep_dir: Path) -> list[Path]:
    return sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())


def _rank_digests(job_dir: Path) -> dict[int, str]:
    """Rank -> digest of the config it trained, from every log file of the job."""
    digests: dict[int, str] = {}
    for log_file in job_dir.glob("*.log"):
        for rank, world, digest in RANK_LINE.findall(log_file.read_text()):
            assert int(world) == 2
            assert digests.setdefault(int(rank), digest) == digest, log_file
    return digests


def _job_lr(job_dir: Path) -> float:
    return float(OmegaConf.load(job_dir / ".hydra" / "config.yaml").model.optimizer.lr)


def _check_ranks_train_their_job(jobs: list[Path]) -> None:
    digests = [_rank_digests(job) for job in jobs]
    for job, per_rank in zip(jobs, digests, strict=True):
        assert set(per_rank) == {0, 1}, (job, per_rank)
        assert per_rank[0] == per_rank[1], (job, per_rank)
    # The jobs differ in their learning rate, so their configs hash differently: each rank
    # trained its own job's learning rate.
    assert len({per_rank[0] for per_rank in digests}) == len(jobs)
    assert len({_job_lr(job) for job in jobs}) == len(jobs)


def test_basic_sweep_runs_each_ddp_job_on_two_ranks_with_its_config(tmp_path: Path) -> None:
    sweep_dir = _multirun(
        tmp_path,
        ["trainer=ddp_cpu", "trainer.devices=2", "model.optimizer.lr=1e-3,2e-3"],
    )
    jobs = _jobs(sweep_dir)
    assert [job.name for job in jobs] == ["0", "1"]
    assert sorted(_job_lr(job) for job in jobs) == [1e-3, 2e-3]
    _check_ranks_train_their_job(jobs)
    # Rank 1 ran from the job's pickled config and wrote no .hydra/ of its own.
    assert all((job / ".hydra" / RANK_CONFIG).is_file() for job in jobs)
    assert all((job / "train_ddp_process_1.log").is_file() for job in jobs)


def test_optuna_sweep_runs_each_ddp_trial_on_two_ranks_with_its_config(tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    # hparams_search=edsr_optuna with its EDSR search space shrunk to tiny networks (sweep
    # arguments on the command line replace the config's).
    sweep_dir = _multirun(
        tmp_path / "outputs",
        [
            "hparams_search=edsr_optuna", "hydra.sweeper.n_trials=2", "trainer=ddp_cpu",
            "trainer.devices=2", "model.net.num_block=choice(1)", "model.net.num_feat=choice(8)",
            "data.patch_size=choice(48)", f"hydra.sweeper.storage={storage}",
        ],
    )  # fmt: skip
    jobs = _jobs(sweep_dir)
    assert [job.name for job in jobs] == ["0", "1"]
    _check_ranks_train_their_job(jobs)
    # The objective (train's return value: the best val/psnr) reached the study, and each
    # trial's learning rate is the one its job trained with.
    study = optuna.load_study(study_name="edsr_baseline", storage=storage)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert all(math.isfinite(t.value) for t in trials)
    assert [t.params["model.optimizer.lr"] for t in trials] == [_job_lr(job) for job in jobs]
    assert (sweep_dir / "optimization_results.yaml").is_file()


def test_submitit_local_sweep_runs_one_task_per_rank(tmp_path: Path, capsys) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep_dir = _multirun(
        tmp_path,
        [
            "hydra/launcher=submitit_local", "trainer=ddp_cpu", "trainer.devices=2",
            "model.optimizer.lr=1e-3,2e-3",
        ],
    )  # fmt: skip
    jobs = _jobs(sweep_dir)
    assert [job.name for job in jobs] == ["0", "1"]
    assert sorted(_job_lr(job) for job in jobs) == [1e-3, 2e-3]
    # submitit started both ranks as tasks of the job: no relaunch, no rank config.
    _check_ranks_train_their_job(jobs)
    assert not any((job / ".hydra" / RANK_CONFIG).exists() for job in jobs)

    # src/compare.py on that sweep: the table of both jobs, and the plot of their curves.
    from srlab.app.compare import main as compare_main

    out = tmp_path / "compare"
    assert compare_main([str(sweep_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "model.optimizer.lr=0.001" in printed and "model.optimizer.lr=0.002" in printed
    assert (out / "val_curves.png").read_bytes().startswith(b"\x89PNG")
    assert len((out / "comparison.csv").read_text().splitlines()) == 3  # header + 2 jobs


def test_run_and_sweep_folders_have_a_random_suffix(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir

    from srlab.runtime.hydra import configure_hydra

    configure_hydra()  # registers ${srlab.uid:}, as every entry point does

    with initialize_config_dir(version_base="1.3", config_dir=str(REPO_ROOT / "conf")):
        first = compose("train", [f"paths.log_dir={tmp_path}"], return_hydra_config=True)
        second = compose("train", [f"paths.log_dir={tmp_path}"], return_hydra_config=True)
    run, sweep = Path(first.hydra.run.dir), Path(first.hydra.sweep.dir)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_[0-9a-f]{6}", run.name)
    # One id per config (cached like ${now:}): a run and a sweep of one process agree, and
    # the folder name stays the same however often it is read.
    assert sweep.name == run.name and first.hydra.run.dir == str(run)
    assert second.hydra.run.dir != first.hydra.run.dir  # another process or sweep: another id


@pytest.mark.parametrize("spec_path", SPECS, ids=[p.stem for p in SPECS])
def test_wandb_sweep_spec_runs_train_with_valid_hydra_overrides(
    tmp_path: Path, spec_path: Path
) -> None:
    spec = yaml.safe_load(spec_path.read_text())
    assert spec["method"] in {"grid", "random", "bayes"}
    assert spec["metric"] == {"name": "val/psnr", "goal": "maximize"}
    assert spec["program"] == "src/train.py" and (REPO_ROOT / spec["program"]).is_file()
    command = spec["command"]
    assert command[:3] == ["${env}", "python", "${program}"] and command[-1] == "${args_no_hyphens}"
    fixed = command[3:-1]  # Hydra overrides every run of the sweep gets
    for name, param in spec["parameters"].items():
        values = param.get("values") or [param[k] for k in ("min", "max", "value") if k in param]
        assert values, f"{spec_path.name}: {name} has no values"
        for value in values:
            # What `wandb agent` runs: `python src/train.py <fixed> name=value` (args_no_hyphens).
            cfg = compose_config(tmp_path, [*fixed, f"{name}={value}"])
            assert OmegaConf.select(cfg, name) == pytest.approx(value), (spec_path.name, name)


# Slow (about 20 s): two more processes that only show Lightning running under torchrun as the
# README says; srlab's own check for such ranks is tested in-process below.
@pytest.mark.slow
def test_torchrun_ranks_share_the_given_run_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
        "src/train.py", "trainer=ddp_cpu", "trainer.devices=2", *TINY,
        f"paths.log_dir={tmp_path}", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline"}
    result = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    digests = _rank_digests(run_dir)
    assert set(digests) == {0, 1} and digests[0] == digests[1]


@pytest.mark.parametrize("run_dir_given", [False, True])
def test_ranks_started_outside_lightning_need_one_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_dir_given: bool
) -> None:
    import lightning as L
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from lightning.fabric.plugins.environments import TorchElasticEnvironment
    from omegaconf import open_dict

    from srlab.errors import ConfigError
    from srlab.runtime.launch import ranks_rerun_this_job

    # Rank 0 of two as torchrun starts it (no process group is created: nothing is fitted).
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "GROUP_RANK": "0", "WORLD_SIZE": "2",
                       "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "test"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    overrides = [f"hydra.run.dir={tmp_path}"] if run_dir_given else []
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO_ROOT / "conf")):
        cfg = compose("train", overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.mode = RunMode.RUN
    HydraConfig.instance().set_config(cfg)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False)
    assert isinstance(trainer.strategy.cluster_environment, TorchElasticEnvironment)
    if run_dir_given:
        with ranks_rerun_this_job(trainer, cfg.model):
            pass
    else:
        with (
            pytest.raises(ConfigError, match="hydra.run.dir="),
            ranks_rerun_this_job(trainer, cfg.model),
        ):
            pass

"""Every command the documentation shows runs as written.

Each shell block of ``README.md``, ``sweeps/README.md`` and ``docs/*.md`` (read with
mktestdocs' parser) is split into commands: continuation lines joined, comments dropped,
``&&`` chains split. Every command is one test case, in the order of the documents, and each
runs from a workspace laid out as a user's clone (``src``, ``conf``, ``benchmarks``, ``sweeps``
of this checkout; the reference images of ``../shared/data`` under ``data/`` in the layout the
README documents; the photos, folders and weight files the commands name), so relative paths
such as ``outputs/train/runs/<run>`` mean what they mean to a user.

A command is, by the lists below:

- **run** (every ``python src/*.py`` or ``python benchmarks/*.py`` command in no list): its
  script runs in this process as ``python`` would run it (``runpy``, ``__name__ ==
  "__main__"``, ``sys.argv`` as the shell splits the command), with only
  :func:`size_overrides` appended (a few steps, one centre crop per evaluation set, a small
  network of the same architecture, two Optuna trials) and its placeholders (``<run>``,
  ``<checkpoint>``, ``<SR images>``, ``/data/my_photos``) filled from what earlier commands
  of the same test wrote (:func:`fill_placeholders`). It must exit with status 0.
- **CONFIG_ONLY**: composed by Hydra from its arguments as written (every job of a ``-m``
  sweep), every key checked and the data module and network built (``srlab.app.train.build``),
  not trained: commands that differ from a run one only in values, or that need GPUs.
- **SLOW**: run as above, under ``-m slow`` only (the reason says why).
- **NOT_RUN**: what cannot run here, named with the reason.

A listed command that no document shows any more fails :func:`test_lists_name_documented_commands`,
so the lists follow the documents.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mktestdocs
import pytest
import torch
from helpers import REPO_ROOT, TINY_NETS, compose_config, run_script
from omegaconf import OmegaConf
from releases import edsr_pytorch_state, random_srcnn_mat, random_vdsr_mat

DOCUMENTS = [
    REPO_ROOT / "README.md",
    REPO_ROOT / "sweeps" / "README.md",
    *sorted((REPO_ROOT / "docs").glob("**/*.md")),
]
#: Script paths a "run" command may name.
SCRIPTS = re.compile(r"^python (src|benchmarks)/\w+\.py\b")

_SETUP = "set-up: .ci/run runs the README's test line, install included, on a clean clone"
_WANDB = "talks to the W&B server (an API key and the network)"
_SLURM = "submits to SLURM (sbatch); hydra/launcher=submitit_local runs the same sweep here"
_GPUS = "needs 4 GPUs (trainer=ddp, NCCL): built here, not trained"

NOT_RUN: dict[str, str] = {
    "python -m venv .venv": _SETUP,
    ". .venv/bin/activate": _SETUP,
    "pip install torch==2.13.0": _SETUP,
    "pip install torch==2.14.1 torchvision==0.29.1": _SETUP,
    "pip install -e .": _SETUP,
    'pip install -e ".[dev]"': _SETUP,
    "python -m pytest": "the test suite itself (.ci/run runs it)",
    "python -m pytest -m slow": "the slow tests (the suite itself)",
    "pre-commit install": "writes .git/hooks of the checkout; .pre-commit-config.yaml is offline",
    "wandb sync outputs/train/runs/<run>/wandb/offline-run-<id>": _WANDB,
    "wandb sweep sweeps/bayes.yaml": _WANDB,
    "wandb agent <entity>/srlab/<sweep id>": _WANDB,
    "CUDA_VISIBLE_DEVICES=1 wandb agent --count 10 <entity>/srlab/<sweep id>": _WANDB,
    "python src/train.py -m hydra/launcher=submitit_slurm hydra.launcher.partition=gpu "
    "experiment=edsr_baseline_x2_div2k trainer=ddp trainer.devices=4 "
    "model.optimizer.lr=1e-4,2e-4": _SLURM,
    "python src/train.py -m hydra/launcher=submitit_slurm hydra.launcher.partition=gpu "
    "experiment=edsr_baseline_x2_div2k trainer=ddp trainer.devices=4 "
    "model.optimizer.lr=1e-4,2e-4,5e-4": _SLURM,
    "python src/train.py -m hydra/launcher=submitit_slurm trainer=ddp trainer.devices=4 "
    "trainer.num_nodes=2 ...": _SLURM,
    "torchrun --nnodes=2 --nproc-per-node=4 --node-rank=0 --master-addr=<first node> "
    "--master-port=29500 src/train.py trainer=ddp trainer.devices=4 trainer.num_nodes=2 "
    "hydra.run.dir=outputs/train/runs/edsr_2x4": "needs 2 nodes of 4 GPUs; "
    "tests/test_sweeps.py runs torchrun --standalone with 2 CPU ranks",
}

CONFIG_ONLY: dict[str, str] = {
    "python src/train.py model=edsr data=div2k trainer.devices=4 scale=4": _GPUS,
    "python src/train.py model.optimizer.lr=2e-4 data.batch_size=32 trainer.max_steps=300000": (
        "values of keys the default run trains with"
    ),
    "python src/train.py data=div2k data.cache_dir=/scratch/srlab": (
        "data=div2k runs above; only the cache folder differs"
    ),
    "python src/train.py -m model.optimizer.lr=1e-4,2e-4,5e-4 data.batch_size=16,32": (
        "the sweep of one value list runs above; 6 jobs of values"
    ),
    "python src/train.py -m trainer=ddp trainer.devices=4 model.optimizer.lr=1e-4,2e-4": _GPUS,
    "python src/train.py -m experiment=edsr_baseline_x2_div2k model.optimizer.lr=1e-4,2e-4,5e-4 "
    "data.batch_size=16,32": "6 jobs of values over a recipe (tests/test_experiments.py trains it)",
    "python src/train.py -m experiment=edsr_baseline_x2_div2k trainer=ddp trainer.devices=4 "
    "model.optimizer.lr=1e-4,2e-4,5e-4": _GPUS,
    "python src/train.py -m model=srcnn,fsrcnn,vdsr scale=2,3,4": (
        "9 jobs; every model trains in tests/test_configs.py"
    ),
    "python src/train.py hparams_search=edsr_optuna data=div2k trainer.max_steps=20000 "
    "hydra.sweeper.n_trials=40": "the README's Optuna search runs two trials; this adds values",
    "python src/train.py hparams_search=edsr_optuna "
    "hydra.sweeper.storage=sqlite:///outputs/optuna_edsr.db": (
        "the storage is tested in tests/test_sweeps.py (an Optuna sweep into SQLite)"
    ),
}

_COMPILE = "torch.compile of the network takes about a minute on a 2-core CPU"
SLOW: dict[str, str] = {
    "python src/train.py model=edsr_baseline model.compile=true model.compile_mode=max-autotune": (
        _COMPILE
    ),
    "python benchmarks/throughput.py model=edsr_tiny bench.settings=[fp32_eager,fp32_compile] "
    "bench.rounds=3": _COMPILE,
}

#: Appended to every run command of a script (Hydra keeps the last value of a key), except the
#: keys of UNLESS_NAMED where the command sets them itself.
SIZE: dict[str, list[str]] = {
    # debug=fast: two steps, one validation; task_name=train keeps the README's paths
    # (outputs/train/runs/<run>) true.
    "src/train.py": [
        "debug=fast", "task_name=train", "trainer.max_steps=2", "trainer.val_check_interval=2",
    ],
    "benchmarks/throughput.py": [
        "bench.rounds=1", "bench.warmup=1", "bench.steps=1", "bench.loader_batches=2",
        "bench.decode_batches=1", "bench.loop_warmup=1", "bench.loop_steps=1",
        "bench.infer_size=32", "bench.tile=16", "bench.tile_overlap=4", "data.batch_size=2",
        "data.num_workers=0", "bench.settings=[fp32_eager]", "bench.bare_rounds=1",
        "bench.infer_rounds=1",
    ],
}  # fmt: skip
#: Size keys that stay as the command sets them (a benchmark of torch.compile compiles).
UNLESS_NAMED = {"bench.settings"}
#: The model each script builds when the command names none.
DEFAULT_MODEL = {"src/train.py": "edsr_tiny", "benchmarks/throughput.py": "edsr_baseline"}
#: A small network of the same architecture for each model a command names; the weight files
#: the workspace holds for these commands have the same sizes.


def size_overrides(script: str, args: list[str]) -> list[str]:
    """What a run command gets appended: :data:`SIZE` of its script, :data:`TINY_NETS` of its
    model, and two trials for an Optuna search (whose search space names the network's keys:
    there a one-value ``choice`` replaces each)."""
    named = {arg.split("=", 1)[0] for arg in args}
    extra = [o for o in SIZE.get(script, []) if o.split("=", 1)[0] not in UNLESS_NAMED & named]
    search = _value(args, "hparams_search")
    tiny = TINY_NETS.get(_model_of(script, args, search), [])
    if search:
        # The search space names the network's keys and the patch size: one-value choices.
        tiny = [*tiny, "data.patch_size=48"]
        tiny = [f"{key}=choice({value})" for key, value in (o.split("=", 1) for o in tiny)]
        extra.append("hydra.sweeper.n_trials=2")
    return extra + tiny


def _model_of(script: str, args: list[str], search: str | None) -> str | None:
    """The model config a command trains: its ``model=``, its search's, or the script's."""
    model = _value(args, "model")
    if model is None and search:
        config = OmegaConf.load(REPO_ROOT / "conf" / "hparams_search" / f"{search}.yaml")
        defaults = OmegaConf.to_container(config.defaults)
        overrides = [d for d in defaults if isinstance(d, dict) and "override /model" in d]
        model = overrides[0]["override /model"] if overrides else None
    return model or DEFAULT_MODEL.get(script)


# -- the commands of the documents ------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One command of a document: its text (whitespace collapsed) and where it is."""

    text: str
    document: str

    @property
    def args(self) -> list[str]:
        """The command's words as the shell passes them (quotes removed)."""
        return shlex.split(self.text)

    @property
    def kind(self) -> str:
        """run | config | slow | not run."""
        if self.text in NOT_RUN:
            return "not run"
        if self.text in CONFIG_ONLY:
            return "config"
        return "slow" if self.text in SLOW else "run"


def _strip_comment(line: str) -> str:
    """``line`` without its shell comment (a ``#`` outside quotes, at the start or after a
    blank)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def commands_of(document: Path) -> list[Command]:
    """The commands of every ``bash`` block of ``document``, in order."""
    found = []
    for block in mktestdocs.grab_code_blocks(document.read_text(), lang="bash"):
        lines = [_strip_comment(line).rstrip() for line in block.splitlines()]
        joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))  # continuation lines
        for line in joined.splitlines():
            for part in line.split("&&"):
                text = " ".join(part.split())
                if text:
                    found.append(Command(text, document.relative_to(REPO_ROOT).as_posix()))
    return found


def documented_commands() -> list[Command]:
    """Every command of :data:`DOCUMENTS`, in order, each once; those that read another
    command's output (``<SR images>``: the infer command's) after it."""
    seen, ordered = set(), []
    for document in DOCUMENTS:
        for command in commands_of(document):
            if command.text not in seen:
                seen.add(command.text)
                ordered.append(command)
    return sorted(ordered, key=lambda c: "<SR images>" in c.text)


COMMANDS = documented_commands()


def test_lists_name_documented_commands() -> None:
    """Every entry of the lists is a command a document shows, and no command is in two lists;
    a command that runs nothing the test knows (no ``python src|benchmarks/...``) is listed."""
    texts = {c.text for c in COMMANDS}
    for name, listed in (("NOT_RUN", NOT_RUN), ("CONFIG_ONLY", CONFIG_ONLY), ("SLOW", SLOW)):
        stale = sorted(set(listed) - texts)
        assert not stale, f"{name} names commands no document shows any more: {stale}"
    assert not (set(NOT_RUN) & set(CONFIG_ONLY) | set(NOT_RUN) & set(SLOW))
    assert not set(CONFIG_ONLY) & set(SLOW)
    unknown = [c.text for c in COMMANDS if c.kind != "not run" and not SCRIPTS.match(c.text)]
    assert not unknown, f"commands this test cannot run: list them in NOT_RUN with why: {unknown}"


def test_documents_have_commands() -> None:
    """The parser finds the commands (a change of fence style would silently find none)."""
    by_document = {c.document for c in COMMANDS}
    assert {"README.md", "sweeps/README.md"} <= by_document
    assert any(c.text == "python src/train.py" for c in COMMANDS)  # the set-up line's last part
    assert any(c.text.startswith("python src/train.py -m ") for c in COMMANDS)


# -- the workspace: a user's clone, with the data and files the commands name -----------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, shared_data: Path) -> Iterator[Path]:
    """A folder laid out as a user's clone; the working directory of every command."""
    ws = tmp_path_factory.mktemp("clone")
    for name in ("src", "conf", "benchmarks", "sweeps"):
        (ws / name).symlink_to(REPO_ROOT / name, target_is_directory=True)
    data = ws / "data"
    (data / "DIV2K").mkdir(parents=True)
    for name in ("Set5", "Set14", "BSD100"):
        (data / name).symlink_to(shared_data / "benchmarks" / name, target_is_directory=True)
    div2k_hr = shared_data / "train" / "DIV2K_train_subset" / "HR"
    (data / "DIV2K" / "DIV2K_train_HR").symlink_to(div2k_hr, target_is_directory=True)
    # /data/my_photos: a folder of photos to train on; photos/: LR images to upscale.
    (ws / "my_photos").mkdir()
    for path in sorted((shared_data / "train" / "T91" / "HR").glob("*.png"))[:4]:
        (ws / "my_photos" / path.name).symlink_to(path)
    (ws / "photos").mkdir()
    for path in sorted((shared_data / "benchmarks" / "Set5" / "LR_bicubic" / "X2").glob("*")):
        (ws / "photos" / path.name).symlink_to(path)
    # Authors' releases the commands load, at the sizes of TINY_NETS.
    torch.save(edsr_pytorch_state(scale=4, n_feats=16, n_resblocks=1), ws / "edsr_x4.pt")
    srcnn = ws / "SRCNN_v1" / "model" / "9-5-5(ImageNet)"
    srcnn.mkdir(parents=True)
    random_srcnn_mat(srcnn / "x3.mat", (9, 5, 5), near_identity=True)
    random_vdsr_mat(ws / "VDSR_Official.mat", num_layers=3, num_feat=8)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ws)
        patch.setenv("WANDB_MODE", "offline")
        patch.delenv("SRLAB_DATA_DIR", raising=False)
        yield ws


# -- placeholders ------------------------------------------------------------------------------


def _value(args: list[str], key: str) -> str | None:
    """The last ``key=value`` of ``args`` (Hydra keeps the last)."""
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"{key}=")]
    return values[-1] if values else None


def _runs(ws: Path, args: list[str]) -> list[Path]:
    """Finished runs under ``outputs/train/runs``, newest first, of the model and scale that
    ``args`` name (the script's default model when it names none)."""
    model, scale = _value(args, "model"), _value(args, "scale")
    sort_key = _value([a.replace("--sort ", "--sort=") for a in args], "--sort")
    found = []
    for run in (ws / "outputs" / "train" / "runs").glob("*"):
        if not (run / "checkpoints" / "last.ckpt").is_file():
            continue
        choices = OmegaConf.load(run / ".hydra" / "hydra.yaml").hydra.runtime.choices
        config = OmegaConf.load(run / ".hydra" / "config.yaml")
        if model and choices.model != model or scale and str(config.scale) != scale:
            continue
        if sort_key and sort_key not in (run / "metrics.jsonl").read_text():
            continue
        found.append(run)
    return sorted(found, key=lambda run: (run / "run.json").stat().st_mtime, reverse=True)


def fill_placeholders(text: str, ws: Path) -> str:
    """``text`` with each placeholder replaced by what earlier commands wrote in ``ws``."""
    args = shlex.split(text.replace("--sort ", "--sort="))
    fixed = {
        "/data/my_photos": str(ws / "my_photos"),
        "/scratch/srlab": str(ws / "scratch" / "srlab"),
        "<SR images>": "sr/",
        "<HR images>": "data/Set5/HR",
        "<EDSR-PyTorch .pt>": "edsr_x4.pt",
    }
    for placeholder, value in fixed.items():
        text = text.replace(placeholder, value)
    if "<sweep>" in text:
        sweeps = sorted((ws / "outputs" / "train" / "multiruns").glob("*"))
        assert sweeps, "no earlier command made a sweep under outputs/train/multiruns"
        text = text.replace("<sweep>", sweeps[-1].name)
    for placeholder in ("<run>", "<run1>", "<run2>", "<checkpoint>"):
        if placeholder not in text:
            continue
        runs = _runs(ws, args)
        needed = 2 if placeholder in ("<run1>", "<run2>") else 1
        assert len(runs) >= needed, f"no earlier command made a run for {placeholder} in {text}"
        if placeholder == "<checkpoint>":
            value = (runs[0] / "checkpoints" / "last.ckpt").relative_to(ws).as_posix()
        else:
            value = runs[1 if placeholder == "<run1>" else 0].name
        text = text.replace(placeholder, value)
    left = re.findall(r"<[^>]+>", text)
    assert not left, f"placeholders this test cannot fill: {left} (add them to fill_placeholders)"
    return text


# -- running a command -------------------------------------------------------------------------


def build_only(args: list[str], ws: Path, tmp_path: Path) -> None:
    """Compose ``python src/train.py <args>`` (each job of a ``-m`` sweep) and build it."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from srlab.app.train import build

    assert args[0] == "src/train.py", "CONFIG_ONLY is for training commands"
    overrides = [a for a in args[1:] if a not in ("-m", "--multirun")]
    if len(overrides) < len(args) - 1:
        parsed = OverridesParser.create().parse_overrides(overrides)
        jobs = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    else:
        jobs = [overrides]
    for number, job in enumerate(jobs):
        cfg = compose_config(tmp_path / str(number), job, root_dir=ws)
        build(cfg, prepare=False)


@pytest.mark.parametrize(
    "command",
    [pytest.param(c, marks=pytest.mark.slow) if c.kind == "slow" else c for c in COMMANDS],
    ids=[c.text[:90] for c in COMMANDS],
)
def test_command_runs_as_written(command: Command, workspace: Path, tmp_path: Path) -> None:
    """The command runs from a user's clone (see the module docstring for what is appended)."""
    if command.kind == "not run":
        pytest.skip(f"{command.document}: not run here: {NOT_RUN[command.text]}")
    args = shlex.split(fill_placeholders(command.text, workspace))[1:]
    started = time.monotonic()
    if command.kind == "config":
        build_only(args, workspace, tmp_path)
    else:
        argv = [*args, *size_overrides(args[0], args)]
        status = run_script(argv)
        assert status == 0, f"{command.document}: `python {' '.join(argv)}` exited with {status}"
    print(f"{time.monotonic() - started:.1f} s: {command.text}")


def test_documented_sweep_writes_jobs_under_the_launch_folder(workspace: Path) -> None:
    """After the README's sweep ran: its jobs are ``outputs/train/multiruns/<date>_<time>_<id>/
    {0,1,2}``, relative to where the user launched it (no ``hydra.sweep.dir`` given)."""
    sweeps = sorted((workspace / "outputs" / "train" / "multiruns").glob("*"))
    if not sweeps:
        pytest.skip("run with the documented commands (test_command_runs_as_written)")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_[0-9a-f]{6}", sweeps[0].name)
    jobs = sorted(p.name for p in sweeps[0].iterdir() if p.is_dir() and p.name.isdigit())
    assert jobs == ["0", "1", "2"]
    lrs = [
        OmegaConf.load(sweeps[0] / job / ".hydra" / "config.yaml").model.optimizer.lr
        for job in jobs
    ]
    assert lrs == [1e-4, 2e-4, 5e-4]
    record = json.loads((sweeps[0] / "0" / "run.json").read_text())
    assert record["status"] == "finished"
    assert not os.path.exists(REPO_ROOT / "outputs" / "train" / "multiruns" / sweeps[0].name)

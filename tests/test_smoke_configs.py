"""``debug=fast`` composes for every model and experiment config and keeps its network.

The timing of those smoke runs is measured by ``benchmarks/smoke_times.py``, never asserted
here; this checks what makes them short and what keeps them honest: the config's own network
(``model.net`` and a GAN's discriminator unchanged), few steps, one centre-cropped image per
evaluation set, one logged image.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from helpers import CONF_DIR, REPO_ROOT, compose_config
from omegaconf import OmegaConf


def load_smoke_times():
    """``benchmarks/smoke_times.py`` as a module (benchmarks/ is not a package)."""
    path = REPO_ROOT / "benchmarks" / "smoke_times.py"
    spec = importlib.util.spec_from_file_location("smoke_times", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while defined
    spec.loader.exec_module(module)
    return module


SMOKE = load_smoke_times()
CONFIGS = [("model", name) for name in SMOKE.config_names("model")]
CONFIGS += [("experiment", name) for name in SMOKE.config_names("experiment")]


def test_the_smoke_script_reads_every_config_file() -> None:
    files = {(p.parent.name, p.stem) for g in ("model", "experiment")
             for p in (CONF_DIR / g).glob("*.yaml") if not p.stem.startswith("_")}  # fmt: skip
    assert set(CONFIGS) == files and ("model", "edsr_tiny") in files


def unresolved(cfg, key: str):
    """The node at ``key`` as plain containers, interpolations left as written."""
    node = OmegaConf.select(cfg, key)
    return None if node is None else OmegaConf.to_container(node, resolve=False)


@pytest.mark.parametrize(("group", "name"), CONFIGS, ids=[f"{g}={n}" for g, n in CONFIGS])
def test_debug_fast_composes_and_keeps_the_network(group: str, name: str, tmp_path: Path) -> None:
    full = compose_config(tmp_path, [f"{group}={name}"])
    fast = compose_config(tmp_path, [f"{group}={name}", "debug=fast"])
    for node in ("net", "discriminator"):  # as written: sizes may follow ${data.patch_size}
        assert unresolved(fast, f"model.{node}") == unresolved(full, f"model.{node}")
    assert fast.trainer.max_steps <= 4 and fast.trainer.num_sanity_val_steps == 0
    assert fast.trainer.limit_val_batches == fast.trainer.limit_test_batches == 1
    assert fast.data.eval_crop == 128 and fast.data.patch_size <= 48 and fast.data.batch_size <= 2
    assert fast.model.num_log_images == 1
    assert fast.task_name == "debug"


def test_the_smoke_commands_are_train_runs_except_for_a_baseline(tmp_path: Path) -> None:
    train = SMOKE.smoke_command("model", "edsr_tiny", tmp_path / "run", tmp_path)
    assert train[1:4] == ["src/train.py", "model=edsr_tiny", "debug=fast"]
    gan = SMOKE.smoke_command("model", "esrgan", tmp_path / "run", tmp_path)
    assert "data.patch_size=128" in gan and "model.loss.perceptual.weights=null" in gan
    baseline = SMOKE.smoke_command("model", "bicubic", tmp_path / "run", tmp_path)
    assert baseline[1:3] == ["src/eval.py", "model=bicubic"] and "+data.eval_crop=128" in baseline

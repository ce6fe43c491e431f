"""``benchmarks/gpu_check.py`` without CUDA: it says so, dry-runs its CPU parts and exits 0."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO_ROOT, run_script

SCRIPT = REPO_ROOT / "benchmarks" / "gpu_check.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_dry_run_without_cuda(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a GPU machine
    monkeypatch.chdir(REPO_ROOT)
    assert run_script([str(SCRIPT), "--out", str(tmp_path)]) == 0
    assert "no CUDA device" in capsys.readouterr().out
    rows = json.loads((tmp_path / "gpu_check.json").read_text())
    status = {(row["section"], row["setting"]): row["status"] for row in rows[1:]}
    for family in load_script().FAMILIES:  # swinir_light's config exists in this checkout
        assert status[(f"training step, {family.kind}", f"{family.name} fp32 eager")] == "ok"
    assert set(status.values()) <= {"ok", "skipped"}
    skipped = {section for (section, _), value in status.items() if value == "skipped"}
    assert skipped == {"DDP (trainer=ddp, NCCL)", "torch.compile"}
    ok_sections = {section for (section, _), value in status.items() if value == "ok"}
    assert any(s.startswith("EDSR-baseline x2 full loop") for s in ok_sections)
    assert {"cached loader alone", "inference, 64 x 64 LR"} <= ok_sections
    table = (tmp_path / "gpu_check.md").read_text()
    assert (
        table.startswith("No CUDA device: dry run") and "| esrgan_smoke fp32 eager | ok |" in table
    )


@pytest.mark.parametrize(
    ("name", "tflops"),
    [
        ("NVIDIA H200", 989.5),
        ("NVIDIA H100 80GB HBM3", 989.5),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", 835.5),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA L40S", 362.0),
        ("Tesla T4", None),  # Turing: no bf16 Tensor Cores
    ],
)
def test_bf16_peak_by_device_name(name: str, tflops: float | None) -> None:
    peak, source = load_script().bf16_peak(name)
    assert peak == tflops
    assert "datasheet" in source if tflops else name in source

"""``benchmarks/throughput.py``'s degradation section: its keys, its row and its target."""

from __future__ import annotations

import json
import math
from pathlib import Path

from helpers import compose_config
from test_throughput import load_benchmark


def test_the_degradation_section_alone_writes_its_row(tmp_path: Path) -> None:
    benchmark = load_benchmark()
    overrides = benchmark.benchmark_overrides(
        [
            "model=rrdb",
            "scale=4",
            "model.net.num_block=1",
            "model.net.num_feat=8",
            "model.net.num_grow_ch=4",
            "data.batch_size=2",
            "data.patch_size=32",
            "bench.degradation_only=true",
            "bench.degrade_rounds=2",
            "bench.warmup=1",
            "bench.steps=1",
        ]  # fmt: skip
    )
    results = benchmark.run_benchmark(compose_config(tmp_path, overrides))
    table = benchmark.write_results(results, tmp_path)
    written = json.loads((tmp_path / "throughput.json").read_text())
    assert len(written["degradation_cost_ratios"]) == 2
    for key in ("degradation_patches_per_s", "degradation_step_patches_per_s"):
        assert math.isfinite(written[key]) and written[key] > 0
    assert written["degradation_cost_ratios"][0] == (
        written["degradation_step_patches_per_s_rounds"][0]
        / written["degradation_patches_per_s_rounds"][0]
    )
    assert "| degradation pipeline (Real-ESRGAN, one batch) |" in table
    assert "degradation costs < 10 % of a step" in table
    assert "loader" not in table

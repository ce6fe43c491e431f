"""Adding an architecture is one ``.py`` and one short ``.yaml``, with no edit elsewhere: a toy
network in a temporary package and its config in a temporary config folder (added with
``hydra.searchpath``) train, evaluate from the checkpoint alone, and export."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from helpers import compose_config

from srlab.app.evaluate import evaluate
from srlab.app.export import export
from srlab.app.train import train

NETWORK = '''
"""A toy network: one conv to scale^2 x channels, then a pixel shuffle."""
from torch import nn


class ToyNet(nn.Module):
    """Conv + PixelShuffle. Args: upscale: the SR scale; num_in_ch: image channels."""

    def __init__(self, upscale: int = 2, num_in_ch: int = 3) -> None:
        super().__init__()
        self.upscale, self.num_in_ch = upscale, num_in_ch
        self.body = nn.Sequential(
            nn.Conv2d(num_in_ch, num_in_ch * upscale**2, 3, padding=1), nn.PixelShuffle(upscale)
        )

    def forward(self, x):
        return self.body(x)
'''

CONFIG = """
defaults:
  - _task
  - _self_

name: toy
_target_: srlab.tasks.RegressionTask
net:
  _target_: toy_arch.ToyNet
  upscale: ${scale}
loss:
  _target_: torch.nn.L1Loss
optimizer:
  _target_: torch.optim.Adam
  _partial_: true
  lr: 1.0e-3
scheduler: null
"""


def test_toy_architecture_trains_evaluates_and_exports(
    tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "package"
    package.mkdir()
    (package / "toy_arch.py").write_text(NETWORK)
    monkeypatch.syspath_prepend(str(package))
    configs = tmp_path / "configs"
    (configs / "model").mkdir(parents=True)
    (configs / "model" / "toy.yaml").write_text(CONFIG)
    searchpath = f"hydra.searchpath=[file://{configs}]"

    run = tmp_path / "run"
    train(
        compose_config(
            run,
            [searchpath, "model=toy", "debug=fast", "logger=none", "data.val_sets=[set5]",
             f"paths.data_dir={shared_data / 'benchmarks'}"],
        )
    )  # fmt: skip
    tested = json.loads((run / "run.json").read_text())["test"]
    assert math.isfinite(tested["test/Set5/psnr"])  # 4 steps from random weights: trained, not good

    checkpoint = run / "checkpoints" / "last.ckpt"
    results = evaluate(
        compose_config(
            tmp_path / "eval",
            [f"ckpt_path={checkpoint}", "data.test_sets=[set5]",
             f"data.root={shared_data / 'benchmarks'}"],
            config_name="eval",
        )
    )  # fmt: skip
    assert results["model"] == "toy" and results["scale"] == 2
    assert len(results["datasets"]["Set5"]["images"]) == 5

    output = tmp_path / "toy.pt"
    result = export(
        compose_config(
            tmp_path / "export",
            [f"ckpt_path={checkpoint}", "format=torchscript", f"output={output}"],
            config_name="export",
        )
    )
    assert result.ok and output.is_file()

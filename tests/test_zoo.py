"""The model zoo: every entry loads offline, its record is complete, and its Set5 score is the
record's; ``zoo:<name>`` works in eval, infer, export and fine-tuning."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO_ROOT, compose_config
from PIL import Image

from srlab import zoo
from srlab.app.evaluate import evaluate
from srlab.app.export import export
from srlab.app.infer import infer
from srlab.app.network import build_network
from srlab.app.train import build
from srlab.errors import ConfigError
from srlab.weights import read_state_dict
from srlab.weights.safetensors_file import stored_model_metadata

ENTRIES = sorted(zoo.entries())
RECORD_KEYS = {
    "model",
    "scale",
    "params",
    "command",
    "git_commit",
    "steps",
    "wall_time_s",
    "patches_per_s",
    "machine",
    "data",
    "config",
    "curve",
    "results",
    "results_default_lr",
    "paper",
}


def test_the_reproduced_fsrcnn_models_are_in_the_zoo() -> None:
    assert {"fsrcnn_x2", "fsrcnn_x3"} <= set(ENTRIES)


@pytest.mark.parametrize("name", ENTRIES)
def test_record_describes_the_weights(name: str, tmp_path: Path) -> None:
    item = zoo.entry(f"zoo:{name}")
    record = item.record
    assert set(record) >= RECORD_KEYS
    assert item.weights.stat().st_size < 500_000  # a few hundred KB at most
    stored = stored_model_metadata(item.weights)
    assert stored["scale"] == record["scale"] and stored["model"]["name"] == record["model"]
    net = build_network(compose_config(tmp_path, [f"ckpt_path=zoo:{name}"], "eval"))
    assert sum(p.numel() for p in net.net.parameters()) == record["params"]
    assert net.scale == record["scale"]
    steps = [row["step"] for row in record["curve"]]
    assert steps == sorted(steps) and steps[-1] == record["steps"]
    assert record["command"].startswith("python src/train.py experiment=")
    assert {"Set5", "Set14", "BSD100"} <= set(record["results"]["sets"])
    assert record["paper"]["source"] and "Set5" in record["paper"]["sets"]
    # A fine-tuned entry's starting weights are in the zoo too, so both stages can be rerun.
    parent = record.get("fine_tuned_from")
    assert parent is None or (zoo.is_zoo(parent) and parent.removeprefix("zoo:") in ENTRIES)


@pytest.mark.parametrize("name", ENTRIES)
def test_set5_score_equals_the_record(name: str, shared_data: Path, tmp_path: Path) -> None:
    """The record's own scoring command, on Set5, gives its number (1e-4 dB)."""
    record = zoo.entry(name).record
    cfg = compose_config(
        tmp_path,
        [
            f"ckpt_path=zoo:{name}",
            f"data.root={shared_data / 'benchmarks'}",
            "data.test_sets=[set5]",
            "eval.lr_from=y",
        ],
        config_name="eval",
    )
    scores = evaluate(cfg)["datasets"]["Set5"]
    expected = record["results"]["sets"]["Set5"]
    assert scores["psnr"] == pytest.approx(expected["psnr"], abs=1e-4)
    assert scores["ssim"] == pytest.approx(expected["ssim"], abs=1e-6)


def _first() -> str:
    if not ENTRIES:
        pytest.fail("the zoo has no entry: src/srlab/zoo/*.json is missing from the install")
    return ENTRIES[0]


def test_infer_and_export_take_a_zoo_name(tmp_path: Path) -> None:
    name = _first()
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24, 3), np.uint8)).save(photo)
    report = infer(
        compose_config(
            tmp_path / "infer",
            [f"ckpt_path=zoo:{name}", f"input={photo}", f"output={tmp_path / 'sr'}"],
            "infer",
        )
    )
    scale = zoo.entry(name).record["scale"]
    assert report.written and Image.open(report.written[0]).size == (24 * scale, 20 * scale)
    result = export(
        compose_config(
            tmp_path / "export",
            [f"ckpt_path=zoo:{name}", "format=torchscript", f"output={tmp_path / 'net.pt'}"],
            "export",
        )
    )
    assert result.ok, result.max_abs_diff


def test_fine_tuning_starts_from_the_zoo_weights(tmp_path: Path) -> None:
    name = _first()
    record = zoo.entry(name).record
    cfg = compose_config(
        tmp_path,
        [f"model={record['model']}", f"scale={record['scale']}", f"model.pretrained=zoo:{name}"],
    )
    _, task, _ = build(cfg, prepare=False)
    state, _ = read_state_dict(zoo.entry(name).weights)
    for key, value in task.net.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)


def test_an_unknown_name_lists_the_entries(tmp_path: Path) -> None:
    with pytest.raises(zoo.ZooError, match=r"zoo:nope is not in srlab's model zoo \(entries: "):
        zoo.entry("zoo:nope")
    cfg = compose_config(tmp_path, ["ckpt_path=zoo:nope"], "eval")
    with pytest.raises(zoo.ZooError, match="python -m srlab.zoo"):
        build_network(cfg)


def test_resuming_from_a_zoo_entry_says_to_fine_tune(tmp_path: Path) -> None:
    from srlab.runtime.checkpoints import resolve_ckpt_path

    with pytest.raises(ConfigError, match="model.pretrained=zoo:fsrcnn_x2"):
        resolve_ckpt_path("zoo:fsrcnn_x2", tmp_path, tmp_path)


def test_listing_shows_every_entry_beside_the_paper(capsys) -> None:
    from srlab.zoo.__main__ import main

    assert main() == 0
    out = capsys.readouterr().out
    for name in ENTRIES:
        assert f"zoo:{name}" in out
        paper = zoo.entry(name).record["paper"]["sets"]["Set5"]["psnr"]
        assert f"{paper:.2f}" in out


def test_the_reproduction_report_is_generated_from_the_records() -> None:
    """benchmarks/reproduce.md is what `python benchmarks/reproduce.py report` writes from the
    zoo's records: no number in it is typed by hand."""
    module = runpy.run_path(str(REPO_ROOT / "benchmarks" / "reproduce.py"))
    assert (REPO_ROOT / "benchmarks" / "reproduce.md").read_text() == module["report_text"]()
    assert (REPO_ROOT / "benchmarks" / "reproduce_curves.png").is_file()

"""src/eval.py: paper-protocol evaluation, published tables, folder scoring, tiling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_config
from PIL import Image

from srlab.app.evaluate import evaluate, match_folders
from srlab.app.network import build_network
from srlab.errors import ConfigError, DataError
from srlab.imaging import self_ensemble, tiled_forward
from srlab.models import EDSR, Bicubic
from srlab.tasks.evaluation import EvalOptions

# shared/data/README.md: the published bicubic baseline (PSNR, SSIM).
PUBLISHED = {
    ("Set5", 2): (33.66, 0.9299),
    ("Set5", 3): (30.39, 0.8682),
    ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688),
    ("Set14", 3): (27.55, 0.7742),
    ("Set14", 4): (26.00, 0.7027),
}


def _eval_cfg(out: Path, overrides: list[str], shared_data: Path):
    return compose_config(
        out, [f"data.root={shared_data / 'benchmarks'}", *overrides], config_name="eval"
    )


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_reproduces_published_table(shared_data: Path, tmp_path: Path, scale: int) -> None:
    results = evaluate(_eval_cfg(tmp_path, ["model=bicubic", f"scale={scale}"], shared_data))
    for set_name in ("Set5", "Set14"):
        entry = results["datasets"][set_name]
        psnr, ssim = PUBLISHED[(set_name, scale)]
        assert entry["psnr"] == pytest.approx(psnr, abs=0.03), (set_name, entry["psnr"])
        assert entry["ssim"] == pytest.approx(ssim, abs=0.0015), (set_name, entry["ssim"])
        assert entry["published"]["psnr"] == psnr  # the shipped table agrees with the README
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["scale"] == scale and on_disk["model"] == "bicubic"
    assert on_disk["protocol"] == "y-shave-scale"
    assert len(on_disk["datasets"]["Set14"]["images"]) == 14
    assert "| Set5 |" in (tmp_path / "results.md").read_text()


def test_folder_scoring_equals_model_scoring(shared_data: Path, tmp_path: Path) -> None:
    model_run = evaluate(
        _eval_cfg(
            tmp_path / "model",
            ["model=bicubic", "scale=3", "eval.save_images=true", "data.test_sets=[set14]"],
            shared_data,
        )
    )
    # Rename the saved images the way other tools do: <name>_x3_SR.png.
    sr_dir = tmp_path / "sr"
    sr_dir.mkdir()
    for image in (tmp_path / "model" / "images" / "Set14").iterdir():
        image.rename(sr_dir / f"{image.stem}_x3_SR.png")
    hr_dir = shared_data / "benchmarks" / "Set14" / "HR"
    folder_run = evaluate(
        _eval_cfg(
            tmp_path / "folder", [f"sr_dir={sr_dir}", f"hr_dir={hr_dir}", "scale=3"], shared_data
        )
    )
    expected = model_run["datasets"]["Set14"]
    got = folder_run["datasets"]["HR"]
    assert got["psnr"] == pytest.approx(expected["psnr"], abs=1e-9)
    assert got["ssim"] == pytest.approx(expected["ssim"], abs=1e-9)
    assert got["images"].keys() == expected["images"].keys()


def test_folder_matching_rules(tmp_path: Path) -> None:
    hr, sr = tmp_path / "hr", tmp_path / "sr"
    for name in ("img_001", "img_0010"):
        (hr / name).parent.mkdir(exist_ok=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(hr / f"{name}.png")
    sr.mkdir()
    for name in ("img_001_SR", "img_0010_SR"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(sr / f"{name}.png")
    pairs = {h.stem: s.stem for s, h in match_folders(sr, hr)}
    assert pairs == {"img_001": "img_001_SR", "img_0010": "img_0010_SR"}
    (sr / "img_0010_SR.png").unlink()
    with pytest.raises(DataError, match="no SR image for"):
        match_folders(sr, hr)


def test_folder_scoring_size_mismatch_is_clear(tmp_path: Path, shared_data: Path) -> None:
    hr, sr = tmp_path / "hr", tmp_path / "sr"
    hr.mkdir(), sr.mkdir()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(hr / "a.png")
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(sr / "a_SR.png")
    with pytest.raises(DataError, match="a_SR.png is 40x30"):
        evaluate(
            _eval_cfg(tmp_path / "out", [f"sr_dir={sr}", f"hr_dir={hr}", "scale=2"], shared_data)
        )


def test_model_with_weights_needs_them(tmp_path: Path, shared_data: Path) -> None:
    with pytest.raises(ConfigError, match="ckpt_path="):
        build_network(_eval_cfg(tmp_path, ["model=edsr_baseline", "scale=2"], shared_data))


def test_checkpoint_is_evaluated(tmp_path: Path, shared_data: Path) -> None:
    net = EDSR(num_feat=8, num_block=1, upscale=2)
    torch.save(
        {"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "m.ckpt"
    )
    cfg = _eval_cfg(
        tmp_path,
        ["model=edsr_baseline", "scale=2", "model.net.num_feat=8", "model.net.num_block=1",
         f"ckpt_path={tmp_path / 'm.ckpt'}", "data.test_sets=[set5]"],
        shared_data,
    )  # fmt: skip
    loaded = build_network(cfg).net
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert "Set5" in evaluate(cfg)["datasets"]


def test_tiled_equals_untiled_on_edsr_baseline() -> None:
    torch.manual_seed(0)
    net = EDSR(num_feat=64, num_block=16, upscale=2).eval()
    lr = torch.rand(1, 3, 44, 40)
    with torch.no_grad():
        full = net(lr)
        # Receptive field: 35 LR convs + one HR conv: 36 LR pixels; 40 covers it.
        tiled = tiled_forward(net, lr, scale=2, tile=20, overlap=40)
    assert tiled.shape == full.shape
    assert (tiled - full).abs().max().item() < 1e-5


def test_self_ensemble_of_an_equivariant_model_is_the_model() -> None:
    lr = torch.rand(1, 3, 9, 7)
    bicubic = Bicubic(upscale=3)
    torch.testing.assert_close(self_ensemble(bicubic, lr), bicubic(lr), atol=1e-6, rtol=0)


def test_protocol_names_and_options() -> None:
    assert EvalOptions().protocol == "y-shave-scale"
    assert EvalOptions("rgb", 0, False).protocol == "rgb-shave-0"
    assert EvalOptions("y", 4, True).protocol == "y8-shave-4"
    with pytest.raises(ConfigError, match="channel"):
        EvalOptions("lab")


def test_training_test_and_eval_of_its_checkpoint_agree(tmp_path: Path, shared_data: Path) -> None:
    """One evaluation path: the test at the end of training and `python src/eval.py
    ckpt_path=<that checkpoint>` (no model, no scale: the checkpoint names them) give the same
    numbers."""
    from srlab.app.train import train

    benchmarks = shared_data / "benchmarks"
    run = tmp_path / "run"
    train(
        compose_config(
            run,
            ["debug=fast", "logger=none", "data.val_sets=[set5]", "data.eval_crop=null",
             "trainer.limit_val_batches=null", "trainer.limit_test_batches=null",
             f"paths.data_dir={benchmarks}"],
        )
    )  # fmt: skip
    tested = json.loads((run / "run.json").read_text())["test"]
    (best,) = (run / "checkpoints").glob("best_*.ckpt")
    cfg = _eval_cfg(tmp_path / "eval", [f"ckpt_path={best}", "data.test_sets=[set5]"], shared_data)
    results = evaluate(cfg)
    assert results["model"] == "edsr_tiny" and results["scale"] == 2
    set5 = results["datasets"]["Set5"]
    assert set5["psnr"] == pytest.approx(tested["test/Set5/psnr"], abs=1e-9)
    assert set5["ssim"] == pytest.approx(tested["test/Set5/ssim"], abs=1e-9)
    assert set5["bicubic"]["psnr"] == pytest.approx(tested["test/Set5/psnr_bicubic"], abs=1e-9)
    assert len(set5["images"]) == 5
    assert np.mean([v["psnr"] for v in set5["images"].values()]) == pytest.approx(set5["psnr"])


def test_renamed_keys_name_their_replacement() -> None:
    from srlab.runtime.hydra import check_renamed_keys

    with pytest.raises(ConfigError, match="ckpt is now ckpt_path; eval.sets is now data.test_sets"):
        check_renamed_keys("eval", ["ckpt=a.ckpt", "eval.sets=[set5]", "scale=2"])
    with pytest.raises(ConfigError, match="data_root is now data.root"):
        check_renamed_keys("eval", ["+data_root=/data"])
    with pytest.raises(ConfigError, match="tile is now inference.tile"):
        check_renamed_keys("infer", ["tile=256"])
    check_renamed_keys("eval", ["ckpt_path=a.ckpt", "data.test_sets=[set5]"])  # no error

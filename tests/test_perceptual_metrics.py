"""LPIPS, DISTS and NIQE (srlab.metrics.perceptual) against their references, as metrics of
validation, test and src/eval.py (also without HR), and as losses.

References: the ``lpips`` (0.1.4) and ``DISTS_pytorch`` (0.1) packages from PyPI (dev extra),
which build their trunks with torchvision; BasicSR's NIQE, transcribed in
``tests/metrics_perceptual/basicsr_niqe.py`` (BasicSR does not install here, see
docs/perceptual_metrics.md), and the MATLAB value BasicSR publishes for ``baboon.png``.
ImageNet trunks cannot be downloaded on the test machines: the reference comparisons run on
random trunks (the same weights in both implementations) with the real calibration weights;
``SRLAB_ALEXNET_WEIGHTS`` / ``SRLAB_VGG16_WEIGHTS`` (torchvision's files) add the comparison
with ImageNet trunks (``-m slow``).
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import numpy as np
import pytest
import torch
from helpers import compose_config

from srlab.app.evaluate import evaluate
from srlab.data import read_image
from srlab.data.datasets import to_tensor
from srlab.errors import ConfigError
from srlab.imaging import imresize
from srlab.imaging.io import write_image
from srlab.losses import DISTSLoss, LPIPSLoss, WeightedLoss
from srlab.metrics.perceptual import (
    DISTS,
    LPIPS,
    NIQE,
    AlexNetFeatures,
    PerceptualMetrics,
    PerceptualScore,
    VGG16Features,
    build_backbone,
    niqe_y,
)
from srlab.metrics.perceptual.niqe import pristine_file

sys.path.insert(0, str(Path(__file__).parent / "metrics_perceptual"))
import basicsr_niqe  # noqa: E402

lpips = pytest.importorskip("lpips", reason="the dev extra's reference LPIPS")
dists_pt = pytest.importorskip("DISTS_pytorch.DISTS_pt", reason="the dev extra's reference DISTS")
torchvision = pytest.importorskip("torchvision")
#: torchvision's builder, kept before tests patch ``dists_pt.models.vgg16`` (the same module).
_VGG16 = torchvision.models.vgg16

#: The agreement the issue asks for.
TOLERANCE = 1e-5
#: MATLAB R2021a NIQE of BasicSR's tests/data/baboon.png, as BasicSR's calculate_niqe
#: docstring quotes it (basicsr 1.4.2, basicsr/metrics/niqe.py); that file is taken to be
#: Set14's baboon (the bytes are not compared).
MATLAB_NIQE_BABOON = 5.72957338
#: srlab's NIQE of Set14 baboon is 5.729960 (float64, as MATLAB computes): 3.9e-4 above the
#: MATLAB value; BasicSR's own code (float32) gives 5.7295726. Of the 250 AGGD shapes fitted
#: (25 blocks x 2 scales x 5 fits) one sits at a near-tie of the 0.001-step grid search:
#: the local mean and deviation in float32, as BasicSR computes them, move it one step
#: (5.729586, 1.3e-5 from MATLAB); no other shape moves. Hence the tolerance.
MATLAB_NIQE_TOLERANCE = 1e-3


def _random_trunk_lpips(net: str) -> tuple[torch.nn.Module, LPIPS]:
    """lpips' LPIPS with a random trunk and its v0.1 linear layers, and srlab's with the same
    trunk weights (and its shipped copy of the linear layers)."""
    torch.manual_seed(0)
    reference = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    mine = LPIPS(net, backbone=None, allow_random_weights=True)
    state = {f"features.{k.split('.', 1)[1]}": v for k, v in reference.net.state_dict().items()}
    mine.trunk.load_state_dict(state)
    return reference, mine


def _random_trunk_dists(monkeypatch: pytest.MonkeyPatch) -> tuple[torch.nn.Module, DISTS]:
    """DISTS_pytorch's DISTS with a random VGG16 (it would download ImageNet weights) and its
    own alpha/beta file, and srlab's with the same VGG16."""
    torch.manual_seed(0)
    features = _VGG16().features.state_dict()

    def vgg16(pretrained: bool = False, **kwargs: object) -> torch.nn.Module:
        model = _VGG16()
        model.features.load_state_dict(features)
        return model

    monkeypatch.setattr(dists_pt.models, "vgg16", vgg16)
    reference = dists_pt.DISTS(load_weights=False)
    weights_file = Path(dists_pt.__file__).parent / "weights.pt"
    weights = torch.load(weights_file, map_location="cpu", weights_only=True)
    reference.alpha.data, reference.beta.data = weights["alpha"], weights["beta"]
    mine = DISTS(backbone=None, allow_random_weights=True)
    mine.trunk.features.load_state_dict(features)
    return reference, mine


def _pair(seed: int = 0, shape: tuple[int, ...] = (2, 3, 64, 80)) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=generator)
    noise = torch.randn(shape, generator=generator)
    return x, (x + 0.1 * noise).clamp(0, 1)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_the_lpips_package_on_random_trunks(net: str) -> None:
    reference, mine = _random_trunk_lpips(net)
    x, y = _pair()
    with torch.no_grad():
        expected = reference(x, y, normalize=True).flatten()
        got = mine(x, y)
    assert got.shape == (2,)
    assert (got - expected).abs().max().item() < TOLERANCE, (got, expected)


def test_dists_equals_dists_pytorch_on_a_random_trunk(monkeypatch: pytest.MonkeyPatch) -> None:
    reference, mine = _random_trunk_dists(monkeypatch)
    x, y = _pair(shape=(2, 3, 64, 72))
    with torch.no_grad():
        expected, got = reference(x, y), mine(x, y)
    assert (got - expected).abs().max().item() < TOLERANCE, (got, expected)


def _set5_pairs(shared_data: Path, names: tuple[str, ...] = ("butterfly", "bird")):
    """Set5 HR images and their x4 MATLAB-bicubic round trip (LR, then upscaled)."""
    for name in names:
        hr = to_tensor(read_image(shared_data / "benchmarks" / "Set5" / "HR" / f"{name}.png"))
        hr = hr[None, :, : hr.shape[1] // 4 * 4, : hr.shape[2] // 4 * 4]
        bicubic = imresize(imresize(hr, scale=1 / 4), scale=4).clamp(0, 1)
        yield name, hr, (bicubic * 255).round() / 255


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_the_lpips_package_on_set5_and_its_bicubic_upscale(
    shared_data: Path, net: str
) -> None:
    reference, mine = _random_trunk_lpips(net)
    for name, hr, bicubic in _set5_pairs(shared_data):
        with torch.no_grad():
            expected = reference(bicubic, hr, normalize=True).flatten()
            got = mine(bicubic, hr)
        assert (got - expected).abs().max().item() < TOLERANCE, (name, got, expected)


def test_dists_equals_dists_pytorch_on_set5_and_its_bicubic_upscale(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, mine = _random_trunk_dists(monkeypatch)
    for name, hr, bicubic in _set5_pairs(shared_data):
        with torch.no_grad():
            expected, got = reference(bicubic, hr), mine(bicubic, hr)
        assert (got - expected).abs().max().item() < TOLERANCE, (name, got, expected)


@pytest.mark.slow  # the ImageNet trunks are files the user supplies (no download here)
@pytest.mark.skipif(
    not (os.environ.get("SRLAB_ALEXNET_WEIGHTS") and os.environ.get("SRLAB_VGG16_WEIGHTS")),
    reason="set SRLAB_ALEXNET_WEIGHTS and SRLAB_VGG16_WEIGHTS to torchvision's weight files",
)
def test_imagenet_trunks_equal_the_references_on_set5(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"alex": os.environ["SRLAB_ALEXNET_WEIGHTS"], "vgg": os.environ["SRLAB_VGG16_WEIGHTS"]}
    for net, path in files.items():
        reference = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
        state = torch.load(path, map_location="cpu", weights_only=True)
        features = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("features.")}
        for module in reference.net.children():
            for index, layer in module.named_children():
                if isinstance(layer, torch.nn.Conv2d):
                    layer.weight.data = features[f"{index}.weight"]
                    layer.bias.data = features[f"{index}.bias"]
        mine = LPIPS(net, backbone=path)
        for name, hr, bicubic in _set5_pairs(shared_data):
            with torch.no_grad():
                expected = reference(bicubic, hr, normalize=True).flatten()
                got = mine(bicubic, hr)
            assert (got - expected).abs().max().item() < TOLERANCE, (net, name, got, expected)
    state = torch.load(files["vgg"], map_location="cpu", weights_only=True)
    monkeypatch.setattr(
        dists_pt.models,
        "vgg16",
        lambda pretrained=False, **kw: _torchvision_vgg16_with(state),
    )
    reference = dists_pt.DISTS(load_weights=False)
    weights = torch.load(
        Path(dists_pt.__file__).parent / "weights.pt", map_location="cpu", weights_only=True
    )
    reference.alpha.data, reference.beta.data = weights["alpha"], weights["beta"]
    mine = DISTS(backbone=files["vgg"])
    for name, hr, bicubic in _set5_pairs(shared_data):
        with torch.no_grad():
            expected, got = reference(bicubic, hr), mine(bicubic, hr)
        assert (got - expected).abs().max().item() < TOLERANCE, (name, got, expected)


def _torchvision_vgg16_with(state: dict) -> torch.nn.Module:
    model = _VGG16()
    model.load_state_dict(state)
    return model


# -- NIQE ------------------------------------------------------------------------------------


def _pristine() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(pristine_file()) as model:
        return model["mu_pris_param"], model["cov_pris_param"], model["gaussian_window"]


def _reference_niqe(y: np.ndarray) -> float:
    """BasicSR's NIQE (transcribed) in float64, the half-size image by srlab's MATLAB imresize."""

    def half(image: np.ndarray) -> np.ndarray:
        return imresize(torch.from_numpy(np.ascontiguousarray(image)), scale=0.5).numpy()

    return basicsr_niqe.niqe(y, *_pristine(), imresize_half=half)


def test_niqe_equals_the_basicsr_transcription_on_a_synthetic_image() -> None:
    # A smooth image with texture and an edge: natural enough for every AGGD fit.
    rows, cols = np.mgrid[0:200, 0:300].astype(np.float64)
    rng = np.random.default_rng(0)
    y = 128 + 60 * np.sin(rows / 17) * np.cos(cols / 23) + 20 * rng.standard_normal((200, 300))
    y = np.clip(np.round(y + 40 * (cols > 150)), 0, 255)
    expected = _reference_niqe(y)
    mu, cov, window = (torch.from_numpy(a) for a in _pristine())
    got = niqe_y(torch.from_numpy(y), mu, cov, window).item()
    assert got == pytest.approx(expected, abs=1e-9)


def test_niqe_of_baboon_equals_the_transcription_and_the_matlab_value(shared_data: Path) -> None:
    image = read_image(shared_data / "benchmarks" / "Set14" / "HR" / "baboon.png")
    assert image.shape == (480, 500, 3)
    expected = _reference_niqe(basicsr_niqe.y_channel(image, np.float64))
    got = NIQE()(to_tensor(image)[None]).item()
    assert got == pytest.approx(expected, abs=1e-9)
    assert got == pytest.approx(MATLAB_NIQE_BABOON, abs=MATLAB_NIQE_TOLERANCE)


def test_niqe_refuses_an_image_of_one_block() -> None:
    with pytest.raises(ValueError, match="two 96x96 blocks"):
        NIQE()(torch.rand(1, 3, 128, 128))


# -- metrics of a task and of src/eval.py ----------------------------------------------------


def test_perceptual_score_is_the_mean_over_images_of_quantized_inputs() -> None:
    scorer = LPIPS("alex", backbone=None, allow_random_weights=True)
    metric = PerceptualScore(scorer)
    x, y = _pair(shape=(3, 3, 32, 32))
    metric.update(x[:1], y[:1])
    metric.update(x[1:], y[1:])
    quantized = [(t * 255).round() / 255 for t in (x, y)]
    with torch.no_grad():
        expected = scorer(*quantized).double().mean()
    assert metric.compute().item() == pytest.approx(expected.item(), abs=1e-7)
    assert metric.last_scores.shape == (2,)
    assert "_scorer" not in dict(metric.named_modules())  # shared, not a submodule
    assert not metric.state_dict()


def test_metric_names_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown \\['psnr'\\]"):
        PerceptualMetrics(perceptual=("psnr",))
    with pytest.raises(ConfigError, match="metrics.colour is not a metrics option"):
        PerceptualMetrics.from_config({"colour": 1})


def _eval_cfg(out: Path, overrides: list[str], config_name: str = "eval"):
    random_trunks = [
        "metrics.allow_random_weights=true",
        "metrics.backbones.alexnet=null",
        "metrics.backbones.vgg16=null",
    ]
    return compose_config(out, [*random_trunks, *overrides], config_name=config_name)


def test_eval_logs_perceptual_metrics_per_set(shared_data: Path, tmp_path: Path) -> None:
    cfg = _eval_cfg(
        tmp_path,
        [
            f"data.root={shared_data / 'benchmarks'}",
            "model=bicubic",
            "scale=4",
            "data.test_sets=[set5]",
            "metrics.perceptual=[lpips,niqe]",
        ],
    )
    results = evaluate(cfg)
    set5 = results["datasets"]["Set5"]
    assert results["metrics"] == ["psnr", "ssim", "lpips", "niqe"]
    assert set5["lpips"] == pytest.approx(np.mean([v["lpips"] for v in set5["images"].values()]))
    assert set5["bicubic"]["niqe"] == pytest.approx(set5["niqe"])  # model=bicubic is bicubic
    assert set(set5["images"]["baby"]) == {"psnr", "ssim", "lpips", "niqe"}
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["datasets"]["Set5"]["lpips"] == set5["lpips"]
    assert "LPIPS" in (tmp_path / "results.md").read_text()


def test_folder_scoring_adds_the_perceptual_metrics(tmp_path: Path) -> None:
    hr_dir, sr_dir = tmp_path / "hr", tmp_path / "sr"
    hr_dir.mkdir()
    sr_dir.mkdir()
    generator = torch.Generator().manual_seed(1)
    hr = torch.rand(1, 3, 64, 64, generator=generator)
    sr = (hr + 0.05 * torch.randn(hr.shape, generator=generator)).clamp(0, 1)
    for folder, name, image in ((hr_dir, "img.png", hr), (sr_dir, "img_x2_SR.png", sr)):
        write_image(folder / name, (image[0] * 255).round().byte().permute(1, 2, 0).numpy())
    results = evaluate(
        _eval_cfg(tmp_path / "out", [f"sr_dir={sr_dir}", f"hr_dir={hr_dir}", "scale=2",
                                     "metrics.perceptual=[lpips_vgg]"])
    )  # fmt: skip
    assert results["metrics"] == ["psnr", "ssim", "lpips_vgg"]
    scorer = LPIPS("vgg", backbone=None, allow_random_weights=True)  # the same seeded trunk
    expected = scorer((sr * 255).round() / 255, (hr * 255).round() / 255).item()
    assert results["datasets"]["hr"]["lpips_vgg"] == pytest.approx(expected, abs=1e-6)


def _lr_folder(folder: Path, shared_data: Path) -> Path:
    folder.mkdir()
    for name in ("baby", "bird"):
        hr = to_tensor(read_image(shared_data / "benchmarks" / "Set5" / "HR" / f"{name}.png"))
        lr = imresize(hr[None], scale=1 / 2).clamp(0, 1)[0]
        write_image(folder / f"{name}.png", (lr * 255).round().byte().permute(1, 2, 0).numpy())
    return folder


def test_eval_on_real_lr_scores_niqe_only_and_says_so(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    lr_dir = _lr_folder(tmp_path / "photos", shared_data)
    cfg = _eval_cfg(
        tmp_path / "out",
        ["model=bicubic", "scale=2", f"lr_dir={lr_dir}", "metrics.perceptual=[lpips]"],
    )
    results = evaluate(cfg)
    assert results["reference"] == "none" and results["metrics"] == ["niqe"]
    assert "no-reference metrics only (niqe)" in results["note"]
    entry = results["datasets"]["photos"]
    assert set(entry["images"]) == {"baby", "bird"} and "psnr" not in entry
    assert entry["niqe"] == pytest.approx(entry["bicubic"]["niqe"])  # bicubic scored as bicubic
    expected = NIQE()(imresize(to_tensor(read_image(lr_dir / "baby.png"))[None], scale=2))
    assert entry["images"]["baby"]["niqe"] == pytest.approx(expected.item(), abs=1e-9)
    assert "no-reference metrics only" in capsys.readouterr().out
    on_disk = json.loads((tmp_path / "out" / "results.json").read_text())
    assert on_disk["reference"] == "none"
    assert "| set | NIQE | bicubic NIQE |" in (tmp_path / "out" / "results.md").read_text()


def test_eval_of_sr_images_without_hr_scores_niqe(shared_data: Path, tmp_path: Path) -> None:
    sr_dir = tmp_path / "sr"
    sr_dir.mkdir()
    for name in ("baby", "bird"):  # SR images made elsewhere: here, Set5's HR files
        hr = shared_data / "benchmarks" / "Set5" / "HR" / f"{name}.png"
        (sr_dir / f"{name}.png").write_bytes(hr.read_bytes())
    results = evaluate(_eval_cfg(tmp_path / "out", [f"sr_dir={sr_dir}"]))
    assert results["metrics"] == ["niqe"] and results["scale"] is None
    expected = NIQE()(to_tensor(read_image(sr_dir / "bird.png"))[None]).item()
    assert results["datasets"]["sr"]["images"]["bird"]["niqe"] == pytest.approx(expected)


def test_training_logs_perceptual_metrics_per_validation_set(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from srlab.app.train import train

    monkeypatch.setenv("COLUMNS", "300")  # rich: room for every column of the end table
    cfg = _eval_cfg(
        tmp_path,
        [
            "debug=fast",
            "logger=csv",
            "data.eval_crop=null",
            "data.val_sets=[{name: Crops, hr_dir: " + str(_val_folder(tmp_path)) + "}]",
            "metrics.perceptual=[lpips,dists,niqe]",
        ],
        config_name="train",
    )
    train(cfg)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = {key for record in records for key in record}
    tested = json.loads((tmp_path / "run.json").read_text())["test"]
    for name in ("lpips", "dists", "niqe"):
        assert f"val/Crops/{name}" in logged
        assert f"test/Crops/{name}" in tested and f"test/Crops/{name}_bicubic" in tested
    assert "bicubic NIQE" in capsys.readouterr().out  # the end table


def _val_folder(tmp_path: Path) -> Path:
    """Two 192 x 192 HR images (NIQE needs two 96 x 96 blocks)."""
    folder = tmp_path / "val_hr"
    folder.mkdir()
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:192, 0:192]
    for index in range(2):
        base = 128 + 80 * np.sin(rows / (9 + index)) * np.cos(cols / 13)
        image = np.clip(base[..., None] + rng.normal(0, 8, (192, 192, 3)), 0, 255)
        write_image(folder / f"img{index}.png", image.astype(np.uint8))
    return folder


# -- weights from a path or URL --------------------------------------------------------------


@pytest.fixture
def weights_server() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A local HTTP server on 127.0.0.1 serving the bytes of ``files`` (filled by the test)."""
    files: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", files
    finally:
        httpd.shutdown()
        httpd.server_close()


def _torchvision_layout(features: torch.nn.Module) -> bytes:
    """A state dict laid out as torchvision's file (features.* and a classifier), as bytes."""
    state = {f"features.{k.split('.', 1)[1]}": v for k, v in features.state_dict().items()}
    state["classifier.1.weight"] = torch.zeros(2, 2)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("arch, cls", [("alexnet", AlexNetFeatures), ("vgg16", VGG16Features)])
def test_backbone_weights_download_once_from_a_url(
    weights_server, arch: str, cls: type, tmp_path: Path
) -> None:
    url, files = weights_server
    source = cls(seed=7)
    files[f"/models/{arch}.pth"] = _torchvision_layout(source)
    key = f"metrics.backbones.{arch}"
    trunk = build_backbone(arch, f"{url}/models/{arch}.pth", key=key, random_key="r")
    for name, tensor in source.state_dict().items():
        assert torch.equal(trunk.state_dict()[name], tensor), name
    del files[f"/models/{arch}.pth"]  # cached: the second build needs no server
    again = build_backbone(arch, f"{url}/models/{arch}.pth", key=key, random_key="r")
    assert torch.equal(again.features[0].weight, source.features[0].weight)


def test_missing_backbone_weights_name_the_key_and_the_file(weights_server) -> None:
    url, _ = weights_server
    with pytest.raises(ConfigError, match=r"metrics\.backbones\.vgg16=.*vgg16-397923af\.pth"):
        PerceptualMetrics(
            perceptual=("dists",), backbones={"vgg16": f"{url}/nothing.pth"}
        ).scorers()
    with pytest.raises(ConfigError, match="metrics.allow_random_weights=true"):
        PerceptualMetrics(perceptual=("lpips",), backbones={"alexnet": None}).scorers()


def test_a_file_that_is_not_the_trunk_is_refused(tmp_path: Path) -> None:
    from srlab.weights import PretrainedError

    path = tmp_path / "alexnet.pth"
    path.write_bytes(_torchvision_layout(VGG16Features()))
    with pytest.raises(PretrainedError, match="not a torchvision alexnet state dict"):
        build_backbone("alexnet", path, key="k", random_key="r")


# -- losses ----------------------------------------------------------------------------------


def test_lpips_and_dists_losses_train_the_sr_image_and_stay_out_of_state_dicts() -> None:
    hr = torch.rand(2, 3, 64, 64)
    for loss in (
        LPIPSLoss("vgg", weights=None, allow_random_weights=True),
        DISTSLoss(weights=None, allow_random_weights=True),
    ):
        sr = (hr + 0.05 * torch.randn_like(hr)).requires_grad_(True)
        value = loss(sr, hr)
        value.backward()
        assert value.item() > 0 and sr.grad is not None and sr.grad.abs().sum() > 0
        assert not any(p.requires_grad for p in loss.parameters())
        assert loss.state_dict() == {}
        loss.load_state_dict({})  # a checkpoint without the frozen weights loads strictly
        with torch.no_grad():
            assert value.item() == pytest.approx(loss.metric(sr, hr).mean().item())


def test_weighted_loss_needs_one_weight_per_term() -> None:
    terms = {"l1": torch.nn.L1Loss(), "lpips": LPIPSLoss("alex", None, allow_random_weights=True)}
    loss = WeightedLoss(terms, {"l1": 1.0, "lpips": 0.5})
    sr, hr = _pair(shape=(1, 3, 32, 32))
    expected = torch.nn.functional.l1_loss(sr, hr) + 0.5 * terms["lpips"](sr, hr)
    assert loss(sr, hr).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ConfigError, match="one weight per term"):
        WeightedLoss(terms, {"l1": 1.0})


def test_gan_config_takes_lpips_as_its_perceptual_term(tmp_path: Path) -> None:
    from hydra.utils import instantiate

    cfg = compose_config(
        tmp_path,
        [
            "model=esrgan",
            "data.patch_size=128",
            "~model.loss.perceptual",
            "+model.loss.perceptual={_target_: srlab.losses.LPIPSLoss, net: vgg, weights: null, "
            "allow_random_weights: true}",
            "model.net.num_block=1",
            "model.net.num_feat=8",
            "model.net.num_grow_ch=4",
        ],
    )
    task = instantiate(cfg.model, _convert_="all")
    assert isinstance(task.perceptual_loss, LPIPSLoss)
    assert not any(k.startswith("perceptual_loss.") for k in task.state_dict())

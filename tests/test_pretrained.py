"""load_pretrained: foreign key layouts with their official names and shapes, checkpoint
wrappers (BasicSR, Lightning, EMA), strictness, ignore patterns, and cached downloads from a
local HTTP server."""

from __future__ import annotations

import functools
import hashlib
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from releases import conv, edsr_pytorch_state
from torch import nn

from srlab.errors import SRLabError
from srlab.models import EDSR, SRCNN, BicubicResidual
from srlab.models.rrdbnet import RRDBNet
from srlab.weights import (
    ChecksumError,
    KeyLayout,
    NetworkError,
    PretrainedError,
    cache_path,
    load_pretrained,
    register_layout,
    rename_by_rules,
    trained_scale,
)
from srlab.weights import registry as registry_module

TINY_RRDB = {"num_feat": 8, "num_block": 2, "num_grow_ch": 4}


def save(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


def assert_same(net: nn.Module, pairs: dict[str, torch.Tensor]) -> None:
    params = net.state_dict()
    for name, value in pairs.items():
        assert torch.equal(params[name], value), name


# -- EDSR-PyTorch (sanghyun-son/EDSR-PyTorch) ------------------------------------------------


def test_edsr_pytorch_baseline_x2_loads_strictly(tmp_path: Path) -> None:
    state = edsr_pytorch_state()
    assert state["head.0.weight"].shape == (64, 3, 3, 3)
    assert state["tail.0.0.weight"].shape == (256, 64, 3, 3)
    # The EDSR-baseline x2 of the paper: 1,369,859 parameters besides the mean shifts.
    assert sum(v.numel() for k, v in state.items() if "mean" not in k) == 1_369_859
    net = EDSR(num_feat=64, num_block=16, upscale=2, img_range=255)
    load_pretrained(net, save(state, tmp_path / "edsr_baseline_x2.pt"))
    assert_same(
        net,
        {
            "conv_first.weight": state["head.0.weight"],
            "body.0.conv1.weight": state["body.0.body.0.weight"],
            "body.15.conv2.bias": state["body.15.body.2.bias"],
            "conv_after_body.weight": state["body.16.weight"],
            "upsample.0.weight": state["tail.0.0.weight"],
            "conv_last.weight": state["tail.1.weight"],
            "conv_last.bias": state["tail.1.bias"],
        },
    )


def test_edsr_pytorch_weights_warn_without_img_range_255(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = edsr_pytorch_state(n_feats=8, n_resblocks=2)
    with caplog.at_level(logging.WARNING, logger="srlab.weights"):
        load_pretrained(EDSR(num_feat=8, num_block=2), save(state, tmp_path / "w.pt"))
    assert "img_range: 255" in caplog.text


def test_ignore_upsample_initializes_x4_from_x2(tmp_path: Path) -> None:
    """EDSR's recipe: an x4 network starts from the x2 weights, upsampler left fresh."""
    state = edsr_pytorch_state(scale=2, n_feats=8, n_resblocks=2)
    path = save(state, tmp_path / "x2.pt")
    net = EDSR(num_feat=8, num_block=2, upscale=4, img_range=255)
    fresh = {k: v.clone() for k, v in net.state_dict().items() if k.startswith("upsample.")}

    with pytest.raises(PretrainedError, match=r"upsample\.2\.weight"):
        load_pretrained(net, path)
    load_pretrained(net, path, ignore=["upsample.*"])
    assert_same(net, fresh)  # not loaded, not even the shape-compatible upsample.0
    assert_same(net, {"conv_first.weight": state["head.0.weight"]})


# -- ESRGAN / BasicSR RRDBNet ------------------------------------------------------------------


def rrdb_state(names: str, nf: int = 8, nb: int = 2, gc: int = 4) -> dict:
    """An RRDBNet x4 state dict in one code base's names: "esrgan", "old_arch" or "basicsr"."""
    n = {
        "esrgan": ("conv_first", "RRDB_trunk.{i}.RDB{k}.conv{j}", "trunk_conv", "upconv1",
                   "upconv2", "HRconv", "conv_last"),
        "old_arch": ("model.0", "model.1.sub.{i}.RDB{k}.conv{j}.0", f"model.1.sub.{nb}",
                     "model.3", "model.6", "model.8", "model.10"),
        "basicsr": ("conv_first", "body.{i}.rdb{k}.conv{j}", "conv_body", "conv_up1",
                    "conv_up2", "conv_hr", "conv_last"),
    }[names]  # fmt: skip
    state: dict[str, torch.Tensor] = {}
    conv(state, n[0], 3, nf)
    for i in range(nb):
        for k in (1, 2, 3):
            for j in range(1, 6):
                cout = gc if j < 5 else nf
                conv(state, n[1].format(i=i, k=k, j=j), nf + (j - 1) * gc, cout)
    for name in n[2:6]:
        conv(state, name, nf, nf)
    conv(state, n[6], nf, 3)
    return state


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (
            "esrgan",
            {
                "body.1.rdb3.conv5.weight": "RRDB_trunk.1.RDB3.conv5.weight",
                "body.0.rdb2.conv1.bias": "RRDB_trunk.0.RDB2.conv1.bias",
                "conv_body.weight": "trunk_conv.weight",
                "conv_up1.weight": "upconv1.weight",
                "conv_up2.bias": "upconv2.bias",
                "conv_hr.weight": "HRconv.weight",
                "conv_last.weight": "conv_last.weight",
            },
        ),
        (
            "old_arch",
            {
                "conv_first.weight": "model.0.weight",
                "body.1.rdb3.conv5.weight": "model.1.sub.1.RDB3.conv5.0.weight",
                "conv_body.bias": "model.1.sub.2.bias",
                "conv_up1.weight": "model.3.weight",
                "conv_up2.weight": "model.6.weight",
                "conv_hr.weight": "model.8.weight",
                "conv_last.bias": "model.10.bias",
            },
        ),
    ],
)
def test_original_esrgan_layouts_load_strictly(
    tmp_path: Path, names: str, expected: dict[str, str]
) -> None:
    state = rrdb_state(names)
    net = RRDBNet(**TINY_RRDB)
    load_pretrained(net, save(state, tmp_path / "RRDB_PSNR_x4.pth"))
    assert_same(net, {ours: state[theirs] for ours, theirs in expected.items()})


def test_basicsr_release_prefers_params_ema(tmp_path: Path) -> None:
    ema, live = rrdb_state("basicsr"), rrdb_state("basicsr")
    net = RRDBNet(**TINY_RRDB)
    load_pretrained(net, save({"params": live, "params_ema": ema}, tmp_path / "a.pth"))
    assert_same(net, ema)
    load_pretrained(net, save({"params": live}, tmp_path / "b.pth"))
    assert_same(net, live)


def test_plain_state_dict_with_training_wrappers(tmp_path: Path) -> None:
    """DataParallel's ``module.`` and torch.compile's ``_orig_mod.`` are not part of the names."""
    state = rrdb_state("basicsr")
    wrapped = {f"module._orig_mod.{k}": v for k, v in state.items()}
    net = RRDBNet(**TINY_RRDB)
    load_pretrained(net, save(wrapped, tmp_path / "w.pth"))
    assert_same(net, state)


# -- Lightning checkpoints ---------------------------------------------------------------------


def lightning_ckpt(state_dict: dict, **extra: object) -> dict:
    """The top level of a Lightning 2.x ``.ckpt`` (only plain types, as Lightning writes)."""
    return {
        "epoch": 3,
        "global_step": 1000,
        "pytorch-lightning_version": "2.6.0",
        "state_dict": state_dict,
        "loops": {},
        "callbacks": {},
        "optimizer_states": [],
        "lr_schedulers": [],
        **extra,
    }


def test_lightning_ckpt_takes_the_net(tmp_path: Path) -> None:
    net_state = rrdb_state("basicsr")
    task_state = {f"net.{k}": v for k, v in net_state.items()}
    task_state["discriminator.conv0.weight"] = torch.randn(4, 3, 3, 3)  # a GAN task's other half
    net = RRDBNet(**TINY_RRDB)
    load_pretrained(net, save(lightning_ckpt(task_state), tmp_path / "last.ckpt"))
    assert_same(net, net_state)


def test_lightning_weight_averaging_ckpt_loads_the_average(tmp_path: Path) -> None:
    """Lightning 2.6's WeightAveraging.on_save_checkpoint: average in ``state_dict``, live
    weights in ``current_model_state``, ``n_averaged`` in ``averaging_state``."""
    average, live = rrdb_state("basicsr"), rrdb_state("basicsr")
    ckpt = lightning_ckpt(
        {f"net.{k}": v for k, v in average.items()},
        current_model_state={f"net.{k}": v for k, v in live.items()},
        averaging_state={"n_averaged": torch.tensor(7)},
    )
    net = RRDBNet(**TINY_RRDB)
    load_pretrained(net, save(ckpt, tmp_path / "ema.ckpt"))
    assert_same(net, average)


def test_top_level_ema_state_dict_is_preferred(tmp_path: Path) -> None:
    ema, live = rrdb_state("basicsr"), rrdb_state("basicsr")
    ckpt = lightning_ckpt(
        {f"net.{k}": v for k, v in live.items()},
        ema_state_dict={f"net.{k}": v for k, v in ema.items()},
    )
    net = RRDBNet(**TINY_RRDB)
    load_pretrained(net, save(ckpt, tmp_path / "ema.ckpt"))
    assert_same(net, ema)


# Lightning 2.6 on torch 2.13 deprecates its own use of torch's LeafSpec; not ours to fix.
@pytest.mark.filterwarnings("ignore:.*LeafSpec.*")
def test_real_lightning_ema_checkpoint(tmp_path: Path) -> None:
    """A checkpoint written by Lightning itself with EMAWeightAveraging loads its average."""
    import lightning as L
    from lightning.pytorch.callbacks import EMAWeightAveraging

    class Task(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = RRDBNet(num_feat=4, num_block=1, num_grow_ch=2, upscale=2)

        def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
            return self.net(batch[0]).square().mean()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.5)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.rand(4, 3, 4, 4)))
    task = Task()
    trainer = L.Trainer(
        max_steps=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[EMAWeightAveraging(decay=0.5)],
        default_root_dir=tmp_path,
    )
    trainer.fit(task, data)
    with torch.no_grad():  # make the live weights differ from the average
        for p in task.net.parameters():
            p.add_(1.0)
    path = tmp_path / "ema.ckpt"
    trainer.save_checkpoint(path)

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert "current_model_state" in ckpt  # the layout the loader relies on
    net = RRDBNet(num_feat=4, num_block=1, num_grow_ch=2, upscale=2)
    load_pretrained(net, path)
    average = {k[len("net.") :]: v for k, v in ckpt["state_dict"].items()}
    assert_same(net, average)
    assert not torch.equal(net.conv_last.weight, task.net.conv_last.weight)


def test_bicubic_residual_wrapper_and_bare_network_interchange(tmp_path: Path) -> None:
    """edsr_tiny wraps EDSR in BicubicResidual (``net.net.*`` in its .ckpt)."""
    inner = EDSR(num_feat=8, num_block=1, rgb_mean=None)
    ckpt = lightning_ckpt({f"net.net.{k}": v for k, v in inner.state_dict().items()})
    path = save(ckpt, tmp_path / "tiny.ckpt")
    bare = EDSR(num_feat=8, num_block=1, rgb_mean=None)
    load_pretrained(bare, path)
    assert_same(bare, inner.state_dict())
    wrapped = BicubicResidual(EDSR(num_feat=8, num_block=1, rgb_mean=None))
    load_pretrained(wrapped, save(inner.state_dict(), tmp_path / "bare.pth"))
    assert_same(wrapped.net, inner.state_dict())


# -- mismatches and errors ---------------------------------------------------------------------


def test_mismatch_error_lists_everything(tmp_path: Path) -> None:
    state = rrdb_state("basicsr")
    del state["conv_hr.bias"]
    state["conv_extra.weight"] = torch.randn(8, 8, 3, 3)
    state["conv_first.weight"] = torch.randn(8, 1, 3, 3)
    path = save(state, tmp_path / "bad.pth")
    net = RRDBNet(**TINY_RRDB)
    with pytest.raises(PretrainedError) as info:
        load_pretrained(net, path)
    message = str(info.value)
    assert isinstance(info.value, SRLabError)
    assert "detected key layout: srlab" in message
    assert "missing (in RRDBNet, not in the file) (1):\n    conv_hr.bias" in message
    assert "unexpected (in the file, not in RRDBNet) (1):\n    conv_extra.weight" in message
    assert "conv_first.weight: expected [8, 3, 3, 3], found [8, 1, 3, 3]" in message


def test_non_strict_loads_what_matches_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = rrdb_state("basicsr")
    state["conv_first.weight"] = torch.randn(8, 1, 3, 3)
    net = RRDBNet(**TINY_RRDB)
    before = net.conv_first.weight.clone()
    with caplog.at_level(logging.WARNING, logger="srlab.weights"):
        load_pretrained(net, save(state, tmp_path / "w.pth"), strict=False)
    assert "conv_first.weight: expected [8, 3, 3, 3], found [8, 1, 3, 3]" in caplog.text
    assert torch.equal(net.conv_first.weight, before)
    assert_same(net, {"conv_last.weight": state["conv_last.weight"]})


class NotATensor:
    """A pickled object that ``weights_only=True`` must refuse to build."""


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = save({"state_dict": rrdb_state("basicsr"), "extra": NotATensor()}, tmp_path / "x.pt")
    with pytest.raises(PretrainedError, match="weights_only=True"):
        load_pretrained(RRDBNet(**TINY_RRDB), path)


def test_missing_file_and_non_state_dict(tmp_path: Path) -> None:
    with pytest.raises(PretrainedError, match="not found"):
        load_pretrained(RRDBNet(**TINY_RRDB), tmp_path / "nope.pth")
    with pytest.raises(PretrainedError, match="no state dict found; top-level keys: epoch"):
        load_pretrained(RRDBNet(**TINY_RRDB), save({"epoch": 1}, tmp_path / "e.pth"))


def test_new_layouts_register_without_editing_the_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_module, "_LAYOUTS", dict(registry_module._LAYOUTS))
    register_layout(
        KeyLayout(
            name="toy",
            description="a toy code base",
            detect=lambda keys: "first.w" in keys,
            convert=rename_by_rules([(r"first\.w", "weight"), (r"first\.b", "bias")]),
        )
    )
    with pytest.raises(ValueError, match="already registered"):
        register_layout(registry_module._LAYOUTS["toy"])
    weight, bias = torch.randn(2, 3, 3, 3), torch.randn(2)
    net = nn.Conv2d(3, 2, 3)
    load_pretrained(net, save({"first.w": weight, "first.b": bias}, tmp_path / "toy.pth"))
    assert torch.equal(net.weight, weight) and torch.equal(net.bias, bias)


# -- downloads ---------------------------------------------------------------------------------


@pytest.fixture
def http_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple]:
    """Serve ``tmp_path / "www"`` on 127.0.0.1; yield (folder, base URL, requested paths)."""
    # Any proxy configured in the environment must not intercept the local server.
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    root = tmp_path / "www"
    root.mkdir()
    hits: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=root))
    # A short poll interval: shutdown() waits up to one interval (0.5 s by default).
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_url_is_downloaded_once_and_cached(tmp_path: Path, http_server: tuple) -> None:
    root, base, hits = http_server
    source = RRDBNet(**TINY_RRDB)
    save(source.state_dict(), root / "rrdb_tiny.pth")
    sha256 = hashlib.sha256((root / "rrdb_tiny.pth").read_bytes()).hexdigest()
    cache = tmp_path / "cache"

    first = RRDBNet(**TINY_RRDB)
    load_pretrained(first, f"{base}/rrdb_tiny.pth", sha256=sha256, cache_dir=cache)
    assert hits == ["/rrdb_tiny.pth"]
    assert [p.name for p in files_under(cache)] == ["rrdb_tiny.pth"]  # no .part left over
    assert_same(first, source.state_dict())

    second = RRDBNet(**TINY_RRDB)
    load_pretrained(second, f"{base}/rrdb_tiny.pth", sha256=sha256.upper(), cache_dir=cache)
    assert hits == ["/rrdb_tiny.pth"]  # served from the cache
    assert_same(second, source.state_dict())


def test_wrong_sha256_raises_and_keeps_nothing(tmp_path: Path, http_server: tuple) -> None:
    root, base, _ = http_server
    save(RRDBNet(**TINY_RRDB).state_dict(), root / "w.pth")
    actual = hashlib.sha256((root / "w.pth").read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    url = f"{base}/w.pth"
    with pytest.raises(ChecksumError) as info:
        load_pretrained(RRDBNet(**TINY_RRDB), url, sha256="0" * 64, cache_dir=cache)
    assert url in str(info.value) and "0" * 64 in str(info.value) and actual in str(info.value)
    assert files_under(cache) == [] and list(cache.iterdir()) == []


def test_unreachable_url_says_how_to_download_by_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("SRLAB_CACHE_DIR", str(tmp_path / "env_cache"))
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/weights/RRDB_PSNR_x4.pth"
    with pytest.raises(NetworkError) as info:
        load_pretrained(RRDBNet(**TINY_RRDB), url)
    message = str(info.value)
    assert url in message and "download it by hand to" in message
    expected = cache_path(url)
    assert expected.is_relative_to(tmp_path / "env_cache") and str(expected) in message
    assert "pass a local path" in message
    assert list((tmp_path / "env_cache").iterdir()) == []


def _srlab_checkpoint(net: torch.nn.Module, scale: int, path: Path) -> Path:
    """A checkpoint as srlab's training writes it: the task's state dict and the data's scale."""
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    checkpoint = {
        "global_step": 10,
        "pytorch-lightning_version": "2.6.6",
        "state_dict": state,
        "datamodule_hyper_parameters": {"scale": scale},
    }
    torch.save(checkpoint, path)
    return path


def test_weights_of_another_scale_are_an_error_that_says_so(tmp_path: Path) -> None:
    # SRCNN's weights have the same shapes at every scale: only the recorded scale tells.
    path = _srlab_checkpoint(SRCNN(upscale=3), 3, tmp_path / "srcnn_x3.ckpt")
    assert trained_scale(path) == 3
    with pytest.raises(PretrainedError, match=r"trained at x3 .* network is x2: set scale=3"):
        load_pretrained(SRCNN(upscale=2), path)
    load_pretrained(SRCNN(upscale=3), path)

    path = _srlab_checkpoint(EDSR(num_feat=8, num_block=1, upscale=2), 2, tmp_path / "x2.ckpt")
    with pytest.raises(PretrainedError, match=r"trained at x2 .* network is x4"):
        load_pretrained(EDSR(num_feat=8, num_block=1, upscale=4), path)
    # Starting x4 from x2 on purpose (EDSR's recipe) names the parameters it leaves out.
    load_pretrained(EDSR(num_feat=8, num_block=1, upscale=4), path, ignore=["upsample.*"])

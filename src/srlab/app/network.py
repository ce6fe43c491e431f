"""The network that ``src/eval.py``, ``src/infer.py`` and ``src/export.py`` run.

srlab's training checkpoints describe themselves: they keep the resolved ``model`` config and
the scale (:meth:`srlab.tasks.SRTask.describe`), so ``ckpt_path=<run>/checkpoints/last.ckpt``
alone rebuilds the network; so does a ``.safetensors`` file written by ``src/export.py``.
Any other weight file of an architecture spandrel recognizes (SwinIR, HAT, RCAN, ...; see
:mod:`srlab.models.community`) is detected: its architecture and hyperparameters come from its
keys and shapes. With ``model=<name>`` the config names the network instead, and the weights
come from ``ckpt_path`` (an srlab checkpoint, or any state dict the weights layer reads) or
``model.pretrained``; that is how older srlab checkpoints and authors' releases load.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from srlab import zoo
from srlab.errors import ConfigError
from srlab.models.community import DetectedNetwork, check_precision, detect_network
from srlab.runtime.config_check import check_targets
from srlab.weights import load_pretrained, read_checkpoint
from srlab.weights.checkpoint import read_state_dict
from srlab.weights.hub import resolve_source
from srlab.weights.safetensors_file import stored_model_metadata

log = logging.getLogger(__name__)


@dataclass
class Network:
    """A network ready to run, with what describes it.

    Attributes:
        net: the network, in eval mode.
        name: the model's name (``model.name``), which finds its published numbers.
        scale: the SR scale it upsamples by.
        model_config: the resolved model config it was built from.
    """

    net: nn.Module
    name: str
    scale: int
    model_config: dict[str, Any]


def stored_model(path: str | Path) -> dict[str, Any] | None:
    """``{"model": <config>, "scale": s}`` of an srlab checkpoint, None for other files.

    Read with :func:`srlab.weights.read_checkpoint` (``weights_only``): a file never runs code.
    """
    path = Path(path)
    if not path.is_file() or path.suffix.lower() == ".mat":
        return None  # a URL, or weights only: the weights layer reads them
    if path.suffix.lower() == ".safetensors":
        return stored_model_metadata(path)
    checkpoint = read_checkpoint(path, mmap=True)
    described = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if isinstance(described, dict) and isinstance(described.get("model"), dict):
        return {"model": described["model"], "scale": int(described["scale"])}
    return None


def detect_file(source: str | Path) -> DetectedNetwork:
    """The architecture, hyperparameters and weights of a weight file or URL (not an srlab
    checkpoint), recognized by spandrel (:func:`srlab.models.community.detect_network`)."""
    state, _ = read_state_dict(resolve_source(source))
    return detect_network(state, str(source))


def _check_detected_scale(detected: DetectedNetwork, scale: Any, source: str | Path) -> None:
    if scale is not None and int(scale) != detected.scale:
        raise ConfigError(
            f"{source} is a x{detected.scale} {detected.architecture}, but scale={scale}: drop "
            "scale= (the file's is used) or pass weights of that scale"
        )


def _resolved(node: DictConfig, key: str) -> Any:
    value = node[key]
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def build_network(cfg: DictConfig) -> Network:
    """The network of ``cfg`` (``ckpt_path``, ``model``, ``scale``), its weights loaded.

    Sets ``cfg.scale`` to the checkpoint's when the command gave none, so that the data and
    everything else that reads ``${scale}`` agree with the network.

    Raises:
        ConfigError: neither a model nor a self-describing checkpoint; a scale that
            contradicts the checkpoint's; a network with weights to learn but no weights.
    """
    ckpt_path = zoo.resolve(cfg.get("ckpt_path")) if cfg.get("ckpt_path") else None
    stored = stored_model(ckpt_path) if ckpt_path else None
    if cfg.get("model") is None:
        if stored is None and ckpt_path:
            return _detected_network(cfg, ckpt_path)
        if stored is None:
            raise ConfigError(
                "no network to run: give ckpt_path=<an srlab checkpoint> (it names its model), "
                "or model=<name> (conf/model/, e.g. model=bicubic) with scale=<2|3|4> and "
                "ckpt_path= or model.pretrained= for its weights"
            )
        if cfg.get("scale") is not None and int(cfg.scale) != stored["scale"]:
            raise ConfigError(
                f"{ckpt_path} was trained at x{stored['scale']}, but scale={cfg.scale}: drop "
                "scale= (the checkpoint's is used) or pass a checkpoint of that scale"
            )
        with open_dict(cfg):
            cfg.scale = stored["scale"]
        model_config = stored["model"]
    else:
        if cfg.get("scale") is None:
            raise ConfigError("model= needs scale=<2|3|4> (the checkpoint's scale otherwise)")
        check_targets(cfg.model, "model")
        # The parts a network needs: the rest of a training config may interpolate keys that
        # only training has (${trainer.max_steps}, ${data.patch_size}).
        model_config = {
            key: _resolved(cfg.model, key)
            for key in ("name", "net", "pretrained", "pretrained_ignore")
            if key in cfg.model
        }
    net: nn.Module = instantiate(model_config["net"], _convert_="all")
    weights = ckpt_path or model_config.get("pretrained")
    if weights:
        load_pretrained(net, weights, ignore=model_config.get("pretrained_ignore") or ())
    elif any(True for _ in net.parameters()):
        raise ConfigError(
            f"{type(net).__name__} has weights to learn: give them with ckpt_path=<checkpoint> "
            "or model.pretrained=<path or URL> (model=bicubic needs none)"
        )
    scale = int(cfg.scale)
    if getattr(net, "upscale", scale) != scale:
        raise ConfigError(f"the network upsamples x{net.upscale} but scale={scale}")
    name = str(model_config.get("name") or "model")
    _check_inference_precision(cfg, net)
    return Network(net.eval(), name, scale, model_config)


def _check_inference_precision(cfg: DictConfig, net: nn.Module) -> None:
    inference = cfg.get("inference")
    if inference is not None:
        check_precision(
            net, inference.get("precision"), "inference.precision", "inference.precision=bf16 or 32"
        )


def _detected_network(cfg: DictConfig, source: str | Path) -> Network:
    """The network of a community weight file, built as the srlab class of its architecture."""
    detected = detect_file(source)
    _check_detected_scale(detected, cfg.get("scale"), source)
    with open_dict(cfg):
        cfg.scale = detected.scale
    # Named after the file, not the architecture: a SwinIR-light release must not be
    # compared with classical SwinIR's published numbers.
    name = Path(str(source)).stem
    model_config = {"name": name, "net": detected.config}
    net = detected.build()
    _check_inference_precision(cfg, net)
    return Network(net, name, detected.scale, model_config)


def resolve_auto_net(cfg: DictConfig) -> None:
    """``model.net=auto``: the network of ``model.pretrained``, detected from the file, so
    that fine-tuning community weights needs no hand-written architecture config.

    Raises:
        ConfigError: no ``model.pretrained``, or weights of another scale than ``scale``.
    """
    model = cfg.get("model")
    if model is None or model.get("net") != "auto":
        return
    source = model.get("pretrained")
    if not source:
        raise ConfigError(
            "model.net=auto builds the network of the weights it starts from: give "
            "model.pretrained=<file or URL> (a .pth/.safetensors of SwinIR, HAT, RCAN, ...)"
        )
    detected = detect_file(source)
    _check_detected_scale(detected, cfg.get("scale"), source)
    with open_dict(cfg):
        model.net = detected.config
    log.info("model.net=auto: %s x%d from %s", detected.architecture, detected.scale, source)

"""Loading pretrained weights into a network: fetch, read, rename, match, load.

:func:`load_pretrained` chains the steps of the weights layer: the source is made a local file
(:func:`srlab.weights.hub.resolve_source`; URLs are cached), read safely and unwrapped
(:func:`srlab.weights.checkpoint.read_state_dict`), renamed from its code base's layout
(:func:`srlab.weights.registry.convert_state_dict`), then matched against the network's own
parameters, strictly unless told otherwise, with any mismatch explained in one error.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Collection, Sequence
from pathlib import Path

import torch
from torch import nn

from srlab.weights.checkpoint import read_state_dict, submodule, trained_scale
from srlab.weights.hub import resolve_source
from srlab.weights.registry import PretrainedError, StateDict, convert_state_dict

__all__ = ["load_pretrained"]

log = logging.getLogger(__name__)


def _align_net_prefix(state: StateDict, target_keys: Collection[str]) -> StateDict:
    """Bridge one ``net.`` level between a wrapper (``BicubicResidual``) and its inner network."""
    source_keys = state.keys()
    src_all = bool(source_keys) and all(k.startswith("net.") for k in source_keys)
    tgt_all = bool(target_keys) and all(k.startswith("net.") for k in target_keys)
    if src_all and not tgt_all:
        return submodule(state, "net.")
    if tgt_all and not src_all:
        return {f"net.{k}": v for k, v in state.items()}
    return state


def _fmt_list(title: str, items: Sequence[str], limit: int = 20) -> list[str]:
    if not items:
        return []
    lines = [f"  {title} ({len(items)}):"]
    lines += [f"    {item}" for item in items[:limit]]
    if len(items) > limit:
        lines.append(f"    ... and {len(items) - limit} more")
    return lines


def _shape(t: torch.Tensor) -> str:
    return str(list(t.shape))


def _check_trained_scale(
    net: nn.Module, path: Path, source: str | Path, ignore: Sequence[str]
) -> None:
    # x2 weights in an x4 network: the upsampler's shapes differ, but not every network has
    # one (SRCNN and VDSR weights fit any scale), so the recorded scale is compared first.
    trained, upscale = trained_scale(path), getattr(net, "upscale", None)
    if trained is None or upscale is None or trained == upscale or ignore:
        return
    if getattr(net, "any_scale", False):
        return
    raise PretrainedError(
        f"weights {source} were trained at x{trained} (the checkpoint's data.scale), but the "
        f"network is x{upscale}: set scale={trained} to use them as they are, or start an "
        f"x{upscale} model from them by leaving out the scale-specific parameters with "
        "model.pretrained_ignore=[<glob>, ...] (as conf/experiment/edsr_x4_from_x2.yaml does)"
    )


def load_pretrained(
    net: nn.Module,
    source: str | Path,
    strict: bool = True,
    ignore: Sequence[str] = (),
    sha256: str | None = None,
    cache_dir: str | Path | None = None,
    *,
    layout: str | None = None,
) -> None:
    """Load pretrained weights into ``net`` in place, from a file or URL in any supported layout.

    Steps: fetch (:func:`resolve_source`; URLs are cached), read (:func:`read_state_dict`;
    ``weights_only=True``), rename (:func:`convert_state_dict`; layout detected from the keys),
    drop the ``ignore`` names, then compare with ``net.state_dict()`` and load.

    Supported layouts (see :func:`registered_layouts`): ``srlab`` (also BasicSR's EDSR and
    RRDBNet, whose names srlab uses), ``edsr_pytorch`` (the EDSR authors' code; their networks
    run on ``[0, 255]`` inputs, so the srlab EDSR needs ``img_range: 255``, and a warning says
    so otherwise), ``esrgan`` (xinntao/ESRGAN's RRDBNet), ``esrgan_old_arch`` (its first
    release), ``srcnn_matlab`` (the SRCNN authors' ``.mat`` weights, for SRCNN with
    ``padding_mode: replicate``) and ``vdsr_matconvnet`` (VDSR's MatConvNet ``.mat``).

    Args:
        net: The network to fill.
        source: Local path, or ``http(s)://`` URL downloaded once into the cache.
        strict: If true (default), any missing, unexpected or wrong-shaped parameter is an
            error; if false, what matches is loaded and the rest is logged as a warning.
        ignore: Glob patterns (``fnmatch``) of srlab parameter names not to load; those keep
            their current values and are not reported as missing or unexpected. E.g.
            ``["upsample.*"]`` to start an x4 EDSR from x2 weights, as the EDSR paper does.
        sha256: Expected SHA-256 of the file; a mismatch is an error.
        cache_dir: Cache folder for URLs (default ``$SRLAB_CACHE_DIR`` or
            ``~/.cache/srlab/weights``).
        layout: Force a registered layout instead of detecting it.

    Raises:
        PretrainedError: If the weights cannot be found or read (:class:`CheckpointError`:
            not loadable with ``weights_only=True``), were trained at another scale than the
            network's (srlab checkpoints record it; unless ``ignore`` leaves parameters out),
            or (strict) do not match the network; the message lists missing, unexpected and
            wrong-shaped keys and the detected layout.
        FetchError: If a URL cannot be downloaded, or fails its ``sha256``.

    Example:
        >>> import tempfile
        >>> src, dst = nn.Conv2d(3, 8, 3), nn.Conv2d(3, 8, 3)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     torch.save(src.state_dict(), Path(tmp) / "w.pth")
        ...     load_pretrained(dst, Path(tmp) / "w.pth")
        >>> torch.equal(dst.weight, src.weight)
        True
    """
    path = resolve_source(source, sha256=sha256, cache_dir=cache_dir)
    _check_trained_scale(net, path, source, ignore)
    raw, where = read_state_dict(path)
    state, used = convert_state_dict(raw, layout)
    target = net.state_dict()
    state = _align_net_prefix(state, target.keys())

    def ignored(name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in ignore)

    for pattern in ignore:
        if not any(fnmatch.fnmatchcase(k, pattern) for k in (*target, *state)):
            log.warning("ignore pattern %r matches no parameter of %s", pattern, type(net).__name__)

    missing = [k for k in target if k not in state and not ignored(k)]
    unexpected = [k for k in state if k not in target and not ignored(k)]
    wrong_shape = [
        f"{k}: expected {_shape(target[k])}, found {_shape(state[k])}"
        for k in target
        if k in state and not ignored(k) and state[k].shape != target[k].shape
    ]
    loadable = {
        k: v
        for k, v in state.items()
        if k in target and not ignored(k) and v.shape == target[k].shape
    }

    name = type(net).__name__
    if missing or unexpected or wrong_shape:
        lines = [
            f"weights {source} ({where}) do not match {name}; "
            f"detected key layout: {used.name} ({used.description})",
            *_fmt_list(f"missing (in {name}, not in the file)", missing),
            *_fmt_list(f"unexpected (in the file, not in {name})", unexpected),
            *_fmt_list("wrong shape (srlab vs file)", wrong_shape),
        ]
        if strict:
            lines.append(
                "Check the model config (scale, widths, depth) against the weights; pass "
                "ignore=[glob, ...] for parameters to keep freshly initialized, or "
                "strict=False to load what matches."
            )
            raise PretrainedError("\n".join(lines))
        log.warning(
            "%s\nloading the %d matching tensors only (strict=False)",
            "\n".join(lines),
            len(loadable),
        )

    net.load_state_dict(loadable, strict=False)
    if used.check is not None and (warning := used.check(net)):
        log.warning(warning)
    log.info(
        "loaded %d tensors into %s from %s (%s, layout %s)",
        len(loadable),
        name,
        path,
        where,
        used.name,
    )

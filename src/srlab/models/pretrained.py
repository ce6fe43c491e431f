"""Loading pretrained weights into srlab networks: local files or URLs, any common wrapper, and
the parameter names of the original code bases mapped onto srlab's.

The entry point is :func:`load_pretrained`. It reads a checkpoint with
``torch.load(..., weights_only=True)`` (so a file can never run code), finds the network's state
dict inside it (Lightning ``.ckpt``, BasicSR release, plain ``.pth``), detects whose parameter
names it uses (its *layout*) and renames them to srlab's, then loads strictly and explains any
mismatch in one readable error.

Layouts live in a registry: a new network that wants to read another code base's weights
registers a :class:`KeyLayout` (usually built with :func:`rename_by_rules`) from its own module,
without editing this one.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import logging
import os
import re
import urllib.parse
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from srlab.fetch import ChecksumError, FetchError, fetch, file_digest, normalize_digest
from srlab.errors import SRLabError

__all__ = [
    "KeyLayout",
    "PretrainedError",
    "convert_state_dict",
    "default_cache_dir",
    "detect_layout",
    "download_weights",
    "load_pretrained",
    "read_state_dict",
    "trained_scale",
    "register_layout",
    "registered_layouts",
    "rename_by_rules",
    "resolve_source",
]

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]


class PretrainedError(SRLabError):
    """Pretrained weights cannot be fetched, read, or matched to the network."""


# -- layouts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyLayout:
    """How one code base names a network's parameters, and how to rename them to srlab's.

    Attributes:
        name: Short identifier, shown in messages and accepted by ``load_pretrained(layout=...)``.
        description: Where the layout comes from (repository, network), for messages.
        detect: Whether a set of state-dict keys is in this layout; it should test keys that
            only this layout has, so detection is unambiguous.
        convert: Maps a state dict in this layout to one with srlab's names. Keys it drops are
            simply absent from the result (e.g. a stored mean that srlab keeps as a constant).
        check: Optional; given the target network, returns a warning when the weights need a
            setting the network does not have (e.g. the input range), else ``None``.
    """

    name: str
    description: str
    detect: Callable[[Collection[str]], bool]
    convert: Callable[[Mapping[str, torch.Tensor]], StateDict]
    check: Callable[[nn.Module], str | None] | None = None


# Insertion order is detection order; the identity layout is the fallback, not in here.
_LAYOUTS: dict[str, KeyLayout] = {}

_IDENTITY = KeyLayout(
    name="srlab",
    description="srlab's own names, the same as BasicSR's; no renaming",
    detect=lambda keys: True,
    convert=lambda state: dict(state),
)


def register_layout(layout: KeyLayout, *, replace: bool = False) -> KeyLayout:
    """Add a foreign layout to the registry that :func:`detect_layout` searches.

    Args:
        layout: The layout to add.
        replace: Allow replacing a layout of the same name (otherwise that is an error, so two
            modules cannot silently shadow each other).

    Returns:
        ``layout``, so a module can keep a reference to what it registered.

    Raises:
        ValueError: If the name is taken (and ``replace`` is false) or is ``"srlab"``.
    """
    if layout.name == _IDENTITY.name or (layout.name in _LAYOUTS and not replace):
        raise ValueError(f"a key layout named {layout.name!r} is already registered")
    _LAYOUTS[layout.name] = layout
    return layout


def registered_layouts() -> tuple[str, ...]:
    """Names of the known layouts: the registered foreign ones, then ``"srlab"`` (identity)."""
    return (*_LAYOUTS, _IDENTITY.name)


def _layout_by_name(name: str) -> KeyLayout:
    if name == _IDENTITY.name:
        return _IDENTITY
    if name not in _LAYOUTS:
        raise PretrainedError(
            f"unknown key layout {name!r}; known layouts: {', '.join(registered_layouts())}"
        )
    return _LAYOUTS[name]


def detect_layout(keys: Collection[str]) -> KeyLayout:
    """The layout of a state dict, from its keys: the foreign layout that claims them, else srlab's.

    Raises:
        PretrainedError: If more than one registered layout claims the keys.
    """
    matches = [layout for layout in _LAYOUTS.values() if layout.detect(keys)]
    if len(matches) > 1:
        names = ", ".join(layout.name for layout in matches)
        raise PretrainedError(
            f"the state dict matches several key layouts ({names}); pass layout=<name> to choose"
        )
    return matches[0] if matches else _IDENTITY


def rename_by_rules(
    rules: Sequence[tuple[str, str | None]],
) -> Callable[[Mapping[str, torch.Tensor]], StateDict]:
    """Build a ``convert`` function from regex rules, for :class:`KeyLayout`.

    Each key is matched (``re.fullmatch``) against the rules in order; the first rule that
    matches renames it with ``re.sub``-style backreferences (``r"body.\\1.conv1.\\2"``), or drops
    it when its replacement is ``None``. Keys no rule matches are kept as they are, so they
    surface as "unexpected" if the network does not have them.

    Args:
        rules: ``(pattern, replacement)`` pairs.

    Returns:
        A function mapping a state dict to the renamed one.

    Example:
        >>> convert = rename_by_rules(
        ...     [(r"trunk_conv\\.(.+)", r"conv_body.\\1"), (r"junk\\..*", None)]
        ... )
        >>> sorted(convert({"trunk_conv.bias": torch.zeros(1), "junk.x": torch.zeros(1)}))
        ['conv_body.bias']
    """
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]

    def convert(state: Mapping[str, torch.Tensor]) -> StateDict:
        out: StateDict = {}
        for key, value in state.items():
            for pattern, replacement in compiled:
                match = pattern.fullmatch(key)
                if match:
                    if replacement is not None:
                        out[match.expand(replacement)] = value
                    break
            else:
                out[key] = value
        return out

    return convert


# EDSR-PyTorch (sanghyun-son/EDSR-PyTorch, the EDSR authors' code), its EDSR network:
# head.0 -> conv_first; body.{i}.body.{0,2} -> body.{i}.conv{1,2}; body.{n} (the conv after the
# n blocks) -> conv_after_body; tail.0.{k} (Upsampler: conv at even k, PixelShuffle at odd k) ->
# upsample.{k}, the same indices as srlab's Upsample; tail.1 -> conv_last. Their MeanShift is a
# frozen 1x1 conv with saved weights; srlab's is a constant, so those entries are dropped.
_EDSR_PYTORCH_RULES: list[tuple[str, str | None]] = [
    (r"(sub_mean|add_mean)\..*", None),
    (r"head\.0\.(weight|bias)", r"conv_first.\1"),
    (r"body\.(\d+)\.body\.0\.(weight|bias)", r"body.\1.conv1.\2"),
    (r"body\.(\d+)\.body\.2\.(weight|bias)", r"body.\1.conv2.\2"),
    (r"body\.\d+\.(weight|bias)", r"conv_after_body.\1"),
    (r"tail\.0\.(\d+)\.(weight|bias)", r"upsample.\1.\2"),
    (r"tail\.1\.(weight|bias)", r"conv_last.\1"),
]


def _check_edsr_pytorch_range(net: nn.Module) -> str | None:
    # EDSR-PyTorch runs its network on [0, 255] values (rgb_range 255), so the weights only give
    # sensible output when srlab's EDSR scales its [0, 1] input the same way.
    img_range = getattr(net, "img_range", None)
    if img_range is not None and float(img_range) != 255.0:
        return (
            f"EDSR-PyTorch weights were trained on [0, 255] inputs but this network has "
            f"img_range={img_range}; set img_range: 255 in the model config "
            "(model.net.img_range=255) or its output will be wrong"
        )
    return None


# The original ESRGAN code (xinntao/ESRGAN, RRDBNet_arch.py; also the pre-2020 BasicSR/mmsr),
# for the released RRDB_PSNR_x4.pth and RRDB_ESRGAN_x4.pth.
_ESRGAN_RULES: list[tuple[str, str | None]] = [
    (r"RRDB_trunk\.(\d+)\.RDB([123])\.conv([1-5])\.(weight|bias)", r"body.\1.rdb\2.conv\3.\4"),
    (r"trunk_conv\.(weight|bias)", r"conv_body.\1"),
    (r"upconv([12])\.(weight|bias)", r"conv_up\1.\2"),
    (r"HRconv\.(weight|bias)", r"conv_hr.\1"),
]


def _convert_esrgan_old_arch(state: Mapping[str, torch.Tensor]) -> StateDict:
    """The first ESRGAN release ("old arch", one ``nn.Sequential`` named ``model``).

    ``model.0`` is conv_first; ``model.1.sub.{i}.RDB{k}.conv{j}.0`` the dense-block convs (each
    wrapped in a conv block); ``model.1.sub.{n}`` the trunk conv; then the upsampler as a flat
    sequence of (upsample, conv, LeakyReLU) stages, HRconv, LeakyReLU, conv_last, e.g. convs at
    3, 6, 8, 10 at x4 (xinntao/ESRGAN's ``transer_RRDB_models.py``). The top-level convs after
    index 1 are therefore, in order: conv_up1, conv_up2 (x4), conv_hr, conv_last.
    """
    body_rule = rename_by_rules(
        [
            (
                r"model\.1\.sub\.(\d+)\.RDB([123])\.conv([1-5])\.0\.(weight|bias)",
                r"body.\1.rdb\2.conv\3.\4",
            ),
            (r"model\.1\.sub\.\d+\.(weight|bias)", r"conv_body.\1"),
            (r"model\.0\.(weight|bias)", r"conv_first.\1"),
        ]
    )
    top = re.compile(r"model\.(\d+)\.(weight|bias)")
    tail_indices = sorted(
        {int(m.group(1)) for key in state if (m := top.fullmatch(key)) and int(m.group(1)) > 1}
    )
    n_up = len(tail_indices) - 2
    tail_names = [f"conv_up{i + 1}" for i in range(n_up)] + ["conv_hr", "conv_last"]
    # Fewer than two tail convs is no RRDBNet tail: leave those keys to show up as unexpected.
    tail_map = dict(zip(tail_indices, tail_names, strict=True)) if n_up >= 0 else {}
    out: StateDict = {}
    rest: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        match = top.fullmatch(key)
        if match and int(match.group(1)) in tail_map:
            out[f"{tail_map[int(match.group(1))]}.{match.group(2)}"] = value
        else:
            rest[key] = value
    out.update(body_rule(rest))
    return out


register_layout(
    KeyLayout(
        name="edsr_pytorch",
        description="EDSR-PyTorch (sanghyun-son/EDSR-PyTorch) EDSR; needs img_range: 255",
        # body.0.body.0 is a conv in EDSR but a whole block in RCAN (same repository), so the
        # two stay apart when RCAN registers its own layout.
        detect=lambda keys: (
            {"head.0.weight", "body.0.body.0.weight"} <= set(keys)
            and any(k.startswith("tail.") for k in keys)
        ),
        convert=rename_by_rules(_EDSR_PYTORCH_RULES),
        check=_check_edsr_pytorch_range,
    )
)
register_layout(
    KeyLayout(
        name="esrgan",
        description="original ESRGAN RRDBNet (xinntao/ESRGAN: RRDB_trunk, trunk_conv, HRconv)",
        detect=lambda keys: any(k.startswith("RRDB_trunk.") for k in keys),
        convert=rename_by_rules(_ESRGAN_RULES),
    )
)
register_layout(
    KeyLayout(
        name="esrgan_old_arch",
        description="first ESRGAN release, old arch (model.0, model.1.sub.*.RDB1...)",
        detect=lambda keys: any(k.startswith("model.1.sub.") for k in keys),
        convert=_convert_esrgan_old_arch,
    )
)


# The authors' MATLAB releases of SRCNN and VDSR. Their .mat files are read into flat dicts of
# tensors by _read_mat (below), named after the MATLAB variables; these layouts map those
# onto srlab's parameters in network order. Both release codes filter by correlation
# (SRCNN's imfilter, MatConvNet's vl_nnconv), as nn.Conv2d does, so no kernel is flipped.
_SRCNN_MATLAB_KEYS = frozenset(
    f"{kind}_conv{i}" for kind in ("weights", "biases") for i in (1, 2, 3)
)


def _matlab_filters(taps: torch.Tensor, where: str) -> torch.Tensor:
    """``[..., f*f]`` column-major filter taps -> ``[..., f, f]`` (rows, columns).

    MATLAB's ``reshape(v, f, f)`` puts ``v[k]`` at row ``k % f``, column ``k // f``: a C-order
    reshape, transposed.
    """
    size = int(round(taps.shape[-1] ** 0.5))
    if size * size != taps.shape[-1]:
        raise PretrainedError(
            f"SRCNN .mat: {where} has {taps.shape[-1]} taps per filter, not a square number"
        )
    return taps.reshape(*taps.shape[:-1], size, size).transpose(-1, -2)


def _convert_srcnn_matlab(state: Mapping[str, torch.Tensor]) -> StateDict:
    """The SRCNN authors' test-code weights (``model/9-5-5(ImageNet)/x3.mat`` of SRCNN_v1).

    ``SRCNN.m`` reads ``weights_conv1`` as ``[f1*f1, n1]`` (filter ``i`` is
    ``reshape(weights_conv1(:, i), f1, f1)``), ``weights_conv2`` as ``[n1, f2*f2, n2]`` (the
    filter from input ``j`` to output ``i`` is ``reshape(weights_conv2(j, :, i), f2, f2)``),
    ``weights_conv3`` as ``[n2, f3*f3]``, and ``biases_conv{1,2,3}`` as columns; every layer is
    ``imfilter(x, h, 'same', 'replicate')``, i.e. srlab's SRCNN with ``padding_mode:
    replicate``. Only the single-channel (Y) models exist in that release.
    """
    w1, w2, w3 = (state[f"weights_conv{i}"] for i in (1, 2, 3))
    if w1.dim() != 2 or w2.dim() != 3 or w3.dim() != 2:
        raise PretrainedError(
            "SRCNN .mat: expected weights_conv1 [f1*f1, n1], weights_conv2 [n1, f2*f2, n2] and "
            f"weights_conv3 [n2, f3*f3] (the Y-channel models of SRCNN_v1); found "
            f"{list(w1.shape)}, {list(w2.shape)}, {list(w3.shape)}"
        )
    out = {
        "conv1.weight": _matlab_filters(w1.T, "weights_conv1").unsqueeze(1),
        "conv2.weight": _matlab_filters(w2.permute(2, 0, 1), "weights_conv2"),
        "conv3.weight": _matlab_filters(w3, "weights_conv3").unsqueeze(0),
    }
    out.update({f"conv{i}.bias": state[f"biases_conv{i}"].reshape(-1) for i in (1, 2, 3)})
    # Anything else in the file surfaces as "unexpected" rather than being dropped silently.
    out.update({k: v for k, v in state.items() if k not in _SRCNN_MATLAB_KEYS})
    return out


def _check_srcnn_replicate(net: nn.Module) -> str | None:
    # The authors' weights were trained and tested with replicate-padded filtering; zero padding
    # changes every output pixel within 8 of the border and costs PSNR.
    modes = {m.padding_mode for m in net.modules() if isinstance(m, nn.Conv2d)}
    if modes != {"replicate"}:
        return (
            f"the SRCNN authors' weights filter with replicate padding (imfilter 'replicate') "
            f"but this network pads with {sorted(modes)}; set model.net.padding_mode=replicate"
        )
    return None


_MATCONVNET_CELL = re.compile(r"(?P<prefix>(?:.+\.)?)(?P<kind>weight|bias)\.(?P<index>\d+)")


def _matconvnet_cells(keys: Collection[str]) -> dict[str, dict[int, str]]:
    """``{"weight": {i: key}, "bias": {i: key}}`` for the ``<prefix>weight.<i>`` cell entries."""
    cells: dict[str, dict[int, str]] = {"weight": {}, "bias": {}}
    for key in keys:
        if match := _MATCONVNET_CELL.fullmatch(key):
            cells[match["kind"]][int(match["index"])] = key
    return cells


def _is_vdsr_matconvnet(keys: Collection[str]) -> bool:
    cells = _matconvnet_cells(keys)
    return bool(cells["weight"]) and cells["weight"].keys() == cells["bias"].keys()


def _convert_vdsr_matconvnet(state: Mapping[str, torch.Tensor]) -> StateDict:
    """VDSR's MatConvNet weights (``VDSR_Official.mat``: cells ``model.weight{i}``,
    ``model.bias{i}``), layer ``i`` onto ``body.{2i}`` (the convs of srlab's VDSR body).

    MatConvNet filters are ``[kh, kw, in, out]`` (MATLAB drops the trailing 1 of the last
    layer's ``[3, 3, 64, 1]``); the test code runs ``vl_nnconv(x, w, b, 'Pad', 1)`` (zero
    padding) with ReLUs between layers and adds the bicubic input at the end, as srlab's VDSR.
    """
    cells = _matconvnet_cells(state.keys())
    out: StateDict = {}
    for position, index in enumerate(sorted(cells["weight"])):
        weight = state[cells["weight"][index]]
        if weight.dim() > 4:
            raise PretrainedError(
                f"VDSR .mat: {cells['weight'][index]} is {list(weight.shape)}, not a "
                "[kh, kw, in, out] MatConvNet filter bank"
            )
        weight = weight.reshape(*weight.shape, *[1] * (4 - weight.dim()))
        out[f"body.{2 * position}.weight"] = weight.permute(3, 2, 0, 1)
        out[f"body.{2 * position}.bias"] = state[cells["bias"][index]].reshape(-1)
    used = {*cells["weight"].values(), *cells["bias"].values()}
    out.update({k: v for k, v in state.items() if k not in used})
    return out


register_layout(
    KeyLayout(
        name="srcnn_matlab",
        description="the SRCNN authors' MATLAB test code (weights_conv1..3, biases_conv1..3 .mat)",
        detect=lambda keys: set(keys) >= _SRCNN_MATLAB_KEYS,
        convert=_convert_srcnn_matlab,
        check=_check_srcnn_replicate,
    )
)
register_layout(
    KeyLayout(
        name="vdsr_matconvnet",
        description="VDSR's MatConvNet release (model.weight{i}, model.bias{i} cells in a .mat)",
        detect=_is_vdsr_matconvnet,
        convert=_convert_vdsr_matconvnet,
    )
)


def convert_state_dict(
    state: Mapping[str, torch.Tensor], layout: str | None = None
) -> tuple[StateDict, KeyLayout]:
    """Rename a state dict to srlab's names.

    Args:
        state: A flat state dict (name -> tensor).
        layout: A registered layout name to use; ``None`` detects it from the keys.

    Returns:
        The renamed state dict and the layout used.
    """
    chosen = _layout_by_name(layout) if layout is not None else detect_layout(state.keys())
    return chosen.convert(state), chosen


# -- fetching --------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """Where downloaded weights are kept: ``$SRLAB_CACHE_DIR``, else ``~/.cache/srlab/weights``."""
    env = os.environ.get("SRLAB_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "srlab" / "weights"


def _is_url(source: str | Path) -> bool:
    return isinstance(source, str) and urllib.parse.urlsplit(source).scheme in ("http", "https")


def _cache_path(url: str, cache_dir: str | Path | None) -> Path:
    # One folder per URL (a hash of it), so two releases that both call their file
    # "model_best.pth" cannot overwrite each other; the file keeps its own name inside.
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    name = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name or "weights.pth"
    return root / hashlib.sha256(url.encode()).hexdigest()[:16] / name


def _normalize_sha256(sha256: str | None) -> str | None:
    try:
        return normalize_digest(sha256, "sha256")
    except ValueError as exc:
        raise PretrainedError(str(exc)) from exc


def _remove_empty_folder(folder: Path) -> None:
    """Remove a download's per-URL folder when a failure left it empty."""
    with contextlib.suppress(OSError):  # not empty: another file or download lives there
        folder.rmdir()


def download_weights(
    url: str, sha256: str | None = None, cache_dir: str | Path | None = None
) -> Path:
    """Download ``url`` once into the cache and return the cached file.

    A file already in the cache is reused without any network access (re-verified when
    ``sha256`` is given). The transfer itself is :func:`srlab.download.fetch`: bytes go to a
    ``.part`` file renamed when complete and verified, so an interrupted download never looks
    like a finished one (and two processes, e.g. DDP ranks, downloading at once never read
    each other's partial file); an interrupted transfer is retried from the start.

    Args:
        url: An ``http://`` or ``https://`` URL.
        sha256: Expected SHA-256 of the file (hex), or ``None`` to skip verification.
        cache_dir: Cache folder; default :func:`default_cache_dir`.

    Returns:
        Path of the cached file.

    Raises:
        PretrainedError: If the download fails (the message says where to put a copy downloaded
            by hand) or the hash does not match (the downloaded file is removed).
    """
    expected = _normalize_sha256(sha256)
    path = _cache_path(url, cache_dir)
    if path.is_file():
        if expected is None or file_digest(path) == expected:
            return path
        log.warning("cached %s does not match its sha256; downloading it again", path)
        path.unlink()
    log.info("downloading %s to %s", url, path)
    try:
        return fetch(url, path, sha256=expected)
    except ChecksumError as exc:
        _remove_empty_folder(path.parent)
        raise PretrainedError(
            f"sha256 mismatch for {url}: expected {exc.expected}, got {exc.actual}; the "
            "downloaded file was removed (check the URL and the hash)"
        ) from exc
    except FetchError as exc:
        _remove_empty_folder(path.parent)
        raise PretrainedError(
            f"could not download {url} ({exc.reason}). Without network access, download it by "
            f"hand to {path} (e.g. `curl -L -o {path} {url}`) or pass a local path as the source"
        ) from exc


def resolve_source(
    source: str | Path, sha256: str | None = None, cache_dir: str | Path | None = None
) -> Path:
    """The local file for ``source``: a URL is downloaded (once), a path is checked to exist.

    Args:
        source: Local path, or ``http(s)://`` URL.
        sha256: Expected SHA-256 of the file, verified for local files too.
        cache_dir: Cache folder for URLs; default :func:`default_cache_dir`.

    Returns:
        Path of a readable local file.

    Raises:
        PretrainedError: If the file is missing, cannot be downloaded, or fails verification.
    """
    if _is_url(source):
        return download_weights(str(source), sha256=sha256, cache_dir=cache_dir)
    path = Path(source).expanduser()
    if not path.is_file():
        raise PretrainedError(
            f"pretrained weights not found: {path} (a file path or an http(s) URL)"
        )
    expected = _normalize_sha256(sha256)
    if expected is not None and (actual := file_digest(path)) != expected:
        raise PretrainedError(f"sha256 mismatch for {path}: expected {expected}, got {actual}")
    return path


# -- reading ---------------------------------------------------------------------------------

# Where checkpoints keep the network's state dict, most preferred first: EMA weights (BasicSR's
# ``params_ema``, timm-style ``state_dict_ema``, ...) beat the live ones, since they are what
# their authors evaluate and release.
_EMA_KEYS = ("params_ema", "ema_state_dict", "state_dict_ema", "model_ema", "ema")
_PLAIN_KEYS = ("params", "state_dict", "model", "net", "generator")
_LIGHTNING_MARKERS = ("pytorch-lightning_version", "global_step", "loops")


def _is_state_dict(obj: object) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _unwrap(obj: object, where: str) -> tuple[Mapping[str, torch.Tensor], list[str]]:
    """Descend through wrapper dicts to the state dict; return it and the keys taken."""
    trail: list[str] = []
    while not _is_state_dict(obj):
        if not isinstance(obj, Mapping):
            raise PretrainedError(
                f"{where}: expected a dict of tensors, found {type(obj).__name__}"
            )
        key = next((k for k in (*_EMA_KEYS, *_PLAIN_KEYS) if isinstance(obj.get(k), Mapping)), None)
        if key is None:
            shown = ", ".join(map(str, list(obj)[:12]))
            raise PretrainedError(
                f"{where}: no state dict found; top-level keys: {shown} (expected a dict of "
                f"tensors or one under {', '.join(_EMA_KEYS + _PLAIN_KEYS)})"
            )
        trail.append(key)
        obj = obj[key]
    return obj, trail


def _strip_wrappers(state: Mapping[str, torch.Tensor]) -> StateDict:
    # torch.compile inserts "_orig_mod." and DataParallel/DDP "module." into every name; neither
    # is part of the network, so weights saved from either load into a plain one.
    out = {k.replace("_orig_mod.", ""): v for k, v in state.items()}
    if all(k.startswith("module.") for k in out):
        out = {k[len("module.") :]: v for k, v in out.items()}
    return out


def _submodule(state: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _flatten_mat(name: str, value: object, out: StateDict) -> None:
    """Add the numeric arrays inside one MATLAB value to ``out``, named by their path."""
    from scipy.io.matlab import mat_struct

    if isinstance(value, mat_struct):
        for field in value._fieldnames:
            _flatten_mat(f"{name}.{field}", getattr(value, field), out)
    elif isinstance(value, np.ndarray) and value.dtype == object:
        items = value.ravel(order="F")  # MATLAB's linear indexing is column-major
        if items.size == 1 and isinstance(items[0], mat_struct):
            _flatten_mat(name, items[0], out)  # a plain struct, not an array of them
        else:  # a cell array (or struct array): entry k becomes "<name>.<k>", 0-based
            for index, item in enumerate(items):
                _flatten_mat(f"{name}.{index}", item, out)
    elif isinstance(value, np.ndarray) and value.dtype.kind in "fiu":
        out[name] = torch.from_numpy(np.array(value, dtype=np.float32))


def _read_mat(path: Path) -> StateDict:
    """The numeric arrays of a MATLAB ``.mat`` file (v4-v7; data only, no code is run).

    Variables keep their names; struct fields and cell entries are joined with dots, cells
    indexed from 0 in MATLAB's column-major order (``model.weight{3}`` -> ``model.weight.2``).
    Shapes are MATLAB's, trailing singleton dimensions included only where MATLAB kept them.
    """
    from scipy.io import loadmat

    try:
        # squeeze_me=False keeps [64, 1, 32] 3-D: the layouts read filter shapes from it.
        variables = loadmat(path, squeeze_me=False, struct_as_record=False)
    except NotImplementedError as exc:  # scipy's answer to an HDF5-based v7.3 file
        raise PretrainedError(
            f"cannot read {path}: it is a MATLAB v7.3 (HDF5) file, which scipy does not read; "
            "load it in MATLAB and save it again with save(<file>, <variables>, '-v7')"
        ) from exc
    except Exception as exc:
        raise PretrainedError(f"cannot read {path} as a MATLAB .mat file: {exc}") from exc
    out: StateDict = {}
    for name, value in variables.items():
        if not name.startswith("__"):  # __header__, __version__, __globals__
            _flatten_mat(name, value, out)
    if not out:
        raise PretrainedError(f"{path} holds no numeric MATLAB arrays")
    return out


def read_state_dict(path: str | Path) -> tuple[StateDict, str]:
    """Read the network's state dict from a checkpoint file, with ``weights_only=True``.

    Understands: a plain state dict (``.pth``); BasicSR releases (``params_ema`` preferred to
    ``params``); dicts with ``state_dict`` / ``model`` / ``net``; EMA copies under
    ``ema_state_dict`` / ``state_dict_ema`` (preferred); and Lightning ``.ckpt`` files, whose
    ``state_dict`` holds the whole task, from which the network (``net.*``) is taken. A
    ``.mat`` file (the SRCNN and VDSR authors' MATLAB releases) is read with scipy's
    ``loadmat`` into its named arrays (:func:`_read_mat`), which a layout then maps.

    A Lightning checkpoint written with ``WeightAveraging``/``EMAWeightAveraging`` (lightning
    2.6, ``on_save_checkpoint``) already stores the *averaged* weights in ``state_dict`` and
    moves the live ones to ``current_model_state`` (with ``averaging_state`` holding
    ``n_averaged``); the callback's own entry under ``callbacks`` only has
    ``latest_update_step``. So ``state_dict`` is the EMA and is what gets loaded.

    Args:
        path: The checkpoint file.

    Returns:
        The state dict (wrapper prefixes ``net.``, ``module.``, ``_orig_mod.`` removed) and a
        short description of where in the file it was found.

    Raises:
        PretrainedError: If the file cannot be read with ``weights_only=True`` or holds no
            state dict.
    """
    path = Path(path)
    if path.suffix.lower() == ".mat":
        return _read_mat(path), "MATLAB variables"
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, zip errors, EOF: all mean "not loadable"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PretrainedError(
            f"cannot read {path} with torch.load(weights_only=True): {first_line}. If it holds "
            "pickled objects besides tensors and you trust it, re-save just its state dict "
            "(torch.save(torch.load(p, weights_only=False)['state_dict'], 'clean.pth'))"
        ) from exc
    state, trail = _unwrap(obj, str(path))
    where = "/".join(trail) or "top level"
    is_lightning = isinstance(obj, Mapping) and any(m in obj for m in _LIGHTNING_MARKERS)
    state = _strip_wrappers(state)
    if is_lightning:
        if trail == ["state_dict"] and "current_model_state" in obj:
            where += " (averaged by Lightning's WeightAveraging/EMA)"
        if any(k.startswith("net.") for k in state):
            # A task's state dict: take the network, not the loss, discriminator or others.
            state = _submodule(state, "net.")
            where += ", net.*"
    return state, where


# -- matching and loading ----------------------------------------------------------------------


def _align_net_prefix(state: StateDict, target_keys: Collection[str]) -> StateDict:
    """Bridge one ``net.`` level between a wrapper (``BicubicResidual``) and its inner network."""
    source_keys = state.keys()
    src_all = bool(source_keys) and all(k.startswith("net.") for k in source_keys)
    tgt_all = bool(target_keys) and all(k.startswith("net.") for k in target_keys)
    if src_all and not tgt_all:
        return _submodule(state, "net.")
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


def trained_scale(path: str | Path) -> int | None:
    """The scale an srlab (Lightning) checkpoint was trained at; None for other files.

    >>> trained_scale("weights.pth") is None
    True
    """
    path = Path(path)
    if path.suffix.lower() != ".ckpt" or not path.is_file():
        return None
    try:  # mmap: only the small hyperparameter entries are read, not the tensors
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a zip checkpoint, or not loadable: read_state_dict says why
        return None
    scale = (obj.get("datamodule_hyper_parameters") or {}).get("scale")
    return int(scale) if isinstance(scale, int) else None


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
        PretrainedError: If the weights cannot be fetched or read, were trained at another
            scale than the network's (srlab checkpoints record it; unless ``ignore`` leaves
            parameters out), or (strict) do not match the network; the message lists
            missing, unexpected and wrong-shaped keys and the detected layout.

    Example:
        >>> import tempfile
        >>> from srlab.models.rrdbnet import RRDBNet
        >>> src = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
        >>> dst = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     torch.save(src.state_dict(), Path(tmp) / "w.pth")
        ...     load_pretrained(dst, Path(tmp) / "w.pth")
        >>> torch.equal(dst.conv_last.weight, src.conv_last.weight)
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

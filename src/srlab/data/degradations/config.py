"""The settings of the degradation model: every probability and range, with Real-ESRGAN's defaults.

The defaults are those of ``options/train_realesrgan_x4plus.yml`` of xinntao/Real-ESRGAN (Wang
et al., "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data",
ICCVW 2021, Sec. 3.1 and 3.2), and the kernel-size range, sinc cut-offs and final-step order
probability that its dataset and model code fix. ``conf/data/degradation/realesrgan.yaml``
spells out the same values; :func:`degradation_config` reads such a mapping and checks it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from srlab.errors import ConfigError

#: Blur kernel families, in the order of the ``kernel_probs`` entries (sinc is drawn apart,
#: with ``sinc_prob``). Their index is the ``kernel`` value of a drawn parameter set.
KERNEL_TYPES = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
    "sinc",
)
#: Interpolation modes of the random resizes (``torch.nn.functional.interpolate``'s names).
RESIZE_MODES = ("area", "bilinear", "bicubic")


@dataclass(frozen=True)
class StageConfig:
    """One degradation stage: blur, random resize, noise, JPEG.

    Attributes:
        blur_prob: probability that the stage blurs (the first stage always does).
        kernel_sizes: the smallest and largest blur kernel side; every odd side between them
            is equally likely.
        kernel_probs: probabilities of the families of :data:`KERNEL_TYPES` (without sinc).
        sinc_prob: probability of a 2-D sinc (circular low-pass) kernel instead.
        blur_sigma: range of the Gaussian-like kernels' standard deviations (pixels).
        betag_range: range of the generalized Gaussian's shape parameter beta.
        betap_range: range of the plateau kernel's shape parameter beta.
        resize_probs: probabilities of up, down and keep.
        resize_range: the smallest (down) and largest (up) resize factor.
        resize_modes: interpolation modes, equally likely.
        gaussian_noise_prob: probability of Gaussian noise (else Poisson noise).
        noise_range: range of the Gaussian noise's sigma, in 8-bit levels.
        poisson_scale_range: range of the Poisson noise's scale.
        gray_noise_prob: probability that the noise is the same on every channel.
        jpeg_range: range of the JPEG quality (the second stage's JPEG runs in the final step).
    """

    blur_prob: float = 1.0
    kernel_sizes: tuple[int, int] = (7, 21)
    kernel_probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    resize_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)
    resize_range: tuple[float, float] = (0.15, 1.5)
    resize_modes: tuple[str, ...] = RESIZE_MODES
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)


#: Real-ESRGAN's second stage (``*2`` keys of the option file).
SECOND_STAGE = StageConfig(
    blur_prob=0.8,
    blur_sigma=(0.2, 1.5),
    resize_probs=(0.3, 0.4, 0.3),
    resize_range=(0.3, 1.2),
    noise_range=(1.0, 25.0),
    poisson_scale_range=(0.05, 2.5),
)


@dataclass(frozen=True)
class FinalConfig:
    """The final step: resize to HR / scale with a sinc filter, and the second stage's JPEG.

    Attributes:
        sinc_prob: probability of the final sinc filter (else none).
        kernel_sizes: smallest and largest side of the final sinc kernel (odd sides).
        resize_first_prob: probability of [resize + sinc] then JPEG (else JPEG first).
        resize_modes: interpolation modes of the resize, equally likely.
    """

    sinc_prob: float = 0.8
    kernel_sizes: tuple[int, int] = (7, 21)
    resize_first_prob: float = 0.5
    resize_modes: tuple[str, ...] = RESIZE_MODES


@dataclass(frozen=True)
class SharpenConfig:
    """Unsharp masking (USM) of the HR patch, as BasicSR's ``USMSharp``.

    Attributes:
        target: train against the sharpened HR (Real-ESRGAN's ``l1_gt_usm``/``percep_gt_usm``).
        input: degrade the sharpened HR (Real-ESRGAN blurs ``gt_usm`` in its first stage).
        radius: Gaussian kernel radius parameter (side ``radius + 1`` when even, as BasicSR).
        weight: how much of the high-pass residual is added.
        threshold: residuals above this many 8-bit levels make the (blurred) mask.
    """

    target: bool = True
    input: bool = True
    radius: int = 50
    weight: float = 0.5
    threshold: float = 10.0


@dataclass(frozen=True)
class DegradationConfig:
    """The whole second-order degradation model (Real-ESRGAN, Sec. 3.1).

    Attributes:
        name: the preset's name (recorded with the run).
        first: the first stage.
        second: the second stage (its JPEG range is the final step's).
        final: the final resize, sinc and JPEG.
        sharpen: unsharp masking of the HR patch.
    """

    name: str = "realesrgan"
    first: StageConfig = field(default_factory=StageConfig)
    second: StageConfig = SECOND_STAGE
    final: FinalConfig = field(default_factory=FinalConfig)
    sharpen: SharpenConfig = field(default_factory=SharpenConfig)


def degradation_config(spec: Mapping[str, Any] | DegradationConfig | None) -> DegradationConfig:
    """The checked :class:`DegradationConfig` of ``data.degradation`` (a mapping such as
    ``conf/data/degradation/realesrgan.yaml``); missing keys keep Real-ESRGAN's defaults.

    Raises:
        ConfigError: an unknown key, or a probability, range, kernel size or mode that is
            out of its domain; the message names the key and the value.
    """
    if isinstance(spec, DegradationConfig):
        config = spec
    elif spec is None:
        config = DegradationConfig()
    elif isinstance(spec, str):
        raise ConfigError(
            f"data.degradation={spec!r} is a string: select the config group instead, "
            f"data/degradation={spec} (conf/data/degradation/{spec}.yaml); ~data/degradation "
            "removes it (bicubic or file LR)"
        )
    else:
        spec = dict(spec)
        sections = {
            "first": StageConfig(),
            "second": SECOND_STAGE,
            "final": FinalConfig(),
            "sharpen": SharpenConfig(),
        }
        _check_keys(spec, ["name", *sections], "data.degradation")
        built = {"name": str(spec.get("name", "realesrgan"))}
        for section, default in sections.items():
            values = dict(spec.get(section) or {})
            _check_keys(values, [f.name for f in fields(default)], f"data.degradation.{section}")
            built[section] = replace(default, **{k: _plain(v) for k, v in values.items()})
        config = DegradationConfig(**built)
    for section in ("first", "second"):
        _check_stage(getattr(config, section), f"data.degradation.{section}")
    _check_final(config.final)
    _check_sharpen(config.sharpen)
    return config


def _plain(value: Any) -> Any:
    # OmegaConf lists arrive as ListConfig (or lists): make them tuples, as the defaults are.
    if isinstance(value, Sequence) and not isinstance(value, str):
        return tuple(value)
    return value


def _check_keys(values: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{where} has unknown key(s) {unknown}: the keys are {list(known)}")


def _probability(value: Any, key: str) -> None:
    if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{key}={value!r} must be a probability in [0, 1]")


def _range(value: Any, key: str, low: float = 0.0, inclusive: bool = True) -> None:
    ok = (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) and math.isfinite(v) for v in value)
        and value[0] <= value[1]
        and (value[0] >= low if inclusive else value[0] > low)
    )
    if not ok:
        bound = f">= {low}" if inclusive else f"> {low}"
        raise ConfigError(f"{key}={list(value) if isinstance(value, tuple) else value!r} must "
                          f"be [low, high] with low <= high, both finite and {bound}")  # fmt: skip


def _distribution(value: Any, size: int, key: str) -> None:
    ok = (
        isinstance(value, tuple)
        and len(value) == size
        and all(isinstance(v, int | float) and v >= 0 for v in value)
        and sum(value) > 0
    )
    if not ok:
        raise ConfigError(
            f"{key}={list(value) if isinstance(value, tuple) else value!r} must be {size} "
            "non-negative weights with a positive sum"
        )


def _kernel_sizes(value: Any, key: str) -> None:
    ok = (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, int) and v % 2 == 1 and v >= 1 for v in value)
        and value[0] <= value[1]
    )
    if not ok:
        raise ConfigError(
            f"{key}={list(value) if isinstance(value, tuple) else value!r} must be [smallest, "
            "largest] odd kernel sides, e.g. [7, 21]"
        )


def _modes(value: Any, key: str) -> None:
    if not isinstance(value, tuple) or not value or any(m not in RESIZE_MODES for m in value):
        raise ConfigError(f"{key}={value!r}: use a non-empty list of {list(RESIZE_MODES)}")


def _check_stage(stage: StageConfig, where: str) -> None:
    for name in ("blur_prob", "sinc_prob", "gaussian_noise_prob", "gray_noise_prob"):
        _probability(getattr(stage, name), f"{where}.{name}")
    _kernel_sizes(stage.kernel_sizes, f"{where}.kernel_sizes")
    _distribution(stage.kernel_probs, len(KERNEL_TYPES) - 1, f"{where}.kernel_probs")
    _distribution(stage.resize_probs, 3, f"{where}.resize_probs")
    _range(stage.blur_sigma, f"{where}.blur_sigma", inclusive=False)
    _range(stage.betag_range, f"{where}.betag_range", inclusive=False)
    _range(stage.betap_range, f"{where}.betap_range", inclusive=False)
    _range(stage.resize_range, f"{where}.resize_range", inclusive=False)
    if not stage.resize_range[0] <= 1.0 <= stage.resize_range[1]:
        raise ConfigError(
            f"{where}.resize_range={list(stage.resize_range)} must hold 1: down-scales are drawn "
            "from [low, 1], up-scales from [1, high]"
        )
    _modes(stage.resize_modes, f"{where}.resize_modes")
    _range(stage.noise_range, f"{where}.noise_range")
    _range(stage.poisson_scale_range, f"{where}.poisson_scale_range")
    _range(stage.jpeg_range, f"{where}.jpeg_range", low=1.0)
    if stage.jpeg_range[1] > 100:
        raise ConfigError(f"{where}.jpeg_range={list(stage.jpeg_range)}: JPEG quality is 1..100")


def _check_final(final: FinalConfig) -> None:
    _probability(final.sinc_prob, "data.degradation.final.sinc_prob")
    _probability(final.resize_first_prob, "data.degradation.final.resize_first_prob")
    _kernel_sizes(final.kernel_sizes, "data.degradation.final.kernel_sizes")
    _modes(final.resize_modes, "data.degradation.final.resize_modes")


def _check_sharpen(sharpen: SharpenConfig) -> None:
    if not isinstance(sharpen.radius, int) or sharpen.radius < 1:
        raise ConfigError(f"data.degradation.sharpen.radius={sharpen.radius!r} must be an int >= 1")
    if sharpen.weight < 0 or sharpen.threshold < 0:
        raise ConfigError(
            f"data.degradation.sharpen weight={sharpen.weight!r} and "
            f"threshold={sharpen.threshold!r} must be >= 0"
        )

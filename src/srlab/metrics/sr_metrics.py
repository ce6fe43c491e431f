"""Y-channel PSNR and SSIM exactly as the SR literature computes them (README, "Evaluation protocol").

Protocol, for an SR output ``sr`` and its ground truth ``hr`` (float ``[B, C, H, W]`` in
[0, 1], equal shapes):

1. Both are clipped and quantized to 8-bit levels (:func:`quantize`), as if saved to PNG.
2. The scoring channel is taken in [0, 255] (:func:`to_y255`): MATLAB ``rgb2ycbcr`` Y,
   ``16 + 65.481 R + 128.553 G + 24.966 B`` with ``R, G, B = levels / 255``, for RGB; the
   channel itself for grayscale images (Set14 ``bridge``).
3. ``shave`` pixels (the scale, by convention) are cut from every side.
4. PSNR (peak 255) and SSIM (Wang et al.: 11x11 Gaussian, sigma 1.5, K1 0.01, K2 0.03,
   L 255, mean of the 'valid' part of the SSIM map) are computed **per image** in float64,
   and a data set's score is the **mean over images**.

torchmetrics' own ``PeakSignalNoiseRatio`` pools the squared error over all images before
the log, and its ``StructuralSimilarityIndexMeasure`` averages a reflect-padded SSIM map; both
differ from published tables, hence these metrics. The functions here are pure torch, and the
:class:`PSNRY` / :class:`SSIMY` ``Metric`` classes keep only a sum and a count, so DDP sync
is one all-reduce.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from srlab.imaging.color import rgb_to_y

__all__ = ["PSNRY", "SSIMY", "psnr_y", "quantize", "ssim_y", "to_y255"]

_PEAK = 255.0
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_C1 = (0.01 * _PEAK) ** 2
_SSIM_C2 = (0.03 * _PEAK) ** 2


def quantize(image: Tensor) -> Tensor:
    """Clip to [0, 1] and round to 8-bit levels, as saving to an 8-bit PNG would.

    ``levels = round(clamp(image, 0, 1) * 255)``. Rounding is ``torch.round`` (ties to even),
    the same as the PyTorch code (EDSR, BasicSR) that wrote the PNGs published tables were
    scored on; exact ``.5`` ties do not occur in practice for network outputs.

    Args:
        image: float tensor of any shape, nominally in [0, 1].

    Returns:
        Float tensor of the same shape and dtype holding integer levels 0..255.

    Example:
        >>> import torch
        >>> quantize(torch.tensor([-0.1, 0.0, 0.5001, 0.9999, 1.2])).tolist()
        [0.0, 0.0, 128.0, 255.0, 255.0]
    """
    return image.clamp(0.0, 1.0).mul(_PEAK).round()


def to_y255(image: Tensor, channel: str = "y", round_y: bool = False) -> Tensor:
    """Quantize ``image`` and return its scoring channel(s) in [0, 255], float64.

    For RGB (``C == 3``) that is MATLAB's Y, ``16 + 65.481 R + 128.553 G + 24.966 B`` on
    ``R, G, B = levels / 255`` (not rounded again, as in MATLAB's ``rgb2ycbcr`` on double
    input); for grayscale (``C == 1``) it is the quantized channel itself.

    Args:
        image: float ``[B, C, H, W]`` in [0, 1] with ``C`` 1 or 3.
        channel: ``"y"`` (the literature's default) or ``"rgb"`` (all three channels, for
            papers that score RGB).
        round_y: round Y to 8-bit levels, as MATLAB's ``rgb2ycbcr`` does on uint8 input
            (some older papers' evaluation scripts).

    Returns:
        float64 ``[B, 1, H, W]`` (``[B, 3, H, W]`` for ``channel="rgb"`` on RGB input).

    Raises:
        ValueError: if ``image`` is not 4-D with 1 or 3 channels.

    Example:
        >>> import torch
        >>> to_y255(torch.ones(1, 3, 1, 1)).item()
        235.0
        >>> to_y255(torch.full((1, 1, 1, 1), 0.5)).item()
        128.0
    """
    if image.dim() != 4 or image.shape[1] not in (1, 3):
        raise ValueError(
            f"expected a [B, C, H, W] image with C = 1 (gray) or 3 (RGB), "
            f"got shape {tuple(image.shape)}"
        )
    # float64 from here on: the scores are compared with published values to 1e-2 dB and
    # float32 sums over large images would eat into that.
    if channel not in ("y", "rgb"):
        raise ValueError(f"channel must be 'y' or 'rgb', got {channel!r}")
    levels = quantize(image).to(torch.float64)
    if image.shape[1] == 1 or channel == "rgb":
        return levels
    y = rgb_to_y(levels / _PEAK) * _PEAK
    # MATLAB rounds halves away from zero; Y is positive, so floor(y + 0.5) is that.
    return torch.floor(y + 0.5) if round_y else y


def _scoring_pair(
    sr: Tensor, hr: Tensor, shave: int, channel: str = "y", round_y: bool = False
) -> tuple[Tensor, Tensor]:
    """Validate inputs, then return the shaved float64 scoring channels of ``sr`` and ``hr``."""
    if sr.shape != hr.shape:
        raise ValueError(
            f"sr and hr must have the same shape, got sr {tuple(sr.shape)} and hr {tuple(hr.shape)}"
        )
    if shave < 0:
        raise ValueError(f"shave must be >= 0, got {shave}")
    y_sr, y_hr = to_y255(sr, channel, round_y), to_y255(hr, channel, round_y)
    height, width = y_sr.shape[-2:]
    if height <= 2 * shave or width <= 2 * shave:
        raise ValueError(
            f"shaving {shave} pixels per side leaves nothing of a {height}x{width} image"
        )
    if shave:
        y_sr = y_sr[..., shave:-shave, shave:-shave]
        y_hr = y_hr[..., shave:-shave, shave:-shave]
    return y_sr, y_hr


def psnr_y(sr: Tensor, hr: Tensor, shave: int, channel: str = "y", round_y: bool = False) -> Tensor:
    """Per-image PSNR on the scoring channel, after quantizing and shaving (README, "Evaluation protocol").

    ``PSNR = 10 log10(255^2 / MSE)``, with ``MSE`` the mean squared difference of the two
    scoring channels (:func:`to_y255`) over the image without its ``shave``-pixel border,
    in float64. Identical images (``MSE = 0``) give ``+inf``; a mean that includes one is
    ``+inf`` too.

    Args:
        sr: super-resolved float ``[B, C, H, W]`` in [0, 1], ``C`` 1 or 3.
        hr: ground truth of the same shape.
        shave: pixels removed on every side before scoring (the scale, by convention).
        channel: ``"y"`` or ``"rgb"``, see :func:`to_y255`.
        round_y: round Y to 8-bit levels, see :func:`to_y255`.

    Returns:
        float64 ``[B]``, one PSNR in dB per image.

    Raises:
        ValueError: if the shapes differ (both are shown), ``C`` is not 1 or 3, or the shave
            leaves no pixels.

    Example:
        >>> import torch
        >>> hr = torch.full((2, 1, 8, 8), 100 / 255)  # gray: scored on its own channel
        >>> sr = torch.full((2, 1, 8, 8), 110 / 255)  # 10 levels off: MSE = 100
        >>> psnr_y(sr, hr, shave=2).round(decimals=4).tolist()  # 10 log10(255^2 / 100)
        [28.1308, 28.1308]
    """
    y_sr, y_hr = _scoring_pair(sr, hr, shave, channel, round_y)
    mse = (y_sr - y_hr).square().flatten(1).mean(dim=1)
    return 10.0 * torch.log10(_PEAK**2 / mse)


def _gaussian_profile(dtype: torch.dtype, device: torch.device) -> Tensor:
    """The normalized 1-D factor of MATLAB's ``fspecial('gaussian', 11, 1.5)``.

    The 11x11 window is the outer product of this profile with itself, so filtering with it
    is two 1-D valid convolutions (:func:`_filter_valid`).
    """
    coords = torch.arange(_SSIM_WINDOW, dtype=dtype, device=device) - (_SSIM_WINDOW - 1) / 2
    profile = torch.exp(-(coords**2) / (2 * _SSIM_SIGMA**2))
    return profile / profile.sum()


def _filter_valid(planes: Tensor, profile: Tensor) -> Tensor:
    """``planes [..., H, W]`` filtered by the window ``profile x profile``, 'valid' part only.

    Each 1-D pass is a weighted sum of shifted views, accumulated in place: in float64, where
    CPU convolutions have no fast path, this is about 3x faster than ``conv2d`` with the 1-D
    kernels (and 15x faster than with the 11x11 window), with the same sums.
    """
    taps = [float(weight) for weight in profile]
    for dim in (-1, -2):
        size = planes.shape[dim] - len(taps) + 1
        out = planes.narrow(dim, 0, size) * taps[0]
        for offset, weight in enumerate(taps[1:], start=1):
            out.add_(planes.narrow(dim, offset, size), alpha=weight)
        planes = out
    return planes


def ssim_y(sr: Tensor, hr: Tensor, shave: int, channel: str = "y", round_y: bool = False) -> Tensor:
    """Per-image SSIM of Wang et al. (2004) on the scoring channel (README, "Evaluation protocol").

    With local statistics taken under an 11x11 Gaussian window (sigma 1.5, normalized),

    ``SSIM = mean over the map of ((2 mu_x mu_y + C1)(2 s_xy + C2)) /
    ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))``, ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``,
    ``L = 255``,

    where the map is computed with a *valid* convolution (no padding), as Wang's
    ``ssim_index.m`` does with ``filter2(..., 'valid')``: an ``h x w`` shaved image gives an
    ``(h - 10) x (w - 10)`` map. Scoring channel, quantization and shave as in :func:`psnr_y`.

    Args:
        sr: super-resolved float ``[B, C, H, W]`` in [0, 1], ``C`` 1 or 3.
        hr: ground truth of the same shape.
        shave: pixels removed on every side before scoring (the scale, by convention).
        channel: ``"y"`` or ``"rgb"``, see :func:`to_y255`.
        round_y: round Y to 8-bit levels, see :func:`to_y255`.

    Returns:
        float64 ``[B]``, one SSIM per image (1 for identical images).

    Raises:
        ValueError: if the shapes differ (both are shown), ``C`` is not 1 or 3, or the shaved
            image is smaller than the 11x11 window.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> hr = torch.rand(1, 3, 32, 32)
        >>> ssim_y(hr, hr, shave=2).tolist()
        [1.0]
        >>> bool(ssim_y(hr.flip(-1), hr, shave=2) < 0.5)
        True
    """
    y_sr, y_hr = _scoring_pair(sr, hr, shave, channel, round_y)
    # Several scoring channels (channel="rgb"): SSIM per channel, then their mean.
    images, channels, height, width = y_sr.shape
    y_sr, y_hr = y_sr.reshape(-1, 1, height, width), y_hr.reshape(-1, 1, height, width)
    if height < _SSIM_WINDOW or width < _SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels after shaving, "
            f"got {height}x{width}"
        )
    profile = _gaussian_profile(y_sr.dtype, y_sr.device)

    # One filtering of the five stacked planes instead of five separate ones.
    planes = torch.cat([y_sr, y_hr, y_sr * y_sr, y_hr * y_hr, y_sr * y_hr], dim=1)
    mu_x, mu_y, e_xx, e_yy, e_xy = _filter_valid(planes, profile).unbind(dim=1)

    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    # Population (biased) local variances, as in Wang's code and skimage's
    # use_sample_covariance=False.
    var_x, var_y, cov_xy = e_xx - mu_xx, e_yy - mu_yy, e_xy - mu_xy
    ssim_map = ((2 * mu_xy + _SSIM_C1) * (2 * cov_xy + _SSIM_C2)) / (
        (mu_xx + mu_yy + _SSIM_C1) * (var_x + var_y + _SSIM_C2)
    )
    return ssim_map.flatten(1).mean(dim=1).view(images, channels).mean(dim=1)


class _MeanOverImages(Metric):
    """Mean of a per-image score over every image seen, with a DDP-summable state.

    Subclasses set ``_score`` to a ``(sr, hr, shave) -> Tensor[B]`` function.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    sum: Tensor
    count: Tensor

    def __init__(self, shave: int, channel: str = "y", round_y: bool = False, **kwargs) -> None:
        """Create the metric: ``shave`` is the border cut on every side (usually the scale),
        ``channel`` and ``round_y`` the scoring channel (see :func:`to_y255`)."""
        super().__init__(**kwargs)
        if shave < 0:
            raise ValueError(f"shave must be >= 0, got {shave}")
        if channel not in ("y", "rgb"):
            raise ValueError(f"channel must be 'y' or 'rgb', got {channel!r}")
        self.shave, self.channel, self.round_y = shave, channel, round_y
        #: The per-image scores of the latest :meth:`update` (float64 ``[B]``), for reports
        #: that list every image; not part of the state, so not reduced over processes.
        self.last_scores: Tensor | None = None
        self.add_state("sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    @staticmethod
    def _score(sr: Tensor, hr: Tensor, shave: int, channel: str, round_y: bool) -> Tensor:
        raise NotImplementedError

    def update(self, sr: Tensor, hr: Tensor) -> None:
        """Add the per-image scores of a batch ``sr``/``hr`` (float ``[B, C, H, W]`` in [0, 1])."""
        # Scores are computed outside autograd: they are reported, never optimized.
        with torch.no_grad():
            scores = self._score(sr.detach(), hr.detach(), self.shave, self.channel, self.round_y)
        self.last_scores = scores
        self.sum += scores.sum().to(self.sum)
        self.count += scores.numel()

    def compute(self) -> Tensor:
        """Mean of the per-image scores (float64 scalar); NaN before any update."""
        return self.sum / self.count


class PSNRY(_MeanOverImages):
    """Mean per-image Y-channel PSNR in dB, the number published SR tables report.

    For each image: quantize ``sr`` and ``hr`` to 8-bit levels, take MATLAB's Y (or the single
    channel of a grayscale image) in [0, 255], shave ``shave`` pixels per side, then
    ``PSNR = 10 log10(255^2 / MSE)`` in float64 (see :func:`psnr_y`). ``compute()`` returns
    ``sum(PSNR_i) / N`` over all ``N`` images passed to :meth:`update`, **not** the PSNR of the
    pooled error that torchmetrics' ``PeakSignalNoiseRatio`` returns. An image identical to its
    ground truth scores ``+inf``, and so does the mean.

    Args:
        shave: pixels removed on every side before scoring (the scale, by convention).
        channel: ``"y"`` (MATLAB's Y; the literature's) or ``"rgb"``, see :func:`to_y255`.
        round_y: round Y to 8-bit levels first (MATLAB ``rgb2ycbcr`` on uint8).
        kwargs: passed to :class:`torchmetrics.Metric`.

    Shapes:
        ``update(sr, hr)``: ``sr`` and ``hr`` float ``[B, C, H, W]`` in [0, 1], equal shapes,
        ``C`` 1 or 3; sizes may change between calls. ``compute()``: float64 scalar.

    Example:
        >>> import torch
        >>> metric = PSNRY(shave=2)
        >>> level = lambda v, shape: torch.full(shape, v / 255)
        >>> # one 16x16 image 10 levels off (28.1308 dB), then two 8x8 images 5 levels off
        >>> metric.update(level(110, (1, 1, 16, 16)), level(100, (1, 1, 16, 16)))
        >>> metric.update(level(105, (2, 1, 8, 8)), level(100, (2, 1, 8, 8)))  # 34.1514 dB
        >>> round(metric.compute().item(), 4)  # (28.1308 + 2 * 34.1514) / 3
        32.1445
    """

    _score = staticmethod(psnr_y)


class SSIMY(_MeanOverImages):
    """Mean per-image Y-channel SSIM (Wang et al.), as published SR tables report it.

    For each image: quantize, take the scoring channel in [0, 255], shave ``shave`` pixels per
    side, then SSIM with an 11x11 Gaussian window (sigma 1.5), ``K1 = 0.01``, ``K2 = 0.03``,
    ``L = 255``, averaging only the 'valid' part of the SSIM map (see :func:`ssim_y`).
    ``compute()`` returns ``sum(SSIM_i) / N`` over all images passed to :meth:`update`.

    Args:
        shave: pixels removed on every side before scoring (the scale, by convention).
        channel: ``"y"`` (MATLAB's Y; the literature's) or ``"rgb"``, see :func:`to_y255`.
        round_y: round Y to 8-bit levels first (MATLAB ``rgb2ycbcr`` on uint8).
        kwargs: passed to :class:`torchmetrics.Metric`.

    Shapes:
        ``update(sr, hr)``: ``sr`` and ``hr`` float ``[B, C, H, W]`` in [0, 1], equal shapes,
        ``C`` 1 or 3, at least ``11 + 2 * shave`` pixels high and wide; sizes may change
        between calls. ``compute()``: float64 scalar.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> hr = torch.rand(2, 3, 24, 24)
        >>> metric = SSIMY(shave=2)
        >>> metric.update(hr, hr)
        >>> metric.compute().item()
        1.0
    """

    _score = staticmethod(ssim_y)

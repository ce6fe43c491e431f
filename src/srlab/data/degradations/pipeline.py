"""Real-ESRGAN's second-order degradation: HR patches in, degraded LR (and the target) out.

The order is that of Real-ESRGAN's ``RealESRGANModel.feed_data`` (Wang et al., ICCVW 2021,
Sec. 3.1, Fig. 2): the (sharpened) HR patch is blurred, randomly resized, given Gaussian or
Poisson noise and JPEG-compressed; a second stage does the same with its own settings (its
blur with a probability, its resize relative to the final LR size); the final step resizes
to ``HR / scale`` with a sinc filter and JPEG-compresses, in an order drawn per sample; the
result is rounded to 8-bit levels.

Unlike Real-ESRGAN, which draws one resize factor and mode per batch (and then mixes batches
in a pool of 180 pairs to vary them), every sample draws its own: samples whose intermediate
sizes agree are processed as one batch, the others one by one, so a sample's LR depends on
its parameters alone, not on the batch it is in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from srlab.data.degradations.config import DegradationConfig, degradation_config
from srlab.data.degradations.jpeg import jpeg
from srlab.data.degradations.kernels import blur, make_kernels, pulse
from srlab.data.degradations.noise import add_noise
from srlab.data.degradations.params import SINC, draw_params, stack_params
from srlab.data.degradations.resize import resize, scaled_size
from srlab.data.degradations.sharpen import usm_sharpen

Params = dict[str, torch.Tensor]


def _take(params: Params, members: Sequence[int]) -> Params:
    index = torch.tensor(list(members), dtype=torch.long)
    return {name: values[index] for name, values in params.items()}


def _grouped(
    images: list[torch.Tensor],
    step: Callable[[torch.Tensor, Sequence[int]], torch.Tensor],
    where: Sequence[int] | None = None,
) -> list[torch.Tensor]:
    """Run ``step(batch, members)`` on each group of same-sized images (among ``where``)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index in range(len(images)) if where is None else where:
        groups.setdefault(tuple(images[index].shape), []).append(index)
    out = list(images)
    for members in groups.values():
        result = step(torch.stack([images[i] for i in members]), members)
        for row, index in enumerate(members):
            out[index] = result[row]
    return out


class RealESRGANDegradation:
    """Degrade HR patches with per-sample parameters (:func:`draw_params`), on their device.

    Args:
        config: the degradation model's settings (a :class:`DegradationConfig` or the mapping
            of ``data.degradation``); None: Real-ESRGAN's defaults.

    >>> degrade = RealESRGANDegradation()
    >>> hr = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> params = stack_params([degrade.draw(1), degrade.draw(2)])
    >>> lr, target = degrade(hr, params, scale=4)
    >>> tuple(lr.shape), tuple(target.shape), bool(torch.equal(lr, degrade(hr, params, 4)[0]))
    ((2, 3, 8, 8), (2, 3, 32, 32), True)
    """

    def __init__(self, config: DegradationConfig | dict | None = None) -> None:
        self.config = degradation_config(config)
        self.kernel_side = max(
            self.config.first.kernel_sizes[1],
            self.config.second.kernel_sizes[1],
            self.config.final.kernel_sizes[1],
        )

    def draw(self, seed: int) -> dict[str, float]:
        """One sample's parameters from its degradation seed
        (:func:`~srlab.data.degradations.params.sample_seed`)."""
        return draw_params(self.config, seed)

    def _kernels(self, params: Params, prefix: str, device: torch.device) -> torch.Tensor:
        kernels = make_kernels(
            params[f"{prefix}kernel"],
            params[f"{prefix}ksize"],
            params[f"{prefix}sigma_x"],
            params[f"{prefix}sigma_y"],
            params[f"{prefix}theta"],
            params[f"{prefix}beta"],
            params[f"{prefix}omega"],
            side=self.kernel_side,
        )
        skip = params[f"{prefix}blur"] == 0
        if skip.any():
            kernels[skip] = pulse(int(skip.sum()), self.kernel_side, kernels.device)
        return kernels.to(device)

    def _final_sinc(self, params: Params, device: torch.device) -> torch.Tensor:
        none = torch.zeros_like(params["final_omega"])
        kernels = make_kernels(
            torch.full_like(params["final_ksize"], SINC),
            params["final_ksize"],
            none,
            none,
            none,
            none,
            params["final_omega"],
            side=self.kernel_side,
        )
        skip = params["final_sinc"] == 0
        if skip.any():
            kernels[skip] = pulse(int(skip.sum()), self.kernel_side, kernels.device)
        return kernels.to(device)

    @torch.no_grad()
    def __call__(
        self, hr: torch.Tensor, params: Params, scale: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Degrade ``hr`` [B, 3, H, W] in [0, 1] (H, W multiples of ``scale``).

        Args:
            hr: the HR patches, on the device to compute on.
            params: ``{name: [B] tensor}`` (:func:`~srlab.data.degradations.params.stack_params`,
                or a collated batch's ``degradation`` entry), on any device.
            scale: the SR scale.

        Returns:
            ``(lr, target)``: LR [B, 3, H/scale, W/scale] in 8-bit levels, and the training
            target (the sharpened HR with ``sharpen.target``, else ``hr``).
        """
        config = self.config
        params = {name: value.detach().cpu() for name, value in params.items()}
        hr = hr.float()
        device = hr.device
        height, width = hr.shape[-2:]
        lr_size = (height // scale, width // scale)
        sharp = (
            usm_sharpen(hr, config.sharpen) if config.sharpen.target or config.sharpen.input else hr
        )
        target = sharp if config.sharpen.target else hr
        out = blur(sharp if config.sharpen.input else hr, self._kernels(params, "s1_", device))

        def resize_each(images: list[torch.Tensor], size_of) -> list[torch.Tensor]:
            resized = []
            for index, image in enumerate(images):
                size, mode = size_of(index, image)
                resized.append(resize(image[None], size, mode)[0])
            return resized

        # Stage 1: resize relative to the HR patch, noise, JPEG.
        images = resize_each(
            list(out),
            lambda i, image: (
                scaled_size(*image.shape[-2:], float(params["s1_resize"][i])),
                int(params["s1_resize_mode"][i]),
            ),
        )
        images = self._noise(images, params, "s1_")
        images = _grouped(images, lambda b, m: jpeg(b, _take(params, m)["s1_jpeg"]))
        # Stage 2: blur (with a probability), resize relative to the final LR size, noise.
        kernels2 = self._kernels(params, "s2_", device)
        images = _grouped(images, lambda b, m: blur(b, kernels2[list(m)]))
        images = resize_each(
            images,
            lambda i, image: (
                (
                    max(1, int(lr_size[0] * float(params["s2_resize"][i]))),
                    max(1, int(lr_size[1] * float(params["s2_resize"][i]))),
                ),
                int(params["s2_resize_mode"][i]),
            ),
        )
        images = self._noise(images, params, "s2_")
        # Final step: [resize to LR + sinc] and JPEG, in the sample's order.
        sinc = self._final_sinc(params, device)
        first = [i for i in range(len(images)) if params["final_resize_first"][i]]
        last = [i for i in range(len(images)) if not params["final_resize_first"][i]]

        def resize_and_sinc(image_list, where):
            for i in where:
                mode = int(params["final_resize_mode"][i])
                image_list[i] = resize(image_list[i][None], lr_size, mode)[0]
            return _grouped(image_list, lambda b, m: blur(b, sinc[list(m)]), where)

        def compress(image_list, where):
            return _grouped(image_list, lambda b, m: jpeg(b, _take(params, m)["s2_jpeg"]), where)

        images = resize_and_sinc(images, first)
        images = compress(images, first + last)
        images = resize_and_sinc(images, last)
        lr = torch.stack(images)
        lr = torch.clamp((lr * 255.0).round(), 0, 255) / 255.0
        return lr.contiguous(), target

    def _noise(self, images: list[torch.Tensor], params: Params, prefix: str) -> list[torch.Tensor]:
        return _grouped(images, lambda b, m: add_noise(b, _take(params, m), prefix))

    def degrade_seeds(
        self, hr: torch.Tensor, seeds: Sequence[int], scale: int
    ) -> tuple[torch.Tensor, torch.Tensor, Params]:
        """Draw each sample's parameters from ``seeds`` and degrade ``hr``; returns
        ``(lr, target, params)``."""
        params = stack_params([self.draw(seed) for seed in seeds])
        lr, target = self(hr, params, scale)
        return lr, target, params

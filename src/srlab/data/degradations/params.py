"""Drawing one sample's degradation parameters from its own seed.

Every sample's parameters are a pure function of one integer seed: :func:`sample_seed` turns
the seed of the sample's :class:`~srlab.data.sampling.PatchKey` (a function of the run's seed,
the epoch and the sample's global position in the epoch's order) into the seed of the draw,
so a resumed run, another number of loader workers or another DDP rank that gets the same
position draws the same degradation, and distinct positions draw independently.

:func:`draw_params` always consumes the same uniforms in the same order, whatever branch a
draw takes (Gaussian or Poisson noise, sinc or not, ...), so changing one probability in the
config does not reshuffle every other parameter of a sample.
"""

from __future__ import annotations

import math

import torch

from srlab.data.degradations.config import (
    KERNEL_TYPES,
    RESIZE_MODES,
    DegradationConfig,
    StageConfig,
)

SINC = KERNEL_TYPES.index("sinc")
#: Resize directions (``resize_dir`` values).
UP, DOWN, KEEP = 0, 1, 2
# Uniforms per part of a draw; fixed so that every sample consumes the same stream.
_KERNEL_DRAWS = 9
_STAGE_DRAWS = 1 + _KERNEL_DRAWS + 3 + 4 + 1
_FINAL_DRAWS = 5


def sample_seed(patch_seed: int) -> int:
    """The seed of a sample's degradation draw, from its patch seed (which seeds its crop).

    A fixed mix (a 64-bit LCG step), so the two streams are not the same generator.

    >>> sample_seed(0) != 0 and sample_seed(1) != sample_seed(0)
    True
    """
    return (int(patch_seed) * 6364136223846793005 + 1442695040888963407) % 2**63


def _pick(u: float, weights) -> int:
    """The index that uniform ``u`` falls in, for a list of non-negative weights."""
    total = float(sum(weights))
    edge = 0.0
    for index, weight in enumerate(weights):
        edge += weight / total
        if u < edge:
            return index
    return max(i for i, w in enumerate(weights) if w > 0)


def _between(u: float, low: float, high: float) -> float:
    return low + (high - low) * u


def _odd_size(u: float, sizes: tuple[int, int]) -> int:
    count = (sizes[1] - sizes[0]) // 2 + 1
    return sizes[0] + 2 * min(int(u * count), count - 1)


def _kernel(u: list[float], stage: StageConfig, prefix: str) -> dict[str, float]:
    """A random kernel of BasicSR's ``random_mixed_kernels`` / Real-ESRGAN's dataset: an odd
    side, then a sinc (cut-off in [pi/3, pi], [pi/5, pi] for sides of 13 and more) with
    ``sinc_prob``, else one of the six Gaussian-like families."""
    u_type, u_sinc, u_size, u_sx, u_sy, u_theta, u_side, u_beta, u_omega = u
    size = _odd_size(u_size, stage.kernel_sizes)
    kind = SINC if u_sinc < stage.sinc_prob else _pick(u_type, stage.kernel_probs)
    name = KERNEL_TYPES[kind]
    sigma_x = _between(u_sx, *stage.blur_sigma)
    sigma_y = _between(u_sy, *stage.blur_sigma) if name.endswith("aniso") else sigma_x
    theta = _between(u_theta, -math.pi, math.pi) if name.endswith("aniso") else 0.0
    beta = 0.0
    if name.startswith(("generalized", "plateau")):
        low, high = stage.betag_range if name.startswith("generalized") else stage.betap_range
        # BasicSR draws beta below or above 1 with equal odds.
        beta = _between(u_beta, low, 1.0) if u_side < 0.5 else _between(u_beta, 1.0, high)
    omega = 0.0
    if kind == SINC:
        omega = _between(u_omega, math.pi / 3 if size < 13 else math.pi / 5, math.pi)
    return {
        f"{prefix}kernel": kind,
        f"{prefix}ksize": size,
        f"{prefix}sigma_x": sigma_x,
        f"{prefix}sigma_y": sigma_y,
        f"{prefix}theta": theta,
        f"{prefix}beta": beta,
        f"{prefix}omega": omega,
    }


def _stage(u: list[float], stage: StageConfig, prefix: str) -> dict[str, float]:
    u_blur = u[0]
    params = {f"{prefix}blur": float(u_blur < stage.blur_prob)}
    params.update(_kernel(u[1 : 1 + _KERNEL_DRAWS], stage, prefix))
    u_dir, u_factor, u_mode, u_kind, u_sigma, u_poisson, u_gray, u_jpeg = u[1 + _KERNEL_DRAWS :]
    direction = _pick(u_dir, stage.resize_probs)
    low, high = stage.resize_range
    factor = {UP: _between(u_factor, 1.0, high), DOWN: _between(u_factor, low, 1.0)}
    params[f"{prefix}resize"] = factor.get(direction, 1.0)
    modes = stage.resize_modes
    params[f"{prefix}resize_mode"] = _mode_index(modes, u_mode)
    params[f"{prefix}gaussian"] = float(u_kind < stage.gaussian_noise_prob)
    params[f"{prefix}noise_sigma"] = _between(u_sigma, *stage.noise_range)
    params[f"{prefix}poisson_scale"] = _between(u_poisson, *stage.poisson_scale_range)
    params[f"{prefix}gray"] = float(u_gray < stage.gray_noise_prob)
    # Integer qualities: what a JPEG encoder takes (and what the Pillow test compares with).
    params[f"{prefix}jpeg"] = float(round(_between(u_jpeg, *stage.jpeg_range)))
    return params


def _mode_index(modes: tuple[str, ...], u: float) -> int:
    return RESIZE_MODES.index(modes[min(int(u * len(modes)), len(modes) - 1)])


def draw_params(config: DegradationConfig, seed: int) -> dict[str, float]:
    """One sample's degradation parameters: a flat ``{name: number}`` (see :data:`PARAM_NAMES`).

    Prefixes ``s1_`` and ``s2_`` are the two stages, ``final_`` the final step; ``*_kernel``
    indexes :data:`~srlab.data.degradations.config.KERNEL_TYPES`, ``*_resize_mode`` indexes
    :data:`~srlab.data.degradations.config.RESIZE_MODES`; flags are 0.0 or 1.0; ``s*_seed``
    seed the sample's noise. ``s2_jpeg`` is the final step's JPEG quality.

    >>> a = draw_params(DegradationConfig(), seed=7)
    >>> a == draw_params(DegradationConfig(), seed=7) and a != draw_params(DegradationConfig(), 8)
    True
    """
    generator = torch.Generator().manual_seed(int(seed) % 2**63)
    count = 2 * _STAGE_DRAWS + _FINAL_DRAWS
    u = torch.rand(count, generator=generator, dtype=torch.float64).tolist()
    noise_seeds = torch.randint(2**62, (2,), generator=generator).tolist()
    params = _stage(u[:_STAGE_DRAWS], config.first, "s1_")
    params["s1_blur"] = 1.0  # the first stage always blurs
    params.update(_stage(u[_STAGE_DRAWS : 2 * _STAGE_DRAWS], config.second, "s2_"))
    params["s1_seed"], params["s2_seed"] = noise_seeds
    u_order, u_mode, u_sinc, u_size, u_omega = u[2 * _STAGE_DRAWS :]
    final = config.final
    params["final_resize_first"] = float(u_order < final.resize_first_prob)
    params["final_resize_mode"] = _mode_index(final.resize_modes, u_mode)
    params["final_sinc"] = float(u_sinc < final.sinc_prob)
    params["final_ksize"] = _odd_size(u_size, final.kernel_sizes)
    params["final_omega"] = _between(u_omega, math.pi / 3, math.pi)
    return params


#: The keys of :func:`draw_params`, in table order.
PARAM_NAMES = tuple(draw_params(DegradationConfig(), 0))
#: Integer-valued keys (kept as int64 in batches: noise seeds need all 62 bits).
INT_PARAMS = frozenset(
    name for name in PARAM_NAMES if name.endswith(("_kernel", "_ksize", "_resize_mode", "_seed"))
)


def params_tensors(params: dict[str, float]) -> dict[str, torch.Tensor]:
    """One sample's parameters as 0-d tensors (int64 or float64), for the loader to collate."""
    return {
        name: torch.tensor(value, dtype=torch.int64 if name in INT_PARAMS else torch.float64)
        for name, value in params.items()
    }


def stack_params(samples: list[dict[str, float]]) -> dict[str, torch.Tensor]:
    """Several samples' parameters as ``{name: [B] tensor}``, as a collated batch holds them."""
    return {
        name: torch.tensor(
            [s[name] for s in samples],
            dtype=torch.int64 if name in INT_PARAMS else torch.float64,
        )
        for name in PARAM_NAMES
    }

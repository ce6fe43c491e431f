"""CharbonnierLoss against an independent numpy formula and its limiting behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srlab.losses import CharbonnierLoss


def charbonnier_numpy(x: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
    return np.sqrt((x.astype(np.float64) - y) ** 2 + eps**2)


@pytest.mark.parametrize("eps", [1e-3, 1e-6, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_numpy(eps: float, reduction: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 8, 7), dtype=np.float32)
    y = rng.random((2, 3, 8, 7), dtype=np.float32)
    ref = charbonnier_numpy(x, y, eps)
    ref = {"mean": ref.mean(), "sum": ref.sum(), "none": ref}[reduction]
    got = CharbonnierLoss(eps=eps, reduction=reduction)(torch.from_numpy(x), torch.from_numpy(y))
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-7)


def test_default_eps_and_reduction() -> None:
    loss = CharbonnierLoss()
    assert loss.eps == 1e-3
    assert loss.reduction == "mean"
    # Zero error costs exactly eps.
    assert loss(torch.zeros(4), torch.zeros(4)).item() == pytest.approx(1e-3)


def test_close_to_l1_for_large_errors() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16)
    y = x + torch.where(torch.rand_like(x) < 0.5, -1.0, 1.0) * (0.1 + torch.rand_like(x))
    charb = CharbonnierLoss(eps=1e-3)(x, y)
    l1 = torch.nn.L1Loss()(x, y)
    # sqrt(d^2 + eps^2) - |d| <= eps^2 / (2 |d|) = 5e-6 for |d| >= 0.1.
    assert 0 <= (charb - l1).item() < 5e-6


def test_gradient_finite_at_zero_error() -> None:
    x = torch.full((1, 3, 4, 4), 0.5, requires_grad=True)
    CharbonnierLoss()(x, x.detach().clone()).backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
    assert (x.grad == 0).all()
    # L1, by contrast, has a kink there; Charbonnier's gradient is d / sqrt(d^2 + eps^2).
    d = torch.tensor([1e-3], requires_grad=True)
    CharbonnierLoss(eps=1e-3, reduction="sum")(d, torch.zeros(1)).backward()
    assert d.grad.item() == pytest.approx(1 / np.sqrt(2), rel=1e-5)


def test_half_precision_input_keeps_eps() -> None:
    x = torch.zeros(8, dtype=torch.bfloat16)
    got = CharbonnierLoss(eps=1e-3)(x, x)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(1e-3)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="reduction"):
        CharbonnierLoss(reduction="avg")
    with pytest.raises(ValueError, match="eps"):
        CharbonnierLoss(eps=0.0)
    with pytest.raises(ValueError, match="shape"):
        CharbonnierLoss()(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))

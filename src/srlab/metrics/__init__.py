"""Y-channel PSNR/SSIM with the SR literature's evaluation protocol (README, "Evaluation protocol")."""

from srlab.metrics.sr_metrics import PSNRY, SSIMY, psnr_y, quantize, ssim_y, to_y255

__all__ = ["PSNRY", "SSIMY", "psnr_y", "quantize", "ssim_y", "to_y255"]

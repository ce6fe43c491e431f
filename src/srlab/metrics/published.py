"""Published PSNR/SSIM of well-known methods, to print beside srlab's own results.

Y-channel PSNR (dB) / SSIM, ``scale`` pixels shaved, mean over images: the protocol srlab
implements (README, "Evaluation protocol"). Each row names the table it was transcribed from. The
bicubic rows of Set5 and Set14 are reproduced by srlab itself (tests/test_protocol.py).

Rows were transcribed by hand from the cited tables; a value that disagrees with the
paper is a bug: please report it with the page.
"""

from __future__ import annotations

from dataclasses import dataclass

SETS = ("Set5", "Set14", "BSD100", "Urban100", "Manga109")

_RCAN = "Zhang et al., RCAN, ECCV 2018, Table 3"
_SWINIR = "Liang et al., SwinIR, ICCVW 2021, Table 2 (classical SR, DIV2K)"

# method, scale, source, then "psnr/ssim" for SETS in order ("-" where the table has none).
_TABLE = f"""
bicubic 2 {_RCAN} | 33.66/0.9299 30.24/0.8688 29.56/0.8431 26.88/0.8403 30.80/0.9339
bicubic 3 {_RCAN} | 30.39/0.8682 27.55/0.7742 27.21/0.7385 24.46/0.7349 26.95/0.8556
bicubic 4 {_RCAN} | 28.42/0.8104 26.00/0.7027 25.96/0.6675 23.14/0.6577 24.89/0.7866
srcnn 2 {_RCAN} | 36.66/0.9542 32.45/0.9067 31.36/0.8879 29.50/0.8946 35.60/0.9663
srcnn 3 {_RCAN} | 32.75/0.9090 29.30/0.8215 28.41/0.7863 26.24/0.7989 30.48/0.9117
srcnn 4 {_RCAN} | 30.48/0.8628 27.50/0.7513 26.90/0.7101 24.52/0.7221 27.58/0.8555
fsrcnn 2 {_RCAN} | 37.05/0.9560 32.66/0.9090 31.53/0.8920 29.88/0.9020 36.67/0.9710
fsrcnn 3 {_RCAN} | 33.18/0.9140 29.37/0.8240 28.53/0.7910 26.43/0.8080 31.10/0.9210
fsrcnn 4 {_RCAN} | 30.72/0.8660 27.61/0.7550 26.98/0.7150 24.62/0.7280 27.90/0.8610
vdsr 2 {_RCAN} | 37.53/0.9590 33.05/0.9130 31.90/0.8960 30.77/0.9140 37.22/0.9750
vdsr 3 {_RCAN} | 33.67/0.9210 29.78/0.8320 28.83/0.7990 27.14/0.8290 32.01/0.9340
vdsr 4 {_RCAN} | 31.35/0.8830 28.02/0.7680 27.29/0.7260 25.18/0.7540 28.83/0.8870
edsr 2 {_RCAN} | 38.11/0.9602 33.92/0.9195 32.32/0.9013 32.93/0.9351 39.10/0.9773
edsr 3 {_RCAN} | 34.65/0.9280 30.52/0.8462 29.25/0.8093 28.80/0.8653 34.17/0.9476
edsr 4 {_RCAN} | 32.46/0.8968 28.80/0.7876 27.71/0.7420 26.64/0.8033 31.02/0.9148
rcan 2 {_RCAN} | 38.27/0.9614 34.12/0.9216 32.41/0.9027 33.34/0.9384 39.44/0.9786
rcan 3 {_RCAN} | 34.74/0.9299 30.65/0.8482 29.32/0.8111 29.09/0.8702 34.44/0.9499
rcan 4 {_RCAN} | 32.63/0.9002 28.87/0.7889 27.77/0.7436 26.82/0.8087 31.22/0.9173
rrdb 4 {_SWINIR} | 32.73/0.9011 28.99/0.7917 27.85/0.7455 27.03/0.8153 31.66/0.9196
swinir 2 {_SWINIR} | 38.35/0.9620 34.14/0.9227 32.44/0.9030 33.40/0.9393 39.60/0.9792
swinir 3 {_SWINIR} | 34.89/0.9312 30.77/0.8503 29.37/0.8124 29.29/0.8744 34.74/0.9518
swinir 4 {_SWINIR} | 32.72/0.9021 28.94/0.7914 27.83/0.7459 27.07/0.8164 31.67/0.9226
"""


@dataclass(frozen=True)
class Published:
    """One published result: PSNR (dB) and SSIM on the Y channel, and where it is printed."""

    psnr: float
    ssim: float
    source: str


def _parse(table: str) -> dict[tuple[str, str, int], Published]:
    entries = {}
    for line in table.strip().splitlines():
        head, values = line.split(" | ")
        method, scale, source = head.split(" ", 2)
        for set_name, cell in zip(SETS, values.split(), strict=True):
            if cell != "-":
                psnr, ssim = (float(v) for v in cell.split("/"))
                entries[(method, set_name, int(scale))] = Published(psnr, ssim, source)
    return entries


PUBLISHED = _parse(_TABLE)


def published(method: str, set_name: str, scale: int) -> Published | None:
    """The published result of ``method`` (a model config name) on a set at a scale, if known.

    Example:
        >>> published("bicubic", "Set5", 4).psnr
        28.42
        >>> published("edsr_tiny", "Set5", 4) is None
        True
    """
    return PUBLISHED.get((method.lower(), set_name, int(scale)))

"""The original ESRGAN code's names (xinntao/ESRGAN) for srlab's RRDBNet."""

from __future__ import annotations

from srlab.weights.registry import KeyLayout, register_layout, rename_by_rules

# The original ESRGAN code (xinntao/ESRGAN, RRDBNet_arch.py; also the pre-2020 BasicSR/mmsr),
# for the released RRDB_PSNR_x4.pth and RRDB_ESRGAN_x4.pth.
_ESRGAN_RULES: list[tuple[str, str | None]] = [
    (r"RRDB_trunk\.(\d+)\.RDB([123])\.conv([1-5])\.(weight|bias)", r"body.\1.rdb\2.conv\3.\4"),
    (r"trunk_conv\.(weight|bias)", r"conv_body.\1"),
    (r"upconv([12])\.(weight|bias)", r"conv_up\1.\2"),
    (r"HRconv\.(weight|bias)", r"conv_hr.\1"),
]


register_layout(
    KeyLayout(
        name="esrgan",
        description="original ESRGAN RRDBNet (xinntao/ESRGAN: RRDB_trunk, trunk_conv, HRconv)",
        detect=lambda keys: any(k.startswith("RRDB_trunk.") for k in keys),
        convert=rename_by_rules(_ESRGAN_RULES),
    )
)

"""``python -m srlab.zoo``: the zoo's entries, their scores beside the paper's, how each was made."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from srlab.zoo import entries


def _pair(scores: dict | None) -> str:
    """``PSNR / SSIM``; ``-`` for what a paper does not give."""
    if not scores:
        return "-"
    ssim = scores.get("ssim")
    return f"{scores['psnr']:.2f} / " + ("-" if ssim is None else f"{ssim:.4f}")


def table() -> Table:
    """One row per entry and evaluation set: srlab's PSNR/SSIM, the paper's, the gap."""
    grid = Table(title="srlab model zoo (Y channel, scale pixels shaved; `ckpt_path=zoo:<name>`)")
    for column in ("entry", "set", "srlab PSNR / SSIM", "paper PSNR / SSIM", "gap (dB)", "run"):
        left = column in ("entry", "set", "run")
        # The entry is what a user types: never cut it to fit a narrow terminal.
        grid.add_column(column, justify="left" if left else "right", no_wrap=column == "entry")
    for name, item in entries().items():
        record = item.record
        paper = record.get("paper", {}).get("sets", {})
        run = f"{record['steps']:,} steps, {record['wall_time_s'] / 60:.0f} min"
        for i, (set_name, scores) in enumerate(record["results"]["sets"].items()):
            reference = paper.get(set_name)
            gap = f"{scores['psnr'] - reference['psnr']:+.2f}" if reference else "-"
            grid.add_row(
                f"zoo:{name}" if i == 0 else "",
                set_name,
                _pair(scores),
                _pair(reference),
                gap,
                run if i == 0 else "",
            )
    return grid


def main() -> int:
    """Print the table and where each entry's paper numbers come from."""
    console = Console()
    console.print(table())
    for name, item in entries().items():
        record = item.record
        line = (
            f"zoo:{name}: {record['model']} x{record['scale']}, {record['params']:,} parameters; "
            f"paper: {record.get('paper', {}).get('source', 'none')}; "
            f"scored by `{record['results']['command']}`"
        )
        console.print(escape(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())

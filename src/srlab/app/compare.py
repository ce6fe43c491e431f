"""Comparing runs from their local records (no W&B needed): a table and validation curves.

``python src/compare.py <run or sweep dirs...>`` reads each run's ``run.json`` and
``metrics.jsonl`` (:mod:`srlab.tracking.records`), prints a table sorted by a metric, and writes it as
markdown and CSV beside a PNG of the validation curves.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from srlab.errors import SRLabError
from srlab.tracking.records import (
    HISTORY_FILE,
    SUMMARY_FILE,
    RunRecord,
    higher_is_better,
    is_run_dir,
    read_run,
)

DEFAULT_SORT = "val/psnr"  # the checkpoint monitor: the first evaluation set's PSNR
TABLE_FILE, CSV_FILE, PLOT_FILE = "comparison.md", "comparison.csv", "val_curves.png"
# The per-set metrics that get columns and curves (val/psnr repeats the first set's PSNR).
SET_METRIC = re.compile(r"^val/[^/]+/[^/]+$")


@dataclass
class Comparison:
    """Runs side by side: their records, short labels and the metrics they share.

    Attributes:
        runs: the records, sorted by ``sort`` (best first; runs without it last).
        labels: each run's folder relative to the folder all runs have in common.
        overrides: each run's overrides that not every run has (what tells them apart).
        common_overrides: the overrides every run has.
        metrics: the ``val/<Set>/<metric>`` keys, in the order the runs logged them.
        sort: the metric the runs are sorted by (its best value).
    """

    runs: list[RunRecord]
    labels: list[str]
    overrides: list[list[str]]
    common_overrides: list[str]
    metrics: list[str]
    sort: str

    def entries(self) -> Iterator[tuple[RunRecord, str, list[str]]]:
        """``(record, label, distinguishing overrides)`` of each run, in sorted order."""
        return zip(self.runs, self.labels, self.overrides, strict=True)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per run: label, overrides, best and final of each metric, steps, wall
        time, parameters, status and git state (raw values, for CSV)."""
        rows = []
        for run, label, overrides in self.entries():
            summary, metrics = run.summary, run.metrics
            row: dict[str, Any] = {"run": label, "overrides": " ".join(overrides)}
            for key in self.metrics:
                row[f"{key} best"] = metrics.get(key, {}).get("best")
                row[f"{key} final"] = metrics.get(key, {}).get("final")
            row.update(
                steps=summary.get("steps"),
                wall_time_s=summary.get("wall_time_s"),
                params=summary.get("params"),
                status=summary.get("status"),
                git_commit=summary.get("git_commit"),
                git_dirty=summary.get("git_dirty"),
                path=str(run.path),
            )
            rows.append(row)
        return rows

    def display_rows(self) -> tuple[list[str], list[list[str]]]:
        """Header and formatted cells of the printed and markdown tables (with a status
        column only when a run has not finished)."""
        header = ["run", "overrides"]
        for key in self.metrics:
            _, set_name, name = key.split("/")
            header.append(f"{set_name} {name.upper()} best / final")
        header += ["steps", "wall time", "params"]
        rows = self.rows()
        with_status = any(row["status"] != "finished" for row in rows)
        header += ["status"] if with_status else []
        cells = []
        for row in rows:
            line = [row["run"], row["overrides"]]
            for key in self.metrics:
                best, final = row[f"{key} best"], row[f"{key} final"]
                line.append("" if best is None else f"{_metric(key, best)} / {_metric(key, final)}")
            line += [
                _number(row["steps"]),
                _duration(row["wall_time_s"]),
                _number(row["params"]),
            ]
            line += [row["status"] or "unknown"] if with_status else []
            cells.append(line)
        return header, cells


def find_run_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """The run dirs that ``paths`` name: a run dir itself, or every run dir below a folder
    (the jobs of a sweep, ``<sweep>/<job number>/``, or a task's ``runs/``).

    Raises:
        SRLabError: a path does not exist or holds no run records.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise SRLabError(f"{path}: no such folder: give run dirs or sweep dirs")
        if is_run_dir(path):
            runs = [path]
        else:
            runs = sorted((p.parent for p in path.rglob(SUMMARY_FILE)), key=_natural_key)
        if not runs:
            raise SRLabError(
                f"{path}: no run records: expected {SUMMARY_FILE} (and {HISTORY_FILE}) in it "
                f"or in its job folders (<sweep dir>/<job number>/{SUMMARY_FILE}). Training "
                "writes them with callbacks.run_records (conf/callbacks/default.yaml); runs "
                "made without that callback have none"
            )
        found += [run for run in runs if run not in found]
    return found


def compare(paths: Sequence[str | Path], sort: str = DEFAULT_SORT) -> Comparison:
    """Read the runs under ``paths`` and line them up, sorted by the best value of ``sort``.

    Raises:
        SRLabError: no run records under a path, an unreadable ``run.json``, or a ``sort``
            metric that no run logged (while others were).
    """
    run_dirs = find_run_dirs(paths)
    runs = []
    for run_dir in run_dirs:
        try:
            runs.append(read_run(run_dir))
        except ValueError as error:
            raise SRLabError(str(error)) from None
    logged = list(dict.fromkeys(k for run in runs for k in run.metrics))
    # Before any run has validated there is nothing to sort by, and nothing wrong with --sort.
    if logged and sort not in logged:
        raise SRLabError(f"--sort {sort}: no compared run logged it; logged: {', '.join(logged)}")
    runs.sort(key=lambda run: _sort_key(run, sort))
    overrides = [list(run.summary.get("overrides") or []) for run in runs]
    # What every run has says nothing about their differences (a single run keeps its own).
    common = [o for o in overrides[0] if len(runs) > 1 and all(o in x for x in overrides[1:])]
    return Comparison(
        runs=runs,
        labels=_labels([run.path for run in runs]),
        overrides=[[o for o in run_overrides if o not in common] for run_overrides in overrides],
        common_overrides=common,
        metrics=[key for key in logged if SET_METRIC.match(key)],
        sort=sort,
    )


def rich_table(comparison: Comparison) -> Table:
    """The comparison as a rich table for the terminal."""
    header, cells = comparison.display_rows()
    caption = f"sorted by the best {comparison.sort}"
    if comparison.common_overrides:
        caption += f"; every run has: {' '.join(comparison.common_overrides)}"
    table = Table(title="runs", caption=Text(caption))  # Text: "tags=[a]" is not markup
    for index, name in enumerate(header):
        if index < 2:  # run and overrides: long text, folded so that the numbers fit
            table.add_column(name, overflow="fold", min_width=8)
        else:  # numbers are never cut: at least as wide as the widest
            width = max(len(line[index]) for line in cells)
            table.add_column(name, justify="right", min_width=width)
    for line in cells:
        table.add_row(*map(Text, line))  # Text: "tags=[a,b]" is not rich markup
    return table


def markdown_table(comparison: Comparison) -> str:
    """The comparison as a markdown table, with the sort metric and common overrides."""
    header, cells = comparison.display_rows()
    lines = [
        f"Sorted by the best `{comparison.sort}`.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|",
        *("| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in cells),
    ]
    if comparison.common_overrides:
        lines[1:1] = ["", f"Every run has: `{' '.join(comparison.common_overrides)}`."]
    return "\n".join(lines) + "\n"


def write_csv(comparison: Comparison, path: str | Path) -> None:
    """The comparison as CSV, with unrounded values and each run's path and git state."""
    rows = comparison.rows()
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot_curves(comparison: Comparison, path: str | Path) -> bool:
    """Plot every run's validation curves (one panel per set and metric) to a PNG.

    Returns:
        False, writing nothing, when no run has validated yet.
    """
    if not comparison.metrics:
        return False
    # Figure without pyplot: no GUI backend and no global figure state.
    from matplotlib.figure import Figure

    sets = list(dict.fromkeys(key.split("/")[1] for key in comparison.metrics))
    names = list(dict.fromkeys(key.split("/")[2] for key in comparison.metrics))
    figure = Figure(figsize=(5 * len(names), 3.5 * len(sets)), layout="constrained")
    axes = figure.subplots(len(sets), len(names), squeeze=False)
    for row, set_name in enumerate(sets):
        for column, name in enumerate(names):
            key, ax = f"val/{set_name}/{name}", axes[row][column]
            for run, label, overrides in comparison.entries():
                points = [(r["step"], r[key]) for r in run.history if r.get(key) is not None]
                if points:
                    steps, values = zip(*points, strict=True)
                    ax.plot(
                        steps, values, marker="o", markersize=3, label=_legend(label, overrides)
                    )
            ax.set_title(key)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
    # One legend for all panels, below them: labels with overrides are long.
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", fontsize="small")
    figure.savefig(path, dpi=100)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """The ``src/compare.py`` command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python src/compare.py",
        description="Compare runs from their local records: print a table sorted by a metric, "
        "write it as markdown and CSV, and plot the validation curves.",
    )
    parser.add_argument(
        "dirs", nargs="+", help="run dirs, or folders holding runs (a sweep dir, a runs/ dir)"
    )
    parser.add_argument(
        "--sort",
        default=DEFAULT_SORT,
        help=f"metric to sort by, best first: descending for PSNR/SSIM (default {DEFAULT_SORT})",
    )
    parser.add_argument(
        "--out",
        help="folder for the table and the plot (default outputs/compare/<date>_<time>)",
    )
    args = parser.parse_args(argv)
    comparison = compare(args.dirs, sort=args.sort)
    out = Path(args.out or Path("outputs", "compare", datetime.now().strftime("%Y-%m-%d_%H-%M-%S")))
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    table = rich_table(comparison)
    if not console.is_terminal:
        # Piped to a file or a log: print the table at its full width rather than at rich's
        # default of 80 columns, which would fold every cell.
        unbounded = console.options.update_width(10_000)
        console.width = max(console.width, Measurement.get(console, unbounded, table).maximum)
    console.print(table)
    (out / TABLE_FILE).write_text(markdown_table(comparison), encoding="utf-8")
    write_csv(comparison, out / CSV_FILE)
    written = [out / TABLE_FILE, out / CSV_FILE]
    if plot_curves(comparison, out / PLOT_FILE):
        written.append(out / PLOT_FILE)
    else:
        console.print("no validation curves to plot: no run has validated yet")
    for path in written:
        console.print(f"wrote {path}", soft_wrap=True)
    return 0


def _sort_key(run: RunRecord, sort: str) -> tuple[bool, float]:
    best = run.metrics.get(sort, {}).get("best")
    if best is None:
        return (True, 0.0)  # runs without the metric go last
    return (False, -best if higher_is_better(sort) else best)


def _labels(paths: list[Path]) -> list[str]:
    if len(paths) == 1:
        return [paths[0].name]
    root = Path(os.path.commonpath([p.resolve() for p in paths]))
    return [str(p.resolve().relative_to(root)) for p in paths]


def _legend(label: str, overrides: list[str]) -> str:
    text = f"{label}: {' '.join(overrides)}" if overrides else label
    return textwrap.fill(text, width=100, subsequent_indent="    ")


def _natural_key(path: Path) -> list:
    # Job folders 0, 1, ..., 10 in numeric order, not 0, 1, 10, 2.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def _metric(key: str, value: float) -> str:
    return f"{value:.2f}" if key.endswith("psnr") else f"{value:.4f}"


def _number(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _duration(seconds: float | None) -> str:
    return "" if seconds is None else str(timedelta(seconds=round(seconds)))

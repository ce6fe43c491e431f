"""The local records of a run, written whatever the logger: read by ``src/compare.py``.

A run dir holds two files (written by :class:`srlab.tracking.RunRecords`, on rank 0):

- ``metrics.jsonl``: one JSON object per validation, ``{"step": 200, "wall_time_s": 81.2,
  "val/psnr": 30.1, "val/Set5/psnr": 30.1, "val/Set5/ssim": 0.91, ...}``, appended as the run
  goes, so a killed run keeps its curves;
- ``run.json``: the summary, rewritten at each validation and at the end: ``status``
  (running, finished, failed), ``overrides``, ``git_commit``, ``git_dirty``, ``params``,
  ``steps``, ``wall_time_s``, ``metrics`` (best and final of each metric), ``bicubic``
  (the baseline, logged once) and ``test`` (the test of the best checkpoint).

This module knows the format only (no Lightning), so that reading records is fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srlab.files import atomic_write

HISTORY_FILE = "metrics.jsonl"
SUMMARY_FILE = "run.json"
STEP_KEYS = ("step", "wall_time_s")  # the keys of a history row that are not metrics


def higher_is_better(key: str) -> bool:
    """Whether a larger value of metric ``key`` is better (PSNR, SSIM), else smaller (losses)."""
    return key.rsplit("/", 1)[-1].startswith(("psnr", "ssim"))


def summarize(history: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """``{key: {"best": ..., "best_step": ..., "final": ...}}`` of every metric in ``history``.

    Best is the maximum for PSNR/SSIM and the minimum otherwise, over all rows; final is the
    last row's value.
    """
    summary: dict[str, dict[str, float]] = {}
    for row in history:
        for key, value in row.items():
            if key in STEP_KEYS or value is None:
                continue
            entry = summary.setdefault(key, {"best": value, "best_step": row.get("step")})
            better = value > entry["best"] if higher_is_better(key) else value < entry["best"]
            if better:
                entry["best"], entry["best_step"] = value, row.get("step")
            entry["final"] = value
    return summary


def append_history(run_dir: str | Path, row: Mapping[str, Any]) -> None:
    """Append one row to ``<run_dir>/metrics.jsonl``."""
    with open(Path(run_dir, HISTORY_FILE), "a", encoding="utf-8") as file:
        file.write(json.dumps(dict(row)) + "\n")


def write_history(run_dir: str | Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Replace ``<run_dir>/metrics.jsonl`` with ``rows``, through a temporary file."""
    text = "".join(json.dumps(dict(row)) + "\n" for row in rows)
    with atomic_write(Path(run_dir, HISTORY_FILE)) as partial:
        partial.write_text(text, encoding="utf-8")


def write_summary(run_dir: str | Path, summary: Mapping[str, Any]) -> None:
    """Write ``<run_dir>/run.json`` through a temporary file, so a reader never sees half."""
    with atomic_write(Path(run_dir, SUMMARY_FILE)) as partial:
        partial.write_text(json.dumps(dict(summary), indent=2) + "\n", encoding="utf-8")


@dataclass
class RunRecord:
    """The records of one run dir: its summary (``run.json``) and history (``metrics.jsonl``)."""

    path: Path
    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        """Best and final of every metric, from the history (see :func:`summarize`)."""
        return summarize(self.history)


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` holds a run's records."""
    return Path(path, SUMMARY_FILE).is_file()


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """The ``run.json`` of ``run_dir``.

    Raises:
        FileNotFoundError: ``run_dir`` has no ``run.json``.
        ValueError: ``run.json`` is not valid JSON.
    """
    path = Path(run_dir, SUMMARY_FILE)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}): delete it or fix it") from None


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``<run_dir>/metrics.jsonl`` (none if it does not exist yet).

    A line cut short (a run killed while writing it) is skipped.
    """
    path = Path(run_dir, HISTORY_FILE)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def read_run(run_dir: str | Path) -> RunRecord:
    """The records of ``run_dir`` (see :func:`read_summary` for the errors)."""
    return RunRecord(Path(run_dir), read_summary(run_dir), read_history(run_dir))

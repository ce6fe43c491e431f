"""srlab's model zoo: weights trained by srlab's own recipes, shipped inside the package.

Each entry is two files in this folder: ``<name>.safetensors`` (the network's weights, with
its model config and scale in the metadata, as ``src/export.py format=safetensors`` writes
them) and ``<name>.json``, the record of how they were made: the recipe's command and resolved
config, the git commit, the steps, wall time and speed of the run, the training images, the
validation curve and the final scores per set beside the paper's.

Anywhere srlab reads weights, ``zoo:<name>`` names an entry: ``python src/eval.py
ckpt_path=zoo:fsrcnn_x2``, ``src/infer.py``, ``src/export.py``, and ``model.pretrained=
zoo:fsrcnn_x2`` to fine-tune. No network is needed: the files are part of the install.
``python -m srlab.zoo`` lists the entries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srlab.errors import SRLabError

__all__ = ["PREFIX", "ZOO_DIR", "ZooEntry", "ZooError", "entries", "entry", "is_zoo", "resolve"]

PREFIX = "zoo:"
ZOO_DIR = Path(__file__).resolve().parent


class ZooError(SRLabError):
    """A ``zoo:`` name that names no entry, or an entry whose files are incomplete."""


@dataclass(frozen=True)
class ZooEntry:
    """One zoo entry: its weights file and its record (``<name>.json``).

    Attributes:
        name: the name after ``zoo:`` (e.g. ``fsrcnn_x2``).
        weights: the ``.safetensors`` file.
        record: the parsed record: ``model``, ``scale``, ``command``, ``config``,
            ``git_commit``, ``steps``, ``wall_time_s``, ``patches_per_s``, ``data``,
            ``curve`` (the validation history) and ``results`` (per protocol and set:
            srlab's PSNR/SSIM and the paper's, with the paper's source).
    """

    name: str
    weights: Path
    record: dict[str, Any]

    @property
    def reference(self) -> str:
        """``zoo:<name>``, what a user types."""
        return PREFIX + self.name


def is_zoo(source: object) -> bool:
    """Whether ``source`` is a ``zoo:<name>`` reference."""
    return isinstance(source, str) and source.startswith(PREFIX)


def entries() -> dict[str, ZooEntry]:
    """Every entry of the zoo, by name (the records found in :data:`ZOO_DIR`)."""
    found = {}
    for record_path in sorted(ZOO_DIR.glob("*.json")):
        name = record_path.stem
        weights = record_path.with_suffix(".safetensors")
        if not weights.is_file():
            raise ZooError(
                f"zoo entry {name!r}: {record_path} has no weights file {weights.name} beside "
                "it; reinstall srlab (pip install -e .) or remove the record"
            )
        found[name] = ZooEntry(name, weights, json.loads(record_path.read_text()))
    return found


def entry(name: str) -> ZooEntry:
    """The entry ``name`` (with or without the ``zoo:`` prefix).

    Raises:
        ZooError: no such entry; the message lists the entries there are.
    """
    name = name.removeprefix(PREFIX)
    available = entries()
    if name not in available:
        listed = ", ".join(PREFIX + n for n in available) or "none"
        raise ZooError(
            f"{PREFIX}{name} is not in srlab's model zoo (entries: {listed}); "
            "`python -m srlab.zoo` lists them with their scores"
        )
    return available[name]


def resolve(source: str | Path) -> str | Path:
    """The weights file of a ``zoo:<name>`` reference; any other source is returned as is."""
    if is_zoo(source):
        return entry(str(source)).weights
    return source

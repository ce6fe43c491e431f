"""What every entry point shares: srlab's Hydra resolvers, and user errors as one line.

Each script calls :func:`configure_hydra` before its ``@hydra.main`` function (nothing happens at
import), and runs its work inside :func:`report_user_errors`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sys
import warnings
from collections.abc import Iterator

from hydra.core.utils import setup_globals
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

from srlab.errors import ConfigError, SRLabError

log = logging.getLogger("srlab")


def configure_hydra() -> None:
    """What srlab's ``conf/`` needs before Hydra composes it: call once per entry point.

    Registers the resolvers (:func:`register_resolvers`). ``conf/hydra/launcher/submitit_*``
    carry the names of the submitit plugin's schemas, so that ``hydra/launcher=submitit_slurm``
    gets srlab's defaults; Hydra 1.3 merges them onto the schemas as intended but warns that
    this matching "will be removed in Hydra 1.2": that warning is silenced.
    """
    register_resolvers()
    warnings.filterwarnings(
        "ignore",
        message=r"\s*'hydra/launcher/submitit_(local|slurm)' is validated against ConfigStore",
    )


def register_resolvers() -> None:
    """Register ``${srlab.uid:}``, ``${srlab.cwd:}`` and Hydra's resolvers (``${hydra:}``, ``${now:}``).

    ``${srlab.uid:}`` is a random 6-hex-digit id, one per process and config:
    ``conf/hydra/default.yaml`` appends it to run and sweep folder names, whose ``${now:}``
    part has one-second resolution, so two sweeps started in the same second (two users, a
    job array) get two folders. It is cached like ``${now:}``: every job of a sweep, and
    Hydra's copies of the config for them, see the same value.

    Hydra registers its resolvers when it composes a config, but not on the
    ``--experimental-rerun`` path that DDP ranks take (:func:`ranks_rerun_this_job`), where
    ``paths.output_dir: ${hydra:runtime.output_dir}`` must still resolve.
    """
    setup_globals()
    OmegaConf.register_new_resolver(
        "srlab.uid", lambda: secrets.token_hex(3), use_cache=True, replace=True
    )
    # ${hydra:runtime.cwd} is set only once a job starts, but sweepers (basic, Optuna) resolve
    # hydra.sweep.dir before that: run and sweep folders hang off the launch directory instead
    # (the same directory, since srlab jobs never chdir).
    OmegaConf.register_new_resolver("srlab.cwd", os.getcwd, use_cache=True, replace=True)


_INFERENCE = {
    key: f"inference.{key}"
    for key in ("tile", "tile_overlap", "self_ensemble", "precision", "batch", "device")
}
#: Keys an entry point (its config's name) no longer has, and what replaced them: the command
#: line is checked before Hydra composes (which would only say "not in struct").
RENAMED: dict[str, dict[str, str]] = {
    "eval": {
        "ckpt": "ckpt_path",
        "data_root": "data.root",
        "eval.sets": "data.test_sets",
        "eval.lr": "data.lr",
        "eval.download": "data.download",
        **{f"eval.{key}": value for key, value in _INFERENCE.items()},
    },
    "infer": {"ckpt": "ckpt_path", **_INFERENCE},
    "export": {"ckpt": "ckpt_path"},
}


def check_renamed_keys(entry: str, argv: list[str]) -> None:
    """Raise a :class:`ConfigError` naming the replacement of each renamed key in ``argv``
    (Hydra overrides of the entry point whose config is ``entry``)."""
    renamed = RENAMED.get(entry, {})
    found = []
    for arg in argv:
        key = arg.split("=", 1)[0].lstrip("+~")
        if key in renamed:
            found.append(f"{key} is now {renamed[key]}")
    if found:
        raise ConfigError(
            "; ".join(found) + f": rename {'them' if len(found) > 1 else 'it'} on the command line"
        )


def user_error(error: BaseException) -> SRLabError | None:
    """The :class:`SRLabError` that ``error`` is or wraps (Hydra wraps whatever a ``_target_``
    raises in an ``InstantiationException``), else None."""
    while error is not None:
        if isinstance(error, SRLabError):
            return error
        if not isinstance(error, InstantiationException):
            return None
        error = error.__cause__
    return None


@contextlib.contextmanager
def report_user_errors() -> Iterator[None]:
    """Turn an :class:`SRLabError` into its message on stderr and exit status 1.

    These errors (missing dataset, bad config) are fixed by the user, so their message says
    how, and a stack trace would only hide it; one raised while Hydra instantiates a config
    node is reported the same way. Every other exception propagates as usual.
    """
    try:
        yield
    except Exception as exc:
        error = user_error(exc)
        if error is None:
            raise
        log.error("%s", error)
        print(f"\nsrlab error: {error}", file=sys.stderr)
        raise SystemExit(1) from None

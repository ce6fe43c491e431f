"""Shared behaviour of the command-line entry points."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from srlab.errors import SRLabError
from srlab.launch import configure_hydra

log = logging.getLogger("srlab")
# Every entry point imports this module before Hydra composes conf/ (whose folder names use
# ${srlab.uid:}).
configure_hydra()


@contextlib.contextmanager
def report_user_errors() -> Iterator[None]:
    """Turn an :class:`SRLabError` into its message on stderr and exit status 1.

    These errors (missing dataset, bad config) are fixed by the user, so their message says
    how, and a stack trace would only hide it. Every other exception propagates as usual.
    """
    try:
        yield
    except SRLabError as error:
        log.error("%s", error)
        print(f"\nsrlab error: {error}", file=sys.stderr)
        raise SystemExit(1) from None

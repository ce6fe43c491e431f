"""Running one function over many files in threads, with a progress bar on a terminal.

Decoding and file writes release the GIL, so threads use every core for the decoded-image
cache build and the decoding check before training, without the start-up cost and memory of
processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TypeVar

from rich.console import Console
from rich.progress import track

T = TypeVar("T")


def run_parallel(
    items: Sequence[T], function: Callable[[T], object], workers: int, description: str
) -> None:
    """Call ``function(item)`` for every item in ``workers`` threads.

    The progress bar goes to stderr and only to a terminal (logs get the callers' summary
    lines). The first exception stops the run: queued items are cancelled and it is raised
    (Ctrl-C likewise), so a failure does not wait for every remaining item.
    """
    if not items:
        return
    with ThreadPoolExecutor(max(1, workers)) as pool:
        futures = [pool.submit(function, item) for item in items]
        try:
            console = Console(stderr=True)
            for future in track(
                as_completed(futures),
                description,
                total=len(futures),
                console=console,
                transient=True,
                disable=not console.is_terminal,
            ):
                future.result()  # re-raises a failure
        except BaseException:
            for future in futures:
                future.cancel()
            raise

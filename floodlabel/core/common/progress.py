"""The one progress-callback type of long core jobs (evaluation, export, batch embedding, dataset scans).

A job calls `progress(done, total)` after each unit of work: `done` counts finished units (0..total), `total` is the
number of units (it may grow once, when the job learns its size). The CLI turns it into a tqdm bar, the GUI's workers
into a Qt signal; a callback must be cheap and must not raise. Cancellation is separate (`common.cancel`).
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]
"""progress(done, total): units finished so far and units in all."""


def no_progress(done: int, total: int) -> None:
    """The default callback: reports nothing."""

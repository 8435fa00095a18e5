"""Cooperative cancellation for long core work (the image encoder, Auto), Qt-free.

Long work takes a `checkpoint: Callable[[], None]` and calls it often (SAM's encoder: between transformer blocks).
The caller's checkpoint raises `Cancelled` to abandon the work, or blocks to pause it (gui/workers.EmbedWorker
pauses a prefetch while the user clicks).
"""

from __future__ import annotations

from collections.abc import Callable

Checkpoint = Callable[[], None]


class Cancelled(Exception):
    """Raised by a checkpoint when the work it runs in was cancelled or superseded.

    Not a FloodLabelError: it is no failure and never reaches the user as a message.
    """


def no_checkpoint() -> None:
    """A checkpoint that never cancels or pauses."""
